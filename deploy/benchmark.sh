#!/usr/bin/env bash
# Measures Herald next to redis-server on this machine, in the same run, and prints the
# figures docs/performance.md quotes (medians of several rounds, and herald/redis ratios):
#
#   rr      request/response round trips: one herald worker (randomNumber) vs one
#           redis-server (PING), 50 connections, pipeline 1 and pipeline 16, same load tool
#   idle    resident memory per idle connection, 10,000 connections, fresh servers
#   fanout  one room, 50 and 1,000 subscribers, over a two-worker herald cluster vs redis pub/sub
#   instructions  user-space instructions per request under callgrind, pipeline 1 and 16
#           (deploy/instructions.sh; needs valgrind, about three minutes)
#   million connections held by one host (deploy/million.py; HERALD_BENCH_CONNECTIONS)
#
# Usage: deploy/benchmark.sh [rounds] [seconds]     (default 5 rounds of 5 s)
# Everything runs on loopback; every process it starts it stops.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
seconds=${2:-5}

source deploy/setup.sh >/dev/null
swift build -c release >/dev/null
herald=$PWD/.build/release/herald
work=$(mktemp -d /tmp/herald-benchmark-XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
field() { tr ' ' '\n' | sed -n "s/^$1=//p" | sed 's/[^0-9.]//g'; }
median() { sort -n | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }
wait_port() { for _ in $(seq 1 100); do (echo > /dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; echo "nothing listens on $1" >&2; exit 1; }

start_redis() {  # port
  redis-server --port "$1" --bind 127.0.0.1 --save '' --appendonly no --daemonize no >"$work/redis-$1.log" 2>&1 &
  pids+=($!); wait_port "$1"
}
start_herald() {  # port workers redis-port
  local dir="$work/herald-$1"; mkdir -p -m 700 "$dir"  # a run directory must be 0700
  (cd "$dir" && HERALD_RUN_DIR="$dir" exec "$herald" start --port "$1" --bind 127.0.0.1 --workers "$2" \
      --redis "redis://127.0.0.1:$3" --log-level warn 2>"$dir/log") &
  pids+=($!); wait_port "$1"; sleep 0.5
}
stop_herald() { HERALD_RUN_DIR="$work/herald-$1" "$herald" stop >/dev/null; }
worker_pids() { pgrep -f "herald worker --port $1 " | paste -sd, -; }

echo "machine: $(nproc) cores, $(uname -r), redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/')"

# --- request/response ---------------------------------------------------------------
rp=$(free_port); start_redis "$rp"
hp=$(free_port); start_herald "$hp" 1 "$rp"
: >"$work/rr"
for _ in $(seq 1 "$rounds"); do
  "$herald" bench rr --port "$hp" --duration "$seconds" | tee -a "$work/rr"
  "$herald" bench rr --target redis --port "$rp" --duration "$seconds" | tee -a "$work/rr"
done
: >"$work/rr16"
for _ in $(seq 1 "$rounds"); do
  "$herald" bench rr --port "$hp" --duration "$seconds" --pipeline 16 | tee -a "$work/rr16"
  "$herald" bench rr --target redis --port "$rp" --duration "$seconds" --pipeline 16 | tee -a "$work/rr16"
done
stop_herald "$hp"
h=$(grep 'target=herald' "$work/rr" | field rps | median)
r=$(grep 'target=redis' "$work/rr" | field rps | median)
echo "RESULT rr: herald ${h} req/s, redis ${r} req/s, ratio $(awk "BEGIN {printf \"%.2f\", $h/$r}")"
h=$(grep 'target=herald' "$work/rr16" | field rps | median)
r=$(grep 'target=redis' "$work/rr16" | field rps | median)
echo "RESULT rr pipeline 16: herald ${h} req/s, redis ${r} req/s, ratio $(awk "BEGIN {printf \"%.2f\", $h/$r}")"

# --- idle memory (fresh servers each round) ------------------------------------------
: >"$work/idle"
for _ in $(seq 1 3); do
  hp=$(free_port); start_herald "$hp" 1 "$rp"
  "$herald" bench idle --port "$hp" --pid "$(worker_pids "$hp")" --connections 10000 --hold 3 | tee -a "$work/idle"
  stop_herald "$hp"
  ip=$(free_port); start_redis "$ip"; ipid=${pids[-1]}
  "$herald" bench idle --target redis --port "$ip" --pid "$ipid" --connections 10000 --hold 3 | tee -a "$work/idle"
  kill "$ipid"
done
h=$(grep 'target=herald' "$work/idle" | field bytes_per_connection | median)
r=$(grep 'target=redis' "$work/idle" | field bytes_per_connection | median)
echo "RESULT idle: herald ${h} bytes/connection, redis ${r} bytes/connection"

# --- fan-out over a two-worker cluster ---------------------------------------------
hp=$(free_port); start_herald "$hp" 2 "$rp"
: >"$work/fanout"
for _ in $(seq 1 "$rounds"); do
  "$herald" bench fanout --port "$hp" --subscribers 50 --messages 100000 --duration 30 | tee -a "$work/fanout"
  "$herald" bench fanout --target redis --port "$rp" --subscribers 50 --messages 100000 --duration 30 | tee -a "$work/fanout"
done
# The same with 1,000 members (issue 13's figure): 10,000 messages, 10 M deliveries a run.
: >"$work/fanout1000"
for _ in $(seq 1 "$rounds"); do
  "$herald" bench fanout --port "$hp" --subscribers 1000 --messages 10000 --duration 30 | tee -a "$work/fanout1000"
  "$herald" bench fanout --target redis --port "$rp" --subscribers 1000 --messages 10000 --duration 30 | tee -a "$work/fanout1000"
done
stop_herald "$hp"
for run in fanout fanout1000; do
  h=$(grep 'target=herald' "$work/$run" | field deliveries_per_s | median)
  r=$(grep 'target=redis' "$work/$run" | field deliveries_per_s | median)
  lost=$(grep 'target=herald' "$work/$run" | field lost | awk "{s+=\$1} END {print s+0}")
  members=$([ "$run" = fanout ] && echo 50 || echo 1000)
  echo "RESULT fanout ${members} members: herald ${h} deliveries/s (lost ${lost}), redis ${r} deliveries/s, ratio $(awk "BEGIN {printf \"%.2f\", $h/$r}")"
done

# --- instructions per request (callgrind: exact, unlike the timings above) ----------
if command -v valgrind >/dev/null; then
  bash deploy/instructions.sh
else
  echo "RESULT instructions: skipped (valgrind is not installed)"
fi

# --- connections at scale (deploy/million.py): storm, memory per connection over the
# process tree, say to all with timestamped deliveries, stop. HERALD_BENCH_CONNECTIONS
# sets the count (default 1000000; 0 skips it).
connections=${HERALD_BENCH_CONNECTIONS:-1000000}
if [ "$connections" -gt 0 ]; then
  python3 deploy/million.py --connections "$connections" --herald "$herald"
fi
