import Foundation
import Hummingbird
import PATKit
import PATManagement
import PATRegistry
import PATServer
import PATStore
import PATTestSupport
import ServiceLifecycle
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite("webhooks", .serialized, .timeLimit(.minutes(5)))
struct WebhookTests {
    static let path = ManagementRoutes.basePath

    /// Runs a receiver on loopback for `body` with its hook URL.
    static func withReceiver<T: Sendable>(_ receiver: HookReceiver, _ body: (String) async throws -> T) async throws -> T {
        try await withRunningServer({ onRunning in receiver.makeApp(onRunning: onRunning) }) { port in
            try await body("http://127.0.0.1:\(port)/hook")
        }
    }

    @Test func eventsAreSignedAndCarryTheRecordNeverTheToken() async throws {
        let home = try await ManagementHome()
        let secret = Digest.randomBytes(32)
        let receiver = HookReceiver()
        try await Self.withReceiver(receiver) { hook in
            try await withManagementServer(home, { $0.webhooks = WebhookConfiguration(endpoints: [hook], secret: secret) }) { url, management in
                let api = url + Self.path
                let adminID = try #require(try await home.service.list(owner: "admin", by: .localOperator).first?.id)
                let created = try await request(api, method: .POST, token: home.adminToken,
                                                body: #"{"name": "hooked", "scopes": ["clients:view"]}"#)
                let id = try created.string("id")
                var tokens = [try created.string("accessToken")]
                let added = try await request("\(api)/\(id)/scopes", method: .POST, token: home.adminToken, body: #"{"scopes": ["clients:update"]}"#)
                tokens.append(try added.string("accessToken"))
                #expect(try await request("\(api)/\(id)/revoke", method: .POST, token: home.adminToken).status == 200)
                let regenerated = try await request("\(api)/\(id)/regenerate", method: .POST, token: home.adminToken, body: #"{"duration": "1d"}"#)
                tokens.append(try regenerated.string("accessToken"))
                #expect(try await request("\(api)/\(id)", method: .DELETE, token: home.adminToken).status == 204)

                let dispatcher = try #require(management.webhooks)
                try await awaitEvent("five deliveries settle") { try await dispatcher.waitUntilSettled(5) }
                let hooks = receiver.hooks
                #expect(hooks.count == 5, "one request per event, no retries")
                let expected: [ManagementEvent] = [.created, .scopesChanged, .revoked, .regenerated, .deleted]
                #expect(hooks.map(\.event) == expected.map { Optional($0.rawValue) }, "\(hooks.map { $0.event ?? "-" })")
                #expect(Set(hooks.compactMap(\.delivery)).count == hooks.count, "one delivery id each")
                for hook in hooks {
                    // What a receiver does: HMAC-SHA-256 of the exact body, compared in constant time.
                    let expected = "sha256=" + hexString(Digest.hmacSHA256(key: secret, message: hook.body))
                    #expect(hook.signature == expected)
                    #expect(hook.signature != "sha256=" + hexString(Digest.hmacSHA256(key: Digest.randomBytes(32), message: hook.body)))
                    let object = try hook.object()
                    #expect(Set(object.keys) == ["event", "data", "actor", "triggeredAt"])
                    // Rule 8: the payload names the actor — here the admin's PAT.
                    let actor = try #require(object["actor"] as? [String: Any])
                    #expect(actor["type"] as? String == "pat")
                    #expect(actor["subject"] as? String == "admin")
                    #expect(actor["id"] as? String == adminID)
                    #expect(actor["admin"] as? Bool == true)
                    #expect(object["event"] as? String == hook.event)
                    #expect((object["triggeredAt"] as? String).flatMap { Timestamp(rfc3339: $0) } != nil)
                    let data = try #require(object["data"] as? [String: Any])
                    #expect(data["id"] as? String == id)
                    #expect(data["name"] as? String == "hooked")
                    #expect(data["accessToken"] == nil)
                    let text = String(decoding: hook.body, as: UTF8.self)
                    for token in tokens { #expect(!text.contains(token), "never the token") }
                    #expect(hook.headers["content-type"] == "application/json")
                }
                let statuses = try hooks.map { try #require(try $0.object()["data"] as? [String: Any])["status"] as? String }
                #expect(statuses == ["active", "active", "revoked", "active", "deleted"])
            }
        }
    }

    @Test func failedDeliveriesAreRetriedWithBackoff() async throws {
        let home = try await ManagementHome()
        let receiver = HookReceiver(failing: [500, 503])
        try await Self.withReceiver(receiver) { hook in
            let configure: (inout ManagementConfiguration) -> Void = {
                $0.webhooks = WebhookConfiguration(endpoints: [hook], secret: Array("a-shared-secret-of-some-length".utf8), maxAttempts: 5,
                                                   initialBackoff: .milliseconds(300), maxBackoff: .seconds(5), timeout: .seconds(5))
            }
            try await withManagementServer(home, configure) { url, management in
                let created = try await request(url + Self.path, method: .POST, token: home.adminToken,
                                                body: #"{"name": "retried", "scopes": ["clients:view"]}"#)
                #expect(created.status == 201)
                let dispatcher = try #require(management.webhooks)
                try await awaitEvent("the delivery settles") { try await dispatcher.waitUntilSettled(1) }
                let hooks = receiver.hooks
                #expect(hooks.count == 3, "three attempts: two failures, then success, and none after it")
                guard hooks.count >= 3 else { return }
                #expect(Set(hooks.compactMap(\.delivery)).count == 1, "every attempt carries the same delivery id")
                #expect(Set(hooks.map(\.body)).count == 1, "and the same signed body")
                let first = hooks[1].at - hooks[0].at, second = hooks[2].at - hooks[1].at
                #expect(first >= .milliseconds(300), "\(first)")
                #expect(second >= .milliseconds(600), "backoff doubles: \(second)")
            }
        }
    }

    @Test func aRefusingEndpointIsNotRetried() async throws {
        let home = try await ManagementHome()
        let receiver = HookReceiver(failing: [400])
        try await Self.withReceiver(receiver) { hook in
            let configure: (inout ManagementConfiguration) -> Void = {
                $0.webhooks = WebhookConfiguration(endpoints: [hook], secret: Array("a-shared-secret-of-some-length".utf8),
                                                   initialBackoff: .milliseconds(100))
            }
            try await withManagementServer(home, configure) { url, management in
                _ = try await request(url + Self.path, method: .POST, token: home.adminToken, body: #"{"name": "x", "scopes": ["clients:view"]}"#)
                let dispatcher = try #require(management.webhooks)
                try await awaitEvent("the delivery settles") { try await dispatcher.waitUntilSettled(1) }
                #expect(receiver.hooks.count == 1, "a 400 is final: settled after one attempt")
            }
        }
    }

    @Test func aHangingEndpointDoesNotSlowTheAPIOrOtherEndpoints() async throws {
        let home = try await ManagementHome()
        let silent = try SilentListener()
        let receiver = HookReceiver()
        try await Self.withReceiver(receiver) { hook in
            let configure: (inout ManagementConfiguration) -> Void = {
                $0.webhooks = WebhookConfiguration(endpoints: ["http://127.0.0.1:\(silent.port)/hook", hook],
                                                   secret: Array("a-shared-secret-of-some-length".utf8), timeout: .seconds(60))
            }
            try await withManagementServer(home, configure) { url, management in
                let api = url + Self.path
                // The silent endpoint holds each attempt for its 60 s timeout; an API that waited for
                // deliveries would not answer these 8 requests before their 30 s client deadline.
                for index in 0..<8 {
                    let response = try await request(api, method: .POST, token: home.adminToken,
                                                     body: #"{"name": "n\#(index)", "scopes": ["clients:view"]}"#)
                    #expect(response.status == 201)
                }
                let dispatcher = try #require(management.webhooks)
                try await awaitEvent("the other endpoint's 8 deliveries settle") { try await dispatcher.waitUntilSettled(8) }
                #expect(receiver.hooks.count == 8, "the other endpoint got every event")
                #expect(dispatcher.settledCount == 8, "none of them is the hanging endpoint's")
                #expect(dispatcher.pending[0] >= 7, "the hanging endpoint's deliveries wait in its own queue: \(dispatcher.pending)")
            }
        }
    }

    @Test func aFullQueueDropsTheOldest() async throws {
        let home = try await ManagementHome()
        let logs = LogSink()
        let silent = try SilentListener()
        let store = home.store
        for index in 1...5 {
            _ = try await home.issue(owner: "owner", name: "pat-\(index)", scopes: ["clients:view"])
        }
        let ids = try await store.read { tx in try await tx.events(after: 0, limit: 100) }.map(\.id)
        let dispatcher = WebhookDispatcher(
            configuration: WebhookConfiguration(endpoints: ["http://127.0.0.1:\(silent.port)/hook"],
                                                secret: Array("a-shared-secret-of-some-length".utf8), timeout: .seconds(60),
                                                queueCapacity: 2),
            store: store, logger: logs.logger())
        let running = Task { try await dispatcher.run() }
        defer { running.cancel() }
        let last = try #require(ids.last)
        try await awaitEvent("the dispatcher reads the five events") { try await dispatcher.waitUntilRead(through: last) }
        // The endpoint hangs: at most one delivery in flight and two queued; the oldest queued ones
        // were dropped — and left the outbox, as given up; the others stay there until delivered.
        let outstanding = dispatcher.outstandingEvents
        #expect((2...3).contains(outstanding), "\(outstanding)")
        #expect(dispatcher.pending[0] <= 2)
        #expect(logs.all.filter { $0.contains("dropped the oldest") }.count == ids.count - outstanding)
        let left = try await store.read { tx in try await tx.events(after: 0, limit: 100) }.map(\.id)
        #expect(left.count == outstanding && left.suffix(2) == ids.suffix(2), "\(left) of \(ids)")
        running.cancel()
        _ = try await withTimeLimit(.seconds(60), "the dispatcher to stop once cancelled") { await running.result }
    }

    /// Rule 8 and the outbox: a change made by the CLI — another process, no server involved —
    /// is delivered by the next `pat serve`, naming the actor `cli`; once delivered it leaves the outbox.
    @Test func changesMadeByTheCLIAreDeliveredNamingTheActor() async throws {
        let home = try await ManagementHome()
        let receiver = HookReceiver()
        let doomed = try await home.issue(owner: "ivan", name: "cli-made", scopes: ["clients:view"])
        _ = try await home.service.revoke(id: doomed.record.id, by: .localOperator)
        try await Self.withReceiver(receiver) { hook in
            let configure: (inout ManagementConfiguration) -> Void = {
                $0.webhooks = WebhookConfiguration(endpoints: [hook], secret: Array("a-shared-secret-of-some-length".utf8))
            }
            try await withManagementServer(home, configure) { _, management in
                let dispatcher = try #require(management.webhooks)
                try await awaitEvent("the create and the revoke settle") { try await dispatcher.waitUntilSettled(2) }
                #expect(receiver.hooks.map(\.event) == ["personalAccessToken.created", "personalAccessToken.revoked"])
                for hook in receiver.hooks { #expect(hook.actor?["type"] as? String == "cli") }
                let revoked = try #require(receiver.hooks.last).object()["data"] as? [String: Any]
                #expect(revoked?["id"] as? String == doomed.record.id)
                #expect((revoked?["revokedBy"] as? [String: Any])?["type"] as? String == "cli")
                // While the server runs, the CLI changes again: the dispatcher finds it in the outbox.
                _ = try await home.service.delete(id: doomed.record.id, by: .localOperator)
                try await awaitEvent("the delete settles") { try await dispatcher.waitUntilSettled(3) }
                #expect(receiver.hooks.last?.event == "personalAccessToken.deleted")
                #expect(try await home.store.read { tx in try await tx.events(after: 0, limit: 10) }.isEmpty,
                        "delivered events leave the outbox")
            }
        }
    }

    @Test func theSecretFileMustBePrivateAndLongEnough() throws {
        let dir = try TempDir()
        let path = dir.path + "/webhook.key"
        try SecureFile.writeAtomically(path, Array("0123456789abcdef0123456789abcdef\n".utf8), mode: 0o644)
        #expect(throws: PATKitError.self) { try WebhookConfiguration.readSecret(path) }
        chmod(path, 0o600)
        #expect(try WebhookConfiguration.readSecret(path) == Array("0123456789abcdef0123456789abcdef".utf8), "trailing newline dropped")
        try SecureFile.writeAtomically(path, Array("short\n".utf8), mode: 0o600)
        #expect(throws: PATKitError.self) { try WebhookConfiguration.readSecret(path) }
        #expect(throws: PATKitError.self) { try WebhookConfiguration.checkEndpoint("ftp://example.com/hook") }
        try WebhookConfiguration.checkEndpoint("https://example.com/hook")
    }

    @Test func theSignatureIsHexHMACSHA256OfTheBody() {
        // RFC 4231 test case 2.
        let body = Array("what do ya want for nothing?".utf8)
        #expect(WebhookDispatcher.signature(of: body, secret: Array("Jefe".utf8))
                == "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }
}
