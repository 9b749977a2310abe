import Foundation
import Hummingbird
import PATEdge
import PATKit
import PATServer
import PATStore
import PATTestSupport
import Synchronization
import Testing

/// A distribution host an attacker can take over: it serves whatever documents it holds now.
final class SwitchableHost: Sendable {
    struct Documents: Sendable {
        var keys: [UInt8]
        var list: [UInt8]
    }

    private let documents: Mutex<Documents>

    init(_ documents: Documents) { self.documents = Mutex(documents) }

    func serve(_ next: Documents) { documents.withLock { $0 = next } }
    func serve(list: [UInt8]) { documents.withLock { $0.list = list } }
    func serve(keys: [UInt8]) { documents.withLock { $0.keys = keys } }

    func makeApp(_ onRunning: @escaping @Sendable (Int) async -> Void) -> some ApplicationProtocol {
        let router = Router()
        router.get("/keys") { _, _ in Response(status: .ok, body: .init(byteBuffer: ByteBuffer(bytes: self.documents.withLock { $0.keys }))) }
        router.get("/revocations") { _, _ in Response(status: .ok, body: .init(byteBuffer: ByteBuffer(bytes: self.documents.withLock { $0.list }))) }
        return Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                           onServerRunning: { await onRunning($0.localAddress?.port ?? 0) }, logger: quietLogger())
    }
}

/// Security review M4, end to end: a gate fed over plain HTTP from a host an attacker controls
/// for a while. Forged tokens never pass; once the real files return, revocations are enforced
/// again and `/status` recovers, without a restart.
@Suite("a man in the middle of key and list distribution", .timeLimit(.minutes(3)))
struct ManInTheMiddleTests {
    static func gate(_ base: String, anchors: TrustAnchors, cache: String) -> PATServerConfiguration {
        let gate = GateConfiguration(source: .urls(keys: base + "/keys", revocations: base + "/revocations"), trustAnchors: anchors,
                                     refreshInterval: .milliseconds(100), cacheDirectory: cache)
        return PATServerConfiguration(home: PATHome(path: cache), mode: .gate(gate))
    }

    static func verify(_ port: Int, _ token: String) async throws -> HTTPResult {
        try await http("http://127.0.0.1:\(port)/verify", headers: [("Authorization", "Bearer \(token)")])
    }

    @Test func forgedTokensNeverPassAndRevocationsReturnWithTheRealFiles() async throws {
        let real = try Issuing()
        let attacker = try Issuing()
        let cache = try TempDir("mitm-cache")
        let victimID = PATClaims.newID()
        let alice = try real.token(subject: "alice")
        let victim = try real.token(id: victimID, subject: "victim")
        let forged = try attacker.token(subject: "mallory")
        let realFiles = SwitchableHost.Documents(keys: try real.signedKeys(), list: try real.list(sequence: 1))
        let host = SwitchableHost(realFiles)
        let farFuture = Timestamp.now().adding(seconds: 3650 * 86_400)

        try await withRunningServer({ host.makeApp($0) }) { hostPort in
            try await withPATServer(Self.gate("http://127.0.0.1:\(hostPort)", anchors: real.anchors, cache: cache.path)) { port, refresher in
                let refresher = try #require(refresher)
                #expect(try await Self.verify(port, alice).status == 204)
                #expect(try await Self.verify(port, victim).status == 204)

                // The attacker's window, in three forms.
                let attacks: [(String, SwitchableHost.Documents, String)] = [
                    // (The review used 2^62 + 1; PATKit no longer signs above 2^53 − 1, an attacker's own code would.)
                    ("their own key set signed by their own anchor, and a list with the highest sequence",
                     .init(keys: try attacker.signedKeys(), list: try attacker.list(sequence: SignedDocument.maxSequence, nextUpdate: farFuture)),
                     "not a pinned trust anchor"),
                    ("an unsigned key set naming their key",
                     .init(keys: attacker.keySet.encoded(), list: try attacker.list(sequence: SignedDocument.maxSequence - 1, nextUpdate: farFuture)),
                     "not signed"),
                    ("their key set signed by the real signing key (a chain the edge does not follow)",
                     .init(keys: try real.signedKeys(attacker.keySet, sequence: 2, by: real.key), list: try real.list(sequence: 1)),
                     "not a pinned trust anchor"),
                ]
                for (label, documents, reason) in attacks {
                    host.serve(documents)
                    let status = try await awaitEvent("the gate refuses the attack: \(reason)") {
                    await refresher.waitForStatus { $0.lastError?.contains(reason) == true } }
                    #expect(status.lastError?.contains(reason) == true, "\(label)")
                    let attempt = try await Self.verify(port, forged)
                    #expect(attempt.status != 204, "forged token passed with \(label)")
                    #expect(attempt.status == 401, "\(label): \(attempt.status) \(attempt.text)")
                    #expect(try await Self.verify(port, alice).status == 204, "the real, held copy still serves: \(label)")
                }

                // Meanwhile the issuer revoked the victim's PAT; the real files come back.
                host.serve(.init(keys: try real.signedKeys(), list: try real.list(sequence: 2, revoked: [victimID])))
                let recovered = try await awaitEvent("the gate installs the real list 2 cleanly") {
                    await refresher.waitForStatus { $0.sequence == 2 && $0.lastError == nil } }
                #expect(recovered.acceptingTokens)
                let revoked = try await Self.verify(port, victim)
                #expect(revoked.status == 401)
                #expect(revoked.errorCode == "revoked")
                #expect(try await Self.verify(port, alice).status == 204)
                #expect(try await Self.verify(port, forged).status == 401)
                let probe = try await http("http://127.0.0.1:\(port)/status")
                #expect(probe.status == 200)
                #expect(probe.text.contains("\"acceptingTokens\":true"))

                // Replaying the old real list or an older real key set is rollback.
                host.serve(.init(keys: try real.signedKeys(sequence: 1), list: try real.list(sequence: 1)))
                let replay = try await awaitEvent("the gate refuses the replayed list as rollback") {
                    await refresher.waitForStatus { $0.lastError?.contains("rollback") == true } }
                #expect(replay.sequence == 2)
                #expect(try await Self.verify(port, victim).status == 401)
            }
        }
        // The cache holds only what was accepted: a restart is not poisoned either.
        let cached = try SignedKeySet(verifying: SecureFile.read(cache.path + "/keys.json", maxBytes: SignedKeySet.maxDocumentBytes),
                                      anchors: real.anchors)
        #expect(cached.keys == real.keySet)
    }

