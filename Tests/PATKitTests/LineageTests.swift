import Foundation
import Testing
@testable import PATKit

/// Lineage (`par`) checked offline, and identities compared as bytes in the `Validator`.
@Suite("Lineage and byte-exact identities in the Validator", .timeLimit(.minutes(5)))
struct LineageTests {
    static let signer: SecretKey = {
        do { return try Fixture.key(71) } catch { fatalError("fixture key: \(error)") }
    }()
    static let chain = ["rootRootRootRootRoot00", "teamTeamTeamTeamTeam00", "ciCiCiCiCiCiCiCiCiCi00", "jobJobJobJobJobJob0000"]

    static func ancestors(_ ids: ArraySlice<String>, generation: UInt64 = 2) throws -> [PATAncestor] {
        try ids.map { try PATAncestor(id: $0, generation: generation) }
    }

    /// A token minted through `lineage`, signed by `signer`.
    static func token(lineage: [PATAncestor], id: String = PATClaims.newID(), domain: String? = "dom-1") throws -> String {
        var claims = try Fixture.claims(id: id, domain: domain)
        claims.lineage = lineage
        return try Issuer(key: signer).issue(claims)
    }

    /// A validator holding a list whose token entries are `floors` (id → lowest valid generation).
    static func validator(floors: [String: UInt64] = [:], cache: Bool) throws -> Validator {
        var builder = RevocationList.Builder()
        builder.revoke(id: "unrelatedUnrelatedUnre", below: 5, horizon: Fixture.now.adding(seconds: 90 * Fixture.day))
        for (id, floor) in floors {
            builder.revoke(id: id, below: floor, horizon: Fixture.now.adding(seconds: 90 * Fixture.day))
        }
        let keys = KeySet(keys: [signer.publicKey])
        let list = try RevocationList(verifying: builder.sign(with: signer, sequence: 1, issuedAt: Fixture.now.adding(seconds: -60),
                                                              nextUpdate: Fixture.now.adding(seconds: 3600)), keys: keys)
        return Fixture.validator(keys: [signer.publicKey], list: list) { $0.cacheCapacity = cache ? 100 : 0 }
    }

