import Foundation
import Hummingbird
import PATKit
import PATManagement
import PATRegistry
import PATRegistryTestSupport
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

    @Test(arguments: RegistryBackend.allCases)
    func eventsAreSignedAndCarryTheRecordNeverTheToken(_ backend: RegistryBackend) async throws {
        let home = try await ManagementHome(backend)
        let secret = Digest.randomBytes(32)
        let receiver = HookReceiver()
        try await Self.withReceiver(receiver) { hook in
            let hooks = try webhookConfiguration([hook], secrets: [secret])
            try await withManagementServer(home, { $0.webhooks = hooks }) { url, management in
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
                    // What a receiver does: HMAC-SHA-256 of "t." + the exact body, compared in constant time, t recent.
                    let header = try #require(hook.signature)
                    #expect(WebhookSignature.verify(header, body: hook.body, secret: secret, now: Timestamp.now().seconds))
                    #expect(!WebhookSignature.verify(header, body: hook.body, secret: Digest.randomBytes(32), now: Timestamp.now().seconds))
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

    @Test(arguments: RegistryBackend.allCases)
    func failedDeliveriesAreRetriedWithBackoff(_ backend: RegistryBackend) async throws {
        let home = try await ManagementHome(backend)
        let receiver = HookReceiver(failing: [500, 503])
        try await Self.withReceiver(receiver) { hook in
            let hooks = try webhookConfiguration([hook], maxAttempts: 5, initialBackoff: .milliseconds(300), maxBackoff: .seconds(5),
                                                 timeout: .seconds(5))
            let configure: (inout ManagementConfiguration) -> Void = { $0.webhooks = hooks }
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

    @Test(arguments: RegistryBackend.allCases)
    func aRefusingEndpointIsNotRetried(_ backend: RegistryBackend) async throws {
        let home = try await ManagementHome(backend)
        let receiver = HookReceiver(failing: [400])
        try await Self.withReceiver(receiver) { hook in
            let hooks = try webhookConfiguration([hook], initialBackoff: .milliseconds(100))
            let configure: (inout ManagementConfiguration) -> Void = { $0.webhooks = hooks }
            try await withManagementServer(home, configure) { url, management in
                _ = try await request(url + Self.path, method: .POST, token: home.adminToken, body: #"{"name": "x", "scopes": ["clients:view"]}"#)
                let dispatcher = try #require(management.webhooks)
                try await awaitEvent("the delivery settles") { try await dispatcher.waitUntilSettled(1) }
                #expect(receiver.hooks.count == 1, "a 400 is final: settled after one attempt")
            }
        }
    }

    @Test(arguments: RegistryBackend.allCases)
    func aHangingEndpointDoesNotSlowTheAPIOrOtherEndpoints(_ backend: RegistryBackend) async throws {
        let home = try await ManagementHome(backend)
        let silent = try SilentListener()
        let receiver = HookReceiver()
        try await Self.withReceiver(receiver) { hook in
            let hooks = try webhookConfiguration(["http://127.0.0.1:\(silent.port)/hook", hook], timeout: .seconds(60))
            let configure: (inout ManagementConfiguration) -> Void = { $0.webhooks = hooks }
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

    @Test(arguments: RegistryBackend.allCases)
    func aFullQueueDropsTheOldest(_ backend: RegistryBackend) async throws {
        let home = try await ManagementHome(backend)
        let logs = LogSink()
        let silent = try SilentListener()
        let store = home.store
        for index in 1...5 {
            _ = try await home.issue(owner: "owner", name: "pat-\(index)", scopes: ["clients:view"])
        }
        let ids = try await store.read { tx in try await tx.events(after: 0, limit: 100) }.map(\.id)
        let dispatcher = WebhookDispatcher(
            configuration: try webhookConfiguration(["http://127.0.0.1:\(silent.port)/hook"], timeout: .seconds(60), queueCapacity: 2),
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
    @Test(arguments: RegistryBackend.allCases)
    func changesMadeByTheCLIAreDeliveredNamingTheActor(_ backend: RegistryBackend) async throws {
        let home = try await ManagementHome(backend)
        let receiver = HookReceiver()
        let doomed = try await home.issue(owner: "ivan", name: "cli-made", scopes: ["clients:view"])
        _ = try await home.service.revoke(id: doomed.record.id, by: .localOperator)
        try await Self.withReceiver(receiver) { hook in
            let hooks = try webhookConfiguration([hook])
            let configure: (inout ManagementConfiguration) -> Void = { $0.webhooks = hooks }
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

    /// A node that stops (deploy, restart) gives its claims back: the next dispatcher — after
    /// the restart, or on another node — delivers them at once, not after the lease.
    @Test(arguments: RegistryBackend.allCases)
    func aStoppedDispatcherHandsItsEventsOver(_ backend: RegistryBackend) async throws {
        let home = try await ManagementHome(backend)
        for index in 1...3 { _ = try await home.issue(owner: "owner", name: "pat-\(index)", scopes: ["clients:view"]) }
        let silent = try SilentListener()
        let first = WebhookDispatcher(
            configuration: try webhookConfiguration(["http://127.0.0.1:\(silent.port)/hook"], timeout: .seconds(60), claimLease: .seconds(600)),
            store: home.store, logger: quietLogger())
        let running = Task { try await first.run() }
        let ids = try await home.store.read { tx in try await tx.events(after: 0, limit: 100) }.map(\.id)
        try await awaitEvent("the first dispatcher claims the events") { try await first.waitUntilRead(through: ids.last ?? 0) }
        running.cancel()
        _ = try await withTimeLimit(.seconds(60), "the first dispatcher to stop") { await running.result }

        let receiver = HookReceiver()
        try await Self.withReceiver(receiver) { hook in
            let second = WebhookDispatcher(configuration: try webhookConfiguration([hook]),
                                           store: try await home.reopen(), logger: quietLogger())
            let next = Task { try await second.run() }
            defer { next.cancel() }
            try await awaitEvent("the next dispatcher delivers the three events well before the first one's 600 s lease ends") {
                try await second.waitUntilSettled(3)
            }
            #expect(receiver.hooks.count == 3)
            next.cancel()
            _ = try await withTimeLimit(.seconds(60), "the second dispatcher to stop") { await next.result }
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
        #expect(throws: PATKitError.self) { try WebhookEndpoint.check("ftp://example.com/hook") }
        #expect(throws: PATKitError.self) { try WebhookEndpoint(url: "https://example.com/hook", secret: Array("short".utf8)) }
        try WebhookEndpoint.check("https://example.com/hook")
    }

    // MARK: per-endpoint secrets, credentials, signatures with a timestamp (review finding L4)

    /// L4: one secret shared by every endpoint let any receiver forge events to the others.
    /// Each endpoint now signs with its own; a configuration sharing one is refused.
    @Test(arguments: RegistryBackend.allCases)
    func eachEndpointIsSignedWithItsOwnSecret(_ backend: RegistryBackend) async throws {
        let home = try await ManagementHome(backend)
        let (first, second) = (HookReceiver(), HookReceiver())
        let (firstSecret, secondSecret) = (Digest.randomBytes(32), Digest.randomBytes(32))
        try await Self.withReceiver(first) { firstHook in
            try await Self.withReceiver(second) { secondHook in
                let hooks = try webhookConfiguration([firstHook, secondHook], secrets: [firstSecret, secondSecret])
                try await withManagementServer(home, { $0.webhooks = hooks }) { url, management in
                    let created = try await request(url + Self.path, method: .POST, token: home.adminToken,
                                                    body: #"{"name": "two", "scopes": ["clients:view"]}"#)
                    #expect(created.status == 201)
                    let dispatcher = try #require(management.webhooks)
                    try await awaitEvent("both endpoints' deliveries settle") { try await dispatcher.waitUntilSettled(2) }
                }
                let now = Timestamp.now().seconds
                let a = try #require(first.hooks.first), b = try #require(second.hooks.first)
                #expect(a.body == b.body, "the same event")
                #expect(WebhookSignature.verify(a.signature ?? "", body: a.body, secret: firstSecret, now: now))
                #expect(!WebhookSignature.verify(a.signature ?? "", body: a.body, secret: secondSecret, now: now),
                        "the second endpoint's secret cannot make or check the first endpoint's signature")
                #expect(WebhookSignature.verify(b.signature ?? "", body: b.body, secret: secondSecret, now: now))
                #expect(!WebhookSignature.verify(b.signature ?? "", body: b.body, secret: firstSecret, now: now))
                #expect(throws: PATKitError.self, "two endpoints sharing a secret are refused") {
                    try WebhookConfiguration(endpoints: [try WebhookEndpoint(url: firstHook, secret: firstSecret),
                                                         try WebhookEndpoint(url: secondHook, secret: firstSecret)])
                }
            }
        }
    }

    /// L4: the URL (credentials and query included) was logged in full, and its credentials were
    /// not sent. Now they go as Basic authentication, the query as given, and the log shows
    /// `http://host:port/path` only.
    @Test func credentialsInTheURLAreSentAsBasicAuthenticationAndNeverLogged() async throws {
        let home = try await ManagementHome()
        let logs = LogSink()
        let receiver = HookReceiver(failing: [500]) // one failed attempt: the retry is logged with the endpoint
        try await Self.withReceiver(receiver) { hook in
            let secretURL = hook.replacing("http://", with: "http://hook%40user:hookpassw0rd@") + "?apikey=SECRETQUERY#frag"
            let hooks = try webhookConfiguration([secretURL], initialBackoff: .milliseconds(100))
            #expect(hooks.endpoints[0].redacted == hook, "scheme, host, port and path only")
            #expect(hooks.endpoints[0].sendsBasicAuthentication)
            try await withManagementServer(home, logger: logs.logger(), { $0.webhooks = hooks }) { url, management in
                #expect(try await request(url + Self.path, method: .POST, token: home.adminToken,
                                          body: #"{"name": "authed", "scopes": ["clients:view"]}"#).status == 201)
                let dispatcher = try #require(management.webhooks)
                try await awaitEvent("the delivery settles after one retry") { try await dispatcher.waitUntilSettled(1) }
            }
            #expect(receiver.hooks.count == 2)
            for received in receiver.hooks {
                #expect(received.headers["authorization"] == "Basic " + Data("hook@user:hookpassw0rd".utf8).base64EncodedString())
                #expect(received.uri == "/hook?apikey=SECRETQUERY", "the query is sent, the fragment is not: \(received.uri)")
            }
        }
        let lines = logs.all
        #expect(lines.contains { $0.contains("webhook delivery failed; retrying") && $0.contains("127.0.0.1") && $0.contains("/hook") },
                "the endpoint is logged, redacted: \(lines.filter { $0.contains("webhook") })")
        for secret in ["hookpassw0rd", "hook%40user", "hook@user", "SECRETQUERY", "apikey", "frag"] {
            #expect(!lines.contains { $0.contains(secret) }, "\(secret) never reaches the log")
        }
    }

    @Test func credentialsAreRefusedInClearTextAndNeverEchoed() throws {
        let secret = Digest.randomBytes(32)
        // Over plain http to another host the credentials would cross the network in clear text.
        for url in ["http://user:SECRETPW@hooks.example/x?k=SECRETQ", "http://user:SECRETPW@127.0.0.1.evil.example/x?k=SECRETQ",
                    "https://:SECRETPW@hooks.example/x?k=SECRETQ", "https://us%zzer:SECRETPW@hooks.example/x?k=SECRETQ",
                    "https://user:SECRET PW@hooks.example/x?k=SECRETQ", "https://user:SECRETPW@/x?k=SECRETQ"] {
            do {
                _ = try WebhookEndpoint(url: url, secret: secret)
                Issue.record("\(WebhookEndpoint.redact(url)) should be refused")
            } catch {
                let text = "\(error)"
                #expect(!text.contains("SECRETPW") && !text.contains("SECRETQ") && !text.contains("user:"), "\(text)")
            }
        }
        // https, or loopback over http: accepted, sent as Basic authentication.
        for url in ["https://user:pw@hooks.example/x", "http://user:pw@127.0.0.1:9/x", "http://user:pw@localhost/x", "http://user:pw@[::1]:9/x"] {
            #expect(try WebhookEndpoint(url: url, secret: secret).sendsBasicAuthentication, "\(url)")
        }
        #expect(WebhookEndpoint.redact("https://u:p@hooks.example:8443/a/b?c=d#e") == "https://hooks.example:8443/a/b")
        #expect(WebhookEndpoint.redact("not a url with u:p@x") == "(not an http(s) URL)")
        #expect(!(try WebhookEndpoint(url: "https://hooks.example/x?k=v", secret: secret)).sendsBasicAuthentication)
    }

    /// L4: the signature had no timestamp, so a captured delivery could be replayed at will.
    @Test func theSignatureCoversATimestampAndOldOnesAreRefused() {
        let secret = Array("whsec-test-secret-0123456789".utf8), body = Array(#"{"event":"x"}"#.utf8)
        // Python: hmac.new(secret, b"1764582000." + body, hashlib.sha256).hexdigest()
        let header = WebhookSignature.header(for: body, secret: secret, timestamp: 1_764_582_000)
        #expect(header == "t=1764582000,v1=a074cb005f6ef9fc48fa6229972302ecc569254c44edceefde6db83482c010ea")
        #expect(WebhookSignature.verify(header, body: body, secret: secret, now: 1_764_582_000))
        #expect(WebhookSignature.verify(header, body: body, secret: secret, now: 1_764_582_300), "5 minutes later: still")
        #expect(!WebhookSignature.verify(header, body: body, secret: secret, now: 1_764_582_301), "later: a replay")
        #expect(!WebhookSignature.verify(header, body: body, secret: secret, now: 1_764_581_699), "from too far in the future")
        #expect(!WebhookSignature.verify(header, body: body + [0x20], secret: secret, now: 1_764_582_000))
        let moved = header.replacing("t=1764582000", with: "t=1764582100")
        #expect(!WebhookSignature.verify(moved, body: body, secret: secret, now: 1_764_582_100), "the time is signed")
        #expect(WebhookSignature.verify("v1=0000, " + header + ",v0=x", body: body, secret: secret, now: 1_764_582_000),
                "any of several v1 values; unknown keys ignored")
        for bad in ["", "t=1764582000", "v1=a074cb00", "t=1764582000,t=1764582000,v1=x", "t=-1,v1=x", "t=1e9,v1=x", "garbage"] {
            #expect(!WebhookSignature.verify(bad, body: body, secret: secret, now: 1_764_582_000), "\(bad)")
        }
    }

    /// The README's receiver, run by Python against a real delivery: it accepts the delivery and
    /// refuses a changed body, another secret, and a signature made ten minutes ago (a replay).
    @Test func theREADMEReceiverChecksARealDelivery() async throws {
        let python = try await Prerequisite.python3.require()
        let readme = try String(contentsOf: TestPaths.packageRoot.appendingPathComponent("README.md"), encoding: .utf8)
        let blocks = readme.components(separatedBy: "```python\n").dropFirst().map { $0.components(separatedBy: "\n```").first ?? "" }
        let snippet = try #require(blocks.first { $0.contains("def verified(") }, "the README shows the receiver")

        let home = try await ManagementHome()
        let secret = Digest.randomBytes(32)
        let receiver = HookReceiver()
        let delivered = try await Self.withReceiver(receiver) { hook in
            let hooks = try webhookConfiguration([hook], secrets: [secret])
            return try await withManagementServer(home, { $0.webhooks = hooks }) { url, _ in
                #expect(try await request(url + Self.path, method: .POST, token: home.adminToken,
                                          body: #"{"name": "checked", "scopes": ["clients:view"]}"#).status == 201)
                try await receiver.waitForHooks(1)
                return try #require(receiver.hooks.first)
            }
        }
        let header = try #require(delivered.signature)
        let now = Timestamp.now().seconds
        let cases: [(body: [UInt8], header: String, secret: [UInt8], expected: Bool, what: String)] = [
            (delivered.body, header, secret, true, "the real delivery"),
            (delivered.body + [0x20], header, secret, false, "a changed body"),
            (delivered.body, header, Digest.randomBytes(32), false, "another secret"),
            (delivered.body, WebhookSignature.header(for: delivered.body, secret: secret, timestamp: now - 600), secret, false,
             "a correct signature made ten minutes ago (a replay)"),
            (delivered.body, WebhookSignature.header(for: delivered.body, secret: secret, timestamp: now + 600), secret, false,
             "a signature from ten minutes ahead"),
            (delivered.body, Self.moved(header, bySeconds: 1), secret, false, "the real signature with its time moved by a second"),
            (delivered.body, "sha256=" + hexString(Digest.hmacSHA256(key: secret, message: delivered.body)), secret, false,
             "the old, timestamp-free signature"),
        ]
        let dir = try TempDir("patreceiver")
        try snippet.write(toFile: dir.path + "/receiver.py", atomically: true, encoding: .utf8)
        var lines: [String] = []
        for (index, item) in cases.enumerated() {
            try Data(item.body).write(to: URL(fileURLWithPath: dir.path + "/body\(index)"))
            lines.append("print(verified(bytes.fromhex('\(hexString(item.secret))'), open('\(dir.path)/body\(index)', 'rb').read(), "
                         + "'\(item.header)'))")
        }
        let script = "exec(open('\(dir.path)/receiver.py').read())\n" + lines.joined(separator: "\n") + "\n"
        let result = try await ChildProcess.run(python, ["-c", script], timeLimit: .seconds(60))
        #expect(result.succeeded, "\(result.stderr)")
        let answers = result.stdout.split(separator: "\n").map(String.init)
        #expect(answers.count == cases.count, "\(result.stdout)")
        for (item, answer) in zip(cases, answers) {
            #expect(answer == (item.expected ? "True" : "False"), "\(item.what): \(answer)")
        }
    }

    /// `header` with its `t` moved (the signature left as it was).
    static func moved(_ header: String, bySeconds delta: Int64) -> String {
        header.split(separator: ",").map { item in
            guard item.hasPrefix("t="), let t = Int64(item.dropFirst(2)) else { return String(item) }
            return "t=\(t + delta)"
        }.joined(separator: ",")
    }
}
