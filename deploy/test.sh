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
# A small connection-scale run (deploy/million.py, the 1,000,000-connection tool): 5,000
# connections from 2 load processes and 3 source addresses on two workers; every say
# must reach every one and the stop must close them all.
python3 deploy/million.py --connections 5000 --per-process 2500 --per-source 2000 --workers 2 \
    --says 2 --say-gap 1 --settle 1 --check --herald .build/debug/herald
# A short fuzz pass over the parsers (deploy/fuzz.sh; longer runs: deploy/fuzz.sh 600).
# (A test filter or other swift-test arguments run just those tests, above.)
./deploy/fuzz.sh "${HERALD_TEST_FUZZ_SECONDS:-15}"
