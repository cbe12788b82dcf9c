#!/usr/bin/env python3
"""Connection-scale run on one host: N connections (default 1,000,000) held by one herald
cluster, measured from outside.

    deploy/million.py [--connections N] [--workers W] [--says S] [--herald PATH]

It starts its own redis-server and `herald start --workers W` on free loopback ports,
then enough `herald bench hold` processes (at most --per-process connections each: this
VM allows 20,000 descriptors per process) connecting from many source addresses
(127.0.1.x and up, ~7,000 connections each, far below the ~28,000 ports an address has
towards one server port). It prints, each as a RESULT line:

  connect   the connect storm: from starting the load processes to the last welcome line
  memory    resident memory of the whole herald process tree (supervisor and workers,
            from /proc/<pid>/smaps_rollup), before and while holding: Pss (each shared
            page split among the processes mapping it: the tree's real footprint), Rss
            summed (shared library pages counted once per process) and private pages;
            per connection, total and added
  say k     a `say defaultRoom mark-k` from one more client: deliveries counted by the
            load processes (which timestamp every one) and the time from sending to the
            last delivery
  bus k     the subscribers of defaultRoom's channel when say k went out (one per worker,
            and the script's own) and when the script's subscriber heard say k from Redis
  stop      `herald stop` (SIGTERM to the supervisor): until the supervisor exited, and
            until the last connection was closed by the server
  health    log lines that say a worker's loop was held up: `redis.worker.lost` (its
            heartbeat key expired), `redis.down`, `redis.subscriber.silent`
  workers   what grows with the number of workers: Redis clients, Redis commands/s
            while idle, `herald status` size

Priorities: on this one host the load processes stand for clients on other machines and
redis-server for a Redis with a core of its own, so the load runs at nice 10 and (as root)
redis-server at nice -5; herald stays at 0. Left equal, 51 busy load processes and 53
workers starve the one Redis of CPU in a million-connection storm (it got 5 % of a core),
its answers pass the 2 s command timeout and the storm collapses into retries.
(--no-priorities runs everything at the same priority.)

Everything runs on loopback; every process it starts it stops.
"""
import argparse, json, os, re, shutil, signal, socket, subprocess, sys, tempfile, threading, time

def nice(increment):
    """os.nice, ignoring a refusal (raising a priority needs root)."""
    try: os.nice(increment)
    except OSError: pass

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def wait_port(port, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close(); return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on {port} after {timeout} s")

def descendants(root):
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit(): continue
        try:
            with open(f"/proc/{d}/stat") as f: stat = f.read()
        except OSError: continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop(); out.append(p); todo.extend(children.get(p, []))
    return out

def tree_memory(root):
    """KiB of Rss, Pss and private pages summed over root and its descendants."""
    total = {"rss": 0, "pss": 0, "private": 0, "processes": 0}
    for pid in descendants(root):
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f: lines = f.read().splitlines()
        except OSError: continue
        total["processes"] += 1
        for line in lines:
            key, _, rest = line.partition(":")
            if key == "Rss": total["rss"] += int(rest.split()[0])
            elif key == "Pss": total["pss"] += int(rest.split()[0])
            elif key in ("Private_Clean", "Private_Dirty"): total["private"] += int(rest.split()[0])
    return total

def redis_cli(port, *args):
    return subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True, timeout=30).stdout

def info_field(text, name):
    for line in text.splitlines():
        if line.startswith(name + ":"): return line.split(":", 1)[1].strip()
    return ""

