#!/usr/bin/env bash
# A soak: a two-worker cluster with its own redis-server on free loopback ports, under
# `herald bench soak` (slow and stalled readers, pipelined floods, connection churn,
# half-closes, huge says, join/leave storms) for N minutes, watching each worker's VmRSS
# from /proc and counting restarts and protocol errors.
#
#   deploy/soak.sh [minutes]                  (default 10)
#   SOAK_SECONDS=60 deploy/soak.sh            (a short run)
#   SOAK_ARGS="--max-rss-growth 32" deploy/soak.sh 10   (more `herald bench soak` options)
#   HERALD_BIN=/path/to/herald deploy/soak.sh (skip the release build)
#   BENCH_BIN=/path/to/herald                 (the binary whose `bench soak` drives the load;
#                                              default: the same one)
#
# Exits 0 when the verdict is PASS; 1 when a worker restarted, RSS grew past the bound,
# a reply was missing or not JSON. Everything it starts it stops, by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes="${1:-10}"
if ! [[ "$minutes" =~ ^[0-9]+$ ]] || [ "$minutes" -lt 1 ]; then echo "usage: deploy/soak.sh [minutes]" >&2; exit 2; fi
seconds="${SOAK_SECONDS:-$((minutes * 60))}"

source deploy/setup.sh >/dev/null
if [ -n "${HERALD_BIN:-}" ]; then
  herald="$HERALD_BIN"
else
  swift build -c release --product herald >/dev/null
  herald="$PWD/.build/release/herald"
fi
work=$(mktemp -d /tmp/herald-soak-XXXXXX)
redis_pid=""
supervisor=""
cleanup() {
  if [ -n "$supervisor" ] && kill -0 "$supervisor" 2>/dev/null; then
    HERALD_RUN_DIR="$work/run" timeout 20 "$herald" stop >/dev/null 2>&1 || kill "$supervisor" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$supervisor" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$supervisor" 2>/dev/null || true
  fi
  if [ -n "$redis_pid" ]; then kill "$redis_pid" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# A loopback port nothing listens on (bash only).
free_port() {
  local port
  for _ in $(seq 1 200); do
    port=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return 0; fi
  done
  echo "soak: no free port" >&2; exit 1
}
wait_port() { for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "soak: nothing listens on $1" >&2; exit 1; }

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --daemonize no >"$work/redis.log" 2>&1 &
redis_pid=$!
wait_port "$redis_port"

port=$(free_port)
mkdir -p "$work/run" && chmod 700 "$work/run"
(cd "$work" && HERALD_RUN_DIR="$work/run" exec "$herald" start --port "$port" --bind 127.0.0.1 --workers 2 \
    --redis "redis://127.0.0.1:$redis_port" --log "$work/herald.log" --log-level warn) 2>"$work/herald.err" &
supervisor=$!
wait_port "$port"
sleep 1

echo "soak: herald $port (supervisor $supervisor, 2 workers), redis-server $redis_port (pid $redis_pid), $seconds s"
status=0
"${BENCH_BIN:-$herald}" bench soak --port "$port" --pid "$supervisor" --seconds "$seconds" ${SOAK_ARGS:-} || status=$?
if grep -qE 'level=(error|fatal)|unexpected=true' "$work/herald.log" 2>/dev/null; then
  echo "soak: from the cluster's log:"
  grep -E 'level=(error|fatal)|unexpected=true' "$work/herald.log" | head -10 | sed 's/^/  /'
fi
exit "$status"
