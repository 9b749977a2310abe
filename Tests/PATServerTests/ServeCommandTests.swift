import Foundation
import PATKit
import PATServer
import PATStore
import PATTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `pat serve` as a real process: usage errors, graceful stops, and the gate fed over HTTP with
/// a cache directory. Every child is bounded in time (ChildProcess); the pat binary is a
/// prerequisite (a failure in CI).
@Suite("pat serve", .serialized, .timeLimit(.minutes(5)))
struct ServeCommandTests {
    @Test func usageErrorsExitTwo() async throws {
        let binary = try await Prerequisite.patBinary.require()
        let dir = try TempDir()
        for arguments in [["serve", "--listen", "nowhere"], ["serve", "--listen", "127.0.0.1:70000"],
                          ["serve", "--keys-url", "http://x/keys", "--revocations-url", "http://x/list"],
                          ["serve", "--verify-only", "--keys-url", "http://x/keys"],
                          ["serve", "--verify-only", "--refresh-interval", "soon"]] {
            let result = try await ChildProcess.run(binary, arguments + ["--home", dir.path], timeLimit: .seconds(60))
            #expect(result.status == 2, "\(arguments): \(result.stderr)")
            #expect(result.stderr.contains("--listen") || result.stderr.contains("--keys-url") || result.stderr.contains("duration"),
                    "\(result.stderr)")
        }
    }

    @Test func servesAndStopsCleanlyOnSIGTERMAndSIGINT() async throws {
        let dir = try TempDir()
        let issuing = try Issuing()
        try dir.publish(keys: try issuing.signedKeys(), list: try issuing.list(sequence: 1))
        try dir.pin(issuing.anchors)
        for (signal, mode) in [(SIGTERM, [String]()), (SIGINT, ["--verify-only", "--refresh-interval", "1s"])] {
            let (port, result) = try await withPatServe(["serve", "--home", dir.path] + mode, stopWith: signal) { port, _ in
                let path = mode.isEmpty ? "/.well-known/pat/keys" : "/status"
                let response = try await http("http://127.0.0.1:\(port)\(path)")
                #expect(response.status == 200, "pat serve \(mode) answers \(path)")
                return port
            }
            #expect(result.exitStatus == 0, "signal \(signal): \(result)")
            #expect(result.stderr.contains("127.0.0.1:\(port)"), "the log says where it listens")
        }
    }

    static func bearer(_ token: String) -> [(String, String)] {
        [("Authorization", "Bearer \(token)"), ("X-PAT-Require-Scope", "channels:publish:ch-1")]
    }

    /// The gate fed from another server's URLs, keeping its copy in --cache-dir: it verifies,
    /// follows a new list, and after a restart with its source failing serves from the cache.
    @Test func theGateFollowsURLsAndRestartsFromItsCacheDirectory() async throws {
        let issuer = try TempDir()
        let cache = try TempDir("patgate-cache")
        let issuing = try Issuing()
        try issuer.publish(keys: try issuing.signedKeys(), list: try issuing.list(sequence: 1))
        let anchorsFile = issuer.path + "/anchors.txt" // what `pat keys export --anchors` prints on the issuer
        try SecureFile.writeAtomically(anchorsFile, Array(issuing.anchors.text.utf8))
        let keptID = PATClaims.newID(), doomedID = PATClaims.newID()
        let kept = try issuing.token(id: keptID, subject: "carol", scopes: ["channels:publish:ch-1"])
        let doomed = try issuing.token(id: doomedID, subject: "dave", scopes: ["channels:publish:ch-1"])

        try await withPATServer(PATServerConfiguration(home: issuer.home)) { issuerPort, _ in
            let base = "http://127.0.0.1:\(issuerPort)/.well-known/pat"
            let arguments = ["serve", "--verify-only", "--home", cache.path, "--keys-url", "\(base)/keys",
                             "--revocations-url", "\(base)/revocations", "--trust-anchor", anchorsFile, "--cache-dir", cache.path,
                             "--refresh-interval", "1s"]
            let (_, result) = try await withPatServe(arguments) { port, _ in
                let gate = "http://127.0.0.1:\(port)"
                let passed = try await http("\(gate)/verify", headers: Self.bearer(kept))
                #expect(passed.status == 204)
                #expect(passed.header("X-PAT-Subject") == "carol")
                #expect(passed.header("X-PAT-Id") == keptID)
                #expect(try await http("\(gate)/verify", headers: Self.bearer(doomed)).status == 204)
                #expect(FileManager.default.fileExists(atPath: cache.path + "/keys.json"))
                #expect(FileManager.default.fileExists(atPath: cache.path + "/revocations.bin"))

                // A new list on the issuer: the gate (another process: no event to hook) shows it in /status.
                try issuer.publish(list: try issuing.list(sequence: 2, revoked: [doomedID]))
                try await awaitCondition("the gate reports list 2 in /status") {
                    let status = try await http("\(gate)/status")
                    return (try? JSONSerialization.jsonObject(with: Data(status.body)) as? [String: Any])?["sequence"] as? Int == 2
                }
                let refused = try await http("\(gate)/verify", headers: Self.bearer(doomed))
                #expect(refused.status == 401)
                #expect(refused.errorCode == "revoked")
                #expect(try await http("\(gate)/verify", headers: Self.bearer(kept)).status == 204)
            }
            #expect(result.exitStatus == 0, "\(result)")

            // The documents are gone (the issuer answers 404): a restarted gate serves from its cache.
            // (A refused connection would do too, but AsyncHTTPClient retries it until the request's
            // deadline, which only makes the test slower.)
            let gone = "http://127.0.0.1:\(issuerPort)/gone"
            let restart = ["serve", "--verify-only", "--home", cache.path, "--keys-url", "\(gone)/keys",
                           "--revocations-url", "\(gone)/revocations", "--trust-anchor", anchorsFile, "--cache-dir", cache.path,
                           "--refresh-interval", "1s"]
            let (_, again) = try await withPatServe(restart) { port, _ in
                let gate = "http://127.0.0.1:\(port)"
                let status = try JSONSerialization.jsonObject(with: Data(try await http("\(gate)/status").body)) as? [String: Any]
                #expect(status?["loadedFromCache"] as? Bool == true)
                #expect(status?["sequence"] as? Int == 2)
                #expect((status?["lastError"] as? String)?.contains("/gone/keys") == true, "the status names the failing source")
                #expect(try await http("\(gate)/verify", headers: Self.bearer(kept)).status == 204)
                #expect(try await http("\(gate)/verify", headers: Self.bearer(doomed)).errorCode == "revoked")
            }
            #expect(again.exitStatus == 0, "\(again)")
        }
    }
}
