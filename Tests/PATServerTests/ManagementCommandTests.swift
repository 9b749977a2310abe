import Foundation
import PATKit
import PATManagement
import PATRegistryTestSupport
import PATServer
import PATStore
import PATTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `pat serve` with the management API as a real process, bootstrapped with the CLI. Every
/// child is bounded in time; the pat binary is a prerequisite (a failure in CI).
@Suite("pat serve: the management API", .serialized, .timeLimit(.minutes(5)))
struct ManagementCommandTests {
    static func pat(_ arguments: [String]) async throws -> ProcessResult {
        try await ChildProcess.run(try await Prerequisite.patBinary.require(), arguments, timeLimit: .seconds(60))
    }

    /// A home with a signing key and an admin PAT made by the CLI; returns the admin token.
    static func bootstrap(_ dir: TempDir) async throws -> String {
        #expect(try await pat(["keys", "generate", "--home", dir.path]).status == 0)
        let bootstrap = try await pat(["create", "--home", dir.path, "--owner", "admin", "--name", "bootstrap",
                                       "--scope", "pats:admin", "--catalog", "management", "--expires-in", "1d"])
        #expect(bootstrap.status == 0, "\(bootstrap.stderr)")
        let admin = bootstrap.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(admin.hasPrefix("v4.public."))
        return admin
    }

    /// What the server distributes right now, as an edge would load it.
    static func servedValidator(_ port: Int, anchors: TrustAnchors) async throws -> Validator {
        let keys = try await http("http://127.0.0.1:\(port)/.well-known/pat/keys")
        let list = try await http("http://127.0.0.1:\(port)/.well-known/pat/revocations")
        let validator = Validator(keys: KeySet())
        try validator.install(try SignedKeySet(verifying: keys.body, anchors: anchors))
        try validator.installRevocations(list.body)
        return validator
    }

