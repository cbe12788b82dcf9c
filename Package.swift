// swift-tools-version:6.0
import PackageDescription

// Herald: a clustered socket API server. No third-party Swift packages: system C
// libraries only, through small C targets and systemLibrary targets.
let package = Package(
    name: "Herald",
    products: [
        .executable(name: "herald", targets: ["herald"]),
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
        .executableTarget(name: "herald", dependencies: ["HeraldCore", "HeraldCluster", "HeraldActions", "HeraldLoop", "HeraldProtocol", "HeraldBench", "CHeraldSystem", "HeraldTLS"]),
        .testTarget(name: "HeraldProtocolTests", dependencies: ["HeraldProtocol"]),
        .testTarget(name: "HeraldIntegrationTests", dependencies: ["HeraldProtocol", "COpenSSL", "CHeraldTLS"]),
        .testTarget(name: "HeraldTLSTests", dependencies: ["HeraldTLS", "HeraldCore", "HeraldLoop"]),
    ]
)
