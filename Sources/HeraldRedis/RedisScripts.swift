import HeraldLoop

/// A Lua script run with EVALSHA once Redis has it (loaded at each connect), else EVAL.
/// Either way the command is written before the caller's first suspension, so commands
/// keep their call order on the connection.
@LoopActor
final class RedisScript {
    let source: String
    private let sourceBytes: [UInt8]
    private(set) var sha: [UInt8]?

    init(_ source: String) {
        self.source = source
        self.sourceBytes = Array(source.utf8)
    }

    /// Asks Redis to load the script (after each connect: a restarted Redis forgets it).
    func load(on client: any RedisCommandConnection) {
        sha = nil
        client.send([Array("SCRIPT".utf8), Array("LOAD".utf8), sourceBytes]) { [weak self] result in
            if case .success(.string(let digest)) = result { self?.sha = digest }
        }
    }

    /// Runs the script without waiting for its reply; `completion` (when given) gets it.
    /// A NOSCRIPT (Redis forgot the script) is answered by sending the source once.
    func send(on client: any RedisCommandConnection, keys: [[UInt8]], arguments: [[UInt8]],
              completion: (@LoopActor (Result<RedisReply, RedisError>) -> Void)? = nil) {
        var command = self.command(keys: keys, arguments: arguments)
        let usedSHA = sha != nil
        client.send(command) { [weak self] result in
            if usedSHA, case .success(.error(let message)) = result, message.hasPrefix("NOSCRIPT"), let self {
                self.sha = nil
                command[0] = Array("EVAL".utf8)
                command[1] = self.sourceBytes
                client.send(command) { completion?($0) }
                return
            }
            completion?(result)
        }
    }

    private func command(keys: [[UInt8]], arguments: [[UInt8]]) -> [[UInt8]] {
        var command: [[UInt8]] = []
        command.reserveCapacity(3 + keys.count + arguments.count)
        if let sha {
            command.append(Array("EVALSHA".utf8))
            command.append(sha)
        } else {
            command.append(Array("EVAL".utf8))
            command.append(sourceBytes)
        }
        command.append(Array(String(keys.count).utf8))
        command.append(contentsOf: keys)
        command.append(contentsOf: arguments)
        return command
    }

    func run(on client: any RedisCommandConnection, keys: [[UInt8]], arguments: [[UInt8]]) async throws -> RedisReply {
        var command = self.command(keys: keys, arguments: arguments)
        do {
            return try await client.command(command)
        } catch RedisError.server(let message) where message.hasPrefix("NOSCRIPT") {
            sha = nil
            command[0] = Array("EVAL".utf8)
            command[1] = sourceBytes
            return try await client.command(command)
        }
    }
}

/// The Lua of the bus and the cache. Keys under the prefix P:
///   P w:<worker>         heartbeat: the worker's connection count, expires (PX)
///   P alive              sorted set: worker id → when its heartbeat expires (ms, Redis
///                        clock); the registry the reap reads
///   P w:<worker>:rooms   set of rooms where the worker has members
///   P w:<worker>:r:<room> set of the ids the worker joined to the room (what clearing
///                        a worker reads: its own members, not the whole room; an id
///                        whose entry another worker took over since is left alone)
///   P r:<room>           hash member id → "<joinedAt> <worker id>"
///   P rooms              set of rooms with members
///   P c:<key>            cache entry, expires (PX)
///   P cache              sorted set: cache key → expiry time (ms, Redis clock)
///   P workers            the set of worker ids of earlier versions (the registry before
///                        `alive`): `reap` with the figures drains it
enum Lua {
    /// KEYS: room hash, rooms set, worker rooms set, worker's member set of the room.
    /// ARGV: room, then member id/value pairs.
    static let join = """
        for i = 2, #ARGV, 2 do
          redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
          redis.call('SADD', KEYS[4], ARGV[i])
        end
        redis.call('SADD', KEYS[2], ARGV[1])
        redis.call('SADD', KEYS[3], ARGV[1])
        return 1
        """

