import Foundation
import Testing
@testable import PATKit

/// The verifying half of the leak scanner: a found token is live, expired, revoked, forged or
/// foreign by the keys and the list, and only a genuine one carries claims.
@Suite("Token inspector")
struct TokenInspectorTests {
    let signer: SecretKey
    let retired: SecretKey
    let stranger: SecretKey
    let keys: KeySet
    let list: RevocationList
    static let revokedID = "revokedRevokedRevoked0"
    static let deletedID = "deletedDeletedDeleted0"

    init() throws {
        signer = try Fixture.key(1)
        retired = try Fixture.key(2)
        stranger = try Fixture.key(3)
        var set = KeySet(keys: [retired.publicKey, signer.publicKey])
        try set.retire(retired.id)
        keys = set
        var builder = RevocationList.Builder()
        let horizon = Fixture.now.adding(seconds: 90 * Fixture.day)
        builder.revoke(id: Self.revokedID, below: 2, horizon: horizon)
        builder.delete(id: Self.deletedID, horizon: horizon)
        builder.revokeAll(subject: "mallory", issuedBefore: Fixture.now.adding(seconds: -600), horizon: horizon)
        list = try RevocationList(verifying: builder.sign(with: signer, sequence: 4, issuedAt: Fixture.now.adding(seconds: -7200),
                                                          nextUpdate: Fixture.now.adding(seconds: -3600)), keys: set)
    }

    /// The list above is stale at `Fixture.now` on purpose: it still says what was revoked.
    var inspector: TokenInspector { TokenInspector(keys: keys, revocations: list, clock: { Fixture.now }) }

    func issue(_ claims: PATClaims, with key: SecretKey? = nil) throws -> String {
        try Issuer(key: key ?? signer).issue(claims)
    }

    @Test("a genuine, current, unrevoked PAT is live, with its verified claims; a validator accepts it too")
    func live() throws {
        let claims = try Fixture.claims(subject: "alice", domain: "d1")
        let token = try issue(claims)
        let found = inspector.inspect(token)
        #expect(found.status == .live && found.reason == "valid")
        #expect(found.claims == claims)
        #expect(found.keyID == signer.id)
        #expect(found.fingerprint == TokenInspection.fingerprint(of: token))
        var policy = Validator.Policy()
        policy.staleListPolicy = .accept
        #expect(throws: Never.self) { try Validator(keys: keys, revocations: list, policy: policy, clock: { Fixture.now }).validate(token) }
    }

    @Test("a PAT not valid yet (nbf ahead) is live: it will be accepted, so its leak matters")
    func notYetValid() throws {
        let token = try issue(Fixture.claims(notBefore: Fixture.now.adding(seconds: Fixture.day)))
        let found = inspector.inspect(token)
        #expect(found.status == .live && found.reason == "not_yet_valid")
    }

    @Test("expired: past exp plus the leeway, not before")
    func expired() throws {
        let old = try Fixture.claims(issuedAt: Fixture.now.adding(seconds: -3 * Fixture.day), expiresAt: Fixture.now.adding(seconds: -61))
        let found = inspector.inspect(try issue(old))
        #expect(found.status == .expired && found.reason == "expired" && found.claims == old)
        let edge = try Fixture.claims(issuedAt: Fixture.now.adding(seconds: -3 * Fixture.day), expiresAt: Fixture.now.adding(seconds: -60))
        #expect(inspector.inspect(try issue(edge)).status == .live)
        let strict = TokenInspector(keys: keys, revocations: list, leeway: 0, clock: { Fixture.now })
        #expect(strict.inspect(try issue(edge)).status == .expired)
    }

    @Test("revoked: superseded generations, deleted PATs, revoke-all, retired keys — each with its reason and claims")
    func revoked() throws {
        let superseded = inspector.inspect(try issue(Fixture.claims(id: Self.revokedID, generation: 1)))
        #expect(superseded.status == .revoked && superseded.reason == "superseded" && superseded.claims?.id == Self.revokedID)
        #expect(inspector.inspect(try issue(Fixture.claims(id: Self.revokedID, generation: 2))).status == .live)
        #expect(inspector.inspect(try issue(Fixture.claims(id: Self.deletedID, generation: 7))).reason == "deleted")
        let owner = inspector.inspect(try issue(Fixture.claims(subject: "mallory")))
        #expect(owner.status == .revoked && owner.reason == "owner_revoked")
        #expect(inspector.inspect(try issue(Fixture.claims(subject: "mallory", issuedAt: Fixture.now.adding(seconds: -60)))).status == .live)
        let oldKey = inspector.inspect(try issue(Fixture.claims(subject: "bob"), with: retired))
        #expect(oldKey.status == .revoked && oldKey.reason == "key_retired" && oldKey.claims?.subject == "bob" && oldKey.keyID == retired.id)
    }

