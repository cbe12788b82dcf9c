import Glibc
import HeraldCore
import HeraldLoop
import HeraldProtocol

/// What the supervisor itself counts, and what its finished workers counted.
struct SupervisorMetrics {
    /// The sum of the last reports of workers that have exited, so that the cluster's
    /// counters never go backwards across a restart or reload.
    var retired = WorkerCounters()
    var restarts = 0
    var reloads = 0
}

extension Supervisor {
    /// Keeps what an exiting worker counted.
    func retire(_ worker: WorkerProcess) {
        metrics.retired = metrics.retired + worker.counters
        worker.counters = WorkerCounters()
    }

    /// The `worker` label of each live process: its slot index, and the pid too when
    /// two processes share a slot (during a reload).
    private func labelledWorkers() -> [(label: String, worker: WorkerProcess)] {
        let workers = workerProcesses.sorted { ($0.index, $0.startedAt) < ($1.index, $1.startedAt) }
        var perIndex: [Int: Int] = [:]
        for worker in workers { perIndex[worker.index, default: 0] += 1 }
        return workers.map { worker in
            (perIndex[worker.index] == 1 ? String(worker.index) : "\(worker.index)/\(worker.pid)", worker)
        }
    }

    /// `/metrics`: Prometheus text format 0.0.4.
    public func metricsText() -> String {
        let workers = labelledWorkers()
        var total = metrics.retired
        for (_, worker) in workers { total = total + worker.counters }
        var out = PrometheusText.Writer()

        out.family("herald_connections", type: "gauge", help: "Open client connections per worker.")
        for (label, worker) in workers { out.sample("herald_connections", ["worker": label], Double(worker.connections)) }
        out.family("herald_connections_opened_total", type: "counter", help: "Client connections accepted.")
        out.sample("herald_connections_opened_total", Double(total.connectionsOpened))
        out.family("herald_connections_closed_total", type: "counter", help: "Client connections closed, by reason.")
        for reason in CloseReason.allCases {
            out.sample("herald_connections_closed_total", ["reason": reason.label], Double(total.connectionsClosed[reason.rawValue]))
        }
        let actions = total.actions.sorted { $0.key < $1.key }
        out.family("herald_actions_total", type: "counter", help: "Actions finished, by action and result (ok or error).")
        for (name, counts) in actions {
            out.sample("herald_actions_total", ["action": name, "result": "ok"], Double(counts.ok))
            out.sample("herald_actions_total", ["action": name, "result": "error"], Double(counts.error))
        }
        out.family("herald_action_duration_seconds", type: "histogram", help: "Time from an action's start to its reply.")
        for (name, counts) in actions where name != "unknown" {
            out.histogram("herald_action_duration_seconds", labels: [("action", name)], counts.duration)
        }
        out.family("herald_say_total", type: "counter", help: "Chat messages accepted (say).")
        out.sample("herald_say_total", Double(total.says))
        out.family("herald_chat_deliveries_total", type: "counter", help: "Chat lines queued to room members on this host.")
        out.sample("herald_chat_deliveries_total", Double(total.chatDeliveries))
        out.family("herald_slow_consumer_disconnects_total", type: "counter", help: "Clients dropped for not reading their output.")
        out.sample("herald_slow_consumer_disconnects_total", Double(total.slowConsumerDisconnects))
        out.family("herald_rooms", type: "gauge", help: "Rooms with members per worker.")
        for (label, worker) in workers { out.sample("herald_rooms", ["worker": label], Double(worker.rooms)) }
        out.family("herald_redis_up", type: "gauge", help: "1 when every Redis connection of the worker is up (absent without Redis).")
        for (label, worker) in workers {
            if let up = worker.redisUp { out.sample("herald_redis_up", ["worker": label], up ? 1 : 0) }
        }
        out.family("herald_redis_reconnects_total", type: "counter", help: "Redis connections re-established after a loss.")
        out.sample("herald_redis_reconnects_total", Double(total.redisReconnects))
        out.family("herald_redis_command_duration_seconds", type: "histogram", help: "Time from a Redis command's send to its reply.")
        out.histogram("herald_redis_command_duration_seconds", labels: [], total.redisCommandDuration)
        out.family("herald_workers", type: "gauge", help: "Worker processes by state.")
        for state in [WorkerProcess.State.starting, .running, .draining] {
            out.sample("herald_workers", ["state": state.rawValue], Double(workers.filter { $0.worker.state == state }.count))
        }
        out.family("herald_worker_restarts_total", type: "counter", help: "Workers restarted after an unexpected exit.")
        out.sample("herald_worker_restarts_total", Double(metrics.restarts))
        out.family("herald_reloads_total", type: "counter", help: "Rolling reloads started.")
        out.sample("herald_reloads_total", Double(metrics.reloads))

        let usage = workers.map { ($0.label, ProcUsage(pid: $0.worker.pid)) }
        out.family("process_resident_memory_bytes", type: "gauge", help: "Resident memory of each worker process.")
        for (label, use) in usage { if let use { out.sample("process_resident_memory_bytes", ["worker": label], Double(use.residentBytes)) } }
        out.family("process_cpu_seconds_total", type: "counter", help: "User and system CPU time of each worker process.")
        for (label, use) in usage { if let use { out.sample("process_cpu_seconds_total", ["worker": label], use.cpuSeconds) } }
        out.family("process_open_fds", type: "gauge", help: "Open file descriptors of each worker process.")
        for (label, use) in usage { if let use { out.sample("process_open_fds", ["worker": label], Double(use.openFDs)) } }
        return out.text
    }

