#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, and runs the unit and
# integration tests (which start the real herald binary and their own redis-server),
# then a short fuzz pass.
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/setup.sh
swift build --build-tests
swift test --skip-build "$@"
# A short fuzz pass over the parsers (deploy/fuzz.sh; longer runs: deploy/fuzz.sh 600).
# Skipped when a test filter or other swift-test arguments were given.
if [ $# -eq 0 ]; then ./deploy/fuzz.sh "${HERALD_TEST_FUZZ_SECONDS:-15}"; fi