    @Test("a new key set that retires the list's signer drops the list: 503 and /status says why, until a trusted list arrives")
    func aRetiredSignerDropsTheList() async throws {
        let old = try Issuing()
        let newKey = try SecretKey.generate()
        let cache = try TempDir("mitm-rotation")
        let token = try Issuer(key: newKey).issue(PATClaims(id: PATClaims.newID(), subject: "alice", generation: 1,
                                                            issuedAt: Timestamp.now().adding(seconds: -60),
                                                            expiresAt: Timestamp.now().adding(seconds: 3600), scopes: ScopeSet()))
        var both = KeySet(keys: [old.key.publicKey, newKey.publicKey])
        let host = SwitchableHost(.init(keys: try old.signedKeys(both, sequence: 1), list: try old.list(sequence: 1)))
        try await withRunningServer({ host.makeApp($0) }) { hostPort in
            try await withPATServer(Self.gate("http://127.0.0.1:\(hostPort)", anchors: old.anchors, cache: cache.path)) { port, refresher in
                let refresher = try #require(refresher)
                #expect(try await Self.verify(port, token).status == 204)

                // The issuer retires the key that signed the held list; its next list is not out yet.
                try both.retire(old.key.id)
                host.serve(keys: try old.signedKeys(both, sequence: 2))
                let dropped = try await awaitEvent("the gate installs key set 2") {
                    await refresher.waitForStatus { $0.keySetSequence == 2 } }
                #expect(dropped.droppedList?.contains("revocation list 1") == true)
                let refused = try await Self.verify(port, token)
                #expect(refused.status == 503, "not 204: the held list is no longer trusted")
                #expect(refused.errorCode == "missing_revocation_list")
                let probe = try await http("http://127.0.0.1:\(port)/status")
                #expect(probe.status == 503)
                #expect(probe.text.contains("dropped"), "\(probe.text)")

                var builder = RevocationList.Builder()
                builder.revoke(id: PATClaims.newID(), below: 2, horizon: Timestamp.now().adding(seconds: 60))
                host.serve(list: try builder.sign(with: newKey, sequence: 2, issuedAt: Timestamp.now().adding(seconds: -1),
                                                  nextUpdate: Timestamp.now().adding(seconds: 3600)))
                let back = try await awaitEvent("the gate installs list 2 and accepts tokens again") {
                    await refresher.waitForStatus { $0.sequence == 2 && $0.acceptingTokens } }
                #expect(back.droppedList == nil)
                #expect(try await Self.verify(port, token).status == 204)
                #expect(try await http("http://127.0.0.1:\(port)/status").status == 200)
                #expect(try await http("http://127.0.0.1:\(port)/healthz").status == 200)
            }
        }
    }
}
