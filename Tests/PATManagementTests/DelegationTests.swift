import Foundation
import PATManagement
import PATRegistry
import PATRegistryTestSupport
import Testing

/// The service's rules, called directly (the API and CLI tests exercise the same rules through
/// their adapters).
@Suite("the management service: identities, output safety, delegation", .timeLimit(.minutes(5)))
struct DelegationServiceTests {
    @Test("NFC: precomposed text passes, decomposed and compatibility look-alikes do not")
    func nfc() {
        #expect(Identifier.isNFC("alice") && Identifier.isNFC("\u{e9}ve") && Identifier.isNFC("\u{D55C}"))
        #expect(!Identifier.isNFC("e\u{301}ve"))
        #expect(!Identifier.isNFC("\u{212A}"), "KELVIN SIGN normalizes to K")
        #expect(!Identifier.isNFC("\u{1112}\u{1161}\u{11AB}"), "decomposed Hangul")
        #expect(Identifier.same("\u{e9}ve", "\u{e9}ve") && !Identifier.same("\u{e9}ve", "e\u{301}ve"))
        #expect(Identifier.same(nil as String?, nil) && !Identifier.same("a", nil))
    }

    @Test("terminal output escapes C0, DEL, C1 and bidirectional controls, nothing else")
    func printable() {
        #expect(Printable.escaped("plain é ✓") == "plain é ✓")
        #expect(Printable.escaped("a\u{1b}[2J\r\n\u{07}\u{7f}\u{85}b") == #"a\u001b[2J\u000d\u000a\u0007\u007f\u0085b"#)
        #expect(Printable.escaped("x\u{202E}y\u{2066}z") == #"x\u202ey\u2066z"#)
        #expect(Printable.clip(String(repeating: "a", count: 50), 10) == "aaaaaaaaa…")
    }

    /// A PAT of `owner` made by the operator, and its holder as a caller.
    static func holder(_ t: TestHome, _ service: PATManagement, owner: String, name: String, scopes: [String],
                       seconds: Int64 = 86_400, domain: String? = nil, clock: TestClock) async throws -> (IssuedPAT, Caller) {
        let issued = try await service.create(CreateRequest(owner: owner, name: name, scopes: try scopes.map { try Scope(parsing: $0) },
                                                            expiry: .after(TimeSpan(seconds: seconds)), domain: domain), by: .localOperator)
        return (issued, try Self.caller(t, issued.bearer, clock: clock))
    }

    static func caller(_ t: TestHome, _ token: String, clock: TestClock) throws -> Caller {
        var policy = Validator.Policy()
        policy.requireRevocationList = false
        return .token(try Validator(keys: t.keyStore.keySet(), policy: policy, clock: { clock.now }).validate(token))
    }

    @Test("what a token mints is bounded by its domain, scopes and lifetime, and carries its lineage", arguments: RegistryBackend.allCases)
    func bounds(_ backend: RegistryBackend) async throws {
        let t = try await TestHome.make(backend)
        let clock = TestClock()
        let service = t.service(at: clock, catalog: try t.home.managementCatalog())
        let (team, teamCaller) = try await Self.holder(t, service, owner: "platform", name: "team",
                                                       scopes: ["pats:create", "clients:view", "channels:view:ch-1"],
                                                       seconds: 3600, domain: "d1", clock: clock)
        func mint(_ scopes: [String], domain: String? = nil, expiry: Expiry? = nil, name: String = "n",
                  by caller: Caller) async throws -> IssuedPAT {
            try await service.create(CreateRequest(name: name, scopes: try scopes.map { try Scope(parsing: $0) }, expiry: expiry,
                                                   domain: domain), by: caller)
        }
        let domain = await managementError { _ = try await mint(["clients:view"], domain: "d2", by: teamCaller) }
        #expect(domain?.kind == .forbidden && domain?.field == "domain")
        let scope = await managementError { _ = try await mint(["clients:view", "channels:view"], by: teamCaller) }
        #expect(scope?.kind == .forbidden && scope?.scope == "channels:view:*")
        let lifetime = await managementError { _ = try await mint(["clients:view"], expiry: .after(TimeSpan(seconds: 7200)), by: teamCaller) }
        #expect(lifetime?.kind == .invalidInput && lifetime?.field == "duration")
        #expect(lifetime?.reason.contains(team.record.expiresAt.rfc3339) == true)

        let ci = try await mint(["pats:create", "clients:view:c-1"], by: teamCaller)
        #expect(ci.record.domain == "d1", "the parent's domain by default")
        #expect(ci.record.expiresAt == team.record.expiresAt, "the default lifetime is cut to the parent's")
        #expect(ci.record.lineage == [PATRecord.Ancestor(id: team.record.id, generation: 1)])
        #expect(try PATClaims(json: PASETOv4Public.parse(ci.bearer).message).lineage == [try PATAncestor(id: team.record.id, generation: 1)])
        #expect(ci.record.owner == "platform")

        // Rule 4: the registry knows the parent died before any list does.
        _ = try await service.revoke(id: team.record.id, by: .localOperator)
        let dead = await managementError { _ = try await mint(["clients:view:c-1"], by: try Self.caller(t, ci.bearer, clock: clock)) }
        #expect(dead?.kind == .callerRevoked, "\(String(describing: dead))")
    }

