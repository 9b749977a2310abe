import Foundation
import Hummingbird
import PATEdge
import PATKit
import PATServer
import PATStore
import PATTestSupport
import Testing

/// `GET /metrics`: every metric the README names, with the values the traffic before the scrape implies.
@Suite("metrics at /metrics (Prometheus text)", .timeLimit(.minutes(5)))
struct MetricsTests {
    /// The samples of an exposition: `name{labels}` → value (comments skipped).
    static func samples(_ text: String) -> [String: Double] {
        var out: [String: Double] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            out[String(line[..<space])] = value
        }
        return out
    }

    static func scrape(_ base: String) async throws -> (text: String, samples: [String: Double]) {
        let response = try await http(base + "/metrics")
        #expect(response.status == 200)
        #expect(response.header("Content-Type")?.hasPrefix("text/plain; version=0.0.4") == true)
        return (response.text, samples(response.text))
    }

    @Test("the gate: validations by result and their latency, cache, list, key set, refresher, requests by route")
    func gateMetrics() async throws {
        let setup = try GateTests.Setup()
        let good = try setup.issuing.token(scopes: ["channels:publish:ch-1"])
        let revoked = try setup.issuing.token(id: setup.revokedID)
        try await withPATServer(setup.gate()) { port, _ in
            let base = "http://127.0.0.1:\(port)"
            for _ in 0..<3 { #expect(try await http(base + "/verify", headers: [("Authorization", "Bearer \(good)")]).status == 204) }
            #expect(try await http(base + "/verify", headers: [("Authorization", "Bearer \(revoked)")]).status == 401)
            #expect(try await http(base + "/verify").status == 401)
            #expect(try await http(base + "/verify", headers: [("Authorization", "Bearer v4.public.x")]).status == 401)

            let (text, s) = try await Self.scrape(base)
            #expect(s[#"patkit_validations_total{result="ok"}"#] == 3, "\(text)")
            #expect(s[#"patkit_validations_total{result="revoked"}"#] == 1)
            #expect(s[#"patkit_validations_total{result="missing_token"}"#] == 1)
            #expect(s[#"patkit_validations_total{result="malformed"}"#] == 1)
            #expect(s[#"patkit_validations_total{result="expired"}"#] == 0, "every result has its series from the start")
            #expect(s["patkit_validation_duration_seconds_count"] == 5, "validations the validator ran are timed (4 + the malformed one)")
            #expect(s[#"patkit_validation_duration_seconds_bucket{le="+Inf"}"#] == 5)
            #expect(s["patkit_validation_cache_hits"] == 2, "the good token's second and third checks come from the cache")
            #expect(s["patkit_validation_cache_entries"] == 1)
            #expect((s["patkit_validation_cache_bytes"] ?? 0) > 0)
            #expect(s["patkit_revocation_list_sequence"] == 1)
            #expect(s["patkit_revocation_list_entries"] == 1)
            #expect((s["patkit_revocation_list_age_seconds"] ?? -1) >= 0)
            #expect(s["patkit_key_set_sequence"] == 1)
            #expect(s["patkit_refresh_consecutive_failures"] == 0)
            #expect(s["patkit_accepting_tokens"] == 1)
            #expect(s[#"patkit_http_requests_total{route="/verify",method="GET",status="204"}"#] == 3)
            #expect(s[#"patkit_http_requests_total{route="/verify",method="GET",status="401"}"#] == 3)
        }
    }

    @Test("the gate's validation counters wrap the validation itself: a forged token counts once, as bad_signature")
    func gateCountsOnce() async throws {
        let setup = try GateTests.Setup()
        let token = try setup.issuing.token()
        let forged = String(token.dropLast(4)) + (token.hasSuffix("AAAA") ? "BBBB" : "AAAA")
        try await withPATServer(setup.gate()) { port, _ in
            let base = "http://127.0.0.1:\(port)"
            _ = try await http(base + "/verify", headers: [("Authorization", "Bearer \(forged)")])
            let s = try await Self.scrape(base).samples
            let refusals = s.filter { $0.key.hasPrefix("patkit_validations_total{") }.values.reduce(0, +)
            #expect(refusals == 1)
            #expect(s[#"patkit_validations_total{result="bad_signature"}"#] == 1 || s[#"patkit_validations_total{result="malformed"}"#] == 1)
        }
    }

    @Test("management: the API's validations, requests by route and status, rate-limited requests, webhooks")
    func managementMetrics() async throws {
        let home = try await ManagementHome()
        let receiver = HookReceiver()
        try await withRunningServer({ receiver.makeApp(onRunning: $0) }) { hookPort in
            let hooks = try webhookConfiguration(["http://127.0.0.1:\(hookPort)/hook"])
            try await withManagementServer(home, {
                $0.rateLimit = RateLimiter.Policy(capacity: 2, refillPerSecond: 0.01)
                $0.webhooks = hooks
            }) { url, management in
                let api = url + ManagementRoutes.basePath
                let created = try await request(api, method: .POST, token: home.adminToken, body: #"{"name": "m", "scopes": ["clients:view"]}"#)
                #expect(created.status == 201)
                #expect(try await request(api, method: .GET, token: home.adminToken).status == 200)
                #expect(try await request(api, method: .GET, token: home.adminToken).status == 429)
                #expect(try await request(api, method: .GET).status == 401)
                try await receiver.waitForHooks(1)
                try await awaitEvent("the delivery is settled") { try await management.webhooks?.waitUntilSettled(1) }

                let (text, s) = try await Self.scrape(url)
                #expect(s[#"patkit_validations_total{result="ok"}"#] == 3, "\(text)")
                #expect(s[#"patkit_validations_total{result="missing_token"}"#] == 1)
                #expect(s["patkit_rate_limited_total"] == 1)
                #expect(s[#"patkit_http_requests_total{route="/v3/personal-access-tokens",method="POST",status="201"}"#] == 1)
                #expect(s[#"patkit_http_requests_total{route="/v3/personal-access-tokens",method="GET",status="429"}"#] == 1)
                #expect(s[#"patkit_webhook_deliveries_total{outcome="settled"}"#] == 1)
                #expect(s["patkit_webhook_pending"] == 0)
                #expect((s["patkit_revocation_list_sequence"] ?? 0) >= 1, "the issuer's own published list")
                #expect(!text.contains(home.adminToken), "no token in the metrics")
                #expect((s["patkit_publishes_total"] ?? 0) >= 2, "the start and the create")
                #expect(s["patkit_publish_errors_total"] == 0)
                #expect(s["patkit_unpublished_changes"] == 0)
            }
        }
    }

    @Test("publishing that fails shows as errors and unpublished changes until a publish succeeds")
    func publishFailureMetrics() async throws {
        let home = try await ManagementHome()
        let victim = try await home.issue(owner: "ivan", name: "victim", scopes: ["clients:view"])
        try await withManagementServer(home) { url, management in
            _ = try await home.service.revoke(id: victim.record.id, by: .localOperator) // committed, as `pat revoke` would
            home.store.failWrites.store(true, ordering: .relaxed)                      // every publish now fails
            guard case .failed = await management.republisher.publishChange(reason: "revoke") else {
                Issue.record("the publish should have failed")
                return
            }
            let failing = try await Self.scrape(url).samples
            #expect((failing["patkit_publish_errors_total"] ?? 0) >= 1)
            #expect((failing["patkit_unpublished_changes"] ?? 0) >= 1)
            #expect((failing["patkit_publish_consecutive_failures"] ?? 0) >= 1)

            home.store.failWrites.store(false, ordering: .relaxed)
            try await awaitEvent("a retry publishes the revocation") { try await management.republisher.waitUntilChangesPublished() }
            let recovered = try await Self.scrape(url).samples
            #expect(recovered["patkit_unpublished_changes"] == 0)
            #expect(recovered["patkit_publish_consecutive_failures"] == 0)
            #expect((recovered["patkit_publish_errors_total"] ?? 0) >= 1, "a total never goes down")
        }
    }
}
