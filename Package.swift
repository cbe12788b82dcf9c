// swift-tools-version:6.0
import PackageDescription

// Herald: a clustered socket API server. No third-party Swift packages: system C
// libraries only, through small C targets and systemLibrary targets.
let package = Package(
    name: "Herald",
    products: [
        .executable(name: "herald", targets: ["herald"]),
        .library(name: "HeraldClient", targets: ["HeraldClient"]),
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
        // The built-in actions, written with the same API as anyone's own.
        .target(name: "HeraldActions", dependencies: ["HeraldCore", "HeraldLoop", "HeraldProtocol"]),
        // The load tool behind `herald bench`.
        .target(name: "HeraldBench", dependencies: ["HeraldProtocol", "CHeraldSystem"]),
        // The client library: many requests in flight, replies matched by messageCount.
        .target(name: "HeraldClient", dependencies: ["HeraldProtocol"]),
        // `herald console`: an interactive (or piped) session over HeraldClient.
        .target(name: "HeraldConsole", dependencies: ["HeraldClient", "HeraldProtocol"]),
        .executableTarget(name: "herald", dependencies: ["HeraldCore", "HeraldActions", "HeraldLoop", "HeraldProtocol", "HeraldBench", "HeraldConsole", "CHeraldSystem"]),
        .testTarget(name: "HeraldProtocolTests", dependencies: ["HeraldProtocol"]),
        .testTarget(name: "HeraldIntegrationTests", dependencies: ["HeraldProtocol"]),
        .testTarget(name: "HeraldClientTests", dependencies: ["HeraldClient", "HeraldProtocol"]),
    ]
)