    /// `/health`: 200 when every slot's worker runs and reaches Redis, else 503 with why.
    public func health() -> (ok: Bool, body: String) {
        var problems: [String] = []
        if isStopping { problems.append("the cluster is stopping") }
        var redisState = "none"
        for (index, worker) in currentWorkers.enumerated() {
            guard let worker, worker.state == .running else {
                problems.append("worker \(index) is not running")
                continue
            }
            switch worker.redisUp {
            case false?:
                redisState = "down"
                problems.append("worker \(index) cannot reach Redis")
            case true?:
                if redisState == "none" { redisState = "up" }
            case nil:
                break
            }
        }
        var object = JSONObject([("status", .string(problems.isEmpty ? "ok" : "unavailable")),
                                 ("workers", .number(Double(currentWorkers.compactMap { $0 }.filter { $0.state == .running }.count))),
                                 ("redis", .string(redisState))])
        if !problems.isEmpty { object["reason"] = .string(problems.joined(separator: "; ")) }
        var bytes: [UInt8] = []
        JSONWriter.writeObject(object, to: &bytes)
        return (problems.isEmpty, String(decoding: bytes, as: UTF8.self) + "\n")
    }

    /// The responder's answer for a path it serves.
    public func metricsResponse(path: String) -> MetricsServer.Response {
        if path == "/health" {
            let (ok, body) = health()
            return MetricsServer.Response(status: ok ? 200 : 503, contentType: "application/json", body: Array(body.utf8))
        }
        return MetricsServer.Response(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8",
                                      body: Array(metricsText().utf8))
    }
}

/// A process's memory, CPU time and descriptors, from /proc.
struct ProcUsage {
    var residentBytes: Int
    var cpuSeconds: Double
    var openFDs: Int

    init?(pid: pid_t) {
        guard let statm = Self.read("/proc/\(pid)/statm"), let stat = Self.read("/proc/\(pid)/stat") else { return nil }
        let pages = statm.split(separator: " ")
        guard pages.count > 1, let resident = Int(pages[1]) else { return nil }
        residentBytes = resident * Int(sysconf(Int32(_SC_PAGESIZE)))
        // Fields after the command name (which may hold spaces) in parentheses.
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // fields[0] is field 3 (state): utime is field 14, stime field 15.
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        cpuSeconds = (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
        openFDs = 0
        if let directory = opendir("/proc/\(pid)/fd") {
            while let entry = readdir(directory) {
                if entry.pointee.d_name.0 != UInt8(ascii: ".") { openFDs += 1 }
            }
            closedir(directory)
        }
    }

    static func read(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 4_096)
        let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { return nil }
        return String(decoding: buffer[0..<n], as: UTF8.self)
    }
}