    @Test("a token minted by a revoked PAT is revoked too (ancestor_revoked), and live while its ancestor is")
    func ancestorRevoked() throws {
        var child = try Fixture.claims(subject: "carol")
        child.lineage = [try PATAncestor(id: Self.revokedID, generation: 1)]
        let dead = inspector.inspect(try issue(child))
        #expect(dead.status == .revoked && dead.reason == "ancestor_revoked" && dead.claims?.subject == "carol")
        child.lineage = [try PATAncestor(id: Self.revokedID, generation: 2)]
        #expect(inspector.inspect(try issue(child)).status == .live)
    }

    @Test("revocation is reported before expiry")
    func revokedBeforeExpired() throws {
        let claims = try Fixture.claims(id: Self.revokedID, generation: 1, issuedAt: Fixture.now.adding(seconds: -3 * Fixture.day),
                                        expiresAt: Fixture.now.adding(seconds: -Fixture.day))
        #expect(inspector.inspect(try issue(claims)).status == .revoked)
    }

    @Test("without a list nothing is found revoked by it (live means: not known to be revoked)")
    func noList() throws {
        let plain = TokenInspector(keys: keys, revocations: nil, clock: { Fixture.now })
        #expect(plain.inspect(try issue(Fixture.claims(id: Self.revokedID, generation: 1))).status == .live)
        #expect(plain.inspect(try issue(Fixture.claims(subject: "x"), with: retired)).status == .revoked, "a retired key still is")
    }

    @Test("forged: a bad signature over our key id, a tampered payload, claims no issuer writes, malformed text — never with claims")
    func forged() throws {
        let claims = try Fixture.claims(subject: "alice")
        let message = JSONWriter.encode(.object(claims.json))
        // Signed by a stranger, footer naming our signer.
        let impostor = PASETOv4Public.sign(message: message, footer: Footer.encode(signer.id), with: stranger)
        let found = inspector.inspect(impostor)
        #expect(found.status == .forged && found.reason == "bad_signature" && found.claims == nil && found.keyID == signer.id)

        // One character of a genuine token changed (still canonical base64url).
        let token = try issue(claims)
        var bytes = Array(token.utf8)
        let at = 10 + 40
        bytes[at] = bytes[at] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        let tampered = String(decoding: bytes, as: UTF8.self)
        #expect(TokenScanner.matches(in: bytes).map(\.token) == [tampered], "still shaped like a PAT")
        #expect(inspector.inspect(tampered).status == .forged)

        // Our key signed something that is not PAT claims.
        let junk = Fixture.signRaw(#"{"hello":"world"}"#, with: signer)
        let invalid = inspector.inspect(junk)
        #expect(invalid.status == .forged && invalid.reason == "invalid_claims" && invalid.claims == nil)

        // Shaped like a PAT, but its payload is not base64url of any length (89 ≡ 1 mod 4).
        let shaped = "v4.public." + String(repeating: "A", count: 89) + "." + Base64URL.encode(Footer.encode(signer.id))
        #expect(TokenScanner.matches(in: Array(shaped.utf8)).count == 1)
        let malformed = inspector.inspect(shaped)
        #expect(malformed.status == .forged && malformed.reason == "malformed" && malformed.keyID == nil)
    }

    @Test("foreign: a key the set does not hold; its unverified claims are not reported")
    func foreign() throws {
        let token = try issue(Fixture.claims(subject: "alice"), with: stranger)
        let found = inspector.inspect(token)
        #expect(found.status == .foreign && found.reason == "unknown_key")
        #expect(found.claims == nil)
        #expect(found.keyID == stranger.id)
    }

    @Test("the fingerprint is the first 12 hex digits of BLAKE2b-256 (known answers from Python's hashlib)")
    func fingerprint() {
        #expect(TokenInspection.fingerprint(of: "abc") == "bddd813c6342")
        #expect(TokenInspection.fingerprint(of: "") == "0e5751c026e5")
        #expect(TokenInspection.fingerprint(of: "v4.public.test") == "eb354dd87068")
    }

    @Test("an inspection never holds the token: its description shows neither the token nor its signature")
    func noTokenInside() throws {
        for token in [try issue(Fixture.claims(subject: "alice")), try issue(Fixture.claims(), with: stranger)] {
            let signature = String(token.split(separator: ".")[2].suffix(60))
            let inspection = inspector.inspect(token)
            let text = String(describing: inspection) + String(reflecting: inspection)
            #expect(!text.contains(signature))
            #expect(!text.contains(token))
        }
    }
}