    @Test func bootstrapWithTheCLIThenManageOverHTTP() async throws {
        let dir = try TempDir()
        let admin = try await Self.bootstrap(dir)
        let plain = try await Self.pat(["create", "--home", dir.path, "--owner", "admin", "--name", "nope",
                                        "--scope", "pats:admin", "--expires-in", "1d"])
        #expect(plain.status == 2, "pats scopes need --catalog management (an unknown scope: a usage error)")
        #expect(plain.stderr.contains("pats"))

        let (_, result) = try await withPatServe(["serve", "--home", dir.path, "--rate-limit", "600"]) { port, _ in
            let api = "http://127.0.0.1:\(port)\(ManagementRoutes.basePath)"
            let created = try await request(api, method: .POST, token: admin, body: #"{"name": "ci", "scopes": ["clients:view"], "duration": "7d"}"#)
            #expect(created.status == 201, "\(created.text)")
            let listed = try await request(api, method: .GET, token: admin)
            #expect(try listed.object()["total"] as? Int == 2)
            let id = try created.string("id")
            let token = try created.string("accessToken")
            let before = try await Self.servedValidator(port, anchors: try #require(try dir.home.keyStore.trustAnchors()))
            #expect(try before.validate(token).id == id, "the served list accepts the new PAT")
            let sequenceBefore = try #require(before.revocations?.sequence)

            #expect(try await request("\(api)/\(id)/revoke", method: .POST, token: admin).status == 200)
            // The served list changed: a higher sequence with an entry for exactly this PAT.
            let after = try await Self.servedValidator(port, anchors: try #require(try dir.home.keyStore.trustAnchors()))
            let list = try #require(after.revocations)
            #expect(list.sequence > sequenceBefore)
            #expect(list.tokenEntryCount == 1, "one PAT entry: the revoked one")
            #expect(list.ownerEntryCount == 0)
            #expect(validationCode { try after.validate(token) } == .revoked, "the served list refuses the revoked PAT")
            #expect(throws: Never.self, "and only it") { try after.validate(admin) }
        }
        #expect(result.exitStatus == 0, "\(result)")
        #expect(result.stderr.contains("management API on /v3/personal-access-tokens"))
        #expect(!result.stderr.contains(admin), "tokens are never logged")
    }

    @Test func webhooksFromTheCommandLineAreSignedWithTheSecretFile() async throws {
        let dir = try TempDir()
        let admin = try await Self.bootstrap(dir)
        let secretPath = dir.path + "/hook.key"
        let secret = "0123456789abcdef0123456789abcdef"
        try SecureFile.writeAtomically(secretPath, Array((secret + "\n").utf8), mode: 0o600)
        let receiver = HookReceiver()
        try await WebhookTests.withReceiver(receiver) { hook in
            let (_, result) = try await withPatServe(["serve", "--home", dir.path, "--webhook", "\(hook)=\(secretPath)",
                                                      "--webhook-attempts", "3", "--expiry-notice", "off"]) { port, _ in
                let api = "http://127.0.0.1:\(port)\(ManagementRoutes.basePath)"
                let created = try await request(api, method: .POST, token: admin, body: #"{"name": "hooked", "scopes": ["clients:view"]}"#)
                #expect(created.status == 201, "\(created.text)")
                // Two events: the bootstrap PAT the CLI created before the server ran (the registry's
                // outbox kept it; actor cli), then this create (actor: the admin's PAT).
                try await receiver.waitForHooks(2)
                #expect(receiver.hooks.first?.actor?["type"] as? String == "cli")
                let received = try #require(receiver.hooks.last)
                #expect(received.event == ManagementEvent.created.rawValue)
                #expect(received.actor?["subject"] as? String == "admin")
                // The key is the file's text without its trailing newline.
                #expect(WebhookSignature.verify(received.signature ?? "", body: received.body, secret: Array(secret.utf8),
                                                now: Timestamp.now().seconds))
                let data = try #require(try received.object()["data"] as? [String: Any])
                #expect(data["id"] as? String == (try created.string("id")))
                #expect(!String(decoding: received.body, as: UTF8.self).contains(try created.string("accessToken")))
            }
            #expect(result.exitStatus == 0, "\(result)")
            #expect(result.stderr.contains("webhooks=1"), "the log says webhooks are on: \(result.stderr.suffix(1500))")
            #expect(!result.stderr.contains(secret), "the webhook secret is never logged")
        }
    }

    /// Issue 12: a change made with the CLI while `pat serve` runs was neither published nor sent
    /// as a webhook until the next timer round (30 minutes by default). Now the registry announces
    /// it (SQLite: the change counter, read every half second; PostgreSQL: NOTIFY) and the server
    /// publishes it and delivers its event. The server's timer is 30 minutes away here, so only
    /// the announcement can do it; how soon is measured by `scripts/publish-faults.py cli`.
    @Test(arguments: RegistryBackend.allCases)
    func aCLIChangeWhileServingIsPublishedAndDelivered(_ backend: RegistryBackend) async throws {
        let home = try await ManagementHome(backend)
        let victim = try await home.issue(owner: "carl", name: "cli-victim", scopes: ["clients:view"])
        try await home.store.write { tx in try await tx.removeEvents(try await tx.events(after: 0, limit: 100).map(\.id)) }
        let secretPath = home.dir.path + "/hook.key"
        let secret = Digest.randomBytes(32)
        try SecureFile.writeAtomically(secretPath, Array(hexString(secret).utf8), mode: 0o600)
        let receiver = HookReceiver()
        try await WebhookTests.withReceiver(receiver) { hook in
            // No expiry notices: the bootstrap PAT expires within a day, and only the CLI's event is expected.
            let arguments = ["serve", "--home", home.home.path, "--webhook", "\(hook)=\(secretPath)", "--expiry-notice", "off"]
                + home.databaseArguments
            let (_, result) = try await withPatServe(arguments) { port, _ in
                let anchors = try #require(try home.home.keyStore.trustAnchors())
                let before = try await Self.servedValidator(port, anchors: anchors)
                #expect(throws: Never.self, "served before the change: the PAT passes") { try before.validate(victim.bearer) }

                let revoke = try await Self.pat(["revoke", "--home", home.home.path] + home.databaseArguments + ["--", victim.record.id])
                #expect(revoke.status == 0, "\(revoke.stderr)")
                try await awaitCondition("pat serve publishes the CLI's revoke") {
                    let served = try await Self.servedValidator(port, anchors: anchors)
                    return validationCode { try served.validate(victim.bearer) } == .revoked
                }
                try await receiver.waitForHooks(1)
                let delivered = try #require(receiver.hooks.first)
                #expect(delivered.event == ManagementEvent.revoked.rawValue)
                #expect(delivered.actor?["type"] as? String == "cli")
                #expect((try delivered.object()["data"] as? [String: Any])?["id"] as? String == victim.record.id)
                #expect(WebhookSignature.verify(delivered.signature ?? "", body: delivered.body, secret: Array(hexString(secret).utf8),
                                                now: Timestamp.now().seconds))
                // The served list already holds the revoke; /status counts it published once the
                // publish that wrote it has finished (under load, a moment later).
                try await awaitCondition("/status shows nothing left to publish") {
                    let status = try await http("http://127.0.0.1:\(port)/status")
                    return try status.status == 200
                        && (status.object()["publishing"] as? [String: Any])?["unpublishedChanges"] as? Int == 0
                }
            }
            #expect(result.exitStatus == 0, "\(result)")
        }
    }

