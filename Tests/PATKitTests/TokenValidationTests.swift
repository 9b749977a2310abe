import Foundation
import Testing
@testable import PATKit

@Suite("Token issue and validation")
struct TokenValidationTests {
    let key: SecretKey
    let issuer: Issuer

    init() throws {
        key = try Fixture.key(1)
        issuer = Issuer(key: key)
    }

    var validator: Validator { Fixture.validator(keys: [key.publicKey]) }

    // MARK: happy path

    @Test("an issued PAT validates and carries its claims")
    func issueAndValidate() throws {
        let claims = try Fixture.claims(id: Fixture.patID, subject: "alice", generation: 3,
                                        notBefore: Fixture.now.adding(seconds: -60), domain: "acme",
                                        scopes: ["clients:view:*", "channels:publish:ch-42"])
        let token = try issuer.issue(claims)
        #expect(token.hasPrefix("v4.public."))

        let pat = try validator.validate(token)
        #expect(pat.claims == claims)
        #expect(pat.id == Fixture.patID)
        #expect(pat.subject == "alice")
        #expect(pat.generation == 3)
        #expect(pat.domain == "acme")
        #expect(pat.keyID == key.id)
        #expect(pat.expiresAt == claims.expiresAt)
        #expect(pat.scopes.claim == "clients:view:* channels:publish:ch-42")
        #expect(pat[claim: "sub"] == .string("alice"))
        #expect(pat[claim: "gen"] == .number("3"))
        #expect(pat[claim: "iat"] == .string(claims.issuedAt.rfc3339))

        // The footer names the key and nothing else.
        let parts = try PASETOv4Public.parse(token)
        #expect(parts.footer == Fixture.footer(for: key))
    }

    @Test("issuing refuses claims outside the rules")
    func issueRules() throws {
        let good = try Fixture.claims()
        var c = good; c.id = "short"
        #expect(patError { try issuer.issue(c) }?.isInvalidClaims == true)
        c = good; c.id = String(repeating: "a", count: 21) + "!"
        #expect(patError { try issuer.issue(c) }?.isInvalidClaims == true)
        c = good; c.subject = ""
        #expect(patError { try issuer.issue(c) }?.isInvalidClaims == true)
        c = good; c.generation = 0
        #expect(patError { try issuer.issue(c) }?.isInvalidClaims == true)
        c = good; c.generation = PATClaims.maxGeneration + 1
        #expect(patError { try issuer.issue(c) }?.isInvalidClaims == true)
        c = good; c.generation = PATClaims.maxGeneration
        #expect(patError { try issuer.issue(c) } == nil)
        c = good; c.expiresAt = c.issuedAt
        #expect(patError { try issuer.issue(c) }?.isInvalidClaims == true)
        c = good; c.domain = ""
        #expect(patError { try issuer.issue(c) }?.isInvalidClaims == true)
        c = good; c.expiresAt = Timestamp(seconds: Timestamp.maximum.seconds + 1)
        #expect(patError { try issuer.issue(c) }?.isInvalidClaims == true)
        c = good; c.extra.set("sub", "mallory")
        #expect(patError { try issuer.issue(c) }?.isInvalidClaims == true)
    }

    @Test("new PAT ids are 22 URL-safe characters and distinct")
    func newIDs() {
        let ids = (0..<100).map { _ in PATClaims.newID() }
        #expect(Set(ids).count == 100)
        #expect(ids.allSatisfy { PATClaims.isValidID($0) && $0.utf8.count == 22 })
    }

