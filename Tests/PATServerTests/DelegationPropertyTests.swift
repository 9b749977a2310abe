import Foundation
import NIOHTTP1
import PATKit
import PATManagement
import PATRegistry
import PATServer
import PATTestSupport
import Testing

/// The property of issue 9, tested through the management API on loopback: for random chains
/// of mint / revoke / regenerate / delete (a fixed seed, 1,000 steps), every token that a
/// `Validator` accepts against the freshly published list has scopes covered by, a domain
/// equal to, and an expiry no later than each of its ancestors — and every ancestor of an
/// accepted token is accepted too (no token of a revoked ancestor validates).
@Suite("delegation never widens: random chains (property)", .timeLimit(.minutes(15)))
struct DelegationPropertyTests {
    static let seed: UInt64 = 0x2026_1201_0009
    static let steps = 1_000

    /// A token the test was given, with its claims (decoded from the token itself).
    struct Known {
        let token: String
        let claims: PATClaims
        var key: String { "\(claims.id).\(claims.generation)" }
    }

    static let scopeUniverse = ["clients:view", "clients:view:c-1", "clients:view:c-2", "clients:update", "channels:connect_client",
                                "channels:connect_client:ch-1", "groups:view", "pats:create", "pats:regenerate", "pats:revoke",
                                "pats:delete", "pats:read"]
    static let domains: [String?] = ["d1", "d2", nil]

    static func claims(of token: String) throws -> PATClaims {
        let parts = try PASETOv4Public.parse(token)
        return try PATClaims(json: parts.message)
    }

