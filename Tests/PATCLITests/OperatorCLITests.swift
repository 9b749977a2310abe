import Foundation
import PATTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// What an operator reaches for first: the version, what a token says about itself (without
/// trusting it), a clear word when the port is taken or no token was given.
@Suite("pat: version, inspect, busy port, no token on a terminal", .timeLimit(.minutes(5)))
struct OperatorCLITests {
    let pat: PatRunner

    init() async throws {
        pat = try await PatRunner()
        try await pat.ok(["keys", "generate"])
    }

    @Test("pat list shows active PATs unless --status says otherwise, like GitHub's and GitLab's lists")
    func listDefaultsToActive() async throws {
        let kept = try await pat.issue(["create", "--owner", "alice", "--name", "kept", "--scope", "clients:view", "--expires-in", "1d"])
        let gone = try await pat.issue(["create", "--owner", "alice", "--name", "gone", "--scope", "clients:view", "--expires-in", "1d"])
        try await pat.ok(["revoke", gone.id])
        let listed = try await pat.ok(["list", "--json"]).objects().compactMap { $0["id"] as? String }
        #expect(listed == [kept.id], "the revoked PAT is not in the default list")
        let table = try await pat.ok(["list"]).stdout
        #expect(table.contains("kept") && !table.contains("gone"), "\(table)")
        #expect(Set(try await pat.list(["--status", "all"]).compactMap { $0["id"] as? String }) == [kept.id, gone.id])
    }

    @Test("retiring the key that signed the published list says to republish, and verify's refusal says how (review (a)3)")
    func retireListSigner() async throws {
        let old = try await pat.ok(["keys", "list", "--json"]).objects().compactMap { $0["kid"] as? String }
        #expect(old.count == 1)
        try await pat.ok(["publish"])
        try await pat.ok(["keys", "rotate"])
        let retired = try await pat.ok(["keys", "retire", old[0]])
        #expect(retired.stderr.contains("the published revocation list is signed by \(old[0])")
                && retired.stderr.contains("run `pat publish` now"), "\(retired.stderr)")
        let token = try await pat.ok(["issue", "--subject", "bob", "--scope", "clients:view", "--expires-in", "1h"]).output
        let refused = try await pat.run(["verify", token])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("`pat publish` re-signs it with an active key"), "\(refused.stderr)")
        try await pat.ok(["publish"])
        try await pat.ok(["verify", token])
        // Retiring a key that did not sign the published list adds no such note.
        try await pat.ok(["keys", "rotate"])
        try await pat.ok(["publish"])
        let keys = try await pat.ok(["keys", "list", "--json"]).objects()
        let signer = try #require(keys.first { $0["signing"] as? Bool == true }?["kid"] as? String)
        let other = try #require(keys.first { $0["status"] as? String == "active" && $0["kid"] as? String != signer }?["kid"] as? String)
        let quiet = try await pat.ok(["keys", "retire", other])
        #expect(!quiet.stderr.contains("published revocation list"), "\(quiet.stderr)")
    }

    @Test("--version names PATKit's version and the libsodium it runs on")
    func version() async throws {
        let result = try await pat.ok(["--version"])
        let pattern = /^pat \d+\.\d+\.\d+ \(libsodium \d+\.\d+\.\d+\)$/
        #expect(result.output.wholeMatch(of: pattern) != nil, "\(result.output)")
    }

    @Test("inspect shows an expired or forged token's claims, labelled unverified, never the token")
    func inspect() async throws {
        pat.now = "2026-01-01T00:00:00Z"
        let token = try await pat.ok(["issue", "--subject", "alice", "--scope", "clients:view", "--expires-in", "1h"]).output
        let verified = try await pat.ok(["verify", token, "--json", "--no-revocation-check"]).object()
        let id = try #require((verified["claims"] as? [String: Any])?["jti"] as? String)
        pat.now = nil // an hour later and more: the token has expired; inspect still says what it is
        #expect(try await pat.run(["verify", token, "--no-revocation-check"]).status == 1)

        let text = try await pat.run(["inspect", token])
        #expect(text.status == 0, "\(text.stderr)")
        #expect(text.stderr.contains("UNVERIFIED"))
        #expect(text.stdout.contains(id) && text.stdout.contains("alice") && text.stdout.contains("k4.pid."))
        #expect(!text.stdout.contains(token) && !text.stderr.contains(token), "the token itself is never printed")

        // A forged token (another signature) inspects the same: nothing was checked, and it says so.
        let forged = try await pat.run(["inspect", "--json"], input: String(token.dropLast(8)) + "AAAAAAAA")
        let object = try forged.object()
        #expect(forged.status == 0)
        #expect(object["verified"] as? Bool == false)
        #expect((object["claims"] as? [String: Any])?["jti"] as? String == id)
        #expect(object["patShape"] as? Bool == true)

        let garbage = try await pat.run(["inspect", "v4.public.not-a-token"])
        #expect(garbage.status == 1)
        #expect(garbage.stderr.hasPrefix("error: not a decodable PASETO v4.public token"))
    }

    @Test("a port already taken: exit 1, what was wrong and what to do")
    func busyPort() async throws {
        let (descriptor, port) = try Self.listeningSocket()
        defer { close(descriptor) }
        let result = try await pat.run(["serve", "--listen", "127.0.0.1:\(port)", "--no-management"])
        #expect(result.status == 1)
        #expect(result.stderr.contains("error: cannot listen on 127.0.0.1:\(port): address already in use (choose another with --listen)"),
                "\(result.stderr)")
    }

    @Test("verify and inspect with no token on a terminal say how to pass one instead of waiting")
    func noTokenOnATerminal() async throws {
        // script(1) gives the command a pseudo-terminal as standard input; its exit status is the command's.
        let script = "/usr/bin/script"
        guard FileManager.default.isExecutableFile(atPath: script) else {
            Issue.record("script(1) (util-linux) is needed to give pat a terminal")
            return
        }
        for command in ["verify", "inspect"] {
            let result = try await ChildProcess.run(script, ["-qec", "\(pat.binary) \(command)", "/dev/null"],
                                                    environment: pat.environment(), input: nil, timeLimit: .seconds(60))
            #expect(result.status == 2, "\(command): \(result.stdout)")
            #expect(result.stdout.contains("error: no token given: pass it as the argument, or on standard input"), "\(command): \(result.stdout)")
        }
    }

    /// A TCP socket listening on 127.0.0.1 at a port the kernel chose.
    static func listeningSocket() throws -> (Int32, Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EMFILE) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 1) == 0 else { close(fd); throw POSIXError(.EADDRINUSE) }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return (fd, Int(UInt16(bigEndian: address.sin_port)))
    }
}
