import Foundation
import PATManagement
import PATRegistry
import PATRegistryTestSupport
import Testing

/// Issue 11 in the service: self-rotation, lifetime policies per domain, leak responses, usage
/// reports and expiry notices — on both back ends.
@Suite("the management service: token hygiene (issue 11)", .timeLimit(.minutes(5)))
struct TokenHygieneServiceTests {
    typealias D = DelegationServiceTests

    func names(_ t: TestHome) async throws -> [String] {
        try await t.registry.read { tx in try await tx.events(after: 0, limit: 1000) }.map(\.name)
    }

    @Test("pats:rotate_self regenerates the calling PAT only, never longer, and the calling generation dies", arguments: RegistryBackend.allCases)
    func rotateSelf(_ backend: RegistryBackend) async throws {
        let t = try await TestHome.make(backend)
        let clock = TestClock()
        let service = t.service(at: clock, catalog: try t.home.managementCatalog())
        let (ci, ciCaller) = try await D.holder(t, service, owner: "ann", name: "ci", scopes: ["pats:rotate_self", "clients:view"],
                                                seconds: 3600, domain: "d1", clock: clock)
        let (other, _) = try await D.holder(t, service, owner: "ann", name: "other", scopes: ["clients:view"], clock: clock)
        // Not another PAT, even of the same owner.
        let foreign = await managementError { _ = try await service.regenerate(id: other.record.id, by: ciCaller) }
        #expect(foreign?.kind == .permissionMissing && foreign?.scope == "pats:regenerate", "\(String(describing: foreign))")
        // Never beyond its own expiry.
        let longer = await managementError { _ = try await service.regenerate(id: ci.record.id, expiry: .after(TimeSpan(seconds: 7200)), by: ciCaller) }
        #expect(longer?.kind == .invalidInput && longer?.field == "duration", "\(String(describing: longer))")

        clock.advance(600)
        let rotated = try await service.regenerate(id: ci.record.id, by: ciCaller)
        #expect(rotated.record.generation == 2)
        #expect(rotated.record.expiresAt == ci.record.expiresAt, "the default lifetime is cut to the caller's own expiry")
        #expect(rotated.record.domain == "d1" && rotated.record.scopes == ci.record.scopes)
        // The calling generation died: it cannot rotate again; the new one can.
        let again = await managementError { _ = try await service.regenerate(id: ci.record.id, by: ciCaller) }
        #expect(again != nil)
        let next = try await service.regenerate(id: ci.record.id, by: try D.caller(t, rotated.bearer, clock: clock))
        #expect(next.record.generation == 3)
        // Without the scope, a PAT cannot regenerate itself.
        let (plain, plainCaller) = try await D.holder(t, service, owner: "ann", name: "plain", scopes: ["clients:view"], clock: clock)
        let refused = await managementError { _ = try await service.regenerate(id: plain.record.id, by: plainCaller) }
        #expect(refused?.kind == .permissionMissing && refused?.scope == "pats:rotate_self", "\(String(describing: refused))")
    }

    @Test("a domain's maximum lifetime is data: it bounds creates and regenerates there, and cuts the default", arguments: RegistryBackend.allCases)
    func lifetimePolicy(_ backend: RegistryBackend) async throws {
        let t = try await TestHome.make(backend)
        let clock = TestClock()
        let service = t.service(at: clock)
        try await service.setLifetimePolicy(domain: "short", maxLifetime: TimeSpan(seconds: 7 * 86_400), by: .localOperator)
        func create(_ name: String, domain: String, expiry: Expiry?) async throws -> IssuedPAT {
            try await service.create(CreateRequest(owner: "ann", name: name, scopes: [try Scope(parsing: "clients:view")], expiry: expiry,
                                                   domain: domain), by: .localOperator)
        }
        let tooLong = await managementError { _ = try await create("a", domain: "short", expiry: .after(TimeSpan(seconds: 8 * 86_400))) }
        #expect(tooLong?.kind == .invalidInput && tooLong?.reason.contains("short") == true, "\(String(describing: tooLong))")
        let byDefault = try await create("b", domain: "short", expiry: nil)
        #expect(byDefault.record.expiresAt == clock.now.adding(seconds: 7 * 86_400))
        let elsewhere = try await create("c", domain: "long", expiry: .after(TimeSpan(seconds: 8 * 86_400)))
        #expect(elsewhere.record.domain == "long")
        let regen = await managementError { _ = try await service.regenerate(id: byDefault.record.id, expiry: .after(TimeSpan(seconds: 30 * 86_400)), by: .localOperator) }
        #expect(regen?.kind == .invalidInput)
        #expect(try await service.lifetimePolicies(by: .localOperator).map(\.domain) == ["short"])
        #expect(try await service.removeLifetimePolicy(domain: "short", by: .localOperator))
        _ = try await create("d", domain: "short", expiry: .after(TimeSpan(seconds: 8 * 86_400)))
        // Only the operator or pats:admin sets policies.
        let (_, ann) = try await D.holder(t, t.service(at: clock, catalog: try t.home.managementCatalog()), owner: "ann", name: "m",
                                          scopes: ["pats:create"], clock: clock)
        let denied = await managementError { try await service.setLifetimePolicy(domain: "x", maxLifetime: TimeSpan(seconds: 60), by: ann) }
        #expect(denied?.kind == .permissionMissing)
    }

