#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, and runs the unit and
# integration tests (which start the real herald binary and their own redis-server),
# then a short fuzz pass.
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/setup.sh
swift build --build-tests
swift test --skip-build "$@"
# The consumer-package test (ConsumerPackageTests: a user's package built against a
# tagged clone of HEAD) compiles for a minute or more, so it is skipped above and runs
# here once, alone (its build would slow the timing-sensitive tests beside it).
if [ $# -eq 0 ]; then HERALD_CONSUMER_TEST=1 swift test --skip-build --filter ConsumerPackageTests; fi
# A short fuzz pass over the parsers (deploy/fuzz.sh; longer runs: deploy/fuzz.sh 600).
# Skipped when a test filter or other swift-test arguments were given.
if [ $# -eq 0 ]; then ./deploy/fuzz.sh "${HERALD_TEST_FUZZ_SECONDS:-15}"; fi
