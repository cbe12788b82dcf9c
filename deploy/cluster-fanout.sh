#!/bin/bash
# Room fan-out: herald (2 workers) on a 3+3 Redis Cluster vs on one Redis; Redis CPU per shard.
set -u
H=${HERALD:-$(dirname "$0")/../.build/release/herald}
D=/tmp/figrc; rm -rf $D; mkdir -p $D
pids=()
for i in 0 1 2 3 4 5; do
  p=$((21000+i)); mkdir -p $D/n$i
  redis-server --port $p --cluster-port $((22000+i)) --bind 127.0.0.1 --cluster-enabled yes \
    --cluster-config-file $D/n$i/nodes.conf --cluster-node-timeout 1000 --repl-diskless-sync-delay 0 \
    --save '' --appendonly no --daemonize no --dir $D/n$i --protected-mode no > $D/n$i/log 2>&1 &
  echo $! > $D/n$i/pid
done
mkdir -p $D/single
redis-server --port 21100 --bind 127.0.0.1 --save '' --appendonly no --daemonize no --dir $D/single > $D/single/log 2>&1 &
echo $! > $D/single/pid
sleep 0.5
redis-cli --cluster create 127.0.0.1:21000 127.0.0.1:21001 127.0.0.1:21002 127.0.0.1:21003 127.0.0.1:21004 127.0.0.1:21005 \
  --cluster-replicas 1 --cluster-yes > $D/create.log 2>&1
until redis-cli -p 21000 cluster info | grep -q cluster_state:ok; do sleep 0.2; done
sleep 2
$H start --workers 2 --redis redis-cluster://127.0.0.1:21000,127.0.0.1:21001 --port 15200 --bind 127.0.0.1 --log $D/hc.log > /dev/null 2>&1 &
echo $! > $D/hc.pid
$H start --workers 2 --redis redis://127.0.0.1:21100 --port 15300 --bind 127.0.0.1 --log $D/hs.log > /dev/null 2>&1 &
echo $! > $D/hs.pid
sleep 2
ticks() { awk '{print $14+$15}' /proc/$(cat $1)/stat; }
masters=$(redis-cli -p 21000 cluster nodes | awk '$3 ~ /master/ {split($2,a,"[:@]"); print a[2]}' | sort)
pidof_port() { cat $D/n$(( $1 - 21000 ))/pid; }
echo "masters: $masters"
echo "benchRoom slot: $(redis-cli -p 21000 cluster keyslot herald:room:benchRoom)"
for round in 1 2 3; do
  for target in cluster single; do
    port=15200; [ $target = single ] && port=15300
    declare -A before
    for m in $masters; do before[$m]=$(awk '{print $14+$15}' /proc/$(pidof_port $m)/stat); done
    sb=$(ticks $D/single/pid)
    out=$($H bench fanout --port $port --subscribers 50 --messages 100000 --duration 10 2>&1 | tail -1)
    cpu=""
    for m in $masters; do cpu="$cpu $m:$(( $(awk '{print $14+$15}' /proc/$(pidof_port $m)/stat) - ${before[$m]} ))"; done
    echo "round $round $target: $out | cluster master cpu ticks:$cpu | single redis cpu ticks: $(( $(ticks $D/single/pid) - sb ))"
  done
done
# Three rooms at once, one on each shard (three bench processes), cluster vs single.
rooms=""
for m in $masters; do
  for i in $(seq 0 200); do
    s=$(redis-cli -p 21000 cluster keyslot herald:room:bench$i)
    owner=$(redis-cli -p 21000 cluster nodes | awk -v s=$s '$3 ~ /master/ {for(i=9;i<=NF;i++){split($i,r,"-"); if (r[2]=="") r[2]=r[1]; if (s>=r[1] && s<=r[2]) {split($2,a,"[:@]"); print a[2]}}}')
    if [ "$owner" = "$m" ]; then rooms="$rooms bench$i"; break; fi
  done
done
echo "rooms on the three shards:$rooms"
for round in 1 2; do
  for target in cluster single; do
    port=15200; [ $target = single ] && port=15300
    declare -A before
    for m in $masters; do before[$m]=$(awk '{print $14+$15}' /proc/$(pidof_port $m)/stat); done
    sb=$(ticks $D/single/pid)
    for r in $rooms; do $H bench fanout --port $port --room $r --subscribers 20 --messages 50000 --duration 10 > $D/out.$r 2>&1 & done
    wait $(jobs -p | tail -3) 2>/dev/null
    cpu=""
    for m in $masters; do cpu="$cpu $m:$(( $(awk '{print $14+$15}' /proc/$(pidof_port $m)/stat) - ${before[$m]} ))"; done
    echo "3rooms round $round $target: $(for r in $rooms; do tail -1 $D/out.$r; echo ' || '; done) | cluster master cpu ticks:$cpu | single redis cpu ticks: $(( $(ticks $D/single/pid) - sb ))"
  done
done
kill $(cat $D/hc.pid) $(cat $D/hs.pid); sleep 2
for i in 0 1 2 3 4 5; do kill $(cat $D/n$i/pid); done; kill $(cat $D/single/pid)