    @Test("a PAT with 5 scopes stays under 1 KiB")
    func compactToken() throws {
        let claims = PATClaims(
            id: PATClaims.newID(), subject: "0b7e3d2a-91c4-4f5e-8a6b-3c2d1e0f9a8b", generation: 12,
            issuedAt: Fixture.now, expiresAt: Fixture.now.adding(seconds: 365 * Fixture.day),
            issuer: "https://auth.example.com", audience: "magistrala", domain: "5f4e3d2c-1b0a-4987-8654-3210fedcba98",
            scopes: try ScopeSet(parsing: [
                "clients:view:*", "clients:update:0d9c8b7a-6f5e-4d3c-2b1a-0f9e8d7c6b5a",
                "channels:publish:1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
                "channels:subscribe:1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d", "domain:create_clients",
            ]))
        let token = try issuer.issue(claims)
        #expect(token.utf8.count < 1024, "token is \(token.utf8.count) bytes")
        #expect(try validator.validate(token).scopes.count == 5)
    }

    @Test("unknown claims are kept and readable")
    func unknownClaims() throws {
        var extra = JSONObject()
        extra.set("ignore_2fa", .bool(true))
        extra.set("tier", .number("2"))
        extra.set("meta", .object({ var o = JSONObject(); o.set("team", "core"); return o }()))
        let token = try issuer.issue(try Fixture.claims(extra: extra))
        let pat = try validator.validate(token)
        #expect(pat[claim: "ignore_2fa"] == .bool(true))
        #expect(pat[claim: "tier"]?.integer == 2)
        #expect(pat.claims.extra == extra)
        #expect(pat[claim: "absent"] == nil)

        // The same through a hand-written token.
        let raw = Fixture.signRaw(
            #"{"jti":"\#(Fixture.patID)","sub":"u","gen":1,"iat":"2026-01-31T11:00:00Z","exp":"2026-03-02T12:00:00Z","ignore_2fa":true,"x":[1,{"y":null}]}"#,
            with: key)
        let rawPAT = try validator.validate(raw)
        #expect(rawPAT[claim: "ignore_2fa"] == .bool(true))
        #expect(rawPAT.claims.extra.keys == ["ignore_2fa", "x"])
    }

    @Test("the implicit assertion must match")
    func implicitAssertion() throws {
        let bound = Issuer(key: key, implicitAssertion: Array("tenant-7".utf8))
        let token = try bound.issue(try Fixture.claims())
        #expect(validationCode { try validator.validate(token) } == .badSignature)
        let matching = Fixture.validator(keys: [key.publicKey]) {
            $0.requireRevocationList = false
            $0.implicitAssertion = Array("tenant-7".utf8)
        }
        #expect(validationCode { try matching.validate(token) } == nil)
        let other = Fixture.validator(keys: [key.publicKey]) {
            $0.requireRevocationList = false
            $0.implicitAssertion = Array("tenant-8".utf8)
        }
        #expect(validationCode { try other.validate(token) } == .badSignature)
    }

    // MARK: malformed

    @Test("malformed tokens", arguments: [
        "", "v4", "v4.public", "v4.public.", "v3.public.AAAA", "v4.local.AAAA", "v2.public.AAAA", "V4.PUBLIC.AAAA",
        " v4.public.AAAA", "v4.public.!!!!", "v4.public.AAAA=", "v4.public.AAAAA", "v4.public.AA+A",
    ])
    func malformedStrings(_ token: String) {
        #expect(validationCode { try validator.validate(token) } == .malformed, "\(token.debugDescription)")
    }

