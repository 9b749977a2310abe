import Foundation

/// Where things are when tests run: the package root and the `pat` binary built with them.
public enum TestPaths {
    /// The package root (this file is Tests/PATTestSupport/TestPaths.swift).
    public static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The `pat` binary: beside the test bundle or up to three folders above it, else
    /// `<package root>/.build/debug/pat`; nil when neither exists.
    public static let patBinary: String? = {
        let fm = FileManager.default
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = dir.appendingPathComponent("pat").path
            if fm.isExecutableFile(atPath: candidate) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        let fallback = packageRoot.appendingPathComponent(".build/debug/pat").path
        return fm.isExecutableFile(atPath: fallback) ? fallback : nil
    }()

    /// The official PASETO/PASERK vectors: `$PATKIT_VECTORS`, else `<package root>/../shared/vectors`.
    public static let vectorsDirectory: URL = {
        if let env = ProcessInfo.processInfo.environment["PATKIT_VECTORS"], !env.isEmpty {
            return URL(fileURLWithPath: env, isDirectory: true).standardizedFileURL
        }
        return packageRoot.appendingPathComponent("../shared/vectors", isDirectory: true).standardizedFileURL
    }()
}
