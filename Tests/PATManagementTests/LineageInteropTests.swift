import Foundation
import PATManagement
import PATRegistry
import PATRegistryTestSupport
import PATTestSupport
import Testing

/// `par` (lineage) is an ordinary PASETO claim: a stock verifier (pyseto) verifies a token minted
/// by a delegated caller and hands its claims back unchanged; lineage is PATKit's own check. See
/// scripts/pyseto_resign.py. Needs a Python with pyseto ($PATKIT_PYTHON, else .venv/bin/python):
/// in CI its absence fails.
@Suite(.timeLimit(.minutes(5)))
struct LineageInteropTests {
    @Test("pyseto verifies a delegated token carrying par, and its claims round-trip byte for byte")
    func pysetoIgnoresPar() async throws {
        let python = try await Prerequisite.pyseto.require()
        let t = try await TestHome.make(.sqlite)
        let clock = TestClock()
        let service = t.service(at: clock, catalog: try t.home.managementCatalog())
        let (team, teamCaller) = try await DelegationServiceTests.holder(t, service, owner: "platform", name: "team",
                                                                         scopes: ["pats:create", "clients:view"], domain: "d1", clock: clock)
        let ci = try await service.create(CreateRequest(name: "ci", scopes: [try Scope(parsing: "clients:view:c-1")]), by: teamCaller)
        let parts = try PASETOv4Public.parse(ci.bearer)
        let claims = try PATClaims(json: parts.message)
        #expect(claims.lineage == [try PATAncestor(id: team.record.id, generation: 1)], "the token carries par")

        let keys = try t.keyStore.keySet()
        let key = try #require(keys.newest)
        let result = try await ChildProcess.run(python, [TestPaths.packageRoot.appendingPathComponent("scripts/pyseto_resign.py").path,
                                                         key.paserk, t.keyStore.secretKeyPath(key.id)],
                                                input: Array(ci.bearer.utf8))
        try #require(result.status == 0, "pyseto refused the token:\n\(result.stdout)\(result.stderr)")
        let out = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let seen = try #require(out["claims"] as? [String: Any])
        let par = try #require(seen["par"] as? [String])
        #expect(par == claims.lineage.map(\.description), "pyseto hands par back as it was signed")
        #expect(seen["jti"] as? String == ci.record.id && seen["sub"] as? String == "platform" && seen["dom"] as? String == "d1")
        #expect((out["footer"] as? [String: Any])?["kid"] as? String == key.id.rawValue)
        let payload = try #require(out["payload"] as? String)
        #expect(payload == Data(parts.message).base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: ""), "the verified payload is PATKit's, byte for byte")
        // Signed again by pyseto from what it verified: the same token (Ed25519 is deterministic),
        // which PATKit accepts with its lineage intact.
        let resigned = try #require(out["resigned"] as? String)
        #expect(resigned == ci.bearer)
        var policy = Validator.Policy()
        policy.requireRevocationList = false
        let validated = try Validator(keys: keys, policy: policy, clock: { clock.now }).validate(resigned)
        #expect(validated.claims == claims && validated.lineage == claims.lineage)
    }
}
