import HeraldCore
import HeraldProtocol

extension BuiltinActions {
    /// Saves `cacheTest_<key>` for 5 seconds, then reads the cache's size, loads the
    /// entry back and deletes it.
    public static let cacheTest = Action(
        name: "cacheTest",
        description: "I will test the internal cache functions of the API",
        inputs: [.required("key"), .required("value")],
        outputExample: [
            "cacheTestResults": [
                "saveResp": true, "sizeResp": 1,
                "loadResp": ["key": "cacheTest_key", "value": "value", "expireTimestamp": 1420000005000,
                             "createdAt": 1420000000000, "readAt": 1420000000001],
                "deleteResp": true,
            ],
        ]
    ) { call in
        let key = "cacheTest_" + (call.string("key") ?? "")
        let value = call.params["value"] ?? .null
        let cache = call.worker.cache
        do {
            let saved = try await cache.save(key, value, expireInMilliseconds: 5_000)
            let size = try await cache.size()
            var loaded: JSON = .null
            if let entry = try await cache.load(key) {
                var fields = JSONObject([("key", .string(key)), ("value", entry.value)])
                if let expiry = entry.expireTimestamp { fields.append("expireTimestamp", .number(Double(expiry))) }
                fields.append("createdAt", .number(Double(entry.createdAt)))
                if let readAt = entry.readAt { fields.append("readAt", .number(Double(readAt))) }
                loaded = .object(fields)
            }
            let deleted = try await cache.destroy(key)
            call.response.append("cacheTestResults", .object(JSONObject([
                ("saveResp", .bool(saved)), ("sizeResp", .number(Double(size))),
                ("loadResp", loaded), ("deleteResp", .bool(deleted)),
            ])))
        } catch let error as ActionError {
            throw error
        } catch let error as CancellationError {
            throw error  // the client has gone
        } catch {
            throw ActionError("the cache is unavailable (\(error))")
        }
    }
}
