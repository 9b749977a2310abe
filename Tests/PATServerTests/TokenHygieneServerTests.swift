import Crypto
import Foundation
import Hummingbird
import PATEdge
import PATHummingbird
import PATKit
import PATManagement
import PATRegistry
import PATRegistryTestSupport
import PATServer
import PATStore
import PATTestSupport
import Testing

/// Issue 11 over HTTP: the secret-scanning partner endpoint (requests signed as GitHub's scanner
/// signs them, with a P-256 key made here), usage counted at the edge and reported in batches,
/// and `X-PAT-Expires` on accepted requests.
@Suite("token hygiene over HTTP (issue 11)", .timeLimit(.minutes(5)))
struct TokenHygieneServerTests {
    /// A scanner: its signing key and the key identifier its requests name.
    struct Scanner {
        let key = P256.Signing.PrivateKey()
        let identifier: String

        init(_ identifier: String = "90a421169f0a4062") { self.identifier = identifier }

        var configured: ScannerKey { get throws { try ScannerKey(identifier: identifier, pem: key.publicKey.pemRepresentation) } }

        func headers(_ body: String, identifier: String? = nil) throws -> [(String, String)] {
            let signature = try key.signature(for: Data(body.utf8)).derRepresentation.base64EncodedString()
            return [("Github-Public-Key-Identifier", identifier ?? self.identifier), ("Github-Public-Key-Signature", signature)]
        }
    }

