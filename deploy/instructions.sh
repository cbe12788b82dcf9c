#!/usr/bin/env bash
# User-space instructions per request, herald next to redis-server, under callgrind (exact
# and repeatable, unlike time; the method docs/performance.md describes):
#
#   herald   one worker (`herald start --workers 1` under `valgrind --trace-children=yes`),
#            `herald bench rr` (randomNumber); the worker's total instructions less an idle
#            run's, over the requests it served (the `messages=` of its connection.close lines)
#   redis    redis-server under callgrind, `herald bench rr --target redis` (PING); its total
#            less an idle run's, over INFO's total_commands_processed
#
# Usage: deploy/instructions.sh [seconds] [connections]   (default 10 s, 10 connections)
#        HERALD_KEEP=1 keeps the callgrind files (callgrind_annotate --inclusive=yes <file>)
#        HERALD_DEPTHS="1" measures only pipeline 1 (default "1 16")
# Prints `RESULT instructions pipeline 1: herald N, redis M, ratio R` and the same for
# pipeline 16. Takes about three minutes. Everything runs on loopback; every process it
# starts it stops.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
connections=${2:-10}

command -v valgrind >/dev/null || { echo "instructions.sh needs valgrind (apt-get install valgrind)" >&2; exit 1; }
[ -x .build/release/herald ] || swift build -c release >/dev/null
work=$(mktemp -d /tmp/herald-instructions-XXXXXX)
# Valgrind 3.19 cannot read the release binary's debug information; a copy without it
# keeps the symbols.
strip --strip-debug -o "$work/herald" .build/release/herald
herald=$work/herald
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "${HERALD_KEEP:-}" ]; then echo "callgrind files kept in $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 300); do (echo > /dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; echo "nothing listens on $1" >&2; exit 1; }
summary() { sed -n 's/^summary: //p' "$1"; }  # a callgrind output file's total

rp=$(free_port)
redis-server --port "$rp" --bind 127.0.0.1 --save '' --appendonly no >"$work/redis.log" 2>&1 &
pids+=($!); wait_port "$rp"

# herald_run <name> <load: idle | pipeline depth>: prints "<instructions> <requests>"
herald_run() {
  local dir="$work/$1" port; port=$(free_port); mkdir -p -m 700 "$dir"
  (cd "$dir" && HERALD_RUN_DIR="$dir" exec valgrind --tool=callgrind --trace-children=yes \
      --callgrind-out-file="$dir/cg.%p" "$herald" start --workers 1 --port "$port" --bind 127.0.0.1 \
      --redis "redis://127.0.0.1:$rp" --log "$dir/herald.log" >"$dir/out" 2>&1) &
  local supervisor=$!; wait_port "$port"; sleep 2
  if [ "$2" = idle ]; then sleep "$((seconds + 1))"
  else "$herald" bench rr --port "$port" --connections "$connections" --duration "$seconds" --pipeline "$2" >"$dir/bench"
  fi
  kill -TERM "$supervisor"; wait "$supervisor" || true
  local file; file=$(grep -l '^cmd:.* worker' "$dir"/cg.* | head -1)
  local requests; requests=$(grep -h 'connection.close' "$dir/herald.log" | tr ' ' '\n' | sed -n 's/^messages=//p' | awk '{s+=$1} END {print s+0}')
  echo "$(summary "$file") $requests"
}

# redis_run <name> <load>: prints "<instructions> <requests>"
redis_run() {
  local dir="$work/$1" port; port=$(free_port); mkdir -p "$dir"
  valgrind --tool=callgrind --callgrind-out-file="$dir/cg.out" redis-server --port "$port" --bind 127.0.0.1 \
      --save '' --appendonly no >"$dir/out" 2>&1 &
  local pid=$!; pids+=("$pid"); wait_port "$port"; sleep 2
  if [ "$2" = idle ]; then sleep "$((seconds + 1))"
  else "$herald" bench rr --target redis --port "$port" --connections "$connections" --duration "$seconds" --pipeline "$2" >"$dir/bench"
  fi
  local requests; requests=$(redis-cli -p "$port" info stats | sed -n 's/^total_commands_processed:\([0-9]*\).*/\1/p')
  kill -TERM "$pid"; wait "$pid" || true
  echo "$(summary "$dir/cg.out") $((requests - 1))"  # less the INFO itself
}

per_request() { awk -v a="$1" -v idle="$2" -v n="$3" 'BEGIN { if (n > 0) printf "%.0f", (a - idle) / n; else print "none" }'; }

read -r herald_idle _ < <(herald_run herald-idle idle)
read -r redis_idle _ < <(redis_run redis-idle idle)
for depth in ${HERALD_DEPTHS:-1 16}; do
  read -r hi hn < <(herald_run "herald-$depth" "$depth")
  read -r ri rn < <(redis_run "redis-$depth" "$depth")
  h=$(per_request "$hi" "$herald_idle" "$hn"); r=$(per_request "$ri" "$redis_idle" "$rn")
  echo "herald pipeline $depth: $hi instructions ($herald_idle idle), $hn requests"
  echo "redis pipeline $depth: $ri instructions ($redis_idle idle), $rn requests"
  echo "RESULT instructions pipeline $depth: herald $h, redis $r, ratio $(awk "BEGIN {printf \"%.2f\", $h/$r}")"
done
