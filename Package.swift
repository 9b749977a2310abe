// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "PATKit",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "PATKit", targets: ["PATKit"]),
        .library(name: "PATStore", targets: ["PATStore"]),
        .executable(name: "pat", targets: ["pat"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
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
        // The issuer's registry of PAT records (SQLite through GRDB), the lifecycle and the publisher.
        .target(
            name: "PATRegistry",
            dependencies: ["PATStore", .product(name: "GRDB", package: "GRDB.swift")]
        ),
        .executableTarget(
            name: "pat",
            dependencies: [
                "PATKit", "PATStore", "PATRegistry",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // `swift package benchmark`: validation throughput against one bare libsodium signature check.
        .executableTarget(
            name: "PATBenchmarks",
            dependencies: ["PATKit", "CSodium", .product(name: "Benchmark", package: "benchmark")],
            path: "Benchmarks/PATBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .testTarget(name: "PATKitTests", dependencies: ["PATKit", "PATStore"]),
        .testTarget(name: "PATCLITests", dependencies: ["PATKit", "PATStore", "pat"]),
        .testTarget(name: "PATRegistryTests", dependencies: ["PATRegistry"]),
    ],
    swiftLanguageModes: [.v6]
)
