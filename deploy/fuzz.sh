#!/usr/bin/env bash
# Builds the libFuzzer targets (Sources/HeraldFuzz) and runs each for a while:
#
#   deploy/fuzz.sh [seconds-per-target]        (default 60)
#
# Targets: framer (line framer in random splits + request parser), json (JSON parser,
# round trip through JSONWriter), resp (hiredis reader + Herald's reply copy, the bench's
# RESP reader), config (configuration files, --set and HERALD_* settings). Prints
# executions and executions/s per target; exits 1 when any target crashed (the input is
# saved under .build-fuzz/artifacts/<target>/ and the line to replay it is printed).
#
# Environment:
#   FUZZ_TARGETS="json resp"   run only these targets
#   FUZZ_RUNS=10000000         run each target for this many executions instead (the
#                              seconds are then ignored)
#   FUZZ_NICE=10               run the fuzzers at this nice level
#   FUZZ_ARGS="-max_len=512"   more libFuzzer options
#   FUZZ_SEEDS=DIR             seeds from DIR/<target> instead of Tests/Fuzz/<target>
# Seeds and dictionaries are in Tests/Fuzz; what a run finds goes to .build-fuzz/corpus/
# (kept between runs, not in git).
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/setup.sh

seconds="${1:-60}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
  echo "usage: deploy/fuzz.sh [seconds-per-target]" >&2
  exit 2
fi
targets=(${FUZZ_TARGETS:-framer json resp config})
runs="${FUZZ_RUNS:-}"
niceness="${FUZZ_NICE:-0}"
scratch=.build-fuzz

# -sanitize=fuzzer needs libFuzzer from the toolchain (and libstdc++, a Swift prerequisite).
toolchain="$(dirname "$(dirname "$(command -v swift)")")"
if ! ls "$toolchain"/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1 &&
   ! ls "$toolchain"/lib/swift/clang/lib/linux/libclang_rt.fuzzer-*.a >/dev/null 2>&1; then
  echo "fuzz: this Swift toolchain ($toolchain) has no libFuzzer runtime (libclang_rt.fuzzer)" >&2
  exit 1
fi

# Built alone: with --sanitize=fuzzer libFuzzer supplies main(), so no other executable links.
echo "fuzz: building HeraldFuzz (release, --sanitize=fuzzer) in $scratch"
mkdir -p "$scratch/logs"
if ! swift build -c release --product HeraldFuzz --sanitize=fuzzer -Xswiftc -DHERALD_FUZZ --scratch-path "$scratch" \
    >"$scratch/logs/build.log" 2>&1; then
  grep -E 'error|warning' "$scratch/logs/build.log" | head -20 >&2
  echo "fuzz: the build failed (log $scratch/logs/build.log)" >&2
  exit 1
fi
binary="$scratch/release/HeraldFuzz"

# The config dictionary follows the settings Configuration.swift knows.
mkdir -p "$scratch/dict"
{
  grep -o 'case "[A-Za-z]*":' Sources/HeraldCore/Configuration.swift | sed 's/^case \(".*"\):$/\1/' | sort -u
  printf '%s\n' '"9223372036854775807"' '"-9223372036854775808"' '"1e400"' '"-1"' '"0.5"' '"true"' '"no"' '"_comment"' '"="' '"\x0a"'
} > "$scratch/dict/config.dict"

export SWIFT_BACKTRACE=enable=no
# The config target's scratch file goes here (a crash cannot clean it up).
mkdir -p "$scratch/tmp"
export TMPDIR="$PWD/$scratch/tmp"
failed=()
results=()
for target in "${targets[@]}"; do
  seeds="${FUZZ_SEEDS:-Tests/Fuzz}/$target"
  [ -d "$seeds" ] || { echo "fuzz: unknown target '$target' (no $seeds)" >&2; exit 2; }
  dict="Tests/Fuzz/$target.dict"
  [ -f "$dict" ] || dict="$scratch/dict/$target.dict"
  corpus="$scratch/corpus/$target"
  artifacts="$scratch/artifacts/$target"
  log="$scratch/logs/$target.log"
  mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"
  limits=(-max_total_time="$seconds")
  if [ -n "$runs" ]; then limits=(-runs="$runs"); fi
  if [ -n "$runs" ]; then what="$runs executions"; else what="$seconds s"; fi
  echo "fuzz: $target: $what (log $log)"
  status=0
  HERALD_FUZZ_TARGET="$target" nice -n "$niceness" "$binary" "${limits[@]}" -timeout=10 -print_final_stats=1 \
    -dict="$dict" -artifact_prefix="$artifacts/" ${FUZZ_ARGS:-} "$corpus" "$seeds" >"$log" 2>&1 || status=$?
  executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  if [ "$status" -eq 0 ]; then
    verdict="ok"
  else
    failed+=("$target")
    crash=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
    verdict="CRASH (exit $status)"
    echo "fuzz: $target crashed; from its log:"
    grep -E 'herald-fuzz:|Fatal error|deadly signal|ERROR:|#[4-7] .* in .*/Sources/' "$log" | head -8 | sed 's/^/  /' || true
    if [ -n "$crash" ]; then
      echo "  input: $crash"
      echo "  replay: SWIFT_BACKTRACE=enable=no HERALD_FUZZ_TARGET=$target $binary $crash"
      # Seeds named known-crash-* are inputs that crash today and are being fixed elsewhere.
      for known in "$seeds"/known-crash-*; do
        if [ -f "$known" ] && cmp -s "$known" "$crash"; then echo "  this is the known crash $known"; fi
      done
    fi
  fi
  results+=("$(printf '%-8s %12s %10s  %s' "$target" "${executions:-0}" "${rate:-0}" "$verdict")")
done

printf '\n%-8s %12s %10s  %s\n' target executions exec/s result
printf '%s\n' "${results[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]}"
  exit 1
fi
echo "fuzz: all targets clean"
