import Foundation
import NIOHTTP1
import PATHummingbird
import PATKit
import PATManagement
import PATRegistry
import PATServer
import PATStore
import Testing

/// The attacks of the 2026-12-01 security review (H1, H2, M1, L3) and the delegation rules of
/// issue 9, each through the management API on loopback. On the code before the management
/// service every one of these requests succeeded where it now fails (or vice versa).
@Suite("delegation never widens (management API)", .timeLimit(.minutes(5)))
struct DelegationAPITests {
    static let path = ManagementRoutes.basePath

    /// A PAT made by the admin over the API; its token and record.
    struct Minted {
        let id: String
        let token: String
        let object: [String: Any]
    }

    static func mint(_ api: String, by token: String, _ body: String,
                     sourceLocation: SourceLocation = #_sourceLocation) async throws -> Minted {
        let response = try await request(api, method: .POST, token: token, body: body)
        guard response.status == 201 else {
            Issue.record("create answered \(response.status): \(response.text)", sourceLocation: sourceLocation)
            throw TestFailure("create failed")
        }
        return Minted(id: try response.string("id"), token: try response.string("accessToken"), object: try response.object())
    }

    /// The rejection code of `token` against what the server published (nil: valid).
    static func published(_ home: ManagementHome, _ token: String, domain: String? = nil) throws -> PATValidationError.Code? {
        do {
            _ = try publishedValidator(home.home).validate(token, domain: domain)
            return nil
        } catch let error as PATValidationError {
            return error.code
        }
    }

    // MARK: H2