    @Test("a leak revokes a live PAT once, announces it with where it was found, and a replay does nothing more", arguments: RegistryBackend.allCases)
    func leaks(_ backend: RegistryBackend) async throws {
        let t = try await TestHome.make(backend)
        let clock = TestClock()
        let service = t.service(at: clock)
        let ops = OperatorOps(service: service)
        let pat = try await ops.create(owner: "ann", name: "ci", scopes: try scopes("clients:view"), expiry: .after(TimeSpan(seconds: 3600)))
        let claims = try PATClaims(json: PASETOv4Public.parse(pat.bearer).message)
        let report = LeakReport(claims: claims, url: "https://example.com/repo/blob/abc/config.yml", source: "content")
        let first = try await service.respondToLeaks([report], action: .revoke, by: .secretScanner(keyID: "k1"))
        #expect(first.map(\.outcome) == [.revoked] && first[0].firstReport)
        #expect(try await t.registry.get(id: pat.record.id)?.revokedBy == .secretScanner(keyID: "k1"))
        let replay = try await service.respondToLeaks([report], action: .revoke, by: .secretScanner(keyID: "k1"))
        #expect(replay.map(\.outcome) == [.notLive] && !replay[0].firstReport)
        let events = try await t.registry.read { tx in try await tx.events(after: 0, limit: 100) }
        #expect(events.map(\.name) == ["personalAccessToken.created", "personalAccessToken.revoked", "personalAccessToken.leaked"])
        let body = String(decoding: events[events.count - 1].payload, as: UTF8.self)
        #expect(body.contains("config.yml") && body.contains("\"source\":\"content\"") && !body.contains(pat.bearer))
        // A scanner may do nothing else, and the owner cannot undo the scanner's revoke.
        let list = await managementError { _ = try await service.list(by: .secretScanner(keyID: "k1")) }
        #expect(list?.kind == .permissionMissing)
        // Notify only: announced once, not revoked.
        let other = try await ops.create(owner: "ann", name: "b", scopes: try scopes("clients:view"), expiry: .after(TimeSpan(seconds: 3600)))
        let otherReport = LeakReport(claims: try PATClaims(json: PASETOv4Public.parse(other.bearer).message), url: "u", source: "commit")
        #expect(try await service.respondToLeaks([otherReport], action: .notify, by: .localOperator).map(\.outcome) == [.notified])
        #expect(try await service.respondToLeaks([otherReport], action: .notify, by: .localOperator).map(\.outcome) == [.reportedBefore])
        #expect(try await t.registry.get(id: other.record.id)?.isRevoked == false)
        #expect(try await names(t).filter { $0 == "personalAccessToken.leaked" }.count == 2)
        #expect(try await names(t).filter { $0 == "personalAccessToken.revoked" }.count == 1)
    }