    static func report(_ items: [(token: String, url: String)]) -> String {
        "[" + items.map { #"{"token":"\#($0.token)","type":"patkit_pat","url":"\#($0.url)","source":"content"}"# }
            .joined(separator: ",") + "]"
    }

    static func sha256Hex(_ text: String) -> String {
        SHA256.hash(data: Data(text.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    @Test("partner endpoint: a signed report revokes the live PAT, answers GitHub's shape, and a replay changes nothing", arguments: RegistryBackend.allCases)
    func partnerEndpoint(_ backend: RegistryBackend) async throws {
        let home = try await ManagementHome(backend)
        let scanner = Scanner()
        let leaked = try await home.issue(owner: "ann", name: "ci", scopes: ["clients:view"])
        let bystander = try await home.issue(owner: "ann", name: "other", scopes: ["clients:view"])
        let foreign = try Issuing().token()
        let configured = try scanner.configured
        try await withManagementServer(home, { $0.secretScanning = SecretScanningConfiguration(keys: [configured]) }) { base, _ in
            let url = base + SecretScanningRoutes.path
            let body = Self.report([(leaked.bearer, "https://github.com/o/r/blob/abc/.env"), (foreign, "https://github.com/o/r/blob/abc/x")])
            let answer = try await request(url, method: .POST, body: body, headers: try scanner.headers(body))
            #expect(answer.status == 200, "\(answer.text)")
            let items = try #require(try JSONSerialization.jsonObject(with: Data(answer.body)) as? [[String: String]])
            #expect(items == [
                ["token_hash": Self.sha256Hex(leaked.bearer), "token_type": "patkit_pat", "label": "true_positive"],
                ["token_hash": Self.sha256Hex(foreign), "token_type": "patkit_pat", "label": "false_positive"],
            ])
            #expect(!answer.text.contains(leaked.bearer), "the token is never echoed")
            let record = try #require(try await home.store.get(id: leaked.record.id))
            #expect(record.isRevoked && record.revokedBy == .secretScanner(keyID: scanner.identifier))
            #expect(try await home.store.get(id: bystander.record.id)?.isRevoked == false, "only the reported PAT")

            // The replay: same body, same signature — same answer, nothing more revoked or announced.
            let replay = try await request(url, method: .POST, body: body, headers: try scanner.headers(body))
            #expect(replay.status == 200 && replay.body == answer.body)
            let events = try await home.store.read { tx in try await tx.events(after: 0, limit: 100) }
            let leakedEvents = events.filter { $0.name == "personalAccessToken.leaked" }
            #expect(leakedEvents.count == 1)
            let payload = String(decoding: leakedEvents[0].payload, as: UTF8.self)
            #expect(payload.contains("blob/abc/.env") && !payload.contains(leaked.bearer))
        }
    }

    @Test("partner endpoint: bad signatures, unknown key ids, missing headers and oversized bodies are refused before anything is done")
    func partnerEndpointRefusals() async throws {
        let home = try await ManagementHome()
        let scanner = Scanner(), impostor = Scanner("a-key-nobody-configured")
        let leaked = try await home.issue(owner: "ann", name: "ci", scopes: ["clients:view"])
        let configured = try scanner.configured
        try await withManagementServer(home, {
            $0.secretScanning = SecretScanningConfiguration(keys: [configured], maxBodyBytes: 4096)
        }) { base, _ in
            let url = base + SecretScanningRoutes.path
            let body = Self.report([(leaked.bearer, "u")])
            // Signed by another key under the configured identifier.
            let forged = try await request(url, method: .POST, body: body, headers: try impostor.headers(body, identifier: scanner.identifier))
            #expect(forged.status == 401 && forged.errorCode == "bad_signature")
            // A valid signature over another body.
            let other = Self.report([(leaked.bearer, "v")])
            let swapped = try await request(url, method: .POST, body: body, headers: try scanner.headers(other))
            #expect(swapped.status == 401 && swapped.errorCode == "bad_signature")
            let unknown = try await request(url, method: .POST, body: body, headers: try impostor.headers(body))
            #expect(unknown.status == 401 && unknown.errorCode == "unknown_key")
            let unsigned = try await request(url, method: .POST, body: body)
            #expect(unsigned.status == 401 && unsigned.errorCode == "missing_signature")
            let garbage = try await request(url, method: .POST, body: body,
                                            headers: [("Github-Public-Key-Identifier", scanner.identifier), ("Github-Public-Key-Signature", "!!")])
            #expect(garbage.status == 401)
            let big = "[" + String(repeating: " ", count: 5000) + "]"
            let tooLarge = try await request(url, method: .POST, body: big, headers: try scanner.headers(big))
            #expect(tooLarge.status == 413)
            let notArray = #"{"token":"x"}"#
            #expect(try await request(url, method: .POST, body: notArray, headers: try scanner.headers(notArray)).status == 400)
            #expect(try await home.store.get(id: leaked.record.id)?.isRevoked == false)
            let events = try await home.store.read { tx in try await tx.events(after: 0, limit: 100) }.map(\.name)
            #expect(events == ["personalAccessToken.created"], "only the PAT's creation: no leak, no revoke")
        }
        // Without --scanner-key there is no endpoint: the path is only a PAT id, which takes no POST
        // (405 with Allow since the OpenAPI contract work, 404 before).
        try await withManagementServer(home) { base, _ in
            let body = Self.report([(leaked.bearer, "u")])
            let off = try await request(base + SecretScanningRoutes.path, method: .POST, body: body, headers: try scanner.headers(body))
            #expect(off.status == 405)
            #expect(off.headers.first(name: "Allow") == "DELETE, GET")
        }
    }

    @Test("pat serve with webhooks delivers personalAccessToken.expiring once per PAT and lead time, also after a restart")
    func expiryWebhooks() async throws {
        let home = try await ManagementHome()
        let soon = try await home.issue(owner: "ann", name: "soon", scopes: ["clients:view"], seconds: 3 * 86_400)
        _ = try await home.issue(owner: "ann", name: "later", scopes: ["clients:view"], seconds: 30 * 86_400)
        try await home.store.write { tx in try await tx.removeEvents(try await tx.events(after: 0, limit: 100).map(\.id)) } // only the notices
        let receiver = HookReceiver()
        try await WebhookTests.withReceiver(receiver) { hook in
            let hooks = try WebhookConfiguration(endpoints: [try WebhookEndpoint(url: hook, secret: Digest.randomBytes(32))])
            for round in 1...2 { // the second server is the restart: it finds the notices sent
                try await withManagementServer(home, {
                    $0.webhooks = hooks
                    $0.expiryLeadTimes = [TimeSpan(seconds: 7 * 86_400)]
                }) { _, management in
                    let notifier = try #require(management.expiryNotifier)
                    try await awaitEvent("a round of expiry notices") { try await notifier.waitUntilRounds(1) }
                    if round == 1 {
                        // The bootstrap PAT (a day left) and `soon`; never `later`.
                        try await receiver.waitForHooks(2)
                    }
                    #expect(notifier.sentCount == (round == 1 ? 2 : 0))
                }
            }
        }
        let names = receiver.hooks.compactMap(\.event)
        #expect(names == ["personalAccessToken.expiring", "personalAccessToken.expiring"])
        #expect(receiver.hooks.contains { String(decoding: $0.body, as: UTF8.self).contains(soon.record.id) })
    }

    @Test("usage: an edge's counts reach the issuer in batches; the issuer down delays them; memory stays bounded")
    func usageReporting() async throws {
        let home = try await ManagementHome()
        let pats = [try await home.issue(owner: "ann", name: "a", scopes: ["clients:view"]),
                    try await home.issue(owner: "ann", name: "b", scopes: ["clients:view"]),
                    try await home.issue(owner: "bob", name: "c", scopes: ["clients:view"])]
        let reporterPAT = try await home.issue(owner: "edge", name: "gate", scopes: ["pats:report_usage"])
        let readerPAT = try await home.issue(owner: "edge", name: "reader", scopes: ["pats:read"])
        let counter = UsageCounter()
        let now = Timestamp.now()
        for (index, pat) in pats.enumerated() {
            for _ in 0...index { counter.record(id: pat.record.id, outcome: UsageCounter.accepted, address: "192.0.2.\(index + 1)", at: now) }
        }
        counter.record(id: pats[0].record.id, outcome: "scope_missing", address: "192.0.2.9", at: now.adding(seconds: 1))

        let port = try await withManagementServer(home) { base, _ in
            let endpoint = base + "/v3/personal-access-tokens/usage"
            // Without pats:report_usage: refused, and the counts are kept for later.
            let wrong = PATUsageReporter(counter: counter, endpoint: endpoint, token: readerPAT.bearer, batchSize: 2,
                                         timeout: .seconds(120), logger: quietLogger()) // a bound for hangs: load 18 missed the default
            #expect(await wrong.flush() == false)
            #expect(counter.count == 3 && wrong.failureCount == 1)

            let reporter = PATUsageReporter(counter: counter, endpoint: endpoint, token: reporterPAT.bearer, batchSize: 2,
                                            timeout: .seconds(120), logger: quietLogger())
            #expect(await reporter.flush())
            #expect(reporter.deliveredCount == 3 && counter.count == 0)
            let first = try await home.service.record(id: pats[0].record.id, by: .localOperator)
            #expect(first.usage?.uses == 2 && first.usage?.lastUsedFrom == "192.0.2.9" && first.usage?.lastOutcome == "scope_missing")
            #expect(try await home.service.record(id: pats[2].record.id, by: .localOperator).usage?.uses == 3)
            // The API shows it as lastUsedAt.
            let shown = try await request(base + "/v3/personal-access-tokens/\(pats[2].record.id)", method: .GET, token: home.adminToken)
            #expect(try shown.object()["lastUsedAt"] as? String == now.rfc3339, "\(shown.text)")
            return Int(URL(string: base)?.port ?? 0)
        }

        // The issuer is gone: the report waits in the counter, merged with new uses.
        counter.record(id: pats[1].record.id, outcome: UsageCounter.accepted, address: nil, at: now)
        let down = PATUsageReporter(counter: counter, endpoint: "http://127.0.0.1:\(port)/v3/personal-access-tokens/usage",
                                    token: reporterPAT.bearer, timeout: .seconds(5), logger: quietLogger())
        #expect(await down.flush() == false)
        counter.record(id: pats[1].record.id, outcome: UsageCounter.accepted, address: nil, at: now)
        #expect(counter.count == 1 && counter.drain().first?.uses == 2 && down.failureCount == 1)

        // Bounded: a full table drops (and counts) what does not fit.
        let small = UsageCounter(capacity: 16)
        for _ in 0..<1000 { small.record(id: PATClaims.newID(), outcome: UsageCounter.accepted, address: nil, at: now) }
        #expect(small.count <= 16 && small.dropped == UInt64(1000 - small.count))
    }

    @Test("the gate and the middleware add X-PAT-Expires to accepted requests and count each decision")
    func expiresHeaderAndCounting() async throws {
        let setup = try GateTests.Setup()
        let token = try setup.issuing.token(subject: "alice", scopes: ["channels:publish:ch-1"])
        let expires = try PATClaims(json: PASETOv4Public.parse(token).message).expiresAt.rfc3339
        try await withPATServer(setup.gate()) { port, _ in
            let passed = try await http("http://127.0.0.1:\(port)/verify", headers: [("Authorization", "Bearer \(token)")])
            #expect(passed.status == 204 && passed.header("X-PAT-Expires") == expires)
        }

        var policy = Validator.Policy()
        policy.requireRevocationList = false
        let validator = Validator(keys: setup.issuing.keySet, policy: policy)
        let counter = UsageCounter()
        try await withRunningServer({ onRunning in
            let router = Router(context: BasicPATRequestContext.self)
            router.add(middleware: PATErrorMiddleware())
            let api = router.group("/channels").add(middleware: PATAuthenticator(validator: validator, usage: counter))
            try api.post("{id}/messages", requiring: "channels:publish:{id}") { _, _ in "ok" }
            GateRoutes(validator: validator, usage: counter).register(on: router)
            return Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                               onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? 0) }, logger: quietLogger())
        }) { port in
            let auth = [("Authorization", "Bearer \(token)")]
            let ok = try await http("http://127.0.0.1:\(port)/channels/ch-1/messages", method: .POST, headers: auth)
            #expect(ok.status == 200 && ok.header("X-PAT-Expires") == expires)
            let denied = try await http("http://127.0.0.1:\(port)/channels/ch-2/messages", method: .POST, headers: auth)
            #expect(denied.status == 403 && denied.header("X-PAT-Expires") == nil)
            let gate = try await http("http://127.0.0.1:\(port)/verify", headers: auth + [("X-PAT-Client-Address", "203.0.113.5")])
            #expect(gate.status == 204)
            let forged = try await http("http://127.0.0.1:\(port)/verify", headers: [("Authorization", "Bearer \(try Issuing().token())")])
            #expect(forged.status == 401)
        }
        let entries = counter.drain()
        #expect(entries.count == 1, "a forged or foreign token is never counted")
        #expect(entries.first?.uses == 3 && entries.first?.lastAddress == "203.0.113.5" && entries.first?.lastOutcome == "accepted")
    }
}