    /// Issue 9: edges refuse a descendant of a revoked token (`ancestor_revoked`), but the registry
    /// used to call it `active` — in `list --status active`, `show` and the API.
    @Test("a PAT whose ancestor is revoked, regenerated or deleted is ancestor_revoked, not active", arguments: RegistryBackend.allCases)
    func ancestorRevokedStatus(_ backend: RegistryBackend) async throws {
        let t = try await TestHome.make(backend)
        let clock = TestClock()
        let service = t.service(at: clock, catalog: try t.home.managementCatalog())
        let (team, teamCaller) = try await Self.holder(t, service, owner: "platform", name: "team",
                                                       scopes: ["pats:create", "clients:view"], clock: clock)
        func mint(_ name: String, by caller: Caller) async throws -> IssuedPAT {
            try await service.create(CreateRequest(name: name, scopes: try ["pats:create", "clients:view"].map { try Scope(parsing: $0) }),
                                     by: caller)
        }
        let ci = try await mint("ci", by: teamCaller)
        let deploy = try await mint("deploy", by: try Self.caller(t, ci.bearer, clock: clock))
        func status(_ id: String) async throws -> PATStatus { try await service.record(id: id, by: .localOperator).status(at: clock.now) }
        func listed(_ filter: StatusFilter) async throws -> Set<String> {
            Set(try await service.list(owner: "platform", status: filter, by: .localOperator).map(\.name))
        }
        #expect(try await status(deploy.record.id) == .active)
        #expect(try await listed(.active) == ["team", "ci", "deploy"])

        // A regenerate with an overlap keeps the descendants alive while the overlap lasts, as at the edges.
        _ = try await service.regenerate(id: team.record.id, overlap: TimeSpan(seconds: 600), by: .localOperator)
        #expect(try await status(ci.record.id) == .active)
        clock.advance(601)
        #expect(try await status(ci.record.id) == .ancestorRevoked)
        let shown = try await service.record(id: deploy.record.id, by: .localOperator)
        #expect(shown.status(at: clock.now) == .ancestorRevoked && shown.revokedAncestor == PATRecord.Ancestor(id: team.record.id, generation: 1))
        let json = shown.json(at: clock.now)
        #expect(json["status"] == .string("ancestor_revoked") && json["revokedAncestor"] == .string("\(team.record.id).1"))
        #expect(try await listed(.active) == ["team"], "the regenerated root is active; what its old generation issued is not")
        // Nor is it warned of its expiry (ci and deploy expire within a day, with the old team token).
        let expiring = try await service.list(owner: "platform", status: .active, expiringWithin: TimeSpan(seconds: 7 * 86_400), by: .localOperator)
        #expect(try await service.sendExpiryNotices() == expiring.count, "notices for \(expiring.map(\.name)) only")
        #expect(try await listed(.revoked) == ["ci", "deploy"])
        #expect(try await listed(.expired).isEmpty)
        #expect(try await listed(.all) == ["team", "ci", "deploy"])
        // Changing scopes needs an active PAT; re-issuing by the operator makes a live root again.
        let scopes = await managementError { _ = try await service.clearScopes(id: ci.record.id, by: .localOperator) }
        #expect(scopes?.kind == .conflict && scopes?.reason.contains("ancestor_revoked") == true, "\(String(describing: scopes))")
        let revived = try await service.regenerate(id: ci.record.id, by: .localOperator)
        #expect(revived.record.lineage.isEmpty && revived.record.status(at: clock.now) == .active)
        #expect(try await status(deploy.record.id) == .ancestorRevoked, "deploy was issued by ci's dead generation 1")

        // Deleting an ancestor, and revoking the PAT itself (which wins).
        let fresh = try await mint("fresh", by: try Self.caller(t, revived.bearer, clock: clock))
        #expect(try await status(fresh.record.id) == .active)
        try await service.delete(id: ci.record.id, by: .localOperator)
        #expect(try await status(fresh.record.id) == .ancestorRevoked)
        _ = try await service.revoke(id: fresh.record.id, by: .localOperator)
        #expect(try await status(fresh.record.id) == .revoked)
    }