    @Test("usage reports need pats:report_usage, keep the last use, add up per day, and feed --unused-for", arguments: RegistryBackend.allCases)
    func usage(_ backend: RegistryBackend) async throws {
        let t = try await TestHome.make(backend)
        let clock = TestClock()
        let service = t.service(at: clock, catalog: try t.home.managementCatalog())
        let (used, _) = try await D.holder(t, service, owner: "ann", name: "used", scopes: ["clients:view"], seconds: 200 * 86_400, clock: clock)
        let (idle, _) = try await D.holder(t, service, owner: "ann", name: "idle", scopes: ["clients:view"], seconds: 200 * 86_400, clock: clock)
        let (_, reporter) = try await D.holder(t, service, owner: "edge", name: "gate", scopes: ["pats:report_usage"], clock: clock)
        let (_, nobody) = try await D.holder(t, service, owner: "edge", name: "no", scopes: ["pats:read"], clock: clock)
        clock.advance(100 * 86_400)
        let now = clock.now
        let entry = UsageUpdate(id: used.record.id, firstUsedAt: now.adding(seconds: -10), lastUsedAt: now, lastUsedFrom: "192.0.2.7",
                                lastOutcome: "accepted", days: [UsageDay(day: UsageDay.day(of: now), uses: 5)])
        let denied = await managementError { _ = try await service.recordUsage([entry], by: nobody) }
        #expect(denied?.kind == .permissionMissing && denied?.scope == "pats:report_usage")
        let ghost = UsageUpdate(id: "p_0000000000000000000000", firstUsedAt: now, lastUsedAt: now, lastUsedFrom: nil, lastOutcome: "accepted",
                                days: [UsageDay(day: UsageDay.day(of: now), uses: 1)])
        let receipt = try await service.recordUsage([entry, ghost], by: reporter)
        #expect(receipt.recorded == 1 && receipt.unknown == 1)
        // A second report the same day adds up; an older last use does not go back in time.
        var older = entry
        older.firstUsedAt = now.adding(seconds: -100)
        older.lastUsedAt = now.adding(seconds: -50)
        older.lastUsedFrom = "198.51.100.1"
        older.days = [UsageDay(day: UsageDay.day(of: now), uses: 2)]
        _ = try await service.recordUsage([older], by: reporter)
        let record = try await service.record(id: used.record.id, by: .localOperator)
        #expect(record.usage?.lastUsedAt == now && record.usage?.lastUsedFrom == "192.0.2.7" && record.usage?.uses == 7)
        #expect(try await service.usageDays(id: used.record.id, by: .localOperator) == [UsageDay(day: UsageDay.day(of: now), uses: 7)])
        // Future times are refused.
        var future = entry
        future.lastUsedAt = now.adding(seconds: 3600)
        #expect(await managementError { _ = try await service.recordUsage([future], by: reporter) }?.kind == .invalidInput)

        let unused = try await service.list(owner: "ann", unusedFor: TimeSpan(seconds: 90 * 86_400), by: .localOperator).map(\.id)
        #expect(unused == [idle.record.id])
        clock.advance(91 * 86_400)
        let later = try await service.list(owner: "ann", unusedFor: TimeSpan(seconds: 90 * 86_400), by: .localOperator).map(\.id)
        #expect(Set(later) == [used.record.id, idle.record.id])
    }

    @Test("expiring within a span: listed, and personalAccessToken.expiring sent once per PAT and lead time, across a restart", arguments: RegistryBackend.allCases)
    func expiryNotices(_ backend: RegistryBackend) async throws {
        let t = try await TestHome.make(backend)
        let clock = TestClock()
        let ops = t.lifecycle(at: clock)
        let soon = try await ops.create(owner: "ann", name: "soon", scopes: try scopes("clients:view"), expiry: .after(TimeSpan(seconds: 3 * 86_400)))
        let late = try await ops.create(owner: "ann", name: "late", scopes: try scopes("clients:view"), expiry: .after(TimeSpan(seconds: 60 * 86_400)))
        let listed = try await ops.service.list(owner: "ann", expiringWithin: TimeSpan(seconds: 7 * 86_400), by: .localOperator)
        #expect(listed.map(\.id) == [soon.record.id])

        #expect(try await ops.service.sendExpiryNotices() == 1, "the 7-day notice of `soon`")
        #expect(try await ops.service.sendExpiryNotices() == 0, "once")
        // A restart: a new service on the same registry sends nothing again.
        let restarted = t.service(at: clock)
        #expect(try await restarted.sendExpiryNotices() == 0)
        clock.advance(2 * 86_400 + 3600) // less than a day left
        #expect(try await restarted.sendExpiryNotices() == 1, "the 1-day notice")
        #expect(try await t.service(at: clock).sendExpiryNotices() == 0)
        let events = try await t.registry.read { tx in try await tx.events(after: 0, limit: 100) }.filter { $0.name == "personalAccessToken.expiring" }
        #expect(events.count == 2)
        let payload = String(decoding: events[0].payload, as: UTF8.self)
        #expect(payload.contains(soon.record.id) && !payload.contains(late.record.id) && !payload.contains(soon.bearer))
        // A regenerate with a new expiry is warned about again; a revoked PAT is not.
        _ = try await ops.regenerate(id: soon.record.id, expiry: .after(TimeSpan(seconds: 5 * 86_400)))
        _ = try await ops.revoke(id: late.record.id)
        #expect(try await restarted.sendExpiryNotices() == 1)
    }
}