    @Test("malformed variants of a valid token")
    func malformedVariants() throws {
        let token = try issuer.issue(try Fixture.claims())
        let pieces = try #require(TokenPieces(token))
        let payload = Base64URL.encode(pieces.payload)
        let footer = try #require(pieces.footer)
        #expect(validationCode { try validator.validate(token) } == nil)

        let variants: [(String, String)] = [
            ("v3 header", "v3.public." + payload + "." + footer),
            ("v4.local header", "v4.local." + payload + "." + footer),
            ("truncated payload", "v4.public." + String(payload.prefix(50)) + "." + footer),
            ("truncated to the header", "v4.public."),
            ("extra part", token + ".e30"),
            ("extra empty part", token + "."),
            ("empty footer", "v4.public." + payload + "."),
            ("no footer", "v4.public." + payload),
            ("bad base64 payload", "v4.public." + payload.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/") + "*." + footer),
            ("padded footer", token + "=="),
            ("whitespace", token + "\n"),
            ("bad base64 footer", "v4.public." + payload + ".e30!"),
            ("signature only", "v4.public." + Base64URL.encode(Array(pieces.payload.suffix(63))) + "." + footer),
        ]
        for (label, variant) in variants {
            #expect(validationCode { try validator.validate(variant) } == .malformed, "\(label)")
        }
    }

    @Test("footers that are not a kid object are malformed", arguments: [
        "not json", "[]", "{}", #"{"kid":1}"#, #"{"kid":"k4.lid.AAAA"}"#, #"{"kid":null}"#,
        #"{"kid":"x","kid":"y"}"#, #"{"a":{"b":{"c":1}}}"#,
    ])
    func badFooters(_ footer: String) throws {
        let token = PASETOv4Public.sign(message: JSONWriter.encode(.object(try Fixture.claims().json)),
                                        footer: Array(footer.utf8), with: key)
        #expect(validationCode { try validator.validate(token) } == .malformed, "\(footer)")
    }

    @Test("a footer carrying key material is malformed, even when properly signed", arguments: [
        "k4.public.", "k4.secret.", "k4.local.", "k4.seal.", "k3.public.", "k2.local-wrap.",
    ])
    func keyMaterialInFooter(_ prefix: String) throws {
        let footer = #"{"kid":"\#(prefix)\#(Base64URL.encode(key.publicKey.bytes))"}"#
        let token = PASETOv4Public.sign(message: JSONWriter.encode(.object(try Fixture.claims().json)),
                                        footer: Array(footer.utf8), with: key)
        #expect(validationCode { try validator.validate(token) } == .malformed)
        // Also when hidden in another member next to a valid kid.
        let hidden = #"{"kid":"\#(key.id.rawValue)","note":"\#(prefix)abc"}"#
        let token2 = PASETOv4Public.sign(message: JSONWriter.encode(.object(try Fixture.claims().json)),
                                         footer: Array(hidden.utf8), with: key)
        #expect(validationCode { try validator.validate(token2) } == .malformed)
    }

    @Test("a footer with extra members but no key material is accepted")
    func footerWithExtras() throws {
        let footer = #"{"kid":"\#(key.id.rawValue)","v":1}"#
        let token = PASETOv4Public.sign(message: JSONWriter.encode(.object(try Fixture.claims().json)),
                                        footer: Array(footer.utf8), with: key)
        #expect(validationCode { try validator.validate(token) } == nil)
    }

    // MARK: claims that are not PATKit claims

    struct BadClaims: Sendable, CustomTestStringConvertible {
        let label: String
        let json: String
        var testDescription: String { label }
    }

    static let template = #"{"jti":"AAAAAAAAAAAAAAAAAAAAAA","sub":"u","gen":1,"iat":"2026-01-31T11:00:00Z","exp":"2026-03-02T12:00:00Z"}"#

    static func with(_ replace: String, _ by: String) -> String {
        template.replacingOccurrences(of: replace, with: by)
    }

    static let badClaims: [BadClaims] = [
        BadClaims(label: "duplicated key", json: with(#""sub":"u","#, #""sub":"u","sub":"v","#)),
        BadClaims(label: "duplicated gen", json: with(#""gen":1,"#, #""gen":1,"gen":2,"#)),
        BadClaims(label: "gen as string", json: with(#""gen":1"#, #""gen":"1""#)),
        BadClaims(label: "gen 0", json: with(#""gen":1"#, #""gen":0"#)),
        BadClaims(label: "gen negative", json: with(#""gen":1"#, #""gen":-1"#)),
        BadClaims(label: "gen 2^53", json: with(#""gen":1"#, #""gen":9007199254740992"#)),
        BadClaims(label: "gen 1.0", json: with(#""gen":1"#, #""gen":1.0"#)),
        BadClaims(label: "gen 1e0", json: with(#""gen":1"#, #""gen":1e0"#)),
        BadClaims(label: "gen huge", json: with(#""gen":1"#, #""gen":99999999999999999999"#)),
        BadClaims(label: "gen missing", json: with(#""gen":1,"#, "")),
        BadClaims(label: "exp with +00:00", json: with("2026-03-02T12:00:00Z", "2026-03-02T12:00:00+00:00")),
        BadClaims(label: "exp fractional", json: with("2026-03-02T12:00:00Z", "2026-03-02T12:00:00.0Z")),
        BadClaims(label: "exp as number", json: with(#""2026-03-02T12:00:00Z""#, "1772452800")),
        BadClaims(label: "iat lowercase", json: with("2026-01-31T11:00:00Z", "2026-01-31t11:00:00z")),
        BadClaims(label: "iat missing", json: with(#""iat":"2026-01-31T11:00:00Z","#, "")),
        BadClaims(label: "nbf invalid", json: with(#""gen":1,"#, #""gen":1,"nbf":"soon","#)),
        BadClaims(label: "scope as array", json: with(#""gen":1,"#, #""gen":1,"scope":["clients:view"],"#)),
        BadClaims(label: "scope with double space", json: with(#""gen":1,"#, #""gen":1,"scope":"clients:view  channels:view","#)),
        BadClaims(label: "scope bad grammar", json: with(#""gen":1,"#, #""gen":1,"scope":"Clients:view","#)),
        BadClaims(label: "dom as number", json: with(#""gen":1,"#, #""gen":1,"dom":5,"#)),
        BadClaims(label: "iss as object", json: with(#""gen":1,"#, #""gen":1,"iss":{},"#)),
        BadClaims(label: "jti too short", json: with("AAAAAAAAAAAAAAAAAAAAAA", "AAAA")),
        BadClaims(label: "jti not URL-safe", json: with("AAAAAAAAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAAAAAAA+")),
        BadClaims(label: "sub empty", json: with(#""sub":"u""#, #""sub":"""#)),
        BadClaims(label: "sub missing", json: with(#""sub":"u","#, "")),
        BadClaims(label: "not an object", json: "[" + template + "]"),
        BadClaims(label: "trailing garbage", json: template + "x"),
        BadClaims(label: "invalid JSON", json: String(template.dropLast())),
    ]

    @Test("the valid claims template validates (control for badClaims)")
    func templateValidates() throws {
        let pat = try validator.validate(Fixture.signRaw(Self.template, with: key))
        #expect(pat.generation == 1)
        // The largest generation is accepted.
        let max = Self.with(#""gen":1"#, #""gen":9007199254740991"#)
        #expect(try validator.validate(Fixture.signRaw(max, with: key)).generation == PATClaims.maxGeneration)
    }

    @Test("properly signed claims of the wrong shape are malformed", arguments: badClaims)
    func malformedClaims(_ bad: BadClaims) {
        let token = Fixture.signRaw(bad.json, with: key)
        #expect(validationCode { try validator.validate(token) } == .malformed)
    }

    // MARK: sizes

    @Test("oversized tokens are refused before decoding")
    func tooLarge() throws {
        let limit = PASETOv4Public.defaultMaxTokenBytes
        let big = "v4.public." + String(repeating: "A", count: limit - 10 + 1)
        #expect(big.utf8.count == limit + 1)
        #expect(validationCode { try validator.validate(big) } == .tooLarge)
        // At the limit the size check passes (and this junk fails later as malformed).
        #expect(validationCode { try validator.validate(String(big.dropLast())) } == .malformed)

        // A properly signed token whose claims make it bigger than 8 KiB; the Issuer refuses
        // to make one, so sign by hand.
        var extra = JSONObject()
        extra.set("blob", .string(String(repeating: "x", count: 7000)))
        let hugeClaims = try Fixture.claims(extra: extra)
        #expect(patError { try issuer.issue(hugeClaims) }?.isInvalidClaims == true)
        let huge = Fixture.signRaw(String(decoding: JSONWriter.encode(.object(hugeClaims.json)), as: UTF8.self), with: key)
        #expect(huge.utf8.count > limit)
        #expect(validationCode { try validator.validate(huge) } == .tooLarge)

        // A policy can lower the limit.
        let small = Fixture.validator(keys: [key.publicKey]) { $0.requireRevocationList = false; $0.maxTokenBytes = 200 }
        #expect(validationCode { try small.validate(try issuer.issue(try Fixture.claims())) } == .tooLarge)
    }

    @Test("footers over 512 bytes are refused")
    func footerTooLarge() throws {
        // Two padding members, as the footer parser limits each string to 256 bytes.
        func footer(padding: Int) -> [UInt8] {
            let p = String(repeating: "x", count: min(padding, 200))
            let q = String(repeating: "y", count: max(0, padding - 200))
            return Array(#"{"kid":"\#(key.id.rawValue)","p":"\#(p)","q":"\#(q)"}"#.utf8)
        }
        let base = footer(padding: 0).count
        let message = JSONWriter.encode(.object(try Fixture.claims().json))
        let atLimit = PASETOv4Public.sign(message: message, footer: footer(padding: 512 - base), with: key)
        let overLimit = PASETOv4Public.sign(message: message, footer: footer(padding: 513 - base), with: key)
        #expect(try PASETOv4Public.parse(atLimit).footer.count == 512)
        #expect(try PASETOv4Public.parse(overLimit).footer.count == 513)
        #expect(validationCode { try validator.validate(atLimit) } == nil)
        #expect(validationCode { try validator.validate(overLimit) } == .tooLarge)
    }

    // MARK: keys and signatures

    @Test("tokens of a key the verifier does not trust are unknownKey")
    func unknownKey() throws {
        let stranger = try Fixture.key(2)
        let token = try Issuer(key: stranger).issue(try Fixture.claims())
        #expect(validationCode { try validator.validate(token) } == .unknownKey)
        // A kid naming a trusted key while signed by another key fails the signature instead.
        let lying = PASETOv4Public.sign(message: JSONWriter.encode(.object(try Fixture.claims().json)),
                                        footer: Fixture.footer(for: key), with: stranger)
        #expect(validationCode { try validator.validate(lying) } == .badSignature)
    }

    @Test("any flipped byte of message or signature is badSignature")
    func flippedBytes() throws {
        let token = try issuer.issue(try Fixture.claims())
        let pieces = try #require(TokenPieces(token))
        for index in pieces.payload.indices {
            var tampered = pieces
            tampered.payload[index] ^= 0x01
            #expect(validationCode { try validator.validate(tampered.token) } == .badSignature, "byte \(index)")
        }
    }

    @Test("a changed footer is badSignature")
    func changedFooter() throws {
        let other = try Fixture.key(3)
        let validator = Fixture.validator(keys: [key.publicKey, other.publicKey])
        let token = try issuer.issue(try Fixture.claims())
        var pieces = try #require(TokenPieces(token))
        // Re-point the kid at the other trusted key: footer is authenticated, so this fails.
        pieces.footer = Base64URL.encode(Fixture.footer(for: other))
        #expect(validationCode { try validator.validate(pieces.token) } == .badSignature)
    }

    // MARK: times

    @Test("expiry honours the leeway")
    func expiry() throws {
        let exp = Fixture.now.adding(seconds: Fixture.hour)
        let token = try issuer.issue(try Fixture.claims(expiresAt: exp))
        let leeway = Validator.Policy().leeway
        #expect(leeway == 60)
        let atEdge = Fixture.validator(keys: [key.publicKey], now: exp.adding(seconds: leeway))
        #expect(validationCode { try atEdge.validate(token) } == nil)
        let past = Fixture.validator(keys: [key.publicKey], now: exp.adding(seconds: leeway + 1))
        #expect(validationCode { try past.validate(token) } == .expired)
        let noLeeway = Fixture.validator(keys: [key.publicKey], now: exp.adding(seconds: 1)) {
            $0.requireRevocationList = false; $0.leeway = 0
        }
        #expect(validationCode { try noLeeway.validate(token) } == .expired)
    }

    @Test("nbf and iat in the future are notYetValid beyond the leeway")
    func notYetValid() throws {
        let leeway = Validator.Policy().leeway
        let nbfSoon = try issuer.issue(try Fixture.claims(notBefore: Fixture.now.adding(seconds: leeway)))
        #expect(validationCode { try validator.validate(nbfSoon) } == nil)
        let nbfLater = try issuer.issue(try Fixture.claims(notBefore: Fixture.now.adding(seconds: leeway + 1)))
        #expect(validationCode { try validator.validate(nbfLater) } == .notYetValid)

        let iatSoon = try issuer.issue(try Fixture.claims(issuedAt: Fixture.now.adding(seconds: leeway)))
        #expect(validationCode { try validator.validate(iatSoon) } == nil)
        let iatLater = try issuer.issue(try Fixture.claims(issuedAt: Fixture.now.adding(seconds: leeway + 1)))
        #expect(validationCode { try validator.validate(iatLater) } == .notYetValid)

        // Once the clock reaches nbf the token is valid.
        let later = Fixture.validator(keys: [key.publicKey], now: Fixture.now.adding(seconds: 2 * leeway))
        #expect(validationCode { try later.validate(nbfLater) } == nil)
    }

    // MARK: revocation list presence and freshness

    @Test("default policy refuses every token while no list is loaded")
    func missingList() throws {
        let strict = Fixture.validator(keys: [key.publicKey]) { _ in }
        #expect(strict.policy.requireRevocationList)
        let token = try issuer.issue(try Fixture.claims())
        #expect(validationCode { try strict.validate(token) } == .missingRevocationList)

        let list = try RevocationList(verifying: RevocationList.Builder().sign(
            with: key, sequence: 1, issuedAt: Fixture.now, nextUpdate: Fixture.now.adding(seconds: Fixture.hour)),
                                      keys: KeySet(keys: [key.publicKey]))
        try strict.install(list)
        #expect(validationCode { try strict.validate(token) } == nil)
    }

    @Test("stale lists are rejected or accepted by policy")
    func staleList() throws {
        let keys = KeySet(keys: [key.publicKey])
        let nextUpdate = Fixture.now.adding(seconds: Fixture.hour)
        var builder = RevocationList.Builder()
        let revokedID = PATClaims.newID()
        builder.revoke(id: revokedID, below: 2, horizon: Fixture.now.adding(seconds: 30 * Fixture.day))
        let list = try RevocationList(verifying: builder.sign(with: key, sequence: 1, issuedAt: Fixture.now.adding(seconds: -60),
                                                              nextUpdate: nextUpdate), keys: keys)
        let token = try issuer.issue(try Fixture.claims())
        let revoked = try issuer.issue(try Fixture.claims(id: revokedID))
        let clock = TestClock(Fixture.now)
        let reject = Validator(keys: keys, revocations: list, policy: { var p = Validator.Policy(); p.staleGrace = 30; return p }(),
                               clock: { clock.now })
        var acceptPolicy = Validator.Policy()
        acceptPolicy.staleListPolicy = .accept
        let accept = Validator(keys: keys, revocations: list, policy: acceptPolicy, clock: { clock.now })

        #expect(validationCode { try reject.validate(token) } == nil)
        clock.set(nextUpdate.adding(seconds: 30))
        #expect(validationCode { try reject.validate(token) } == nil)
        clock.set(nextUpdate.adding(seconds: 31))
        #expect(list.isStale(at: clock.now, grace: 30))
        #expect(validationCode { try reject.validate(token) } == .staleRevocationList)
        // Accepting on a stale list still applies it.
        #expect(validationCode { try accept.validate(token) } == nil)
        #expect(validationCode { try accept.validate(revoked) } == .revoked)
    }

    // MARK: domain and scopes

    @Test("domain must match when required")
    func domains() throws {
        let inA = try issuer.issue(try Fixture.claims(domain: "a"))
        let inB = try issuer.issue(try Fixture.claims(domain: "b"))
        let noDomain = try issuer.issue(try Fixture.claims(domain: nil))
        let requireB = Fixture.validator(keys: [key.publicKey]) { $0.requireRevocationList = false; $0.domain = "b" }
        #expect(validationCode { try requireB.validate(inA) } == .wrongDomain)
        #expect(validationCode { try requireB.validate(noDomain) } == .wrongDomain)
        #expect(validationCode { try requireB.validate(inB) } == nil)
        // Per call.
        #expect(validationCode { try validator.validate(inA, domain: "b") } == .wrongDomain)
        #expect(validationCode { try validator.validate(noDomain, domain: "b") } == .wrongDomain)
        #expect(validationCode { try validator.validate(inB, domain: "b") } == nil)
        // No requirement: any domain, or none.
        #expect(validationCode { try validator.validate(inA) } == nil)
        #expect(validationCode { try validator.validate(noDomain) } == nil)
    }

    @Test("authorize checks scopes after validation")
    func authorize() throws {
        let token = try issuer.issue(try Fixture.claims(scopes: ["channels:publish:ch-42", "clients:view:*"]))
        #expect(validationCode { try validator.authorize(token, entity: "channels", operation: "publish", id: "ch-42") } == nil)
        #expect(validationCode { try validator.authorize(token, entity: "clients", operation: "view", id: "any") } == nil)
        #expect(validationCode { try validator.authorize(token, entity: "channels", operation: "publish", id: "ch-43") } == .scopeMissing)
        #expect(validationCode { try validator.authorize(token, entity: "channels", operation: "subscribe", id: "ch-42") } == .scopeMissing)
        #expect(validationCode { try validator.authorize(token, entity: "clients", operation: "update") } == .scopeMissing)
        // A specific-id scope does not grant the wildcard request.
        #expect(validationCode { try validator.authorize(token, entity: "channels", operation: "publish") } == .scopeMissing)
        // Validation failures come first.
        #expect(validationCode { try validator.authorize(token, entity: "clients", operation: "view", domain: "other") } == .wrongDomain)
        let pat = try validator.validate(token)
        #expect(pat.allows(entity: "clients", operation: "view", id: "c-1"))
        #expect(!pat.allows(entity: "clients", operation: "delete", id: "c-1"))
    }

    @Test("PATValidationError codes are stable strings")
    func codes() {
        #expect(PATValidationError.Code.allCases.map(\.rawValue) == [
            "malformed", "too_large", "unknown_key", "bad_signature", "expired", "not_yet_valid", "revoked",
            "ancestor_revoked", "stale_revocation_list", "missing_revocation_list", "missing_key_set", "stale_key_set", "wrong_domain",
            "scope_missing",
        ])
        #expect(PATValidationError(.expired, "x").description == "expired: x")
    }
}

/// Regression: 1 in 64 random ids began with "-", which `pat revoke ID` and the other commands
/// read as an option (a flaky CLI test found it). 20,000 draws would hold about 312 such ids.
@Test("new PAT ids never begin with \"-\" and are valid, distinct 22-character ids")
func newIDsNeverLookLikeOptions() {
    let ids = (0..<20_000).map { _ in PATClaims.newID() }
    #expect(ids.allSatisfy { !$0.hasPrefix("-") })
    #expect(ids.allSatisfy { $0.utf8.count == 22 && PATClaims.isValidID($0) })
    #expect(Set(ids).count == ids.count)
    #expect(Set(ids.map(\.first)).count >= 60, "the first character still varies over the alphabet")
}