    @Test func randomChainsNeverWiden() async throws {
        var random = SplitMix64(seed: Self.seed)
        let home = try await ManagementHome()
        let adminClaims = try Self.claims(of: home.adminToken)
        try await withManagementServer(home) { url, _ in
            let api = url + ManagementRoutes.basePath
            var known: [String: Known] = [:]        // "jti.gen" → token
            var order: [String] = []                // keys in the order they were issued
            var ids: [String] = []                  // every PAT id the API returned
            // The test's own model of who issued what: key → the chain of tokens above it (the
            // caller that minted or re-issued it, that caller's chain above it, …). pats:admin
            // issues roots; a token re-issuing its own PAT keeps its chain.
            var chains: [String: [String]] = [:]
            func remember(_ token: String, issuedBy caller: String?) throws {
                let claims = try Self.claims(of: token)
                let entry = Known(token: token, claims: claims)
                if known[entry.key] == nil { order.append(entry.key) }
                known[entry.key] = entry
                if !ids.contains(claims.id) { ids.append(claims.id) }
                guard let caller, caller != home.adminToken, let parent = try? Self.claims(of: caller) else {
                    chains[entry.key] = []
                    return
                }
                let parentKey = "\(parent.id).\(parent.generation)"
                chains[entry.key] = parent.id == claims.id ? chains[parentKey, default: []] : chains[parentKey, default: []] + [parentKey]
            }
            func pick<T>(_ items: [T]) -> T { items[Int(random.next() % UInt64(items.count))] }
            func chance(_ percent: UInt64) -> Bool { random.next() % 100 < percent }
            /// Mostly scopes the caller holds (or narrower ones), sometimes anything: both paths run.
            func scopesJSON(for caller: Known?) -> String {
                let held = caller?.claims.scopes.map(\.description) ?? Self.scopeUniverse
                var chosen: [String] = []
                if held.contains("pats:create:*"), chance(60) { chosen.append("pats:create") }
                for _ in 0..<(1 + Int(random.next() % 3)) {
                    if chance(80), !held.isEmpty {
                        let scope = pick(held)
                        chosen.append(scope.hasSuffix(":*") && chance(25) ? String(scope.dropLast()) + pick(["c-1", "ch-1", "x"]) : scope)
                    } else {
                        chosen.append(pick(Self.scopeUniverse))
                    }
                }
                return "[" + chosen.map { "\"\($0)\"" }.joined(separator: ",") + "]"
            }

            // Roots: issued by pats:admin (no lineage), for three owners.
            for index in 0..<6 {
                let domain = pick(Self.domains).map { #", "domain": "\#($0)""# } ?? ""
                let body = #"{"name": "root\#(index)", "owner": "owner\#(index % 3)", "duration": "\#(1 + index)d", "scopes": ["pats:create", "pats:regenerate", "pats:revoke", "pats:read", "clients:view", "channels:connect_client"]\#(domain)}"#
                let response = try await request(api, method: .POST, token: home.adminToken, body: body)
                #expect(response.status == 201, "\(response.text)")
                try remember(try response.string("accessToken"), issuedBy: nil)
            }

            let anchors = try #require(try home.home.keyStore.trustAnchors())
            let validator = Validator(keys: try SignedKeySet(verifying: SecureFile.read(home.home.publishedKeysPath,
                                                                                       maxBytes: SignedKeySet.maxDocumentBytes),
                                                             anchors: anchors).keys)
            var outcomes: [Int: Int] = [:]
            var accepted = 0, refusedByLineage = 0
            var live = order                        // keys that validated at the last check
            for step in 0..<Self.steps {
                // Mostly live callers, sometimes dead ones, sometimes the admin.
                let actor = known[chance(85) && !live.isEmpty ? pick(live) : pick(order)]
                let admin = chance(8)
                let caller = admin ? home.adminToken : actor?.token ?? home.adminToken
                let target = chance(70) && !live.isEmpty ? known[pick(live)]?.claims.id ?? pick(ids) : pick(ids)
                /// A live token of the target's owner holding `pats:<operation>`, most of the time.
                func manager(_ operation: String) -> String {
                    guard chance(75), let owner = ids.isEmpty ? nil : known.values.first(where: { $0.claims.id == target })?.claims.subject
                    else { return caller }
                    let holders = live.compactMap { known[$0] }.filter {
                        $0.claims.subject == owner && $0.claims.scopes.allows(entity: "pats", operation: operation, id: target)
                    }
                    return holders.isEmpty ? (chance(50) ? home.adminToken : caller) : pick(holders).token
                }
                let response: HTTPResult
                var used = caller
                switch random.next() % 100 {
                case 0..<50: // mint, mostly by a live token that may (pats:create)
                    let minters = live.compactMap { known[$0] }.filter { $0.claims.scopes.allows(entity: "pats", operation: "create", id: nil) }
                    let minter = !admin && chance(80) && !minters.isEmpty ? pick(minters) : actor
                    let caller = admin ? home.adminToken : minter?.token ?? home.adminToken
                    var body = #"{"name": "p\#(step)", "scopes": \#(scopesJSON(for: admin ? nil : minter))"#
                    if chance(30) { body += pick(Self.domains).map { #", "domain": "\#($0)""# } ?? #", "domain": null"# }
                    if chance(50) { body += #", "duration": "\#(pick(["30m", "2h", "1d", "3d", "10d"]))""# }
                    used = caller
                    response = try await request(api, method: .POST, token: caller, body: body + "}")
                case 50..<65: // revoke
                    used = manager("revoke")
                    response = try await request("\(api)/\(target)/revoke", method: .POST, token: used)
                case 65..<88: // regenerate
                    let body = chance(50) ? #"{"duration": "\#(pick(["1h", "1d", "5d"]))"}"# : "{}"
                    used = manager("regenerate")
                    response = try await request("\(api)/\(target)/regenerate", method: .POST, token: used, body: body)
                default: // delete
                    used = manager("delete")
                    response = try await request("\(api)/\(target)", method: .DELETE, token: used)
                }
                outcomes[response.status, default: 0] += 1
                #expect(response.status != 500, "step \(step): \(response.text)")
                if let token = try? response.string("accessToken") { try remember(token, issuedBy: used) }

                // The property, against the list the server has just published.
                try validator.installRevocations(SecureFile.read(home.home.publishedRevocationsPath, maxBytes: RevocationList.defaultMaxBytes))
                live = []
                for key in order {
                    guard let entry = known[key] else { continue }
                    let pat: VerifiedPAT
                    do throws(PATValidationError) { pat = try validator.validate(entry.token) } catch {
                        if error.code == .ancestorRevoked { refusedByLineage += 1 }
                        continue
                    }
                    accepted += 1
                    live.append(key)
                    #expect(pat.claims.lineage.count <= PATAncestor.maxDepth)
                    let chain = chains[key, default: []]
                    // `par` names each ancestor by its revocation-list key.
                    let expected = try chain.map { link -> String in
                        let parts = link.split(separator: ".")
                        return try PATAncestor(id: String(parts[0]), generation: UInt64(parts[1]) ?? 0).description
                    }
                    #expect(pat.claims.lineage.map(\.description) == expected, "step \(step): \(key)'s par differs from who issued it")
                    for ancestor in chain {
                        guard let parent = known[ancestor] else {
                            Issue.record("step \(step): \(key) has an ancestor \(ancestor) the API never issued")
                            continue
                        }
                        #expect((try? validator.validate(parent.token)) != nil || parent.claims.expiresAt < Timestamp.now(),
                                "step \(step): \(key) validates while its ancestor \(ancestor) does not")
                        for scope in pat.scopes where !parent.claims.scopes.allows(scope) {
                            Issue.record("step \(step): \(key) carries \(scope), which its ancestor \(ancestor) does not cover")
                        }
                        #expect(pat.domain?.utf8.elementsEqual(parent.claims.domain?.utf8 ?? "".utf8) ?? (parent.claims.domain == nil),
                                "step \(step): \(key) acts in \(pat.domain ?? "-"), its ancestor \(ancestor) in \(parent.claims.domain ?? "-")")
                        #expect(pat.expiresAt <= parent.claims.expiresAt, "step \(step): \(key) outlives its ancestor \(ancestor)")
                        #expect(pat.subject.utf8.elementsEqual(parent.claims.subject.utf8), "step \(step): \(key) changed owner")
                    }
                }
            }
            // The run exercised every path: successes and refusals of each kind, and cascades.
            #expect(outcomes[201, default: 0] > 100 && outcomes[200, default: 0] > 100, "\(outcomes)")
            #expect(outcomes[403, default: 0] > 50 && outcomes[400, default: 0] > 10 && outcomes[401, default: 0] > 10, "\(outcomes)")
            #expect(refusedByLineage > 0, "some tokens died with an ancestor")
            #expect(chains.values.contains { $0.count == PATAncestor.maxDepth }, "chains got as deep as allowed")
            print("delegation property: \(Self.steps) steps, outcomes \(outcomes.sorted { $0.key < $1.key }), "
                  + "\(known.count) tokens, \(accepted) acceptances checked, \(refusedByLineage) refusals by lineage")
            #expect(accepted > 0)
            #expect(adminClaims.lineage.isEmpty)
        }
    }
}