    /// KEYS: room hash, rooms set, worker rooms set, worker's member set of the room.
    /// ARGV: room, "1" when the worker has no member left in the room, then the member ids.
    static let leave = """
        for i = 3, #ARGV do
          redis.call('HDEL', KEYS[1], ARGV[i])
          redis.call('SREM', KEYS[4], ARGV[i])
        end
        if redis.call('HLEN', KEYS[1]) == 0 then redis.call('SREM', KEYS[2], ARGV[1]) end
        if ARGV[2] == '1' then
          redis.call('SREM', KEYS[3], ARGV[1])
          redis.call('DEL', KEYS[4])
        end
        return 1
        """

    /// KEYS: room hash, rooms set. ARGV: prefix, room, the asking worker's id. Members of
    /// live workers as [id, joinedAt, …]; members of dead workers are removed on the way.
    /// The asking worker is alive whatever its heartbeat key says: a roomView sent as the
    /// worker's Redis connection came up reached Redis before its first heartbeat, and
    /// took the worker's own members for a dead worker's (seen in CI).
    static let members = """
        local all = redis.call('HGETALL', KEYS[1])
        local alive, out = {}, {}
        if ARGV[3] then alive[ARGV[3]] = true end
        for i = 1, #all, 2 do
          local value = all[i + 1]
          local space = string.find(value, ' ', 1, true)
          local ok = false
          if space then
            local worker = string.sub(value, space + 1)
            ok = alive[worker]
            if ok == nil then
              ok = redis.call('EXISTS', ARGV[1] .. 'w:' .. worker) == 1
              alive[worker] = ok
            end
          end
          if ok then
            out[#out + 1] = all[i]
            out[#out + 1] = string.sub(value, 1, space - 1)
          else
            redis.call('HDEL', KEYS[1], all[i])
          end
        end
        if #all > 0 and #out == 0 then redis.call('SREM', KEYS[2], ARGV[2]) end
        return out
        """

    /// KEYS: worker key, alive registry. ARGV: connection count, ttl ms, worker id.
    /// Returns 1 when the worker was still registered (0: Redis lost its key, or it was
    /// reaped: it registers its members again).
    static let heartbeat = """
        local existed = redis.call('EXISTS', KEYS[1])
        redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
        local t = redis.call('TIME')
        local expiry = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[2])
        local added = redis.call('ZADD', KEYS[2], expiry, ARGV[3])
        if added == 1 then return 0 end
        return existed
        """

