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

    /// A Python 3 (standard library only, e.g. to run the README's webhook receiver):
    /// `$PATKIT_PYTHON` when set (and then only it), else `.venv/bin/python` in the package, else
    /// `python3` in the usual places.
    public static let python3 = Prerequisite(name: "Python 3", hint: "apt-get install python3, or set PATKIT_PYTHON") {
        let fm = FileManager.default
        if let configured = ProcessInfo.processInfo.environment["PATKIT_PYTHON"], !configured.isEmpty {
            return fm.isExecutableFile(atPath: configured) ? configured : nil
        }
        return [TestPaths.packageRoot.appendingPathComponent(".venv/bin/python").path, "/usr/bin/python3", "/usr/local/bin/python3",
                "/opt/homebrew/bin/python3"].first { fm.isExecutableFile(atPath: $0) }
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

    /// A PostgreSQL server the tests may create databases on: `$PATKIT_POSTGRES_URL`
    /// (`postgres://USER:PASSWORD@HOST:PORT/DATABASE`; each test creates and uses its own
    /// database `patkit_t_…` there). The PostgreSQL half of every parameterised registry test and
    /// the multi-node tests need it.
    public static let postgresServer = Prerequisite(
        name: "a PostgreSQL server (PATKIT_POSTGRES_URL)",
        hint: "start a throw-away one on loopback and enable the PostgreSQL tests with "
            + "`export PATKIT_POSTGRES_URL=$(scripts/postgres-test-server.sh start)` (needs PostgreSQL's server programs: "
            + "apt-get install postgresql), or set PATKIT_POSTGRES_URL to a server where the user may create databases"
    ) {
        guard let url = ProcessInfo.processInfo.environment["PATKIT_POSTGRES_URL"], !url.isEmpty else { return nil }
        return url
    }
}
