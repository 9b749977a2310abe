// What some tests need from the machine: nginx, a Python with pyseto, the `pat` binary, the
// official PASETO/PASERK vectors, PostgreSQL's server programs. In CI (`CI=true`, as `.ci/run`
// sets it) a missing prerequisite is a recorded failure: CI never goes green by skipping.
// Elsewhere the test is skipped, with a message saying how to get it.
//
//   @Test func throughNginx() async throws {
//       let nginx = try await Prerequisite.nginx.require()   // its path
//       …
//   }
//
// A new prerequisite is a `Prerequisite(name:hint:probe:)` whose probe returns the value the
// test needs (a path) or nil.
import Foundation
import Synchronization
import Testing

public struct Prerequisite: Sendable {
    /// What is missing, e.g. "nginx".
    public let name: String
    /// How to get it, e.g. "apt-get install nginx, or set PATKIT_NGINX".
    public let hint: String
    private let probe: @Sendable () async -> String?
    private let cache = Cache()

    public init(name: String, hint: String, probe: @escaping @Sendable () async -> String?) {
        self.name = name
        self.hint = hint
        self.probe = probe
    }

    /// True in CI: `CI` is `true`, `1` or `yes`.
    public static var isCI: Bool {
        ["true", "1", "yes"].contains((ProcessInfo.processInfo.environment["CI"] ?? "").lowercased())
    }

    /// The prerequisite's value (e.g. a path), or nil when the machine lacks it. Probed once.
    public func value() async -> String? {
        if let known = cache.value.withLock({ $0 }) { return known }  // probed before (value or nil)
        let found = await probe()
        cache.value.withLock { $0 = found }
        return found
    }

    /// The value; when missing, in CI an issue is recorded and an error thrown (the test
    /// fails), elsewhere the test is skipped with a message.
    @discardableResult
    public func require(sourceLocation: SourceLocation = #_sourceLocation) async throws -> String {
        if let value = await value() { return value }
        let message = "\(name) is missing: \(hint)"
        if Self.isCI {
            Issue.record("CI=true: a missing prerequisite fails the test. \(message)", sourceLocation: sourceLocation)
            throw MissingPrerequisite(description: message)
        }
        try Test.cancel("skipped: \(message)", sourceLocation: sourceLocation)
    }

    public struct MissingPrerequisite: Error, CustomStringConvertible {
        public let description: String
    }

    final class Cache: Sendable {
        let value = Mutex<String??>(nil)
    }
}

extension Prerequisite {
    /// The nginx binary: `$PATKIT_NGINX` when set (and then only it), else the usual places.
    public static let nginx = Prerequisite(name: "nginx", hint: "apt-get install nginx (Debian), or set PATKIT_NGINX to its path") {
        let fm = FileManager.default
        if let path = ProcessInfo.processInfo.environment["PATKIT_NGINX"], !path.isEmpty {
            return fm.isExecutableFile(atPath: path) ? path : nil
        }
        return ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx", "/usr/local/bin/nginx", "/opt/homebrew/bin/nginx"]
            .first { fm.isExecutableFile(atPath: $0) }
    }

    /// The `pat` binary built with the tests.
    public static let patBinary = Prerequisite(name: "the pat binary", hint: "run `swift build --product pat`") {
        TestPaths.patBinary
    }

    /// A Python that imports pyseto: `$PATKIT_PYTHON` when set (and then only it), else
    /// `.venv/bin/python` in the package.
    public static let pyseto = Prerequisite(
        name: "a Python with pyseto",
        hint: "python3 -m venv .venv && .venv/bin/pip install pyseto (scripts/quickstart.sh does it), or set PATKIT_PYTHON"
    ) {
        let configured = ProcessInfo.processInfo.environment["PATKIT_PYTHON"].flatMap { $0.isEmpty ? nil : $0 }
        let candidates = [configured ?? TestPaths.packageRoot.appendingPathComponent(".venv/bin/python").path]
        for path in candidates where FileManager.default.isExecutableFile(atPath: path) {
            if let result = try? await ChildProcess.run(path, ["-c", "import pyseto"], timeLimit: .seconds(60)), result.succeeded {
                return path
            }
        }
        return nil
    }

    /// The folder of official PASETO/PASERK vectors: `$PATKIT_VECTORS`, else `../shared/vectors`
    /// beside the package; it must hold v4.json.
    public static let vectors = Prerequisite(
        name: "the official PASETO/PASERK vectors",
        hint: "set PATKIT_VECTORS to the folder holding v4.json and the k4.*.json files (default ../shared/vectors)"
    ) {
        let directory = TestPaths.vectorsDirectory
        return FileManager.default.fileExists(atPath: directory.appendingPathComponent("v4.json").path) ? directory.path : nil
    }

    /// PostgreSQL's server programs (`initdb`, `pg_ctl`): the folder holding them, from
    /// `$PATKIT_PG_BIN`, the PATH, or /usr/lib/postgresql/*/bin.
    public static let postgresServer = Prerequisite(
        name: "PostgreSQL's server programs (initdb, pg_ctl)",
        hint: "apt-get install postgresql (Debian), or set PATKIT_PG_BIN to the folder holding initdb and pg_ctl"
    ) {
        let fm = FileManager.default
        var folders: [String] = []
        if let bin = ProcessInfo.processInfo.environment["PATKIT_PG_BIN"] { folders.append(bin) }
        folders += (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init)
        if let versions = try? fm.contentsOfDirectory(atPath: "/usr/lib/postgresql") {
            folders += versions.sorted().reversed().map { "/usr/lib/postgresql/\($0)/bin" }
        }
        return folders.first { fm.isExecutableFile(atPath: $0 + "/initdb") && fm.isExecutableFile(atPath: $0 + "/pg_ctl") }
    }
}
