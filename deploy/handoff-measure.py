# Reload under load: N idle clients + 10 busy ones on a 2-worker cluster with Redis.
import socket, json, time, subprocess, sys, os, threading, selectors, resource, re
h = resource.getrlimit(resource.RLIMIT_NOFILE)[1]; resource.setrlimit(resource.RLIMIT_NOFILE, (h, h))
binary, n, port, rport, run = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
os.makedirs(run, exist_ok=True); os.chmod(run, 0o700)
env = dict(os.environ); env["HERALD_RUN_DIR"] = run
redis = subprocess.Popen(["redis-server", "--port", str(rport), "--save", "", "--maxclients", "20000"], stdout=subprocess.DEVNULL)
time.sleep(0.3)
err = open(run + "/herald.err", "w")
herald = subprocess.Popen([binary, "start", "--port", str(port), "--bind", "127.0.0.1", "--workers", "2",
                           "--redis", "redis://127.0.0.1:%d" % rport, "--set", "maxConnections=20000"], env=env, stdout=subprocess.DEVNULL, stderr=err)
time.sleep(2)
def status():
    r = subprocess.run([binary, "status", "--json", "--pidfile", run + "/herald.pid"], capture_output=True, text=True, env=env)
    return json.loads(r.stdout)
def connect():
    s = socket.create_connection(("127.0.0.1", port)); s.recv(4096); return s
idle = [connect() for _ in range(n)]
stop = False; lat = []; lost = [0]; bye = [0]
def busy():
    s = socket.create_connection(("127.0.0.1", port)); f = s.makefile("rb"); f.readline(); worst = 0
    while not stop:
        t = time.monotonic(); s.sendall(b"randomNumber\r\n"); line = f.readline()
        if not line: lost[0] += 1; return
        if b"Bye!" in line: bye[0] += 1; lost[0] += 1; lat.append(worst); return
        worst = max(worst, time.monotonic() - t)
    lat.append(worst)
threads = [threading.Thread(target=busy) for _ in range(10)]
for t in threads: t.start()
time.sleep(1)
t0 = time.monotonic()
subprocess.run([binary, "reload", "--pidfile", run + "/herald.pid"], capture_output=True, env=env)
sel = selectors.DefaultSelector()
for s in idle: sel.register(s, selectors.EVENT_READ)
reconnected = 0; last = None; done = None
while time.monotonic() - t0 < 60:
    for key, _ in sel.select(0.2):
        s = key.fileobj; data = s.recv(4096)
        if b"Bye!" in data or not data:
            sel.unregister(s); s.close(); fresh = connect(); reconnected += 1; last = time.monotonic() - t0
    if done is None:
        st = status()
        if not st["supervisor"]["reloading"] and all(w["state"] == "running" for w in st["workers"]):
            done = time.monotonic() - t0
    if done is not None and (reconnected == n or (last or 0) < done - 0.5 or reconnected == 0) and time.monotonic() - t0 > done + 1:
        break
stop = True
for t in threads: t.join()
err.flush()
log = open(run + "/herald.err").read()
hand = re.findall(r"handoff.done .*handedOver=(\d+) drained=(\d+) ms=(\d+) longestStepMs=([\d.]+)", log)
print(json.dumps({"binary": binary, "idle": n, "reloadDoneSeconds": round(done or -1, 3), "idleReconnected": reconnected,
                  "lastReconnectSeconds": last and round(last, 3), "busyWorstReplyMs": round(max(lat) * 1000, 1),
                  "busyLostOrGoodbye": lost[0], "handoffs": hand, "handoffStatus": status()["supervisor"].get("handoff")}))
herald.terminate(); herald.wait(); redis.terminate(); redis.wait()
