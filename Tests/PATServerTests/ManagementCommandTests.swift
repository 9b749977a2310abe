import Foundation
import PATKit
import PATServer
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite("pat serve: the management API", .serialized)
struct ManagementCommandTests {
    /// Runs `pat` to completion; returns its status, standard output and standard error.
    static func run(_ binary: String, _ arguments: [String]) throws -> (status: Int32, output: String, errors: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        let output = Pipe(), errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let out = output.fileHandleForReading.readDataToEndOfFile()
        let err = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
    }

    @Test(.enabled(if: patBinary != nil, "the pat binary is not built (swift build --product pat)"))
    func bootstrapWithTheCLIThenManageOverHTTP() async throws {
        let binary = try #require(patBinary)
        let dir = try TempDir()
        #expect(try Self.run(binary, ["keys", "generate", "--home", dir.path]).status == 0)
        let bootstrap = try Self.run(binary, ["create", "--home", dir.path, "--owner", "admin", "--name", "bootstrap",
                                              "--scope", "pats:admin", "--catalog", "management", "--expires-in", "1d"])
        #expect(bootstrap.status == 0, "\(bootstrap.errors)")
        let admin = bootstrap.output.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(admin.hasPrefix("v4.public."))
        let plain = try Self.run(binary, ["create", "--home", dir.path, "--owner", "admin", "--name", "nope",
                                          "--scope", "pats:admin", "--expires-in", "1d"])
        #expect(plain.status == 1, "pats scopes need --catalog management")
        #expect(plain.errors.contains("pats"))

        let port = try freeLoopbackPort()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["serve", "--home", dir.path, "--listen", "127.0.0.1:\(port)", "--rate-limit", "600"]
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        defer { if process.isRunning { process.terminate(); process.waitUntilExit() } }

        let api = "http://127.0.0.1:\(port)\(ManagementRoutes.basePath)"
        let up = try await eventually(within: 20) { (try? await http("http://127.0.0.1:\(port)/.well-known/pat/keys"))?.status == 200 }
        #expect(up, "pat serve answers on port \(port)")
        let created = try await request(api, method: .POST, token: admin, body: #"{"name": "ci", "scopes": ["clients:view"], "duration": "7d"}"#)
        #expect(created.status == 201, "\(created.text)")
        let listed = try await request(api, method: .GET, token: admin)
        #expect(try listed.object()["total"] as? Int == 2)
        let id = try created.string("id")
        #expect(try await request("\(api)/\(id)/revoke", method: .POST, token: admin).status == 200)
        let list = try await http("http://127.0.0.1:\(port)/.well-known/pat/revocations")
        #expect(list.status == 200, "the server published the revocation")

        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
        let log = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(process.terminationStatus == 0, "\(log.suffix(1500))")
        #expect(log.contains("management API on /v3/personal-access-tokens"))
        #expect(!log.contains(admin), "tokens are never logged")
    }

    @Test(.enabled(if: patBinary != nil, "the pat binary is not built (swift build --product pat)"))
    func managementOptionsAreChecked() throws {
        let binary = try #require(patBinary)
        let dir = try TempDir()
        for arguments in [["serve", "--verify-only", "--webhook", "http://127.0.0.1:9/hook"],
                          ["serve", "--no-management", "--rate-limit", "10"],
                          ["serve", "--webhook", "http://127.0.0.1:9/hook"],
                          ["serve", "--webhook", "ftp://example.com/x", "--webhook-secret-file", "/nonexistent"],
                          ["serve", "--webhook-secret-file", "/nonexistent"],
                          ["serve", "--next-update", "soon"]] {
            let result = try Self.run(binary, arguments + ["--home", dir.path])
            #expect(result.status == 2, "\(arguments): \(result.errors)")
        }
        // A secret file others can read is refused at start.
        #expect(try Self.run(binary, ["keys", "generate", "--home", dir.path]).status == 0)
        let secret = dir.path + "/hook.key"
        try SecureFile.writeAtomically(secret, Array("0123456789abcdef0123456789abcdef".utf8), mode: 0o644)
        let loose = try Self.run(binary, ["serve", "--home", dir.path, "--listen", "127.0.0.1:0",
                                          "--webhook", "http://127.0.0.1:9/hook", "--webhook-secret-file", secret])
        #expect(loose.status == 1)
        #expect(loose.errors.contains("chmod 600"), "\(loose.errors)")
    }
}
