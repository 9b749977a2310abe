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
        .executableTarget(
            name: "pat",
            dependencies: [
                "PATKit", "PATStore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "PATKitTests", dependencies: ["PATKit", "PATStore"]),
        .testTarget(name: "PATCLITests", dependencies: ["PATKit", "PATStore", "pat"]),
    ],
    swiftLanguageModes: [.v6]
)
