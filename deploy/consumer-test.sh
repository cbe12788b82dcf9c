#!/usr/bin/env bash
# Builds a package of a Herald user (Tests/Consumer: a server binary with an action of
# its own over the HeraldServer product, a client over HeraldClient) against a clone of
# this repository's HEAD tagged 0.2.0, depended on as a user does
# (`.package(url: …, from: "0.2.0")`), then runs it: the server must answer the custom
# action over TCP to the client, and must not carry `herald bench` (HeraldBenchCommand
# is a separate product). Debug build; everything (clone, build scratch path, run
# directory) lives in one temp directory that is removed at the end.
# Run by ConsumerPackageTests when HERALD_CONSUMER_TEST=1 (deploy/test.sh sets it).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tmp="$(mktemp -d /tmp/herald-consumer-XXXXXX)"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then kill -TERM "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT
start=$(date +%s)

# The dependency: a clone of HEAD (what is committed), tagged as a release.
git clone --quiet --no-hardlinks "$root" "$tmp/herald"
git -C "$tmp/herald" -c user.name=test -c user.email=test@localhost tag -f 0.2.0 >/dev/null

mkdir -p "$tmp/consumer"
cp -R "$root/Tests/Consumer/Sources" "$tmp/consumer/"
sed "s|@HERALD_URL@|file://$tmp/herald|" "$root/Tests/Consumer/Package.swift.in" > "$tmp/consumer/Package.swift"

cd "$tmp/consumer"
if ! swift build --scratch-path "$tmp/scratch" > "$tmp/build.log" 2>&1; then
    tail -40 "$tmp/build.log"; echo "consumer-test: the consumer package did not build"; exit 1
fi
if grep -q "unsafe build flags" "$tmp/build.log"; then cat "$tmp/build.log"; exit 1; fi
bin="$tmp/scratch/debug"
built=$(date +%s)

port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
mkdir -m 700 "$tmp/run"
# No Redis configured and none started for it: one worker on in-process backends, or a
# private redis-server when one is installed; either serves the action.
HERALD_RUN_DIR="$tmp/run" "$bin/myserver" start --port "$port" --bind 127.0.0.1 --workers 1 \
    --log "$tmp/server.log" &
server_pid=$!
for _ in $(seq 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    sleep 0.05
done
out="$(timeout 20 "$bin/myclient" "$port")" || { echo "myclient failed: $out"; tail -20 "$tmp/server.log"; exit 1; }
echo "$out"
[ "$out" = "greet: Hi, Ada" ] || { echo "consumer-test: unexpected client output"; exit 1; }

# The load tool is not in a user's server binary unless it asks for it.
if "$bin/myserver" bench rr --help > "$tmp/bench.out" 2>&1; then
    echo "consumer-test: myserver still has 'bench'"; exit 1
fi
grep -q "unknown command 'bench'" "$tmp/bench.out" || { cat "$tmp/bench.out"; exit 1; }

kill -TERM "$server_pid"; wait "$server_pid" || true; server_pid=""
echo "consumer-test: OK (build $((built - start)) s, total $(( $(date +%s) - start )) s)"