    /// H2: `pats:create` minted tokens for any domain and any non-`pats` scope.
    @Test func h2MintingStaysInsideTheCallersDomainAndScopes() async throws {
        let home = try await ManagementHome()
        try await withManagementServer(home) { url, _ in
            let api = url + Self.path
            let alice = try await Self.mint(api, by: home.adminToken, #"""
                {"name": "alice", "owner": "alice", "domain": "d1", "duration": "1h",
                 "scopes": ["pats:create", "pats:read", "clients:view", "channels:connect_client:ch-1"]}
                """#)
            // The review's request, verbatim: 201 with dom "d2" before.
            let attack = try await request(api, method: .POST, token: alice.token, body: #"""
                {"name": "x", "scopes": ["clients:delete", "domain:create_clients", "channels:delete"], "duration": "365d", "domain": "d2"}
                """#)
            #expect(attack.status == 403, "\(attack.text)")
            #expect(attack.errorMessage?.hasPrefix("domain:") == true, "\(attack.text)")

            // Rule 1: inside d1 only; no domain given means d1 (before: no domain at all).
            let otherDomain = try await request(api, method: .POST, token: alice.token,
                                                body: #"{"name": "d2", "scopes": ["clients:view"], "domain": "d2"}"#)
            #expect(otherDomain.status == 403)
            #expect(otherDomain.errorCode == "forbidden")
            let implicit = try await Self.mint(api, by: alice.token, #"{"name": "implicit", "scopes": ["clients:view"]}"#)
            #expect(implicit.object["domain"] as? String == "d1")
            #expect(try Self.published(home, implicit.token, domain: "d1") == nil)
            #expect(try Self.published(home, implicit.token, domain: "d2") == .wrongDomain, "a gate for d2 refuses it")

            // Rule 2: every scope covered by one of the caller's; the first one not covered is named.
            for scope in ["clients:delete", "domain:create_clients", "channels:connect_client", "channels:connect_client:ch-2", "pats:delete"] {
                let refused = try await request(api, method: .POST, token: alice.token,
                                                body: #"{"name": "s", "scopes": ["clients:view", "\#(scope)"]}"#)
                #expect(refused.status == 403, "\(scope): \(refused.text)")
                #expect(refused.errorCode == "scope_missing")
                let named = try Scope(parsing: scope).description
                #expect(refused.errorMessage?.contains(named) == true, "\(scope): \(refused.text)")
                #expect(refused.header("WWW-Authenticate")?.contains("scope=\"\(named)\"") == true)
            }
            let narrower = try await Self.mint(api, by: alice.token,
                                               #"{"name": "narrow", "scopes": ["clients:view:c-1", "channels:connect_client:ch-1"]}"#)
            #expect(narrower.object["scopes"] as? [String] == ["clients:view:c-1", "channels:connect_client:ch-1"])

            // A caller without a domain mints only domain-less tokens.
            let bob = try await Self.mint(api, by: home.adminToken,
                                          #"{"name": "bob", "owner": "bob", "scopes": ["pats:create", "clients:view:c-1"]}"#)
            let bobInD1 = try await request(api, method: .POST, token: bob.token,
                                            body: #"{"name": "x", "scopes": ["clients:view:c-1"], "domain": "d1"}"#)
            #expect(bobInD1.status == 403)
            let wider = try await request(api, method: .POST, token: bob.token, body: #"{"name": "x", "scopes": ["clients:view"]}"#)
            #expect(wider.status == 403, "clients:view:* is not covered by clients:view:c-1")
            let bobs = try await Self.mint(api, by: bob.token, #"{"name": "y", "scopes": ["clients:view:c-1"]}"#)
            #expect(bobs.object["domain"] is NSNull)

            // pats:admin may choose.
            let chosen = try await Self.mint(api, by: home.adminToken,
                                             #"{"name": "anywhere", "scopes": ["clients:delete"], "domain": "d9"}"#)
            #expect(chosen.object["domain"] as? String == "d9")
        }
    }

    // MARK: M1

    /// M1 (lifetime): a 1 h token minted 365 d tokens and regenerated itself to 365 d.
    @Test func m1NoTokenOutlivesItsParent() async throws {
        let home = try await ManagementHome()
        try await withManagementServer(home) { url, _ in
            let api = url + Self.path
            let alice = try await Self.mint(api, by: home.adminToken, #"""
                {"name": "alice", "owner": "alice", "duration": "1h", "scopes": ["pats:create", "pats:regenerate", "clients:view"]}
                """#)
            let parentExpiry = try #require(alice.object["expiresAt"] as? String)
            let long = try await request(api, method: .POST, token: alice.token,
                                         body: #"{"name": "long", "scopes": ["clients:view"], "duration": "365d"}"#)
            #expect(long.status == 400, "\(long.text)")
            #expect(long.errorMessage?.hasPrefix("duration:") == true)
            #expect(long.errorMessage?.contains(parentExpiry) == true, "the error names the parent's expiry: \(long.text)")
            let at = try await request(api, method: .POST, token: alice.token, body: #"""
                {"name": "at", "scopes": ["clients:view"], "expiresAt": "\#(Timestamp.now().adding(seconds: 7200).rfc3339)"}
                """#)
            #expect(at.status == 400)
            #expect(at.errorMessage?.hasPrefix("expiresAt:") == true)
            // Without a duration, the default lifetime (30 d) is cut to the parent's expiry.
            let capped = try await Self.mint(api, by: alice.token, #"{"name": "capped", "scopes": ["clients:view"]}"#)
            #expect(capped.object["expiresAt"] as? String == parentExpiry)
            // Regenerating itself (or anything) cannot go past its own expiry either.
            let itself = try await request("\(api)/\(alice.id)/regenerate", method: .POST, token: alice.token, body: #"{"duration": "365d"}"#)
            #expect(itself.status == 400, "\(itself.text)")
            #expect(try Self.published(home, alice.token) == nil, "the refused regenerate changed nothing")
            let shorter = try await request("\(api)/\(alice.id)/regenerate", method: .POST, token: alice.token, body: #"{"duration": "30m"}"#)
            #expect(shorter.status == 200, "\(shorter.text)")
            let renewed = try shorter.string("accessToken")
            #expect(try Self.published(home, renewed) == nil, "a self-regenerate keeps the token alive")
            #expect(try Self.published(home, alice.token) == .revoked)
        }
    }

    /// M1 (cascade) and the README's example: admin → team token → CI token; revoking,
    /// regenerating or deleting the team token kills the CI token (and what the CI token minted).
    @Test(arguments: ["revoke", "regenerate", "delete"])
    func m1RevokingAParentKillsWhatItMinted(_ action: String) async throws {
        let home = try await ManagementHome()
        try await withManagementServer(home) { url, _ in
            let api = url + Self.path
            let team = try await Self.mint(api, by: home.adminToken, #"""
                {"name": "team", "owner": "platform", "domain": "prod", "duration": "30d",
                 "scopes": ["pats:create", "pats:read", "clients:view", "channels:connect_client"]}
                """#)
            #expect((team.object["lineage"] as? [Any])?.isEmpty == true, "pats:admin issues roots")
            let ci = try await Self.mint(api, by: team.token, #"{"name": "ci", "duration": "7d", "scopes": ["pats:create", "channels:connect_client"]}"#)
            #expect(ci.object["lineage"] as? [String] == ["\(team.id).1"])
            let job = try await Self.mint(api, by: ci.token, #"{"name": "job", "duration": "1d", "scopes": ["channels:connect_client:ch-9"]}"#)
            #expect(job.object["lineage"] as? [String] == ["\(team.id).1", "\(ci.id).1"])
            for token in [team.token, ci.token, job.token] { #expect(try Self.published(home, token, domain: "prod") == nil) }

            switch action {
            case "revoke":
                #expect(try await request("\(api)/\(team.id)/revoke", method: .POST, token: home.adminToken).status == 200)
            case "regenerate":
                #expect(try await request("\(api)/\(team.id)/regenerate", method: .POST, token: home.adminToken,
                                          body: #"{"duration": "30d"}"#).status == 200)
            default:
                #expect(try await request("\(api)/\(team.id)", method: .DELETE, token: home.adminToken).status == 204)
            }
            // Offline: any verifier with the new list refuses the descendants.
            #expect(try Self.published(home, ci.token) == .ancestorRevoked)
            #expect(try Self.published(home, job.token) == .ancestorRevoked)
            // And the API itself: the CI token can no longer mint (before: 201).
            let again = try await request(api, method: .POST, token: ci.token, body: #"{"name": "again", "scopes": ["channels:connect_client"]}"#)
            #expect(again.status == 401, "\(again.text)")
            #expect(again.errorCode == "ancestor_revoked")
        }
    }

    /// M1 (who may undo): the owner brought back, with a regenerate, a PAT an admin had revoked.
    @Test func m1OnlyAnAdminUndoesAnAdminsRevoke() async throws {
        let home = try await ManagementHome()
        let leaked = try await home.issue(owner: "frank", name: "leaked", scopes: ["clients:view"])
        let cliRevoked = try await home.issue(owner: "frank", name: "cli-revoked", scopes: ["clients:view"])
        let manager = try await home.issue(owner: "frank", name: "manager",
                                           scopes: ["pats:revoke", "pats:regenerate", "pats:read", "clients:view"])
        _ = try await home.service.revoke(id: cliRevoked.record.id, by: .localOperator)
        try await withManagementServer(home) { url, _ in
            let api = url + Self.path
            #expect(try await request("\(api)/\(leaked.record.id)/revoke", method: .POST, token: home.adminToken).status == 200)
            for id in [leaked.record.id, cliRevoked.record.id] {
                let undo = try await request("\(api)/\(id)/regenerate", method: .POST, token: manager.bearer, body: #"{"duration": "1h"}"#)
                #expect(undo.status == 403, "\(undo.text)")
                #expect(undo.errorMessage?.contains("pats:admin") == true)
                #expect(try await request("\(api)/\(id)", method: .GET, token: manager.bearer).object()["status"] as? String == "revoked")
            }
            let shown = try await request("\(api)/\(leaked.record.id)", method: .GET, token: manager.bearer).object()
            #expect((shown["revokedBy"] as? [String: Any])?["subject"] as? String == "admin")
            // What the owner revoked itself, it may bring back.
            let own = try await home.issue(owner: "frank", name: "own", scopes: ["clients:view"])
            #expect(try await request("\(api)/\(own.record.id)/revoke", method: .POST, token: manager.bearer).status == 200)
            let back = try await request("\(api)/\(own.record.id)/regenerate", method: .POST, token: manager.bearer, body: #"{"duration": "1h"}"#)
            #expect(back.status == 200, "\(back.text)")
            // An admin's revoke on top of the owner's makes it the admin's to undo.
            #expect(try await request("\(api)/\(own.record.id)/revoke", method: .POST, token: manager.bearer).status == 200)
            #expect(try await request("\(api)/\(own.record.id)/revoke", method: .POST, token: home.adminToken).status == 200)
            #expect(try await request("\(api)/\(own.record.id)/regenerate", method: .POST, token: manager.bearer,
                                      body: #"{"duration": "1h"}"#).status == 403)
            // pats:admin can.
            #expect(try await request("\(api)/\(leaked.record.id)/regenerate", method: .POST, token: home.adminToken,
                                      body: #"{"duration": "1h"}"#).status == 200)
        }
    }

    // MARK: rule 4, details

    @Test func delegationIsAtMostFourDeepAndNeverReissuesAnAncestor() async throws {
        let home = try await ManagementHome()
        try await withManagementServer(home) { url, _ in
            let api = url + Self.path
            let scopes = #"["pats:create", "pats:regenerate", "pats:read", "clients:view"]"#
            var chain = [try await Self.mint(api, by: home.adminToken, #"{"name": "t0", "owner": "olga", "scopes": \#(scopes)}"#)]
            for depth in 1...4 {
                chain.append(try await Self.mint(api, by: chain[depth - 1].token, #"{"name": "t\#(depth)", "scopes": \#(scopes)}"#))
                #expect((chain[depth].object["lineage"] as? [String])?.count == depth)
            }
            let tooDeep = try await request(api, method: .POST, token: chain[4].token, body: #"{"name": "t5", "scopes": ["clients:view"]}"#)
            #expect(tooDeep.status == 403, "\(tooDeep.text)")
            #expect(tooDeep.errorMessage?.contains("levels of delegation") == true)
            let ancestor = try await request("\(api)/\(chain[1].id)/regenerate", method: .POST, token: chain[3].token, body: "{}")
            #expect(ancestor.status == 403, "re-issuing an ancestor would kill the caller: \(ancestor.text)")
            #expect(try Self.published(home, chain[4].token) == nil)
        }
    }

    /// The registry knows of a revocation before any list: a caller revoked by the CLI (not
    /// published yet, so the API's validator still accepts it) cannot mint.
    @Test func aCallerRevokedInTheRegistryCannotMintBeforeTheListSaysSo() async throws {
        let home = try await ManagementHome()
        let carol = try await home.issue(owner: "carol", name: "carol", scopes: ["pats:create", "pats:list", "clients:view"])
        try await withManagementServer(home, { $0.republishInterval = .seconds(3600) }) { url, _ in
            let api = url + Self.path
            _ = try await home.service.revoke(id: carol.record.id, by: .localOperator) // as `pat revoke`, no publish
            #expect(try await request(api, method: .GET, token: carol.bearer).status == 200, "the API's list does not know yet")
            let mint = try await request(api, method: .POST, token: carol.bearer, body: #"{"name": "late", "scopes": ["clients:view"]}"#)
            #expect(mint.status == 401, "\(mint.text)")
            #expect(mint.errorCode == "revoked")
            // A token the registry never recorded (as `pat issue` makes) cannot mint at all.
            let stateless = try Issuer(key: home.home.keyStore.signingKey()).issue(
                PATClaims(id: PATClaims.newID(), subject: "carol", issuedAt: Timestamp.now(), expiresAt: Timestamp.now().adding(seconds: 600),
                          scopes: try ScopeSet(parsing: ["pats:create", "clients:view"])))
            let unrecorded = try await request(api, method: .POST, token: stateless, body: #"{"name": "u", "scopes": ["clients:view"]}"#)
            #expect(unrecorded.status == 401, "\(unrecorded.text)")
        }
    }

    // MARK: H1

    /// H1: a caller whose `sub` is "e\u{301}ve" read, regenerated and deleted the PATs of
    /// "\u{e9}ve" and minted tokens with her exact `sub` bytes.
    @Test func h1EquivalentSpellingsAreDifferentOwners() async throws {
        let home = try await ManagementHome()
        let nfc = "\u{e9}ve", nfd = "e\u{301}ve"
        let victim = try await home.issue(owner: nfc, name: "victim", scopes: ["clients:view"], domain: "prod")
        // The attacker's token, made with the issuer key as `pat issue --subject` would.
        let attacker = try Issuer(key: home.home.keyStore.signingKey()).issue(
            PATClaims(id: PATClaims.newID(), subject: nfd, issuedAt: Timestamp.now().adding(seconds: -5),
                      expiresAt: Timestamp.now().adding(seconds: 3600),
                      scopes: try ScopeSet(parsing: ["pats:create", "pats:read", "pats:regenerate", "pats:delete", "pats:list", "clients:view"])))
        try await withManagementServer(home) { url, _ in
            let api = url + Self.path
            let create = try await request(api, method: .POST, token: attacker, body: #"""
                {"owner": "\u00e9ve", "name": "mine", "scopes": ["clients:view"], "domain": "prod"}
                """#)
            #expect(create.status == 403, "\(create.text)")
            #expect(try await request("\(api)/\(victim.record.id)", method: .GET, token: attacker).status == 404)
            #expect(try await request("\(api)/\(victim.record.id)/regenerate", method: .POST, token: attacker, body: "{}").status == 404)
            #expect(try await request("\(api)/\(victim.record.id)", method: .DELETE, token: attacker).status == 404)
            let deleteAll = try await request("\(api)?owner=%C3%A9ve", method: .DELETE, token: attacker)
            #expect(deleteAll.status == 403)
            let list = try await request("\(api)?owner=%C3%A9ve", method: .GET, token: attacker)
            #expect(list.status == 403)
            #expect(try Self.published(home, victim.bearer, domain: "prod") == nil, "the victim's token still works")
            let own = try await request(api, method: .POST, token: attacker, body: #"{"name": "own", "scopes": ["clients:view"]}"#)
            #expect(own.status == 400, "a sub that is not NFC cannot own PATs: \(own.text)")
            #expect(own.errorMessage?.hasPrefix("owner:") == true)

            // Non-NFC input is refused naming the field, even for pats:admin.
            for (field, body) in [("owner", #"{"owner": "e\u0301ve", "name": "n", "scopes": ["clients:view"]}"#),
                                  ("name", #"{"name": "caf\u0065\u0301", "scopes": ["clients:view"]}"#),
                                  ("domain", #"{"name": "n", "domain": "e\u0301", "scopes": ["clients:view"]}"#),
                                  ("name", #"{"name": "\u212Aelvin", "scopes": ["clients:view"]}"#)] {
                let refused = try await request(api, method: .POST, token: home.adminToken, body: body)
                #expect(refused.status == 400, "\(body): \(refused.text)")
                #expect(refused.errorMessage?.hasPrefix("\(field): is not in Unicode NFC") == true, "\(refused.text)")
            }
            let precomposed = try await request(api, method: .POST, token: home.adminToken,
                                                body: #"{"owner": "\u00e9ve", "name": "caf\u00e9", "scopes": ["clients:view"]}"#)
            #expect(precomposed.status == 201, "\(precomposed.text)")
        }
    }

    // MARK: L3

    /// L3 at the API: a description with ESC, CR, BEL is stored and answered exactly (JSON
    /// escapes it); names with control characters are refused.
    @Test func descriptionsTravelExactlyInJSON() async throws {
        let home = try await ManagementHome()
        try await withManagementServer(home) { url, _ in
            let api = url + Self.path
            let created = try await Self.mint(api, by: home.adminToken,
                                              #"{"name": "n", "description": "\u001b[2J\r\nfake: line\u001b]0;pwned\u0007", "scopes": ["clients:view"]}"#)
            #expect(created.object["description"] as? String == "\u{1b}[2J\r\nfake: line\u{1b}]0;pwned\u{07}")
            let shown = try await request("\(api)/\(created.id)", method: .GET, token: home.adminToken)
            #expect(shown.text.contains(#""description":"\u001b[2J\r\nfake: line\u001b]0;pwned\u0007""#), "\(shown.text)")
            #expect(!shown.body.contains(0x1B), "no raw ESC byte on the wire")
        }
    }
}
