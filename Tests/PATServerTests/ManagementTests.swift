import Foundation
import NIOHTTP1
import PATHummingbird
import PATKit
import PATManagement
import PATRegistry
import PATServer
import PATStore
import PATTestSupport
import Synchronization
import Testing

@Suite("the management API", .timeLimit(.minutes(5)))
struct ManagementTests {
    static let path = ManagementRoutes.basePath

    // MARK: endpoints

    @Test func createShowAndList() async throws {
        let home = try await ManagementHome()
        try await withManagementServer(home) { url, _ in
            let api = url + Self.path
            let created = try await request(api, method: .POST, token: home.adminToken, body: """
                {"name": "ci-deploy", "description": "CI deploys", "duration": "30d", "domain": "d1",
                 "scopes": ["clients:view", "channels:connect_client:ch-42"]}
                """)
            #expect(created.status == 201, "\(created.text)")
            let o = try created.object()
            let token = try #require(o["accessToken"] as? String)
            let id = try #require(o["id"] as? String)
            #expect(token.hasPrefix("v4.public."))
            #expect(o["name"] as? String == "ci-deploy")
            #expect(o["owner"] as? String == "admin", "the owner is the caller's sub")
            #expect(o["description"] as? String == "CI deploys")
            #expect(o["domain"] as? String == "d1")
            #expect(o["scopes"] as? [String] == ["clients:view:*", "channels:connect_client:ch-42"])
            #expect(o["status"] as? String == "active")
            #expect(o["generation"] as? Int == 1)
            let expiresAt = try #require((o["expiresAt"] as? String).flatMap { Timestamp(rfc3339: $0) })
            #expect(abs(expiresAt.seconds - Timestamp.now().adding(seconds: 30 * 86_400).seconds) < 120)
            #expect(o["createdAt"] is String)
            #expect(created.header("Location") == "\(Self.path)/\(id)")
            #expect(created.header("Cache-Control") == "no-store")
            #expect(created.header("Content-Type")?.hasPrefix("application/json") == true)
            #expect(try publishedValidator(home.home).validate(token, domain: "d1").id == id, "the new token validates")

            let shown = try await request("\(api)/\(id)", method: .GET, token: home.adminToken)
            #expect(shown.status == 200)
            #expect(try shown.object()["accessToken"] == nil)
            #expect(!shown.text.contains(token), "the token is shown at creation only")
            #expect(try shown.string("id") == id)

            let all = try await request(api, method: .GET, token: home.adminToken)
            #expect(all.status == 200)
            let items = try #require(try all.object()["personalAccessTokens"] as? [[String: Any]])
            #expect(Set(items.compactMap { $0["name"] as? String }) == ["bootstrap", "ci-deploy"])
            #expect(!all.text.contains(token))
            #expect(try all.object()["total"] as? Int == 2)

            let dead = try await request(api, method: .POST, token: home.adminToken,
                                         body: #"{"name": "dead", "scopes": ["clients:view"], "revoked": true}"#)
            #expect(dead.status == 201)
            #expect(try dead.object()["accessToken"] == nil, "a PAT created revoked comes without a token")
            #expect(try dead.string("status") == "revoked")

            let fixed = Timestamp.now().adding(seconds: 10 * 86_400)
            let atInstant = try await request(api, method: .POST, token: home.adminToken,
                                              body: #"{"name": "fixed", "scopes": ["clients:view"], "expiresAt": "\#(fixed.rfc3339)"}"#)
            #expect(atInstant.status == 201)
            #expect(try atInstant.string("expiresAt") == fixed.rfc3339)

            let revoked = try await request("\(api)?status=revoked", method: .GET, token: home.adminToken)
            #expect((try revoked.object()["personalAccessTokens"] as? [[String: Any]])?.compactMap { $0["name"] as? String } == ["dead"])
            let active = try await request("\(api)?status=active", method: .GET, token: home.adminToken)
            #expect(try active.object()["total"] as? Int == 3)
            let page = try await request("\(api)?status=all&limit=1&offset=1", method: .GET, token: home.adminToken)
            let pageItems = try #require(try page.object()["personalAccessTokens"] as? [[String: Any]])
            #expect(pageItems.count == 1)
            #expect(try page.object()["total"] as? Int == 4)
        }
    }

    @Test func scopeChangesReissueAndTheOldTokenIsRefusedAtOnce() async throws {
        let home = try await ManagementHome()
        try await withManagementServer(home) { url, _ in
            let api = url + Self.path
            let created = try await request(api, method: .POST, token: home.adminToken, body: """
                {"name": "alice-tools", "owner": "alice", "scopes": ["pats:read", "pats:update", "clients:view"]}
                """)
            #expect(created.status == 201, "\(created.text)")
            #expect(try created.string("owner") == "alice", "an admin creates for another owner")
            let id = try created.string("id")
            let first = try created.string("accessToken")
            #expect(try await request("\(api)/\(id)", method: .GET, token: first).status == 200)

            // A scope the token's own scopes cover (a narrower one) may be added by the token itself.
            let added = try await request("\(api)/\(id)/scopes", method: .POST, token: first, body: #"{"scopes": ["clients:view:c-1"]}"#)
            #expect(added.status == 200, "\(added.text)")
            let second = try added.string("accessToken")
            #expect(try added.object()["generation"] as? Int == 2)
            #expect(try added.object()["scopes"] as? [String] == ["pats:read:*", "pats:update:*", "clients:view:*", "clients:view:c-1"])

            // Right away, with no CLI run: the API's own validator refuses the old token…
            let old = try await request("\(api)/\(id)", method: .GET, token: first)
            #expect(old.status == 401)
            #expect(old.errorCode == "revoked")
            #expect(old.header("WWW-Authenticate")?.hasPrefix("Bearer error=\"invalid_token\"") == true)
            // …and so does anything reading what the server publishes (files and endpoints).
            #expect(validationCode { try publishedValidator(home.home).validate(first) } == .revoked)
            #expect(try publishedValidator(home.home).validate(second).generation == 2)
            let keys = try await http(url + "/.well-known/pat/keys")
            let list = try await http(url + "/.well-known/pat/revocations")
            let anchors = try #require(try home.home.keyStore.trustAnchors())
            let edge = Validator(keys: KeySet())
            try edge.install(try SignedKeySet(verifying: keys.body, anchors: anchors))
            try edge.installRevocations(list.body)
            do throws(PATValidationError) {
                _ = try edge.validate(first)
                Issue.record("the served list should refuse the superseded token")
            } catch {
                #expect(error.code == .revoked)
            }
            #expect(try edge.validate(second).id == id)

            let removed = try await request("\(api)/\(id)/scopes", method: .DELETE, token: second, body: #"{"scopes": ["clients:view"]}"#)
            #expect(removed.status == 200, "\(removed.text)")
            let third = try removed.string("accessToken")
            #expect(try removed.object()["scopes"] as? [String] == ["pats:read:*", "pats:update:*", "clients:view:c-1"])
            #expect(try await request("\(api)/\(id)", method: .GET, token: second).status == 401)

            let cleared = try await request("\(api)/\(id)/scopes/all", method: .DELETE, token: third)
            #expect(cleared.status == 200, "\(cleared.text)")
            #expect(try cleared.object()["scopes"] as? [String] == [])
            #expect(try cleared.object()["generation"] as? Int == 4)
            let fourth = try cleared.string("accessToken")
            let powerless = try await request("\(api)/\(id)", method: .GET, token: fourth)
            #expect(powerless.status == 403, "the cleared token grants nothing")
            #expect(powerless.text.contains("pats:read"))
        }
    }

    @Test func revokeRegenerateDeleteAndDeleteAll() async throws {
        let home = try await ManagementHome()
        let bob = try await home.issue(owner: "bob", name: "bob-admin-of-own",
                                       scopes: ["pats:create", "pats:read", "pats:list", "pats:revoke", "pats:regenerate", "pats:delete",
                                                "clients:view"], seconds: 30 * 86_400)
        try await withManagementServer(home) { url, _ in
            let api = url + Self.path
            let token = bob.bearer
            let made = try await request(api, method: .POST, token: token, body: #"{"name": "deploy", "scopes": ["clients:view"]}"#)
            #expect(made.status == 201, "\(made.text)")
            let id = try made.string("id")
            let deployToken = try made.string("accessToken")

            let revoked = try await request("\(api)/\(id)/revoke", method: .POST, token: token)
            #expect(revoked.status == 200, "\(revoked.text)")
            #expect(try revoked.string("status") == "revoked")
            #expect(try revoked.object()["revokedAt"] is String)
            #expect(validationCode { try publishedValidator(home.home).validate(deployToken) } == .revoked)
            let again = try await request("\(api)/\(id)/revoke", method: .POST, token: token, body: "{}")
            #expect(again.status == 200, "revoking twice is harmless")

            let regenerated = try await request("\(api)/\(id)/regenerate", method: .POST, token: token, body: #"{"duration": "7d"}"#)
            #expect(regenerated.status == 200, "\(regenerated.text)")
            #expect(try regenerated.string("status") == "active")
            #expect(try regenerated.object()["generation"] as? Int == 2)
            let fresh = try regenerated.string("accessToken")
            let expires = try #require(Timestamp(rfc3339: try regenerated.string("expiresAt")))
            #expect(abs(expires.seconds - Timestamp.now().adding(seconds: 7 * 86_400).seconds) < 120)
            #expect(try publishedValidator(home.home).validate(fresh).generation == 2)

            let at = Timestamp.now().adding(seconds: 3 * 86_400)
            let byInstant = try await request("\(api)/\(id)/regenerate", method: .POST, token: token,
                                              body: #"{"expiresAt": "\#(at.rfc3339)"}"#)
            #expect(byInstant.status == 200)
            #expect(try byInstant.string("expiresAt") == at.rfc3339)
            let latest = try byInstant.string("accessToken")

            let deleted = try await request("\(api)/\(id)", method: .DELETE, token: token)
            #expect(deleted.status == 204)
            #expect(try await request("\(api)/\(id)", method: .GET, token: token).status == 404)
            #expect(try await request("\(api)/\(id)", method: .DELETE, token: token).status == 404)
            #expect(validationCode { try publishedValidator(home.home).validate(latest) } == .revoked, "deleted: refused as revoked")

            _ = try await request(api, method: .POST, token: token, body: #"{"name": "one", "scopes": ["clients:view"]}"#)
            _ = try await request(api, method: .POST, token: token, body: #"{"name": "two", "scopes": ["clients:view"]}"#)
            let all = try await request(api, method: .DELETE, token: token)
            #expect(all.status == 200, "\(all.text)")
            #expect(try all.object()["count"] as? Int == 3, "one, two, and the caller's own PAT")
            #expect((try all.object()["deleted"] as? [String])?.contains(bob.record.id) == true)
            let after = try await request(api, method: .GET, token: token)
            #expect(after.status == 401, "the caller's own token went with its PATs")
            #expect(after.errorCode == "revoked")

            let admin = try await request(api, method: .GET, token: home.adminToken)
            #expect(try admin.object()["total"] as? Int == 1, "another owner's PATs stay")
        }
    }

    // MARK: errors

    @Test func invalidBodiesAreRefusedNamingTheField() async throws {
        let home = try await ManagementHome()
        try await withManagementServer(home) { url, _ in
            let api = url + Self.path
            let cases: [(String?, String)] = [
                (nil, "body:"),
                ("{\"name\": ", "body: not valid JSON"),
                (#"{"name": "a", "name": "b", "scopes": ["clients:view"]}"#, "duplicate key"),
                ("[1, 2]", "body: must be a JSON object"),
                (#"{"name": "a", "scope": ["clients:view"]}"#, "scope: unknown field"),
                (#"{"scopes": ["clients:view"]}"#, "name: is required"),
                (#"{"name": 42, "scopes": ["clients:view"]}"#, "name: must be a string"),
                (#"{"name": "", "scopes": ["clients:view"]}"#, "name: must be 1–256 characters"),
                (#"{"name": "a\tb", "scopes": ["clients:view"]}"#, "name: must be"),
                (#"{"name": "a", "scopes": []}"#, "scopes: must hold at least one scope"),
                (#"{"name": "a", "scopes": "clients:view"}"#, "scopes: must be an array"),
                (#"{"name": "a", "scopes": ["clients:view", "Clients"]}"#, "scopes[1]:"),
                (#"{"name": "a", "scopes": ["widgets:spin"]}"#, "scopes[0]: invalid scope: unknown entity type"),
                (#"{"name": "a", "scopes": ["clients:view"], "duration": "soon"}"#, "duration: invalid duration"),
                (#"{"name": "a", "scopes": ["clients:view"], "duration": "5y"}"#, "duration: a lifetime"),
                (#"{"name": "a", "scopes": ["clients:view"], "expiresAt": "tomorrow"}"#, "expiresAt: must be an RFC 3339"),
                (#"{"name": "a", "scopes": ["clients:view"], "expiresAt": "2001-01-01T00:00:00Z"}"#, "expiresAt: the expiry"),
                (#"{"name": "a", "scopes": ["clients:view"], "duration": "1d", "expiresAt": "2030-01-01T00:00:00Z"}"#, "duration: give either"),
                (#"{"name": "a", "scopes": ["clients:view"], "revoked": "yes"}"#, "revoked: must be true or false"),
                (#"{"name": "a", "scopes": ["clients:view"], "description": 7}"#, "description: must be a string"),
            ]
            for (body, expected) in cases {
                let response = try await request(api, method: .POST, token: home.adminToken, body: body)
                #expect(response.status == 400, "\(body ?? "(none)"): \(response.text)")
                #expect(response.errorCode == "invalid_request", "\(body ?? "(none)")")
                #expect(response.errorMessage?.contains(expected) == true, "\(body ?? "(none)"): \(response.errorMessage ?? response.text)")
            }
            let huge = #"{"name": "a", "scopes": ["clients:view"], "description": ""# + String(repeating: "x", count: 70_000) + #""}"#
            let tooLarge = try await request(api, method: .POST, token: home.adminToken, body: huge)
            #expect(tooLarge.status == 413)
            #expect(tooLarge.errorCode == "too_large")

            for (query, field) in [("status=bogus", "status:"), ("colour=red", "colour: unknown query parameter"),
                                   ("limit=0", "limit:"), ("offset=-1", "offset:")] {
                let response = try await request("\(api)?\(query)", method: .GET, token: home.adminToken)
                #expect(response.status == 400, "\(query)")
                #expect(response.errorMessage?.hasPrefix(field) == true, "\(query): \(response.text)")
            }
            let created = try await request(api, method: .POST, token: home.adminToken, body: #"{"name": "x", "scopes": ["clients:view"]}"#)
            let id = try created.string("id")
            let extra = try await request("\(api)/\(id)/revoke", method: .POST, token: home.adminToken, body: #"{"why": "because"}"#)
            #expect(extra.status == 400)
            #expect(extra.errorMessage?.hasPrefix("why: unknown field") == true)
            let noScopes = try await request("\(api)/\(id)/scopes", method: .POST, token: home.adminToken, body: "{}")
            #expect(noScopes.status == 400)
            #expect(noScopes.errorMessage?.hasPrefix("scopes: is required") == true)
        }
    }

    @Test func missingOrInvalidTokensGet401WithAChallenge() async throws {
        let home = try await ManagementHome()
        let stranger = try Issuing()
        try await withManagementServer(home) { url, _ in
            let api = url + Self.path
            let none = try await request(api, method: .GET)
            #expect(none.status == 401)
            #expect(none.errorCode == "missing_token")
            #expect(none.header("WWW-Authenticate") == "Bearer realm=\"PATKit\"")

            let garbage = try await request(api, method: .GET, token: "v4.public.nonsense")
            #expect(garbage.status == 401)
            #expect(garbage.errorCode == "malformed")
            #expect(garbage.header("WWW-Authenticate")?.hasPrefix("Bearer error=\"invalid_token\"") == true)

            let foreign = try await request(api, method: .POST, token: try stranger.token(subject: "admin", scopes: ["pats:admin"]),
                                            body: #"{"name": "x", "scopes": ["clients:view"]}"#)
            #expect(foreign.status == 401, "a token signed by another key is refused")
            #expect(foreign.errorCode == "unknown_key")
        }
    }

    @Test func missingScopesGet403NamingThem() async throws {
        let home = try await ManagementHome()
        let viewer = try await home.issue(owner: "carol", name: "viewer", scopes: ["clients:view"])
        let creator = try await home.issue(owner: "carol", name: "creator", scopes: ["pats:create", "pats:update", "clients:view"])
        let narrow = try await home.issue(owner: "carol", name: "narrow", scopes: ["pats:read:\(viewer.record.id)"])
        let mighty = try await home.issue(owner: "carol", name: "mighty", scopes: ["pats:admin", "clients:view"])
        try await withManagementServer(home) { url, _ in
            let api = url + Self.path
            let create = try await request(api, method: .POST, token: viewer.bearer, body: #"{"name": "x", "scopes": ["clients:view"]}"#)
            #expect(create.status == 403)
            #expect(create.errorCode == "scope_missing")
            #expect(create.errorMessage?.contains("pats:create") == true)
            #expect(create.header("WWW-Authenticate") == "Bearer error=\"insufficient_scope\", scope=\"pats:create\"")
            #expect(try await request(api, method: .GET, token: viewer.bearer).errorMessage?.contains("pats:list") == true)

            // A scope naming one PAT grants that PAT only.
            #expect(try await request("\(api)/\(viewer.record.id)", method: .GET, token: narrow.bearer).status == 200)
            let other = try await request("\(api)/\(narrow.record.id)", method: .GET, token: narrow.bearer)
            #expect(other.status == 403)
            #expect(other.errorMessage?.contains("pats:read") == true)

            // Another owner, or owners' lists, need pats:admin.
            let forDave = try await request(api, method: .POST, token: creator.bearer,
                                            body: #"{"name": "x", "owner": "dave", "scopes": ["clients:view"]}"#)
            #expect(forDave.status == 403)
            #expect(forDave.errorMessage?.contains("pats:admin") == true)
            let own = try await request(api, method: .POST, token: creator.bearer,
                                        body: #"{"name": "mine", "owner": "carol", "scopes": ["clients:view"]}"#)
            #expect(own.status == 201, "naming oneself as owner is fine")

            // No handing out management rights one does not hold.
            let escalate = try await request(api, method: .POST, token: creator.bearer,
                                             body: #"{"name": "boss", "scopes": ["pats:admin"]}"#)
            #expect(escalate.status == 403)
            #expect(escalate.errorMessage?.contains("pats:admin") == true)
            let delegate = try await request(api, method: .POST, token: creator.bearer,
                                             body: #"{"name": "helper", "scopes": ["pats:create"]}"#)
            #expect(delegate.status == 201, "a held pats scope may be handed on: \(delegate.text)")
            let reissue = try await request("\(api)/\(mighty.record.id)/scopes", method: .DELETE, token: creator.bearer,
                                            body: #"{"scopes": ["clients:view"]}"#)
            #expect(reissue.status == 403, "re-issuing a PAT would hand out its pats:admin")
            #expect(reissue.errorMessage?.contains("pats:admin") == true)
        }
    }

    @Test func anotherOwnersPATIsNotFound() async throws {
        let home = try await ManagementHome()
        let carol = try await home.issue(owner: "carol", name: "carol", scopes: ["pats:read", "pats:revoke", "pats:delete", "pats:list"])
        let dave = try await home.issue(owner: "dave", name: "dave", scopes: ["clients:view"])
        try await withManagementServer(home) { url, _ in
            let api = url + Self.path
            let unknown = try await request("\(api)/\(PATClaims.newID())", method: .GET, token: carol.bearer)
            #expect(unknown.status == 404)
            #expect(unknown.errorCode == "not_found")
            for (method, suffix) in [(HTTPMethod.GET, ""), (.POST, "/revoke"), (.DELETE, "")] {
                let response = try await request("\(api)/\(dave.record.id)\(suffix)", method: method, token: carol.bearer)
                #expect(response.status == 404, "\(method) \(suffix)")
                #expect(response.errorCode == "not_found")
                #expect(response.errorMessage == "no personal access token with id \"\(dave.record.id)\"")
            }
            let list = try await request("\(api)?owner=carol", method: .GET, token: carol.bearer)
            #expect(list.status == 200)
            #expect(!list.text.contains(dave.record.id))
            #expect(try await request("\(api)?owner=dave", method: .GET, token: carol.bearer).status == 403)

            let asAdmin = try await request("\(api)/\(dave.record.id)", method: .GET, token: home.adminToken)
            #expect(asAdmin.status == 200, "pats:admin sees every owner")
            let davesList = try await request("\(api)?owner=dave", method: .GET, token: home.adminToken)
            #expect(try davesList.object()["total"] as? Int == 1)
            let adminRevokes = try await request("\(api)/\(dave.record.id)/revoke", method: .POST, token: home.adminToken)
            #expect(adminRevokes.status == 200)
        }
    }

    @Test func conflictsGet409() async throws {
        let home = try await ManagementHome()
        try await withManagementServer(home) { url, _ in
            let api = url + Self.path
            let body = #"{"name": "deploy", "scopes": ["clients:view"]}"#
            #expect(try await request(api, method: .POST, token: home.adminToken, body: body).status == 201)
            let duplicate = try await request(api, method: .POST, token: home.adminToken, body: body)
            #expect(duplicate.status == 409)
            #expect(duplicate.errorCode == "name_taken")
            #expect(duplicate.errorMessage?.contains("\"deploy\"") == true)
            let elsewhere = try await request(api, method: .POST, token: home.adminToken,
                                              body: #"{"name": "deploy", "owner": "erin", "scopes": ["clients:view"]}"#)
            #expect(elsewhere.status == 201, "names are unique per owner")

            let id = try elsewhere.string("id")
            let held = try await request("\(api)/\(id)/scopes", method: .POST, token: home.adminToken, body: #"{"scopes": ["clients:view"]}"#)
            #expect(held.status == 409, "adding a held scope changes nothing")
            _ = try await request("\(api)/\(id)/revoke", method: .POST, token: home.adminToken)
            let inactive = try await request("\(api)/\(id)/scopes", method: .POST, token: home.adminToken, body: #"{"scopes": ["clients:update"]}"#)
            #expect(inactive.status == 409)
            #expect(inactive.errorMessage?.contains("regenerate") == true)
        }
    }

    @Test func callersOverTheirRateGet429WithRetryAfter() async throws {
        let home = try await ManagementHome()
        let other = try await home.issue(owner: "frank", name: "lister", scopes: ["pats:list"])
        try await withManagementServer(home, { $0.rateLimit = RateLimiter.Policy(capacity: 3, refillPerSecond: 0.05) }) { url, _ in
            let api = url + Self.path
            for _ in 0..<3 { #expect(try await request(api, method: .GET, token: home.adminToken).status == 200) }
            let limited = try await request(api, method: .GET, token: home.adminToken)
            #expect(limited.status == 429)
            #expect(limited.errorCode == "rate_limited")
            let retry = try #require(limited.header("Retry-After").flatMap { Int($0) })
            #expect(retry >= 1 && retry <= 20)
            #expect(try await request(api, method: .GET, token: other.bearer).status == 200, "buckets are per caller")
        }
    }

    @Test func storeFailuresAre500WithoutInternals() async throws {
        let home = try await ManagementHome()
        let logs = LogSink()
        try await withManagementServer(home, logger: logs.logger()) { url, _ in
            let api = url + Self.path
            home.store.failWrites.store(true, ordering: .relaxed)
            let failed = try await request(api, method: .POST, token: home.adminToken, body: #"{"name": "x", "scopes": ["clients:view"]}"#)
            #expect(failed.status == 500)
            #expect(failed.errorCode == "internal")
            #expect(failed.errorMessage == "internal error")
            #expect(!failed.text.contains("secret-volume") && !failed.text.contains("SQLITE"))
            #expect(logs.all.contains { $0.contains(FlakyStore.internalDetail) }, "the cause is logged")
            home.store.failWrites.store(false, ordering: .relaxed)
            #expect(try await request(api, method: .POST, token: home.adminToken, body: #"{"name": "x", "scopes": ["clients:view"]}"#).status == 201)
        }
    }

    // MARK: republishing

    @Test func theTimerPublishesChangesMadeOutsideTheAPI() async throws {
        let home = try await ManagementHome()
        let victim = try await home.issue(owner: "gina", name: "victim", scopes: ["pats:list"])
        try await withManagementServer(home, { $0.republishInterval = .milliseconds(500) }) { url, management in
            let api = url + Self.path
            #expect(try await request(api, method: .GET, token: victim.bearer).status == 200)
            // As `pat revoke` would, without `pat publish`.
            _ = try await home.service.revoke(id: victim.record.id, by: .localOperator)
            // Publishes are serialized. One may have been under way while the revoke committed and
            // miss it; the one after the next (M + 2, M read now) began after the revoke: it has it.
            let before = try #require(management.republisher.lastResult)
            let republisher = management.republisher
            try await awaitEvent("the timer publishes list \(before.sequence + 2)") {
                try await republisher.waitUntilPublished(sequence: before.sequence + 2)
            }
            // The event is the publish: the files and the API's validator hold the new list now.
            #expect(validationCode { try publishedValidator(home.home).validate(victim.bearer) } == .revoked,
                    "the timer republished the CLI's change")
            let after = try #require(management.republisher.lastResult)
            #expect(after.sequence > before.sequence)
            let refused = try await request(api, method: .GET, token: victim.bearer)
            #expect(refused.status == 401, "the API's validator learned the new list")
            #expect(refused.errorCode == "revoked")
        }
    }

    @Test func concurrentChangesAreAllPublished() async throws {
        let home = try await ManagementHome()
        var issued: [IssuedPAT] = []
        for index in 0..<6 { issued.append(try await home.issue(owner: "hal", name: "p\(index)", scopes: ["pats:read"])) }
        try await withManagementServer(home) { url, management in
            let api = url + Self.path
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for pat in issued {
                    group.addTask { try await request("\(api)/\(pat.record.id)/revoke", method: .POST, token: home.adminToken).status }
                }
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
            #expect(statuses == Array(repeating: 200, count: issued.count))
            let published = try publishedValidator(home.home)
            for pat in issued {
                #expect(try await request("\(api)/\(pat.record.id)", method: .GET, token: pat.bearer).status == 401)
                #expect(validationCode { try published.validate(pat.bearer) } == .revoked)
            }
            #expect(management.validator.revocations?.sequence == management.republisher.lastResult?.sequence,
                    "the API holds the newest list")
        }
    }

    /// The list never goes stale because the timer republishes at half the next-update
    /// interval: each timer round writes a list whose next-update lies a whole interval ahead,
    /// so the list in place is always younger than its next-update by the time the next round
    /// is due. Checked on every publish of several rounds (events, not sleeps) with the lists'
    /// own times; whether a loaded machine keeps to the timer is measured by scripts, not here.
    @Test func theServerPublishesAtStartAndTheListIsNeverStale() async throws {
        let home = try await ManagementHome()
        try await withManagementServer(home, { $0.nextUpdateInterval = TimeSpan(seconds: 2) }) { _, management in
            let republisher = management.republisher
            let first = try #require(republisher.lastResult)
            #expect(republisher.interval == .seconds(1), "republished at half the next-update interval")
            var previous = first
            for round in 1...3 {
                let target = previous.sequence + 1
                try await awaitEvent("timer round \(round) publishes list \(target)") {
                    try await republisher.waitUntilPublished(sequence: target)
                }
                let result = try #require(republisher.lastResult)
                #expect(result.sequence >= target)
                #expect(result.nextUpdate.seconds - result.issuedAt.seconds == 2, "each list is good for the whole interval")
                // Due again after `interval`, i.e. 1 s before this list's next-update.
                let dueAgain = result.issuedAt.adding(seconds: Int64(republisher.interval.components.seconds))
                let validator = try publishedValidator(home.home)
                let held = try #require(validator.revocations)
                #expect(held.sequence >= result.sequence)
                #expect(!held.isStale(at: dueAgain, grace: 0), "the list in place outlives the next timer round")
                previous = result
            }
        }
    }

    // MARK: pieces

    @Test func theManagementCatalogAddsPatsToTheHomeCatalog() throws {
        let dir = try TempDir()
        let plain = try dir.home.catalog(named: "management")
        #expect(plain.operations(for: "pats") == PATHome.managementOperations)
        #expect(plain.operations(for: "clients").contains("view"))
        try plain.check(try Scope(parsing: "pats:admin"))

        try SecureFile.writeAtomically(dir.home.catalogPath, Array(#"{"entities": {"widgets": ["spin"]}}"#.utf8))
        let custom = try dir.home.catalog(named: "management")
        #expect(custom.operations(for: "widgets") == ["spin"])
        #expect(custom.operations(for: "clients").isEmpty)
        #expect(throws: PATKitError.self) { try custom.check(try Scope(parsing: "clients:view")) }
        try custom.check(try Scope(parsing: "pats:create"))
    }

    @Test func rateLimiterBuckets() {
        let time = TestClock()
        let limiter = RateLimiter(policy: RateLimiter.Policy(capacity: 2, refillPerSecond: 0.5), maxKeys: 3, now: { time.now })
        #expect(limiter.acquire("a") == nil)
        #expect(limiter.acquire("a") == nil)
        #expect(limiter.acquire("a") == 2, "one request regained in 2 s")
        #expect(limiter.acquire("b") == nil, "per key")
        time.advance(2)
        #expect(limiter.acquire("a") == nil)
        #expect(limiter.acquire("a") == 2)
        for key in ["c", "d", "e"] { _ = limiter.acquire(key) }
        #expect(limiter.keyCount <= 3, "bounded")
        // Identity is bytes: an equivalent spelling is another caller with its own bucket.
        let bytes = RateLimiter(policy: RateLimiter.Policy(capacity: 1, refillPerSecond: 0.001), now: { time.now })
        #expect(bytes.acquire("\u{e9}ve") == nil)
        #expect(bytes.acquire("\u{e9}ve") != nil)
        #expect(bytes.acquire("e\u{301}ve") == nil, "e\u{301}ve does not spend \u{e9}ve's requests")
    }
}

/// A settable clock for the rate limiter.
final class TestClock: Sendable {
    private let seconds = Mutex<Double>(0)
    var now: Double { seconds.withLock { $0 } }
    func advance(_ delta: Double) { seconds.withLock { $0 += delta } }
}
