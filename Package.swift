// swift-tools-version:6.0
import PackageDescription

// Herald: a clustered socket API server. No third-party Swift packages: system C
// libraries only, through small C targets and systemLibrary targets.
// No unsafe build flags in any target (SwiftPM refuses them in a package that is a
// dependency): the hot classes' stored properties are declared
// `@exclusivity(unchecked)` instead, which skips the same run-time checks on the
// request path (docs/performance.md).

let package = Package(
    name: "Herald",
    products: [
        .executable(name: "herald", targets: ["herald"]),
        .library(name: "HeraldClient", targets: ["HeraldClient"]),
        // For your own server binary with your own actions (docs/actions.md).
        .library(name: "HeraldServer", targets: ["HeraldServer", "HeraldCore", "HeraldActions", "HeraldProtocol", "HeraldLoop"]),
        // `herald bench`, for a server binary of your own that wants the load tool too
        // (HeraldServer leaves it out).
        .library(name: "HeraldBenchCommand", targets: ["HeraldBenchCommand"]),
    ],
    targets: [
        // The only C in the project: what Swift cannot import (epoll's packed struct,
        // macros, prctl, signal helpers).
        .target(name: "CHeraldSystem"),
        // Line framing, request parsing, JSON reading and writing. Pure, no I/O.
        .target(name: "HeraldProtocol"),
        // The per-worker epoll loop, timers, and the executor actions run on.
        .target(name: "HeraldLoop", dependencies: ["CHeraldSystem"]),
        // Connections, verbs, actions, rooms, cache: one worker's server.
        .target(name: "HeraldCore", dependencies: ["HeraldProtocol", "HeraldLoop", "CHeraldSystem"]),
        // The supervisor: worker processes, rolling reload, control socket, pidfile.
        .target(name: "HeraldCluster", dependencies: ["HeraldCore", "HeraldLoop", "HeraldProtocol", "CHeraldSystem"]),
        // The built-in actions, written with the same API as anyone's own.
        .target(name: "HeraldActions", dependencies: ["HeraldCore", "HeraldLoop", "HeraldProtocol"]),
        // OpenSSL 3 from Debian's libssl-dev, and plain C functions for its macros.
        .systemLibrary(name: "COpenSSL", path: "Sources/COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        .target(name: "CHeraldTLS", dependencies: ["COpenSSL"]),
        // TLS listeners: an OpenSSL context per listener and a non-blocking TLS transport.
        .target(name: "HeraldTLS", dependencies: ["HeraldCore", "HeraldLoop", "COpenSSL", "CHeraldTLS"]),
        // The load tool behind `herald bench`.
        .target(name: "HeraldBench", dependencies: ["HeraldProtocol", "CHeraldSystem", "COpenSSL", "CHeraldTLS"]),
        // hiredis (Debian libhiredis-dev 0.14), the C client behind the Redis bus and cache.
        .systemLibrary(name: "CHiredis", providers: [.apt(["libhiredis-dev"])]),
        // The Redis room bus and shared cache, on the worker's loop; the private redis-server.
        .target(name: "HeraldRedis", dependencies: ["HeraldCore", "HeraldLoop", "HeraldProtocol", "CHiredis", "CHeraldSystem"]),
        // The client library: many requests in flight, replies matched by messageCount;
        // TCP or TLS (OpenSSL).
        .target(name: "HeraldClient", dependencies: ["HeraldProtocol", "COpenSSL", "CHeraldTLS"]),
        // `herald console`: an interactive (or piped) session over HeraldClient.
        .target(name: "HeraldConsole", dependencies: ["HeraldClient", "HeraldProtocol"]),
        // The command line (start, stop, reload, status, scale, bench, console), as a library
        // so that a server binary of your own serves your actions with the same CLI.
        .target(name: "HeraldServer", dependencies: ["HeraldCore", "HeraldCluster", "HeraldLoop", "HeraldProtocol",
                                                     "HeraldRedis", "HeraldTLS", "HeraldConsole", "CHeraldSystem"]),
        // `herald bench` as a command for Herald.main(actions:extraCommands:).
        .target(name: "HeraldBenchCommand", dependencies: ["HeraldServer", "HeraldBench"]),
        .executableTarget(name: "herald", dependencies: ["HeraldServer", "HeraldActions", "HeraldBenchCommand"]),
        // libFuzzer targets for the parsers (framer + request parser, JSON, RESP, configuration).
        // Only deploy/fuzz.sh's build (--sanitize=fuzzer -DHERALD_FUZZ) makes them fuzz; a plain
        // build makes a stub that says so.
        .executableTarget(name: "HeraldFuzz", dependencies: ["HeraldProtocol", "HeraldCore", "HeraldRedis", "HeraldBench"]),
        .testTarget(name: "HeraldProtocolTests", dependencies: ["HeraldProtocol"]),
        .testTarget(name: "HeraldCoreTests", dependencies: ["HeraldCore", "HeraldProtocol", "HeraldLoop"]),
        // What the test targets share: the process harness (herald, redis-server), free
        // ports, line and TLS clients, test certificates. A plain target under Tests/,
        // in no product; test targets `@testable import` it.
        .target(name: "HeraldTestSupport", dependencies: ["COpenSSL", "CHeraldTLS"], path: "Tests/HeraldTestSupport"),
        .testTarget(name: "HeraldIntegrationTests", dependencies: ["HeraldTestSupport", "HeraldProtocol", "COpenSSL", "CHeraldTLS"]),
        .testTarget(name: "HeraldRedisTests", dependencies: ["HeraldRedis", "HeraldCore", "HeraldProtocol", "HeraldLoop", "HeraldTestSupport"]),
        .testTarget(name: "HeraldTLSTests", dependencies: ["HeraldTLS", "HeraldCore", "HeraldLoop"]),
        .testTarget(name: "HeraldClientTests", dependencies: ["HeraldClient", "HeraldProtocol", "HeraldTestSupport"]),
    ]
)
