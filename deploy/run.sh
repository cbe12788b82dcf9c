#!/usr/bin/env bash
# One command from a fresh checkout to a running server: installs what is missing,
# builds a release binary and starts Herald in the foreground on port 5000 (Ctrl-C stops
# it). Extra arguments go to `herald start`, e.g. ./deploy/run.sh --port 6000
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/setup.sh
swift build -c release
exec .build/release/herald start "$@"