    /// Removes the members of each worker whose heartbeat expired: those the registry
    /// scores at or before now, at most 100 a run, each taken out of the registry in the
    /// same script once its members are all gone (one reaper per dead worker, and a live
    /// worker's reap costs three commands: no scan of the other workers). A run removes
    /// at most ARGV[5] (default 10,000) dead workers' members, popped from their own
    /// sets, and the next run goes on where it stopped: a host's workers that all
    /// stalled past the expiry (20,000 members each) do not hold Redis for seconds (seen
    /// at a million connections: 5 s, every command connection of the cluster timed out).
    /// First, whatever the budget, the members of the worker ARGV[2] names (before it
    /// re-registers, or on its clean stop or eviction, when ARGV[3] is '1' and it leaves
    /// the cluster altogether): at most its own connections.
    /// KEYS: alive registry, rooms set. ARGV: prefix, worker id to clear or '', '1' to
    /// leave, '1' for the cluster's figures, and optionally the budget.
    /// Returns the number reaped (taken out of the registry), or with ARGV[4] '1' [live
    /// workers, their connections, rooms with members] (reading every live worker's
    /// count: for `status` only).
    static let reap = """
        local prefix = ARGV[1]
        local budget = tonumber(ARGV[5] or '') or 10000
        local function finishRoom(wr, h, room)
          if redis.call('HLEN', h) == 0 then redis.call('SREM', KEYS[2], room) end
          redis.call('SREM', wr, room)
        end
        -- Removes w's members (all of them when not limited, else within the budget);
        -- true when none is left.
        local function clear(w, limited)
          local wr = prefix .. 'w:' .. w .. ':rooms'
          local suffix = ' ' .. w
          for _, room in ipairs(redis.call('SMEMBERS', wr)) do
            local h = prefix .. 'r:' .. room
            local own = prefix .. 'w:' .. w .. ':r:' .. room
            if redis.call('EXISTS', own) == 1 then
              -- The worker's own ids, 1,000 at a time (a room may hold a million).
              while true do
                if limited and budget <= 0 then return false end
                local n = 1000
                if limited and budget < n then n = budget end
                local ids = redis.call('SPOP', own, n)
                if #ids == 0 then break end
                budget = budget - #ids
                local values = redis.call('HMGET', h, unpack(ids))
                for i = 1, #ids do
                  local value = values[i]
                  if value and string.sub(value, -#suffix) == suffix then redis.call('HDEL', h, ids[i]) end
                end
                if #ids < n then break end
              end
              if redis.call('EXISTS', own) == 0 then finishRoom(wr, h, room) end
            else
              -- A worker of an earlier version keeps no set of its own: scan the room.
              local all = redis.call('HGETALL', h)
              budget = budget - #all / 2
              for i = 1, #all, 2 do
                if string.sub(all[i + 1], -#suffix) == suffix then redis.call('HDEL', h, all[i]) end
              end
              finishRoom(wr, h, room)
            end
          end
          redis.call('DEL', wr)
          return true
        end
        local function forget(w, limited)
          if not clear(w, limited) then return false end
          redis.call('DEL', prefix .. 'w:' .. w)
          redis.call('ZREM', KEYS[1], w)
          return true
        end
        if ARGV[2] ~= '' then
          if ARGV[3] == '1' then forget(ARGV[2], false) else clear(ARGV[2], false) end
        end
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        local reaped = 0
        if budget > 0 then
          for _, w in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 100)) do
            if forget(w, true) then reaped = reaped + 1 else break end
          end
        end
        if ARGV[4] ~= '1' then return reaped end
        local live, connections = 0, 0
        for _, w in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')) do
          local count = redis.call('GET', prefix .. 'w:' .. w)
          if count then
            live = live + 1
            connections = connections + (tonumber(count) or 0)
          end
        end
        local legacy = prefix .. 'workers'
        for _, w in ipairs(redis.call('SMEMBERS', legacy)) do
          local count = redis.call('GET', prefix .. 'w:' .. w)
          if count then
            if not redis.call('ZSCORE', KEYS[1], w) then
              live = live + 1
              connections = connections + (tonumber(count) or 0)
            end
          else
            clear(w)
            redis.call('SREM', legacy, w)
          end
        end
        return {live, connections, redis.call('SCARD', KEYS[2])}
        """

    /// KEYS: entry key, index. ARGV: stored value, expiry ms or '', cache key.
    static let cacheSave = """
        local now = redis.call('TIME')
        local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
        if ARGV[2] ~= '' then
          redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
          redis.call('ZADD', KEYS[2], ms + tonumber(ARGV[2]), ARGV[3])
        else
          redis.call('SET', KEYS[1], ARGV[1])
          redis.call('ZADD', KEYS[2], 'inf', ARGV[3])
        end
        return 1
        """

    /// KEYS: entry key, index. ARGV: cache key. Returns the number deleted.
    static let cacheDestroy = """
        local n = redis.call('DEL', KEYS[1])
        redis.call('ZREM', KEYS[2], ARGV[1])
        return n
        """

    /// KEYS: index. Drops expired index entries, returns the live count.
    static let cacheSize = """
        local now = redis.call('TIME')
        local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
        redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ms)
        return redis.call('ZCARD', KEYS[1])
        """
}
