// swift-tools-version: 6.1
// PATKit's benchmarks, in a package of their own (as ordo-one/benchmark recommends) so that a
// service depending on PATKit never resolves the benchmark framework or its malloc interposer.
// Run from this folder: `swift package benchmark` (see the README, "Benchmarks").
import PackageDescription

let package = Package(
    name: "PATKitBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "PATKit", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        // The bare route of `scripts/load.sh` (as the root package: no default traits).
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
    ],
    targets: [
        // The bare libsodium baseline every figure is compared with (the root package's CSodium
        // module is not a product, so this package names its own module map over the same library).
        .systemLibrary(
            name: "CSodiumBaseline",
            path: "CSodiumBaseline",
            pkgConfig: "libsodium",
            providers: [.apt(["libsodium-dev"]), .brew(["libsodium"])]
        ),
        // Validation throughput against one bare libsodium signature check, the scanner against memchr.
        .executableTarget(
            name: "PATBenchmarks",
            dependencies: [
                "CSodiumBaseline",
                .product(name: "PATKit", package: "PATKit"),
                // validate.metrics_overhead: validations recorded as pat serve records them.
                .product(name: "PATHummingbird", package: "PATKit"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "PATBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        // The HTTP ceiling `scripts/load.sh` measures the /verify gate against: one Hummingbird
        // route answering 204 (`swift build -c release --product bare-route`).
        .executableTarget(
            name: "bare-route",
            dependencies: [.product(name: "Hummingbird", package: "hummingbird")],
            path: "BareRoute"
        ),
    ],
    swiftLanguageModes: [.v6]
)
