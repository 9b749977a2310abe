import Foundation
import Hummingbird
import PATKit
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
        let home = try ManagementHome()
        let secret = Digest.randomBytes(32)
        let receiver = HookReceiver()
        try await Self.withReceiver(receiver) { hook in
            try await withManagementServer(home, { $0.webhooks = WebhookConfiguration(endpoints: [hook], secret: secret) }) { url, management in
                let api = url + Self.path
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
                let expected: [WebhookEvent] = [.created, .scopesChanged, .revoked, .regenerated, .deleted]
                #expect(hooks.map(\.event) == expected.map { Optional($0.rawValue) }, "\(hooks.map { $0.event ?? "-" })")
                #expect(Set(hooks.compactMap(\.delivery)).count == hooks.count, "one delivery id each")
                for hook in hooks {
                    // What a receiver does: HMAC-SHA-256 of the exact body, compared in constant time.
                    let expected = "sha256=" + hexString(Digest.hmacSHA256(key: secret, message: hook.body))
                    #expect(hook.signature == expected)
                    #expect(hook.signature != "sha256=" + hexString(Digest.hmacSHA256(key: Digest.randomBytes(32), message: hook.body)))
                    let object = try hook.object()
                    #expect(Set(object.keys) == ["event", "data", "triggeredAt"])
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
        let home = try ManagementHome()
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
        let home = try ManagementHome()
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
        let home = try ManagementHome()
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
        let logs = LogSink()
        let receiver = HookReceiver()
        try await Self.withReceiver(receiver) { hook in
            let dispatcher = WebhookDispatcher(
                configuration: WebhookConfiguration(endpoints: [hook], secret: Array("a-shared-secret-of-some-length".utf8), queueCapacity: 2),
                logger: logs.logger())
            for index in 1...3 {
                var data = JSONObject()
                data.set("id", .string("pat-\(index)"))
                dispatcher.send(.created, data: .object(data))
            }
            #expect(dispatcher.pending == [2], "sending never blocks")
            #expect(logs.all.contains { $0.contains("dropped the oldest") })
            let running = Task { try await dispatcher.run() }
            defer { running.cancel() }
            try await awaitEvent("both queued deliveries settle") { try await dispatcher.waitUntilSettled(2) }
            let ids = try receiver.hooks.map { try #require(try $0.object()["data"] as? [String: Any])["id"] as? String }
            #expect(ids == ["pat-2", "pat-3"])
            running.cancel()
            _ = try await withTimeLimit(.seconds(60), "the dispatcher to stop once cancelled") { await running.result }
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