    @Test("par is an array of \"<key>.<gen>\", root first; it round-trips byte for byte")
    func claimForm() throws {
        let lineage = try Self.ancestors(Self.chain[...])
        var claims = try Fixture.claims(id: "ownOwnOwnOwnOwnOwnOwn0")
        claims.lineage = lineage
        let json = JSONWriter.encode(.object(claims.json))
        let text = String(decoding: json, as: UTF8.self)
        // Each entry is the ancestor's revocation-list key (BLAKE2b-128 of "patkit.jti\0" ‖ jti) in base64url.
        let keys = Self.chain.map { RevocationList.tokenKey($0) }
        #expect(text.contains(#""par":[\#(keys.map { "\"\($0.base64URL).2\"" }.joined(separator: ","))]"#), "\(text)")
        #expect(keys.allSatisfy { $0.base64URL.utf8.count == 22 })
        #expect(!text.contains(Self.chain[0]), "the token does not disclose its ancestors' ids")
        let parsed = try PATClaims(json: json)
        #expect(parsed.lineage == lineage)
        #expect(JSONWriter.encode(.object(parsed.json)) == json)
        #expect(try Fixture.claims().json["par"] == nil, "a root token has no par")
        for ancestor in lineage { #expect(try PATAncestor(parsing: ancestor.description) == ancestor) }
        #expect(try PATAncestor(parsing: "\(keys[0].base64URL).9007199254740991").generation == PATClaims.maxGeneration)
    }

    /// Known answers from an independent implementation (Python's hashlib.blake2b with
    /// digest_size=16 over "patkit.jti\0" + jti, base64url without padding): what another
    /// language's edge computes for a `par` entry.
    @Test("a par key is BLAKE2b-128(\"patkit.jti\\0\" ‖ jti) in base64url")
    func keyKnownAnswers() throws {
        #expect(RevocationList.tokenKey("revokedRevokedRevoked0").base64URL == "TD8snSAKb61IntBnv75EIQ")
        #expect(RevocationList.tokenKey("deletedDeletedDeleted0").base64URL == "PlX2T4WbOOzweemyJ1RZzQ")
        #expect(try PATAncestor(id: "revokedRevokedRevoked0", generation: 2).description == "TD8snSAKb61IntBnv75EIQ.2")
    }

    static let keyText = RevocationList.tokenKey("aaaaaaaaaaaaaaaaaaaaaa").base64URL
    static let fiveAncestors = "[" + ["a", "b", "c", "d", "e"].map { letter in
        "\"" + RevocationList.tokenKey(String(repeating: letter, count: 22)).base64URL + ".1\""
    }.joined(separator: ",") + "]"
    static let otherKeyText = RevocationList.tokenKey("bbbbbbbbbbbbbbbbbbbbbb").base64URL

    @Test("lineage is bounded and well formed", arguments: [
        ("five ancestors", fiveAncestors),
        ("empty array", "[]"), ("a string", #""\#(keyText).1""#), ("a number in it", "[1]"), ("null", "null"),
        ("no generation", #"["\#(keyText)"]"#), ("empty generation", #"["\#(keyText)."]"#),
        ("generation 0", #"["\#(keyText).0"]"#), ("leading zero", #"["\#(keyText).01"]"#),
        ("signed generation", #"["\#(keyText).+1"]"#), ("generation 2^53", #"["\#(keyText).9007199254740992"]"#),
        ("a jti instead of a key", #"["aaaaaaaaaaaaaaaaaaaaaa.1"]"#), ("a short key", #"["\#(keyText.dropLast()).1"]"#),
        ("a padded key", #"["\#(keyText)==.1"]"#), ("non-zero trailing bits", #"["\#(keyText.dropLast())B.1"]"#),
        ("a standard-alphabet key", #"["\#(keyText.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/").dropLast())+.1"]"#),
        ("one ancestor twice", #"["\#(keyText).1","\#(keyText).2"]"#),
        ("nested array", #"[["\#(keyText).1"]]"#), ("a trailing comma", #"["\#(keyText).1",]"#),
    ])
    func malformedLineage(_ label: String, _ par: String) throws {
        let json = #"{"jti":"ownOwnOwnOwnOwnOwnOwn0","sub":"user-1","gen":1,"iat":"2026-01-31T11:00:00Z","exp":"2026-03-02T12:00:00Z","par":\#(par)}"#
        #expect(throws: PATValidationError.self, "\(label)") { try PATClaims(json: Array(json.utf8)) }
        let token = Fixture.signRaw(json, with: Self.signer)
        for cache in [false, true] {
            #expect(validationCode { try Self.validator(cache: cache).validate(token) } == .malformed, "\(label)")
        }
    }

    @Test("issuing refuses a lineage the validator would refuse")
    func issuingBounds() throws {
        var claims = try Fixture.claims(id: "ownOwnOwnOwnOwnOwnOwn0")
        claims.lineage = try Self.ancestors(Self.chain[...]) + [try PATAncestor(id: "fifthFifthFifthFifth00", generation: 1)]
        #expect(throws: PATKitError.self) { try Issuer(key: Self.signer).issue(claims) }
        claims.lineage = [try PATAncestor(id: Self.chain[0], generation: 1), try PATAncestor(id: Self.chain[0], generation: 2)]
        #expect(throws: PATKitError.self) { try Issuer(key: Self.signer).issue(claims) }
    }

    /// Rule 4 (cascading revocation): any ancestor below its floor refuses the token, with the
    /// code `ancestor_revoked` — with the cache on and off, on a first validation and on a cache
    /// hit after the new list arrived.
    @Test("a token dies with any of its ancestors", arguments: [false, true])
    func cascade(_ cache: Bool) throws {
        let lineage = try Self.ancestors(Self.chain[...])
        let token = try Self.token(lineage: lineage)
        #expect(validationCode { try Self.validator(cache: cache).validate(token) } == nil)
        // Revoked (floor = gen + 1), regenerated (floor = new gen) and deleted (floor = max).
        for (index, id) in Self.chain.enumerated() {
            for floor in [UInt64(3), UInt64(4), UInt64.max] {
                let validator = try Self.validator(floors: [id: floor], cache: cache)
                do throws(PATValidationError) {
                    _ = try validator.validate(token)
                    Issue.record("ancestor \(index) below its floor \(floor): accepted")
                } catch {
                    #expect(error.code == .ancestorRevoked)
                    #expect(error.reason.contains(RevocationList.tokenKey(id).base64URL))
                    #expect(error.reason.contains(floor == UInt64.max ? "was deleted" : "revoked, regenerated"))
                }
            }
            // An ancestor at or above its floor does not refuse it.
            #expect(validationCode { try Self.validator(floors: [id: 2], cache: cache).validate(token) } == nil)
        }
        // A cached token: a new list that kills an ancestor is applied on the very next call.
        let validator = try Self.validator(cache: cache)
        #expect(validationCode { try validator.validate(token) } == nil)
        #expect(validationCode { try validator.validate(token) } == nil)
        var builder = RevocationList.Builder()
        builder.revoke(id: Self.chain[1], below: 3, horizon: Fixture.now.adding(seconds: Fixture.day))
        try validator.install(RevocationList(verifying: builder.sign(with: Self.signer, sequence: 2, issuedAt: Fixture.now,
                                                                     nextUpdate: Fixture.now.adding(seconds: 3600)),
                                             keys: KeySet(keys: [Self.signer.publicKey])))
        #expect(validationCode { try validator.validate(token) } == .ancestorRevoked)
        // The list's own check says the same to a caller holding claims.
        let claims = try PATClaims(json: Array(#"{"jti":"ownOwnOwnOwnOwnOwnOwn0","sub":"u","gen":1,"iat":"2026-01-31T11:00:00Z","exp":"2026-03-02T12:00:00Z","par":["\#(RevocationList.tokenKey(Self.chain[1]).base64URL).2"]}"#.utf8))
        #expect(validator.revocations?.check(claims) == .ancestorRevoked(try PATAncestor(id: Self.chain[1], generation: 2), floor: 3))
        // The token's own entry still wins: a token revoked itself says `revoked`.
        let ownID = PATClaims.newID()
        let own = try Self.token(lineage: lineage, id: ownID)
        #expect(validationCode { try Self.validator(floors: [ownID: 2, Self.chain[0]: 3], cache: cache).validate(own) } == .revoked)
    }

    /// H1 in the Validator: Swift's `==` calls "\u{e9}ve" and "e\u{301}ve" equal; a verifier
    /// must not. A token of the domain spelled one way is refused for the other.
    @Test("the domain check compares bytes: \\u00e9ve is not e\\u0301ve", arguments: [false, true])
    func domainIsBytes(_ cache: Bool) throws {
        let nfc = "\u{e9}ve", nfd = "e\u{301}ve"
        #expect(nfc == nfd, "the premise: Swift's String == is canonical equivalence")
        let validator = try Self.validator(cache: cache)
        let token = try Self.token(lineage: [], domain: nfc)
        #expect(try validator.validate(token, domain: nfc).domain.map { Array($0.utf8) } == Array(nfc.utf8))
        #expect(validationCode { try validator.validate(token, domain: nfd) } == .wrongDomain)
        let other = try Self.token(lineage: [], domain: nfd)
        #expect(validationCode { try validator.validate(other, domain: nfc) } == .wrongDomain)
        #expect(validationCode { try validator.authorize(other, entity: "clients", operation: "view", domain: nfc) } == .wrongDomain)
        // The policy's domain, too.
        let strict = Fixture.validator(keys: [Self.signer.publicKey], list: try Self.validator(cache: cache).revocations) {
            $0.domain = nfc
            $0.cacheCapacity = cache ? 100 : 0
        }
        #expect(validationCode { try strict.validate(token) } == nil)
        #expect(validationCode { try strict.validate(other) } == .wrongDomain)
    }
}