    @Test func managementOptionsAreChecked() async throws {
        let dir = try TempDir()
        for arguments in [["serve", "--verify-only", "--webhook", "http://127.0.0.1:9/hook"],
                          ["serve", "--no-management", "--rate-limit", "10"],
                          ["serve", "--webhook", "http://127.0.0.1:9/hook"],   // no =SECRETFILE
                          ["serve", "--webhook", "http://127.0.0.1:9/a", "--webhook", "http://127.0.0.1:9/b",
                           "--webhook-secret-file", "/nonexistent"],          // one secret for two endpoints
                          ["serve", "--webhook", "http://u:p@hooks.example/x=/nonexistent"], // credentials over plain http
                          ["serve", "--webhook", "ftp://example.com/x", "--webhook-secret-file", "/nonexistent"],
                          ["serve", "--webhook-secret-file", "/nonexistent"],
                          ["serve", "--next-update", "soon"]] {
            let result = try await Self.pat(arguments + ["--home", dir.path])
            #expect(result.status == 2, "\(arguments): \(result.stderr)")
        }
        // A secret file others can read is refused at start. Were the check to regress, the
        // server would run: ChildProcess kills it at the time limit and the test fails.
        #expect(try await Self.pat(["keys", "generate", "--home", dir.path]).status == 0)
        let secret = dir.path + "/hook.key"
        try SecureFile.writeAtomically(secret, Array("0123456789abcdef0123456789abcdef".utf8), mode: 0o644)
        let loose = try await Self.pat(["serve", "--home", dir.path, "--listen", "127.0.0.1:0",
                                        "--webhook", "http://127.0.0.1:9/hook", "--webhook-secret-file", secret])
        #expect(loose.status == 1)
        #expect(loose.stderr.contains("chmod 600"), "\(loose.stderr)")
        // The same for an endpoint's own secret file (--webhook URL=SECRETFILE).
        let looseOwn = try await Self.pat(["serve", "--home", dir.path, "--listen", "127.0.0.1:0",
                                           "--webhook", "http://127.0.0.1:9/hook=\(secret)"])
        #expect(looseOwn.status == 1)
        #expect(looseOwn.stderr.contains("chmod 600"), "\(looseOwn.stderr)")
    }
}
