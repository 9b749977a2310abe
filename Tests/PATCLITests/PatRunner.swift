import Foundation
import Testing
import PATTestSupport

/// What one run of `pat` did.
struct PatResult {
    let status: Int32
    let stdout: String
    let stderr: String

    /// stdout without its final newline.
    var output: String { stdout.hasSuffix("\n") ? String(stdout.dropLast()) : stdout }

    /// stdout parsed as JSON.
    func json() throws -> Any {
        try JSONSerialization.jsonObject(with: Data(stdout.utf8), options: [])
    }

    /// stdout parsed as one JSON object.
    func object() throws -> [String: Any] {
        guard let object = try json() as? [String: Any] else {
            throw PatRunnerError("expected a JSON object on stdout, got: \(stdout.prefix(300))")
        }
        return object
    }

    /// stdout parsed as a JSON array of objects.
    func objects() throws -> [[String: Any]] {
        guard let array = try json() as? [[String: Any]] else {
            throw PatRunnerError("expected a JSON array on stdout, got: \(stdout.prefix(300))")
        }
        return array
    }
}

struct PatRunnerError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Runs the real `pat` binary against a fresh temporary PATKit home (`PAT_HOME`), with
/// `PAT_NOW` as the current time when `now` is set. Removes the home when released. Every run
/// is awaited off the cooperative pool and bounded in time (`ChildProcess`).
final class PatRunner: @unchecked Sendable {
    let binary: String
    let home: String
    /// The current time for the runs (RFC 3339), or nil for the system clock.
    var now: String?

    /// Needs the `pat` binary: a failure in CI when it is missing, a skip elsewhere.
    init(now: String? = nil) async throws {
        binary = try await Prerequisite.patBinary.require()
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("patcli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: base, withIntermediateDirectories: true)
        home = base.path
        self.now = now
    }

    deinit { try? FileManager.default.removeItem(atPath: home) }

    /// The environment of a run: this process's, without PATKit variables, plus the home and clock.
    func environment(_ extra: [String: String] = [:]) -> [String: String] {
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("PAT_") }
        env["PAT_HOME"] = home
        if let now { env["PAT_NOW"] = now }
        env.merge(extra) { $1 }
        return env
    }

    /// Runs `pat ARGS…` to completion; standard input is `input` (empty when nil, not a terminal).
    @discardableResult
    func run(_ arguments: [String], environment extra: [String: String] = [:], input: String? = nil,
             sourceLocation: SourceLocation = #_sourceLocation) async throws -> PatResult {
        let result = try await ChildProcess.run(binary, arguments, environment: environment(extra),
                                                input: input.map { Array($0.utf8) }, sourceLocation: sourceLocation)
        return PatResult(status: result.status, stdout: result.stdout, stderr: result.stderr)
    }

    /// Runs `pat ARGS…` and requires exit status 0.
    @discardableResult
    func ok(_ arguments: [String], environment extra: [String: String] = [:],
            sourceLocation: SourceLocation = #_sourceLocation) async throws -> PatResult {
        let result = try await run(arguments, environment: extra, sourceLocation: sourceLocation)
        guard result.status == 0 else {
            Issue.record("pat \(arguments.joined(separator: " ")) exited \(result.status)\nstdout: \(result.stdout)\nstderr: \(result.stderr)",
                         sourceLocation: sourceLocation)
            throw PatRunnerError("pat \(arguments.first ?? "") failed")
        }
        return result
    }

    /// `pat create … --json` (or another token-issuing command): the id and the token.
    func issue(_ arguments: [String], sourceLocation: SourceLocation = #_sourceLocation) async throws -> (id: String, token: String) {
        let object = try await ok(arguments + ["--json"], sourceLocation: sourceLocation).object()
        guard let id = object["id"] as? String, let token = object["accessToken"] as? String else {
            throw PatRunnerError("no id/token in \(object)")
        }
        return (id, token)
    }

    /// `pat verify TOKEN --json`: nil when valid, else the rejection code and reason.
    func verify(_ token: String, extra: [String] = []) async throws -> (code: String, reason: String)? {
        let result = try await run(["verify", token, "--json"] + extra)
        let object = try result.object()
        if object["valid"] as? Bool == true {
            guard result.status == 0 else { throw PatRunnerError("valid token but exit \(result.status)") }
            return nil
        }
        guard result.status == 1 else { throw PatRunnerError("invalid token but exit \(result.status): \(result.stderr)") }
        return (object["code"] as? String ?? "?", object["reason"] as? String ?? "?")
    }

    /// `pat list --json` with the given filters (every status unless they name one).
    func list(_ filters: [String] = []) async throws -> [[String: Any]] {
        try await ok(["list", "--json"] + (filters.contains("--status") ? filters : filters + ["--status", "all"])).objects()
    }
}
