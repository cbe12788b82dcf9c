#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, and runs the unit and
# integration tests (which start the real herald binary and their own redis-server),
# then a short fuzz pass.
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/setup.sh
swift build --build-tests
if [ $# -gt 0 ]; then exec swift test --skip-build "$@"; fi
# The client library's tests are async and time their replies; beside the integration
# tests, which block the test process's few cooperative threads (2 on a 2-core machine)
# for seconds at a time, they wait for a thread instead. So they run on their own.
swift test --skip-build --skip '^HeraldClientTests\.'
swift test --skip-build --filter '^HeraldClientTests\.'
# The consumer-package test (ConsumerPackageTests: a user's package built against a
# tagged clone of HEAD) compiles for a minute or more, so it is skipped above and runs
# here once, alone (its build would slow the timing-sensitive tests beside it).
HERALD_CONSUMER_TEST=1 swift test --skip-build --filter ConsumerPackageTests
# A short fuzz pass over the parsers (deploy/fuzz.sh; longer runs: deploy/fuzz.sh 600).
# (A test filter or other swift-test arguments run just those tests, above.)
./deploy/fuzz.sh "${HERALD_TEST_FUZZ_SECONDS:-15}"
