// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "PATKit",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "PATKit", targets: ["PATKit"]),
        .library(name: "PATStore", targets: ["PATStore"]),
        .library(name: "PATEdge", targets: ["PATEdge"]),
        .library(name: "PATHummingbird", targets: ["PATHummingbird"]),
        .executable(name: "pat", targets: ["pat"]),
    ],
    // `Server` (on by default): `pat serve`, the PostgreSQL registry and fetching documents over
    // HTTP, i.e. Hummingbird, AsyncHTTPClient, postgres-nio, swift-nio-ssl and swift-crypto (both
    // with BoringSSL), swift-prometheus. They are most of a fresh clone's build (issue 14 §6: `pat`
    // takes 2,695 build steps with them, 628 in about a quarter of the time without; README,
    // Set-up), and the quick start's commands (keys, publish, issue, verify) use none of them, so
    // the quick start builds `pat` without it (`swift build --product pat --disable-default-traits`);
    // every other build, `swift test` included, has it. A `pat` without it keeps every command and
    // option, and one that needs the server side says how to build it (exit 2), never acts otherwise.
    traits: [
        .trait(name: "Server", description: "pat serve, the PostgreSQL registry and http(s) documents in pat scan."),
        .default(enabledTraits: ["Server"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        // The HTTP side (issue 5): server, edge refresher, compression. Hummingbird without its
        // default traits: no swift-configuration, FoundationEssentials only.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        // HTTPRequestPart/HTTPResponsePart, for the server's connection guard (connection cap, header timeout).
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.34.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/adam-fowler/compress-nio", from: "1.5.0"),
        // Metrics: the middleware and the gate record through swift-metrics; `pat serve` exports
        // them in Prometheus text format at /metrics.
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        // Tests only: child processes awaited off the cooperative pool, killed on a time limit.
        .package(url: "https://github.com/swiftlang/swift-subprocess", from: "1.0.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.5.0"),
        // The PostgreSQL registry (issue 10), in its own target: only `pat` and its tests build it.
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        // ECDSA P-256 for the secret-scanning partner endpoint (issue 11): `PATServer` only,
        // never PATKit (which depends on libsodium alone).
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
    ],
    targets: [
        // libsodium, found through pkg-config; Debian/Ubuntu: libsodium-dev.
        .systemLibrary(
            name: "CSodium",
            pkgConfig: "libsodium",
            providers: [.apt(["libsodium-dev"]), .brew(["libsodium"])]
        ),
        // The offline core an edge service embeds: libsodium and nothing heavier.
        .target(name: "PATKit", dependencies: ["CSodium"]),
        // Issuer-side state on disk: the PATKit home, the keystore, file locks.
        .target(name: "PATStore", dependencies: ["PATKit"]),
        // The issuer's registry: the store protocol, its SQLite back end (GRDB), the publisher.
        .target(
            name: "PATRegistry",
            dependencies: ["PATStore", .product(name: "GRDB", package: "GRDB.swift")]
        ),
        // The registry in PostgreSQL (postgres-nio): several `pat serve` nodes on one database.
        // A separate target, so that consumers of the SQLite registry do not build postgres-nio.
        .target(
            name: "PATRegistryPostgres",
            dependencies: [
                "PATRegistry",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The management service: every rule of minting, lifecycle, publishing and events,
        // validated once, for the CLI and the HTTP API alike. No HTTP, no argument parsing.
        .target(
            name: "PATManagement",
            dependencies: [
                "PATKit", "PATStore", "PATRegistry",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The edge refresher: keeps a live Validator's keys and revocation list current over HTTP.
        .target(
            name: "PATEdge",
            dependencies: [
                "PATKit",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Hummingbird middleware: PATAuthenticator, scope requirements, the JSON error shape.
        .target(
            name: "PATHummingbird",
            dependencies: [
                "PATKit",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ]
        ),
        // `pat serve`: distribution endpoints, the /verify gate, the management API and webhooks.
        .target(
            name: "PATServer",
            dependencies: [
                "PATStore", "PATEdge", "PATHummingbird", "PATRegistry", "PATManagement",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "CompressNIO", package: "compress-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            // The OpenAPI document served at GET /openapi.json, compiled into the binary (no
            // resource bundle to install beside `pat`).
            resources: [.embedInCode("Resources/openapi.json")]
        ),
        .executableTarget(
            name: "pat",
            dependencies: [
                "PATKit", "PATStore", "PATRegistry", "PATManagement",
                .target(name: "PATRegistryPostgres", condition: .when(traits: ["Server"])),
                .target(name: "PATServer", condition: .when(traits: ["Server"])),
                .target(name: "PATEdge", condition: .when(traits: ["Server"])),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Shared by the test targets: paths, prerequisites (fail in CI, skip elsewhere), child
        // processes with time limits, bounded waits for events.
        .target(
            name: "PATTestSupport",
            dependencies: [
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            path: "Tests/PATTestSupport"
        ),
        .testTarget(name: "PATKitTests", dependencies: ["PATKit", "PATStore", "PATTestSupport"]),
        .testTarget(name: "PATCLITests", dependencies: ["PATKit", "PATStore", "PATTestSupport", "pat"]),
        // Shared by the registry and service tests: a home with a key and a registry, a clock.
        .target(
            name: "PATRegistryTestSupport",
            dependencies: ["PATRegistry", "PATRegistryPostgres", "PATTestSupport", .product(name: "PostgresNIO", package: "postgres-nio")],
            path: "Tests/PATRegistryTestSupport"
        ),
        .testTarget(
            name: "PATRegistryTests",
            dependencies: ["PATRegistry", "PATRegistryPostgres", "PATRegistryTestSupport", "PATTestSupport",
                           .product(name: "GRDB", package: "GRDB.swift")]
        ),
        .testTarget(name: "PATManagementTests", dependencies: ["PATManagement", "PATRegistry", "PATRegistryPostgres", "PATRegistryTestSupport", "PATTestSupport"]),
        .testTarget(
            name: "PATServerTests",
            dependencies: [
                "PATServer", "PATEdge", "PATHummingbird", "PATStore", "PATRegistry", "PATRegistryPostgres", "PATManagement",
                "PATTestSupport", "PATRegistryTestSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "CompressNIO", package: "compress-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