    @Test("only the owner undoes its own revoke; an admin's or the operator's needs pats:admin", arguments: RegistryBackend.allCases)
    func whoMayUndo(_ backend: RegistryBackend) async throws {
        let t = try await TestHome.make(backend)
        let clock = TestClock()
        let service = t.service(at: clock, catalog: try t.home.managementCatalog())
        let (_, frank) = try await Self.holder(t, service, owner: "frank", name: "manager",
                                               scopes: ["pats:revoke", "pats:regenerate", "clients:view"], clock: clock)
        let (leaked, _) = try await Self.holder(t, service, owner: "frank", name: "leaked", scopes: ["clients:view"], clock: clock)
        _ = try await service.revoke(id: leaked.record.id, by: .localOperator)
        let undo = await managementError { _ = try await service.regenerate(id: leaked.record.id, expiry: .after(TimeSpan(seconds: 60)), by: frank) }
        #expect(undo?.kind == .forbidden && undo?.scope == "pats:admin")
        _ = try await service.revoke(id: leaked.record.id, by: frank)
        #expect(try await t.registry.get(id: leaked.record.id)?.revokedBy == .localOperator, "the first revoker stays")
        let (own, _) = try await Self.holder(t, service, owner: "frank", name: "own", scopes: ["clients:view"], clock: clock)
        _ = try await service.revoke(id: own.record.id, by: frank)
        let back = try await service.regenerate(id: own.record.id, expiry: .after(TimeSpan(seconds: 60)), by: frank)
        #expect(back.record.revokedBy == nil && back.record.status(at: clock.now) == .active)
    }

    @Test("every change records its event, naming the actor, in the same transaction", arguments: RegistryBackend.allCases)
    func events(_ backend: RegistryBackend) async throws {
        let t = try await TestHome.make(backend)
        let clock = TestClock()
        let service = t.service(at: clock, catalog: try t.home.managementCatalog())
        let (pat, caller) = try await Self.holder(t, service, owner: "ann", name: "a", scopes: ["pats:revoke", "clients:view"], clock: clock)
        _ = try await service.revoke(id: pat.record.id, by: caller)
        let events = try await t.registry.read { tx in try await tx.events(after: 0, limit: 10) }
        #expect(events.map(\.name) == ["personalAccessToken.created", "personalAccessToken.revoked"])
        let revoked = try #require(try JSONSerialization.jsonObject(with: Data(events[1].payload)) as? [String: Any])
        let actor = try #require(revoked["actor"] as? [String: Any])
        #expect(actor["type"] as? String == "pat" && actor["id"] as? String == pat.record.id && actor["subject"] as? String == "ann")
        #expect((try JSONSerialization.jsonObject(with: Data(events[0].payload)) as? [String: Any])?["actor"] as? [String: String] == ["type": "cli"])
        #expect(try await t.registry.changeCounter() == 2)
        // A refused change records nothing.
        _ = await managementError { _ = try await service.revoke(id: pat.record.id, by: caller) }
        #expect(try await t.registry.changeCounter() == 2)
    }
}
