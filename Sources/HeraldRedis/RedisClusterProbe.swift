import CHiredis
import Glibc
import HeraldCore

/// The check at start, before any worker: does the seed list name a Redis Cluster? A
/// node that answers but is not a cluster node (`CLUSTER SHARDS` and `CLUSTER SLOTS`
/// refused) is a configuration error; seeds that do not answer are not (the workers
/// keep trying them). Blocking, with a short timeout per seed: it runs once, before
/// the loop.
public enum RedisClusterProbe {
    public enum Outcome: Equatable, Sendable {
        case cluster(RedisNode)
        case unreachable(String)
    }

    public static func check(_ endpoint: RedisEndpoint, timeoutMilliseconds: Int = 500) throws(ConfigurationError) -> Outcome {
        guard case .cluster(let seeds) = endpoint.address else { return .unreachable("not a cluster endpoint") }
        var refusals: [String] = []
        var unreachable: [String] = []
        for seed in seeds {
            switch ask(seed, password: endpoint.password, timeoutMilliseconds: timeoutMilliseconds) {
            case .cluster: return .cluster(seed)
            case .refused(let why): refusals.append("\(seed) \(why)")
            case .unreachable(let why): unreachable.append("\(seed): \(why)")
            }
        }
        if !refusals.isEmpty {
            throw ConfigurationError("redisUrl '\(endpoint.description)': no seed answers as a Redis Cluster node (\(refusals.joined(separator: "; ")))")
        }
        return .unreachable(unreachable.joined(separator: "; "))
    }

    enum Answer { case cluster, refused(String), unreachable(String) }

    static func ask(_ node: RedisNode, password: String?, timeoutMilliseconds: Int) -> Answer {
        let timeout = timeval(tv_sec: timeoutMilliseconds / 1_000, tv_usec: (timeoutMilliseconds % 1_000) * 1_000)
        guard let context = redisConnectWithTimeout(node.host, Int32(node.port), timeout) else { return .unreachable("no memory") }
        defer { redisFree(context) }
        if context.pointee.err != 0 { return .unreachable(errorText(context)) }
        _ = redisSetTimeout(context, timeout)
        if let password {
            switch run(context, ["AUTH", password]) {
            case .error(let message)?: return .refused("refuses the password: \(message)")
            case nil: return .unreachable(errorText(context))
            default: break
            }
        }
        for verb in ["SHARDS", "SLOTS"] {
            switch run(context, ["CLUSTER", verb]) {
            case .error(let message)?:
                if verb == "SHARDS" && message.lowercased().contains("unknown subcommand") { continue }
                if message.hasPrefix("NOAUTH") || message.hasPrefix("WRONGPASS") {
                    return .refused("wants a password: \(message)")
                }
                return .refused("answers CLUSTER \(verb) with \(message)")
            case nil: return .unreachable(errorText(context))
            default: return .cluster
            }
        }
        return .refused("answers neither CLUSTER SHARDS nor CLUSTER SLOTS")
    }

    private static func run(_ context: UnsafeMutablePointer<redisContext>, _ words: [String]) -> RedisReply? {
        let reply = RedisClient.withArgv(words.map { Array($0.utf8) }) { argc, argv, lengths in
            redisCommandArgv(context, argc, argv, lengths)
        }
        guard let reply else { return nil }
        defer { freeReplyObject(reply) }
        return RedisReply(copying: reply.assumingMemoryBound(to: redisReply.self))
    }

    private static func errorText(_ context: UnsafeMutablePointer<redisContext>) -> String {
        let text = withUnsafeBytes(of: context.pointee.errstr) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        return text.isEmpty ? "no answer" : text
    }
}
