import HeraldCore
import HeraldProtocol

extension BuiltinActions {
    /// `{"id":<server id>,"uptime":ms,"stats":{"worker":{…},"cluster":{…}}}`
    public static let status = Action(
        name: "status",
        description: "I will return some basic information about the API",
        outputExample: [
            "id": "host-1234", "uptime": 10_000,
            "stats": ["worker": ["connections": 1, "rooms": 1, "totalActions": 1, "pendingActions": 1],
                      "cluster": ["connections": 1, "rooms": 1, "workers": 1]],
        ]
    ) { call in
        let worker = call.worker
        call.response.append("id", .string(worker.serverID))
        call.response.append("uptime", .number(Double(worker.uptime)))
        var stats = JSONObject([("worker", .object(worker.stats))])
        do {
            let cluster = try await worker.clusterStats()
            stats.append("cluster", .object(JSONObject([
                ("connections", .number(Double(cluster.connections))), ("rooms", .number(Double(cluster.rooms))),
                ("workers", .number(Double(cluster.workers))),
            ])))
        } catch {
            stats.append("cluster", .null)
            stats.append("clusterError", .string("\(error)"))
        }
        call.response.append("stats", .object(stats))
    }
}