class Sender:
    """One more client, in defaultRoom like every connection, that says the marked messages."""
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), 30)
        self.file = self.sock.makefile("rb")
        self.file.readline()  # welcome
    def say(self, text):
        sent = time.monotonic_ns()
        self.sock.sendall(f"say defaultRoom {text}\n".encode())
        while True:  # the reply to the say (other members' lines may come first)
            line = self.file.readline()
            if not line: raise SystemExit("the sender's connection closed")
            reply = json.loads(line)
            if reply.get("context") == "response":
                if reply.get("status") != "OK": raise SystemExit(f"say refused: {line!r}")
                return sent
    def close(self): self.sock.close()

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--connections", type=int, default=1_000_000)
    ap.add_argument("--workers", type=int, default=0, help="default: enough for 19,000 connections each, at least 2")
    ap.add_argument("--per-process", type=int, default=19_800, help="connections per load process")
    ap.add_argument("--per-source", type=int, default=7_000, help="connections per source address")
    ap.add_argument("--says", type=int, default=3)
    ap.add_argument("--say-gap", type=float, default=4.0, help="seconds between says")
    ap.add_argument("--settle", type=float, default=5.0, help="seconds to let the cluster and the memory settle before measuring")
    ap.add_argument("--check", action="store_true", help="exit 1 unless every say reached every connection and the stop closed them all")
    ap.add_argument("--no-priorities", dest="priorities", action="store_false", help="run the load and redis-server at herald's priority")
    ap.add_argument("--herald", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "../.build/release/herald"))
    a = ap.parse_args()
    herald = os.path.abspath(a.herald)
    workers = a.workers or max(2, -(-a.connections // 19_000))
    work = tempfile.mkdtemp(prefix="herald-million-")
    os.chmod(work, 0o700)
    procs = []
    problems = []
    def result(name, **fields):
        print("RESULT " + name + ": " + " ".join(f"{k}={v}" for k, v in fields.items()), flush=True)
    try:
        rport = free_port()
        procs.append(subprocess.Popen(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
                                       "--appendonly", "no", "--maxclients", "10000"],
                                      stdout=open(f"{work}/redis.log", "w"), stderr=subprocess.STDOUT,
                                      preexec_fn=(lambda: nice(-5)) if a.priorities else None))
        wait_port(rport)
        hport = free_port()
        env = dict(os.environ, HERALD_RUN_DIR=work)
        supervisor = subprocess.Popen([herald, "start", "--port", str(hport), "--bind", "127.0.0.1", "--workers", str(workers),
                                       "--redis", f"redis://127.0.0.1:{rport}", "--log", f"{work}/herald.log"],
                                      cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=open(f"{work}/herald.err", "w"))
        procs.append(supervisor)
        wait_port(hport)
        for _ in range(600):  # every worker up
            if len(descendants(supervisor.pid)) >= workers + 1: break
            time.sleep(0.1)
        time.sleep(min(3, a.settle))
        print(f"machine: {os.cpu_count()} cores, {os.uname().release}; herald {workers} workers on {hport}, redis on {rport}", flush=True)

        # What grows with the workers, idle.
        clients = info_field(redis_cli(rport, "info", "clients"), "connected_clients")
        c0 = int(info_field(redis_cli(rport, "info", "stats"), "total_commands_processed")); t0 = time.time()
        time.sleep(a.settle)
        c1 = int(info_field(redis_cli(rport, "info", "stats"), "total_commands_processed")); t1 = time.time()
        status = subprocess.run([herald, "status"], env=env, capture_output=True, text=True, timeout=30).stdout
        result("workers", workers=workers, redis_clients=clients, redis_commands_per_s=f"{(c1 - c0 - 2) / (t1 - t0):.1f}",
               status_lines=len(status.splitlines()), status_bytes=len(status))

        before = tree_memory(supervisor.pid)
        # The load: processes of at most per_process connections, from many source addresses.
        sources_needed = -(-a.connections // a.per_source)
        if sources_needed > 250 * 250: raise SystemExit("too many source addresses")
        end = 257 + sources_needed - 1  # 127.0.1.1 is 127.0.0.0 + 257
        sources = f"127.0.1.1-127.{(end >> 16) & 255}.{(end >> 8) & 255}.{end & 255}"
        counts = [a.per_process] * (a.connections // a.per_process)
        if a.connections % a.per_process: counts.append(a.connections % a.per_process)
        started = time.monotonic_ns()
        loads = []
        for n in counts:
            p = subprocess.Popen([herald, "bench", "hold", "--json", "--port", str(hport), "--connections", str(n),
                                  "--sources", sources, "--concurrency", "128", "--hold", "1200"],
                                 stdout=subprocess.PIPE, stderr=open(f"{work}/load-{len(loads)}.err", "w"), text=True,
                                 preexec_fn=(lambda: nice(10)) if a.priorities else None)
            loads.append(p); procs.append(p)
        readies, reports = [None] * len(loads), [None] * len(loads)
        def reader(i, p):
            for line in p.stdout:
                line = line.strip()
                if not line.startswith("{"): continue
                obj = json.loads(line)
                if obj.get("ready") == "yes": readies[i] = obj
                else: reports[i] = obj
        threads = [threading.Thread(target=reader, args=(i, p), daemon=True) for i, p in enumerate(loads)]
        for t in threads: t.start()
        while any(r is None for r in readies):
            dead = [i for i, p in enumerate(loads) if p.poll() is not None and readies[i] is None]
            if dead:
                err = open(f"{work}/load-{dead[0]}.err").read().strip()
                raise SystemExit(f"load process {dead[0]} failed before its connections were up: {err}")
            time.sleep(0.2)
        storm = (max(r["ready_ns"] for r in readies) - started) / 1e9
        result("connect", connections=a.connections, processes=len(loads), source_addresses=sources_needed,
               storm_s=f"{storm:.1f}", slowest_process_s=max(r["connect_s"] for r in readies))

        time.sleep(a.settle)
        held = tree_memory(supervisor.pid)
        n = a.connections
        result("memory", processes=held["processes"],
               pss_mib=f"{held['pss'] / 1024:.0f}", pss_bytes_per_connection=held["pss"] * 1024 // n,
               pss_added_per_connection=(held["pss"] - before["pss"]) * 1024 // n,
               rss_sum_mib=f"{held['rss'] / 1024:.0f}", rss_sum_bytes_per_connection=held["rss"] * 1024 // n,
               private_mib=f"{held['private'] / 1024:.0f}", private_bytes_per_connection=held["private"] * 1024 // n,
               idle_pss_mib=f"{before['pss'] / 1024:.0f}", idle_rss_sum_mib=f"{before['rss'] / 1024:.0f}")

        sender = Sender(hport)
        sent = {}
        # A subscriber of the room's channel of our own: when (if) each say came through Redis.
        channel = "herald:room:defaultRoom"
        heard = {}
        listener = socket.create_connection(("127.0.0.1", rport), 30)
        listener.sendall(f"SUBSCRIBE {channel}\r\n".encode())
        def listen():
            seen = b""
            try:
                while True:
                    chunk = listener.recv(65536)
                    if not chunk: return
                    seen = (seen + chunk)[-4096:]
                    for k in range(1, a.says + 1):
                        if k not in heard and f"mark-{k}\"".encode() in seen: heard[k] = time.monotonic_ns()
            except OSError:
                return
        threading.Thread(target=listen, daemon=True).start()
        for k in range(1, a.says + 1):
            numsub = redis_cli(rport, "pubsub", "numsub", channel).split()
            sent[k] = sender.say(f"mark-{k}")
            time.sleep(a.say_gap)
            # (Subscribers of the channel as the say went out: one a worker and ours.)
            result(f"bus {k}", channel_subscribers=numsub[1] if len(numsub) > 1 else "?",
                   through_redis_ms=f"{(heard[k] - sent[k]) / 1e6:.0f}" if k in heard else "not yet")
        sender.close()
        listener.close()

        stop_at = time.monotonic_ns()
        subprocess.run([herald, "stop"], env=env, capture_output=True, timeout=600)
        supervisor.wait(timeout=900)
        supervisor_gone = (time.monotonic_ns() - stop_at) / 1e9
        for p in loads: p.wait(timeout=900)
        for t in threads: t.join(timeout=30)
        missing = [i for i, r in enumerate(reports) if r is None]
        if missing: raise SystemExit(f"load process {missing[0]} printed no report")
        for k in range(1, a.says + 1):
            delivered = sum(r.get(f"say{k}_delivered", 0) for r in reports)
            lasts = [r[f"say{k}_last_ns"] for r in reports if f"say{k}_last_ns" in r]
            firsts = [r[f"say{k}_first_ns"] for r in reports if f"say{k}_first_ns" in r]
            if delivered != n: problems.append(f"say {k} reached {delivered} of {n}")
            if not lasts:
                result(f"say {k}", delivered=0, of=n); continue
            result(f"say {k}", delivered=delivered, of=n, lost=n - delivered,
                   first_ms=f"{(min(firsts) - sent[k]) / 1e6:.0f}", all_ms=f"{(max(lasts) - sent[k]) / 1e6:.0f}")
        closed = sum(r["closed_by_server"] for r in reports)
        if closed != n: problems.append(f"the stop closed {closed} of {n}")
        last_close = max((r.get("last_close_ns", 0) for r in reports), default=0)
        log_lines = list(open(f"{work}/herald.log", errors="replace"))
        # Workers the supervisor killed at its drain limit (drainTimeout + 5 s): what they had
        # not yet delivered or said goodbye to was cut off.
        killed = len({re.search(r" pid=(\d+)", line).group(1) for line in log_lines
                      if "event=worker.kill " in line and " pid=" in line})
        if killed: problems.append(f"{killed} workers were killed at the drain limit")
        result("stop", supervisor_exit_s=f"{supervisor_gone:.1f}", closed_by_server=closed, of=n,
               last_close_s=f"{(last_close - stop_at) / 1e9:.1f}" if last_close else "none",
               workers_killed=killed, log_lines=len(log_lines))
        # Signs of a worker's loop held up for seconds (one iteration writing to all its
        # members): its heartbeat key expired, Redis commands timed out, the subscriber
        # looked silent.
        def count(event): return sum(1 for line in log_lines if f"event={event} " in line)
        result("health", worker_lost=count("redis.worker.lost"), redis_down=count("redis.down"),
               subscriber_silent=count("redis.subscriber.silent"))
        if a.check and problems:
            print("FAILED: " + "; ".join(problems), flush=True)
            sys.exit(1)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL if p is not procs[0] else signal.SIGTERM)
        for p in procs:
            try: p.wait(timeout=60)
            except subprocess.TimeoutExpired: pass
        if os.environ.get("HERALD_KEEP") is None: shutil.rmtree(work, ignore_errors=True)
        else: print(f"kept {work}", file=sys.stderr)

if __name__ == "__main__":
    main()
