import Glibc
import HeraldCluster
import HeraldProtocol

/// `herald stop | reload | status | scale N`: talk to a running supervisor through its
/// control socket (found next to the pidfile).
enum ClusterCommand {
    static func main(_ command: String, _ arguments: [String]) -> Int32 {
        var pidfile: String?
        var json = false
        var wait = true
        var positional: [String] = []
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            switch argument {
            case "--pidfile":
                guard index + 1 < arguments.count else { printError("herald \(command): --pidfile needs a value"); return 2 }
                pidfile = StartOptions.absolute(arguments[index + 1])
                index += 1
            case "--json": json = true
            case "--no-wait": wait = false
            case "-h", "--help":
                print(Usage.cluster)
                return 0
            default:
                if argument.hasPrefix("--") { printError("herald \(command): unknown option '\(argument)'"); return 2 }
                positional.append(argument)
            }
            index += 1
        }
        let runFiles = RunFiles.resolve(pidfile: pidfile, environment: ProcessEnvironment.all)
        do {
            // A run directory, pidfile or socket someone else could have planted gets
            // no command (and is not trusted to say whether a supervisor runs).
            try runFiles.check(create: false)
        } catch {
            printError("herald \(command): \(error)")
            return 1
        }
        guard let pid = runFiles.runningPID() else {
            printError("herald \(command): no running supervisor found through \(runFiles.pidfile)")
            return command == "status" ? 3 : 1
        }
        var line = command
        if command == "scale" {
            guard positional.count == 1, let count = Int(positional[0]), count >= 1 else {
                printError("herald scale: give the number of workers, e.g. `herald scale 4`")
                return 2
            }
            line += " \(count)"
        }
        let reply: JSON
        do {
            reply = try ControlClient.send(line, to: runFiles.controlSocket, expectedPID: pid)
        } catch {
            printError("herald \(command): \(error)")
            return 1
        }
        if json || command == "status" && json {
            var out: [UInt8] = []
            JSONWriter.write(reply, to: &out)
            print(String(decoding: out, as: UTF8.self))
        }
        if command == "status" {
            if !json { print(StatusTable.render(reply)) }
            return 0
        }
        if case .object(let object) = reply, object["ok"] == .bool(false) {
            printError("herald \(command): \(object["error"]?.stringValue ?? "refused")")
            return 1
        }
        if command == "stop" && wait {
            // Wait for the supervisor to exit (its workers drain first). It removes its
            // pidfile on the way out; a process that has exited but is not yet reaped by
            // its parent still answers kill(pid, 0), so the pidfile is what tells.
            func stopped() -> Bool { kill(pid, 0) != 0 || runFiles.runningPID() != pid || isZombie(pid) }
            for _ in 0..<600 {
                if stopped() { break }
                usleep(100_000)
            }
            if !stopped() {
                printError("herald stop: the supervisor (pid \(pid)) is still running after 60 s")
                return 1
            }
        }
        if !json { print("herald \(command): ok") }
        return 0
    }
}

/// `herald status` for people.
enum StatusTable {
    static func render(_ reply: JSON) -> String {
        guard case .object(let object) = reply, case .object(let supervisor)? = object["supervisor"] else {
            return "unexpected status reply"
        }
        func number(_ value: JSON?) -> String { value?.numberValue.map { String(Int($0)) } ?? "-" }
        func seconds(_ value: JSON?) -> String { value?.numberValue.map { "\(Int($0 / 1000))s" } ?? "-" }
        var lines = ["supervisor pid \(number(supervisor["pid"])) up \(seconds(supervisor["uptime"])), "
                     + "\(number(supervisor["workers"])) workers"
                     + (supervisor["reloading"] == .bool(true) ? ", reloading" : "")
                     + (supervisor["stopping"] == .bool(true) ? ", stopping" : "")]
        for (key, value) in supervisor where !["pid", "uptime", "workers", "reloading", "stopping"].contains(key) {
            lines.append("  \(key): \(value.stringValue ?? number(value))")
        }
        lines.append(pad(["INDEX", "PID", "STATE", "UPTIME", "CONNECTIONS", "ROOMS", "SERVER ID"]))
        for case .object(let worker) in object["workers"]?.arrayValue ?? [] {
            lines.append(pad([number(worker["index"]), number(worker["pid"]), worker["state"]?.stringValue ?? "-",
                              seconds(worker["uptime"]), number(worker["connections"]), number(worker["rooms"]),
                              (worker["serverId"]?.stringValue ?? "-")
                                + (worker["redisNode"]?.stringValue.map { "  redis \($0)" } ?? "")]))
        }
        return lines.joined(separator: "\n")
    }

    private static func pad(_ columns: [String]) -> String {
        let widths = [6, 8, 10, 9, 12, 7, 0]
        return zip(columns, widths).map { column, width in
            width == 0 ? column : column + String(repeating: " ", count: max(1, width - column.count))
        }.joined()
    }
}

/// Whether `pid` has exited and waits to be reaped (state Z in /proc/<pid>/stat).
func isZombie(_ pid: pid_t) -> Bool {
    let fd = open("/proc/\(pid)/stat", O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var buffer = [UInt8](repeating: 0, count: 512)
    let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
    guard n > 0, let paren = buffer[0..<n].lastIndex(of: UInt8(ascii: ")")), paren + 2 < n else { return false }
    return buffer[paren + 2] == UInt8(ascii: "Z")
}
