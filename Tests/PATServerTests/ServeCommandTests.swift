import Foundation
import PATKit
import PATStore
import Testing
import PATTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The `pat` binary built with the tests.
let patBinary: String? = TestPaths.patBinary

@Suite("pat serve", .serialized)
struct ServeCommandTests {
    /// Runs `pat` to completion; returns its status and standard error.
    static func run(_ binary: String, _ arguments: [String]) throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, text)
    }

    @Test(.enabled(if: patBinary != nil, "the pat binary is not built (swift build --product pat)"))
    func usageErrorsExitTwo() throws {
        let binary = try #require(patBinary)
        let dir = try TempDir()
        for arguments in [["serve", "--listen", "nowhere"], ["serve", "--listen", "127.0.0.1:70000"],
                          ["serve", "--keys-url", "http://x/keys", "--revocations-url", "http://x/list"],
                          ["serve", "--verify-only", "--keys-url", "http://x/keys"],
                          ["serve", "--verify-only", "--refresh-interval", "soon"]] {
            let (status, errors) = try Self.run(binary, arguments + ["--home", dir.path])
            #expect(status == 2, "\(arguments): \(errors)")
            #expect(errors.contains("--listen") || errors.contains("--keys-url") || errors.contains("duration"), "\(errors)")
        }
    }

    @Test(.enabled(if: patBinary != nil, "the pat binary is not built (swift build --product pat)"))
    func servesAndStopsCleanlyOnSIGTERMAndSIGINT() async throws {
        let binary = try #require(patBinary)
        let dir = try TempDir()
        let issuing = try Issuing()
        try dir.publish(keys: try issuing.signedKeys(), list: try issuing.list(sequence: 1))
        try dir.pin(issuing.anchors)
        for (signal, mode) in [(SIGTERM, [String]()), (SIGINT, ["--verify-only", "--refresh-interval", "1s"])] {
            let port = try freeLoopbackPort()
            let process = Process()
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = ["serve", "--home", dir.path, "--listen", "127.0.0.1:\(port)"] + mode
            let errors = Pipe()
            process.standardError = errors
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            defer { if process.isRunning { process.terminate(); process.waitUntilExit() } }

            let path = mode.isEmpty ? "/.well-known/pat/keys" : "/status"
            let up = try await eventually(within: 20) {
                (try? await http("http://127.0.0.1:\(port)\(path)"))?.status == 200
            }
            #expect(up, "pat serve \(mode) answers on port \(port)")
            kill(process.processIdentifier, signal)
            process.waitUntilExit()
            let log = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(process.terminationReason == .exit && process.terminationStatus == 0, "exit \(process.terminationStatus): \(log.suffix(1500))")
            #expect(log.contains("127.0.0.1:\(port)"), "the log says where it listens")
        }
    }
}
