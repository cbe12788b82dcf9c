#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, and runs the unit and
# integration tests (which start the real herald binary and their own redis-server).
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/setup.sh
swift build --build-tests
swift test --skip-build "$@"