/// `pat scan --keys URL`: the key set fetched from the issuer is trusted only when signed by a
/// pinned trust anchor and current; otherwise nothing is scanned (exit 2).
@Suite("pat scan --keys URL", .timeLimit(.minutes(5)))
struct ScanKeysURLTests {
    @Test("a live token is found with the issuer's signed key set; an unpinned, unsigned or stale set scans nothing")
    func scanWithKeysURL() async throws {
        let binary = try await Prerequisite.patBinary.require()
        let issuer = try TempDir()
        let scanning = try TempDir("patscan")
        let issuing = try Issuing()
        let revokedID = PATClaims.newID()
        try issuer.publish(keys: try issuing.signedKeys(), list: try issuing.list(sequence: 1, revoked: [revokedID]))
        let anchorsFile = scanning.path + "/anchors.txt"
        try SecureFile.writeAtomically(anchorsFile, Array(issuing.anchors.text.utf8))
        let otherAnchors = scanning.path + "/other-anchors.txt"
        try SecureFile.writeAtomically(otherAnchors, Array(try Issuing().anchors.text.utf8))
        let live = try issuing.token(subject: "carol")
        let revoked = try issuing.token(id: revokedID, subject: "dave")
        let file = scanning.path + "/leak.env"
        try Data("A=\(live)\nB=\(revoked)\n".utf8).write(to: URL(fileURLWithPath: file))
        let unsignedDir = try TempDir()
        try unsignedDir.publish(keys: issuing.keySet.encoded())

        try await withPATServer(PATServerConfiguration(home: issuer.home)) { port, _ in
            let base = "http://127.0.0.1:\(port)/.well-known/pat"
            func scan(_ extra: [String], now: String? = nil) async throws -> ProcessResult {
                var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("PAT_") }
                if let now { environment["PAT_NOW"] = now }
                return try await ChildProcess.run(binary, ["scan", file, "--home", scanning.path, "--json"] + extra,
                                                  environment: environment, timeLimit: .seconds(60))
            }
            let found = try await scan(["--keys", "\(base)/keys", "--revocations", "\(base)/revocations", "--trust-anchor", anchorsFile])
            #expect(found.status == 1, "\(found.stderr)")
            #expect(!found.stdout.contains(live) && !found.stderr.contains(live))
            let statuses = (try JSONSerialization.jsonObject(with: Data(found.stdout.utf8)) as? [String: Any])?["findings"] as? [[String: Any]]
            #expect(statuses?.compactMap { $0["status"] as? String } == ["live", "revoked"], "\(found.stdout)")

            // With --json an error is the API's error document on stdout, never findings.
            func errorMessage(_ result: ProcessResult) -> String? {
                let object = try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
                return (object?["error"] as? [String: Any])?["message"] as? String
            }
            let unpinned = try await scan(["--keys", "\(base)/keys", "--trust-anchor", otherAnchors])
            #expect(unpinned.status == 2, "\(unpinned.stdout)")
            #expect(errorMessage(unpinned) != nil && !unpinned.stdout.contains("findings"), "nothing scanned, nothing reported")
            let noAnchor = try await scan(["--keys", "\(base)/keys"])
            #expect(noAnchor.status == 2 && errorMessage(noAnchor)?.contains("--trust-anchor") == true, "\(noAnchor.stdout)")
            let stale = try await scan(["--keys", "\(base)/keys", "--trust-anchor", anchorsFile],
                                       now: Timestamp.now().adding(seconds: 3 * 86_400).rfc3339)
            #expect(stale.status == 2 && errorMessage(stale)?.contains("due for update") == true, "\(stale.stdout)")
            let down = try await scan(["--keys", "http://127.0.0.1:1/keys", "--trust-anchor", anchorsFile])
            #expect(down.status == 2, "\(down.stderr)")
        }
        // A plain (unsigned) key set served over HTTP is not trusted.
        try await withPATServer(PATServerConfiguration(home: unsignedDir.home)) { port, _ in
            let result = try await ChildProcess.run(binary, ["scan", file, "--home", scanning.path, "--keys",
                                                             "http://127.0.0.1:\(port)/.well-known/pat/keys", "--trust-anchor", anchorsFile],
                                                    environment: ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("PAT_") },
                                                    timeLimit: .seconds(60))
            #expect(result.status == 2, "\(result.stderr)")
        }
    }
}
