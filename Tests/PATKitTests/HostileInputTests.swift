#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Testing
@testable import PATKit
import PATStore

// A table of hostile inputs: each case is one test that asserts the precise rejection
// (PATValidationError.code or PATKitError case) — and, by finishing, that nothing crashed.
// Regression tests for what the fuzzers (Fuzz/, scripts/fuzz.sh) found are marked "fuzz:".

// MARK: - Fixtures

enum Hostile {
    static let now = Fixture.now
    /// Active signing key; a retired one still listed in the key set; one the verifier never heard of.
    static let signer = makeKey(41)
    static let retired = makeKey(42)
    static let stranger = makeKey(43)

    static func makeKey(_ n: UInt8) -> SecretKey {
        do { return try Fixture.key(n) } catch { fatalError("fixture key \(n): \(error)") }
    }

    static let keys: KeySet = {
        var set = KeySet(keys: [retired.publicKey, signer.publicKey])
        try? set.retire(retired.id)
        return set
    }()

    static let revokedID = "revokedRevokedRevoked0"
    static let listSequence: UInt64 = 5

    static func list(sequence: UInt64 = listSequence, signer key: SecretKey = signer,
                     issuedAt: Timestamp = now.adding(seconds: -3600),
                     nextUpdate: Timestamp = now.adding(seconds: 86_400)) throws -> [UInt8] {
        var b = RevocationList.Builder()
        b.revoke(id: revokedID, below: 3, horizon: now.adding(seconds: 90 * 86_400))
        return try b.sign(with: key, sequence: sequence, issuedAt: issuedAt, nextUpdate: nextUpdate)
    }

    /// A validator trusting `keys`, holding a fresh list, at `clock` (default: `now`).
    static func validator(cache: Bool = true, clock: @escaping @Sendable () -> Timestamp = { Hostile.now },
                          configure: (inout Validator.Policy) -> Void = { _ in }) throws -> Validator {
        var policy = Validator.Policy()
        if !cache { policy.cacheCapacity = 0 }
        configure(&policy)
        let revocations = try RevocationList(verifying: list(), keys: keys)
        return Validator(keys: keys, revocations: revocations, policy: policy, clock: clock)
    }

    static let jti = "hostileHostileHostile0"
    /// Claims that validate at `now`: iat an hour ago, exp 30 days on.
    static let claims = #"{"jti":"\#(jti)","sub":"user-1","gen":2,"iat":"2026-01-31T11:00:00Z","exp":"2026-03-02T12:00:00Z","dom":"dom-1","scope":"clients:view:*"}"#

    static func replacing(_ old: String, _ new: String, in text: String = claims) -> String {
        precondition(text.contains(old), "\(old) not in the template")
        return text.replacingOccurrences(of: old, with: new)
    }

    static func sign(_ json: String, with key: SecretKey = signer, footer: [UInt8]? = nil) -> String {
        PASETOv4Public.sign(message: Array(json.utf8), footer: footer ?? Fixture.footer(for: key), with: key)
    }

    static func sign(_ json: String, footer: String) -> String { sign(json, footer: Array(footer.utf8)) }

    static let token = sign(claims)
    static var footerText: String { String(token.split(separator: ".")[3]) }
    static var payloadText: String { String(token.split(separator: ".")[2]) }

    /// The outcome: nil when accepted, else the code. Checked without the validation cache and
    /// with one warmed with the valid template token (so a hostile token meets a cache that
    /// holds an entry), the cached validator twice: all must agree, an accepted token must be
    /// answered from the cache the second time (a hit is counted), a refused one never.
    static func outcome(_ token: String, configure: (inout Validator.Policy) -> Void = { _ in }) throws -> PATValidationError.Code? {
        let plain = try validator(cache: false, configure: configure)
        let cached = try validator(cache: true, configure: configure)
        let isTemplate = token.utf8.elementsEqual(Hostile.token.utf8)
        if !isTemplate, validationCode({ try cached.validate(Hostile.token) }) == nil {
            _ = validationCode { try cached.validate(Hostile.token) }
            #expect(cached.cacheHitCount == 1, "the warmed cache answers the template token from the cache")
        }
        let hits = cached.cacheHitCount
        let a = validationCode { try plain.validate(token) }
        let b = validationCode { try cached.validate(token) }
        let c = validationCode { try cached.validate(token) }
        #expect(a == b && b == c, "cache changes the outcome: \(String(describing: a)) / \(String(describing: b)) / \(String(describing: c))")
        if a == nil, token.utf8.count <= cached.policy.cacheMaxTokenBytes {
            #expect(cached.cacheHitCount == hits + 1, "an accepted token is answered from the cache once seen")
        } else if a == nil {
            #expect(cached.cacheHitCount == hits, "a token over cacheMaxTokenBytes is never cached")
        } else {
            #expect(cached.cacheHitCount == hits, "a refused token is never answered from the cache")
        }
        return a
    }

    /// A token whose payload does not fill whole base64 quanta (its length is not a multiple
    /// of 3 bytes), so its last character carries zero trailing bits; the template's payload
    /// (216 bytes) has none. Made by padding the claims with an extra member.
    static let unevenToken: String = {
        for n in 0..<3 {
            let json = replacing(#""dom":"dom-1""#, #""dom":"dom-1","pad":"\#(String(repeating: "p", count: n))""#)
            let token = sign(json)
            if String(token.split(separator: ".")[2]).utf8.count % 4 != 0 { return token }
        }
        return token
    }()
}

/// One hostile token and the code it must be refused with (nil: it must be accepted).
struct TokenCase: Sendable, CustomTestStringConvertible {
    let label: String
    let token: String
    let expected: PATValidationError.Code?
    var testDescription: String { label }

    init(_ label: String, _ token: String, _ expected: PATValidationError.Code?) {
        self.label = label
        self.token = token
        self.expected = expected
    }
}

/// Claims JSON, signed properly by the active key, and the code it must get.
struct ClaimsCase: Sendable, CustomTestStringConvertible {
    let label: String
    let json: String
    let expected: PATValidationError.Code?
    var testDescription: String { label }

    init(_ label: String, _ json: String, _ expected: PATValidationError.Code?) {
        self.label = label
        self.json = json
        self.expected = expected
    }
}

@Suite("Hostile input")
struct HostileInputTests {
    // MARK: - token text

    @Test("control: the template token is accepted everywhere")
    func control() throws {
        #expect(try Hostile.outcome(Hostile.token) == nil)
        #expect(try Hostile.validator().validate(Hostile.token).keyID == Hostile.signer.id)
    }

    @Test("every proper prefix of a valid token is malformed", arguments: 0..<Hostile.token.utf8.count)
    func truncated(_ length: Int) throws {
        let prefix = String(decoding: Hostile.token.utf8.prefix(length), as: UTF8.self)
        #expect(try Hostile.outcome(prefix) == .malformed)
    }

    static let headerCases: [TokenCase] = {
        let rest = String(Hostile.token.dropFirst("v4.public.".count))
        var cases = ["v1.public.", "v2.public.", "v3.public.", "v4.local.", "V4.PUBLIC.", "v4.Public.", "V4.public.",
                     "v4.public", "v4public.", "v4..public.", "v5.public.", "v4.secret.", " v4.public.", "v4.public.."]
            .map { TokenCase("header \"\($0)\"", $0 + rest, .malformed) }
        cases.append(TokenCase("no header at all", rest, .malformed))
        cases.append(TokenCase("empty string", "", .malformed))
        cases.append(TokenCase("header only", "v4.public.", .malformed))
        cases.append(TokenCase("missing dot before the footer",
                               "v4.public." + Hostile.payloadText + Hostile.footerText, .malformed))
        cases.append(TokenCase("a fourth part", Hostile.token + ".e30", .malformed))
        cases.append(TokenCase("empty footer after the dot", "v4.public." + Hostile.payloadText + ".", .malformed))
        cases.append(TokenCase("no footer", PASETOv4Public.sign(message: Array(Hostile.claims.utf8), with: Hostile.signer), .malformed))
        cases.append(TokenCase("payload shorter than a signature",
                               "v4.public." + Base64URL.encode([UInt8](repeating: 1, count: 63)) + "." + Hostile.footerText, .malformed))
        cases.append(TokenCase("a JWT", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.", .malformed))
        cases.append(TokenCase("NUL inside the header", "v4\u{0}public." + rest, .malformed))
        return cases
    }()

    @Test("wrong header, version, purpose or number of parts", arguments: headerCases)
    func header(_ c: TokenCase) throws {
        #expect(try Hostile.outcome(c.token) == c.expected)
    }

    static let base64Cases: [TokenCase] = {
        let payload = Hostile.payloadText, footer = Hostile.footerText
        func token(_ p: String, _ f: String) -> String { "v4.public." + p + "." + f }
        func replacingChar(_ s: String, at i: Int, with c: String) -> String {
            String(s.prefix(i)) + c + String(s.dropFirst(i + 1))
        }
        var cases: [TokenCase] = [
            TokenCase("padding '=' after the payload", token(payload + "=", footer), .malformed),
            TokenCase("padding '==' after the payload", token(payload + "==", footer), .malformed),
            TokenCase("padding '=' after the footer", token(payload, footer + "="), .malformed),
            TokenCase("padding '==' after the footer", token(payload, footer + "=="), .malformed),
            TokenCase("'+' (standard alphabet) in the payload", token(replacingChar(payload, at: 5, with: "+"), footer), .malformed),
            TokenCase("'/' (standard alphabet) in the payload", token(replacingChar(payload, at: 9, with: "/"), footer), .malformed),
            TokenCase("'+' in the footer", token(payload, replacingChar(footer, at: 3, with: "+")), .malformed),
            TokenCase("space inside the payload", token(String(payload.prefix(40)) + " " + payload.dropFirst(40), footer), .malformed),
            TokenCase("newline inside the payload", token(String(payload.prefix(40)) + "\n" + payload.dropFirst(40), footer), .malformed),
            TokenCase("tab inside the footer", token(payload, String(footer.prefix(8)) + "\t" + footer.dropFirst(8)), .malformed),
            TokenCase("CRLF at the end", Hostile.token + "\r\n", .malformed),
            TokenCase("leading space", " " + Hostile.token, .malformed),
            TokenCase("trailing space", Hostile.token + " ", .malformed),
            TokenCase("payload of 4n+1 characters", token(String(payload.prefix(payload.count - (payload.count - 1) % 4)), footer), .malformed),
            TokenCase("'%' URL-encoding", token(replacingChar(payload, at: 2, with: "%41"), footer), .malformed),
            TokenCase("non-ASCII 'é' in the payload", token(replacingChar(payload, at: 12, with: "é"), footer), .malformed),
            TokenCase("NUL in the payload", token(replacingChar(payload, at: 12, with: "\u{0}"), footer), .malformed),
        ]
        // Non-zero trailing bits: the footer (61 bytes) ends on a character carrying 2 bits + 4 zero bits.
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        if let last = footer.last, let index = alphabet.firstIndex(of: last) {
            let bumped = String(alphabet[index + 1])
            cases.append(TokenCase("non-zero trailing bits in the footer", token(payload, String(footer.dropLast()) + bumped), .malformed))
        }
        // The template's payload has no trailing bits: use one padded to an uneven length.
        let uneven = String(Hostile.unevenToken.split(separator: ".")[2])
        let unevenFooter = String(Hostile.unevenToken.split(separator: ".")[3])
        cases.append(TokenCase("control: the uneven-payload token itself", Hostile.unevenToken, nil))
        if uneven.utf8.count % 4 != 0, let last = uneven.last, let index = alphabet.firstIndex(of: last) {
            // Canonical: the trailing bits (the low bits of the last character) are zero, so +1 sets one.
            let bumped = String(alphabet[index + 1])
            cases.append(TokenCase("non-zero trailing bits in the payload", token(String(uneven.dropLast()) + bumped, unevenFooter), .malformed))
        }
        return cases
    }()

    @Test("non-canonical base64url", arguments: base64Cases)
    func nonCanonicalBase64(_ c: TokenCase) throws {
        #expect(try Hostile.outcome(c.token) == c.expected)
    }

    @Test("the payload and footer encodings have the trailing-bits cases the table needs")
    func tableCoversTrailingBits() {
        let payload = String(Hostile.unevenToken.split(separator: ".")[2])
        #expect(payload.utf8.count % 4 != 0, "the uneven payload ends on a partial quantum")
        #expect(Self.base64Cases.contains { $0.label == "non-zero trailing bits in the payload" })
        #expect(Hostile.footerText.utf8.count % 4 != 0, "the footer ends on a partial quantum")
        #expect(Self.base64Cases.contains { $0.label == "non-zero trailing bits in the footer" })
    }

    /// fuzz: Swift compares and hashes non-ASCII strings by canonical equivalence, so a token
    /// with one 'K' re-spelled as U+212A KELVIN SIGN was "equal" to the cached original: the
    /// validation cache answered for bytes that were never verified (and that an uncached
    /// validator refuses as malformed). The cache must match exact bytes.
    @Test("a cached token re-spelled with a canonically equivalent character is malformed")
    func cacheIsByteExact() throws {
        let validator = try Hostile.validator(cache: true)
        // A token with a 'K' that is not the character before the last '.' (which picks the
        // cache shard): vary the subject until the deterministic signature has one.
        var found: (token: String, index: Int)? = nil
        for n in 0..<64 where found == nil {
            let token = Hostile.sign(Hostile.replacing(#""sub":"user-1""#, #""sub":"user-\#(n)""#))
            let chars = Array(token)
            guard let lastDot = chars.lastIndex(of: ".") else { continue }
            if let index = chars.indices.first(where: { chars[$0] == "K" && $0 != lastDot - 1 && $0 >= 10 }) {
                found = (token, index)
            }
        }
        let (token, index) = try #require(found)
        _ = try validator.validate(token)
        _ = try validator.validate(token)
        #expect(validator.cachedTokenCount == 1)
        var respelled = Array(token)
        respelled[index] = "\u{212A}"
        let kelvin = String(respelled)
        #expect(kelvin == token, "Swift's String == treats them as equal: the premise of this test")
        #expect(!kelvin.utf8.elementsEqual(token.utf8))
        #expect(validationCode { try validator.validate(kelvin) } == .malformed)
        #expect(try Hostile.outcome(kelvin) == .malformed)
        // The original still validates, from the cache.
        #expect(validationCode { try validator.validate(token) } == nil)
    }

    // MARK: - sizes

    static let sizeCases: [TokenCase] = {
        let limit = PASETOv4Public.defaultMaxTokenBytes
        let junk = "v4.public." + String(repeating: "A", count: limit - 10 + 1)
        // A footer of `n` bytes: a valid kid plus padding members (each string ≤ 256 bytes).
        func footer(_ n: Int) -> String {
            let base = #"{"kid":"\#(Hostile.signer.id.rawValue)","p":"","q":""}"#.utf8.count
            let pad = n - base
            return #"{"kid":"\#(Hostile.signer.id.rawValue)","p":"\#(String(repeating: "x", count: min(pad, 250)))","q":"\#(String(repeating: "y", count: max(0, pad - 250)))"}"#
        }
        // Padding in two members, as claims strings are limited to 4096 bytes.
        let blob = { (n: Int) in
            Hostile.replacing(#""dom":"dom-1""#,
                              #""dom":"dom-1","b1":"\#(String(repeating: "b", count: n / 2))","b2":"\#(String(repeating: "c", count: n - n / 2))""#)
        }
        return [
            TokenCase("token of 8 KiB + 1 bytes", junk, .tooLarge),
            TokenCase("token of exactly 8 KiB (size passes, content is junk)", String(junk.dropLast()), .malformed),
            TokenCase("token of 1 MiB", "v4.public." + String(repeating: "A", count: 1 << 20), .tooLarge),
            TokenCase("footer of 512 bytes", Hostile.sign(Hostile.claims, footer: footer(512)), nil),
            TokenCase("footer of 513 bytes", Hostile.sign(Hostile.claims, footer: footer(513)), .tooLarge),
            TokenCase("footer of 5 KiB", Hostile.sign(Hostile.claims, footer: String(repeating: " ", count: 5000) + "{}"), .tooLarge),
            TokenCase("signed payload making the token 8 KiB + a few bytes", Hostile.sign(blob(5900)), .tooLarge),
            TokenCase("signed payload just under the token limit", Hostile.sign(blob(5700)), nil),
        ]
    }()

    @Test("oversized tokens, footers and payloads", arguments: sizeCases)
    func sizes(_ c: TokenCase) throws {
        #expect(try Hostile.outcome(c.token) == c.expected)
    }

    @Test("a claims payload over 8 KiB is malformed even where the token limit is raised")
    func oversizedPayload() throws {
        let pad = String(repeating: "b", count: 2800)
        let json = Hostile.replacing(#""dom":"dom-1""#, #""dom":"dom-1","b1":"\#(pad)","b2":"\#(pad)","b3":"\#(pad)""#)
        #expect(json.utf8.count > 8 * 1024)
        #expect(try Hostile.outcome(Hostile.sign(json)) == .tooLarge)
        #expect(try Hostile.outcome(Hostile.sign(json)) { $0.maxTokenBytes = 64 * 1024 } == .malformed)
        var policy = Validator.Policy()
        policy.maxTokenBytes = 64 * 1024
        let validator = Validator(keys: Hostile.keys, revocations: nil, policy: policy, clock: { Hostile.now })
        do {
            _ = try validator.validate(Hostile.sign(json))
            Issue.record("accepted")
        } catch {
            #expect(error.reason.contains("exceeds the limit of 8192"), "\(error)")
        }
    }

    @Test("invalid UTF-8 in a signed claim is malformed", arguments: [[0xFF], [0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xE2, 0x82]] as [[UInt8]])
    func invalidUTF8InClaims(_ bad: [UInt8]) throws {
        let parts = Hostile.claims.components(separatedBy: "user-1")
        let message = Array(parts[0].utf8) + Array("user-".utf8) + bad + Array(parts[1].utf8)
        let token = PASETOv4Public.sign(message: message, footer: Fixture.footer(for: Hostile.signer), with: Hostile.signer)
        #expect(try Hostile.outcome(token) == .malformed)
    }

    // MARK: - deep nesting

    @Test("nesting 10,000 deep stops at the depth limit, before recursing", arguments: ["[", "{\"a\":"])
    func deepNesting(_ open: String) throws {
        let close = open == "[" ? "]" : "}"
        let deep = String(repeating: open, count: 10_000) + "1" + String(repeating: close, count: 10_000)
        // The parser refuses at the limit: the offset shows it never went deeper.
        let limits = JSONLimits(maxBytes: 1 << 20)
        do {
            _ = try JSONParser.parse(deep, limits: limits)
            Issue.record("a 10,000-deep document parsed")
        } catch {
            #expect(error.reason.contains("nesting deeper than \(limits.maxDepth)"))
            #expect(error.offset <= (limits.maxDepth + 1) * open.utf8.count)
        }
        // In claims (where it is also over the size limit), a footer, a key set and a catalog.
        #expect(try Hostile.outcome(Hostile.sign(#"{"x":\#(deep)}"#)) == .tooLarge)
        #expect(try Hostile.outcome(Hostile.sign(#"{"x":\#(deep)}"#)) { $0.maxTokenBytes = 1 << 20 } == .malformed)
        #expect(try Hostile.outcome(Hostile.sign(Hostile.claims, footer: deep)) == .tooLarge)
        #expect(patError { try KeySet(json: Array(deep.utf8)) }?.isInvalidDocument == true)
        #expect(patError { try ScopeCatalog(json: Array(deep.utf8), name: "deep") }?.isInvalidScope == true)
    }

    @Test("claims nested deeper than 8 inside the size limit are malformed for their depth")
    func nestingInsideClaims() throws {
        let depth = 2800
        let nested = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
        let json = Hostile.replacing(#""dom":"dom-1""#, #""dom":"dom-1","x":\#(nested)"#)
        #expect(json.utf8.count < 8 * 1024)
        let validator = try Hostile.validator()
        do {
            _ = try validator.validate(Hostile.sign(json))
            Issue.record("accepted")
        } catch {
            #expect(error.code == .malformed)
            #expect(error.reason.contains("nesting deeper"))
        }
        // Eight levels of extra-claim nesting are fine.
        let eight = Hostile.replacing(#""dom":"dom-1""#, #""dom":"dom-1","x":[[[[[[[1]]]]]]]"#)
        #expect(try Hostile.outcome(Hostile.sign(eight)) == nil)
    }

    // MARK: - claims

    static let claimsCases: [ClaimsCase] = {
        let r = Hostile.replacing
        let t = Hostile.claims
        var cases: [ClaimsCase] = [
            // duplicates
            ClaimsCase("duplicate sub", r(#""sub":"user-1""#, #""sub":"user-1","sub":"user-2""#, t), .malformed),
            ClaimsCase("duplicate jti, same value", r(#""sub":"user-1""#, #""jti":"\#(Hostile.jti)","sub":"user-1""#, t), .malformed),
            ClaimsCase("duplicate gen", r(#""gen":2"#, #""gen":2,"gen":3"#, t), .malformed),
            ClaimsCase("duplicate exp", r(#""dom":"dom-1""#, #""dom":"dom-1","exp":"2026-03-03T12:00:00Z""#, t), .malformed),
            ClaimsCase("duplicate scope", r(#""dom":"dom-1""#, #""dom":"dom-1","scope":"channels:view""#, t), .malformed),
            ClaimsCase("duplicate key spelled with an escape (j\\u0074i)", r(#""sub":"user-1""#, #""j\u0074i":"\#(Hostile.jti)","sub":"user-1""#, t), .malformed),
            ClaimsCase("duplicate extra claim", r(#""dom":"dom-1""#, #""dom":"dom-1","x":1,"x":2"#, t), .malformed),
            ClaimsCase("duplicate key inside an extra object", r(#""dom":"dom-1""#, #""dom":"dom-1","x":{"a":1,"a":1}"#, t), .malformed),
            ClaimsCase("\"jti\" and \"JTI\" are different keys", r(#""dom":"dom-1""#, #""dom":"dom-1","JTI":"other""#, t), nil),
            ClaimsCase("\"Sub\" next to \"sub\" is an extra claim", r(#""dom":"dom-1""#, #""dom":"dom-1","Sub":"root""#, t), nil),
            // wrong types, one per registered claim
            ClaimsCase("jti as a number", r(#""jti":"\#(Hostile.jti)""#, #""jti":12345678901234567890123"#, t), .malformed),
            ClaimsCase("sub as an array", r(#""sub":"user-1""#, #""sub":["user-1"]"#, t), .malformed),
            ClaimsCase("gen as a string", r(#""gen":2"#, #""gen":"2""#, t), .malformed),
            ClaimsCase("gen as a bool", r(#""gen":2"#, #""gen":true"#, t), .malformed),
            ClaimsCase("iat as a number", r(#""iat":"2026-01-31T11:00:00Z""#, #""iat":1769857200"#, t), .malformed),
            ClaimsCase("exp as null", r(#""exp":"2026-03-02T12:00:00Z""#, #""exp":null"#, t), .malformed),
            ClaimsCase("nbf as a bool", r(#""dom":"dom-1""#, #""dom":"dom-1","nbf":false"#, t), .malformed),
            ClaimsCase("iss as an object", r(#""dom":"dom-1""#, #""dom":"dom-1","iss":{}"#, t), .malformed),
            ClaimsCase("aud as a number", r(#""dom":"dom-1""#, #""dom":"dom-1","aud":1"#, t), .malformed),
            ClaimsCase("aud as an array (JWT style)", r(#""dom":"dom-1""#, #""dom":"dom-1","aud":["a","b"]"#, t), .malformed),
            ClaimsCase("dom as a number", r(#""dom":"dom-1""#, #""dom":1"#, t), .malformed),
            ClaimsCase("scope as an array", r(#""scope":"clients:view:*""#, #""scope":["clients:view:*"]"#, t), .malformed),
            ClaimsCase("scope with a double space", r(#""scope":"clients:view:*""#, #""scope":"clients:view  channels:view""#, t), .malformed),
            ClaimsCase("claims as an array", "[" + t + "]", .malformed),
            ClaimsCase("claims as a string", "\"" + Hostile.jti + "\"", .malformed),
            ClaimsCase("empty object", "{}", .malformed),
            ClaimsCase("empty message", "", .malformed),
            ClaimsCase("trailing garbage", t + "x", .malformed),
            ClaimsCase("two objects", t + t, .malformed),
            ClaimsCase("BOM before the object", "\u{FEFF}" + t, .malformed),
            ClaimsCase("U+FFFD and an emoji in sub", r(#""sub":"user-1""#, "\"sub\":\"user-\u{FFFD}\u{1F600}\"", t), nil),
            // ordering and ranges the issuer enforces (fuzz: parsing must apply the issuing rules)
            ClaimsCase("fuzz: exp before iat", r(#""exp":"2026-03-02T12:00:00Z""#, #""exp":"2026-01-31T10:59:59Z""#, t), .malformed),
            ClaimsCase("fuzz: exp equal to iat", r(#""exp":"2026-03-02T12:00:00Z""#, #""exp":"2026-01-31T11:00:00Z""#, t), .malformed),
            ClaimsCase("fuzz: empty dom", r(#""dom":"dom-1""#, #""dom":"""#, t), .malformed),
            ClaimsCase("fuzz: dom of 257 bytes", r(#""dom":"dom-1""#, #""dom":"\#(String(repeating: "d", count: 257))""#, t), .malformed),
            ClaimsCase("dom of 256 bytes", r(#""dom":"dom-1""#, #""dom":"\#(String(repeating: "d", count: 256))""#, t), nil),
        ]
        // fuzz: the scope claim's fast path (plain ASCII, no escapes) skipped the 4096-byte string
        // limit the same claim with an escape is held to.
        let scopes = (0..<150).map { "clients:view:" + String(repeating: "0", count: 13) + String(format: "%08d", $0) }
        let longScope = scopes.joined(separator: " ")
        cases.append(ClaimsCase("fuzz: plain scope claim of \(longScope.utf8.count) bytes (over the 4096-byte string limit)",
                                r(#""scope":"clients:view:*""#, #""scope":"\#(longScope)""#, t), .malformed))
        cases.append(ClaimsCase("the same scope claim with an escape",
                                r(#""scope":"clients:view:*""#, #""scope":"client\u0073\#(longScope.dropFirst("clients".count))""#, t), .malformed))
        let shortScope = scopes.prefix(100).joined(separator: " ")
        cases.append(ClaimsCase("plain scope claim of \(shortScope.utf8.count) bytes (under the limit)",
                                r(#""scope":"clients:view:*""#, #""scope":"\#(shortScope)""#, t), nil))
        // Found while fixing the finding above: only extra claims counted toward the 128-member
        // limit, so 7 registered claims let 129 members through where the JSON parser's limit
        // (and the error message) says 128.
        func extras(_ n: Int) -> String { (0..<n).map { #""x\#($0)":0"# }.joined(separator: ",") }
        cases.append(ClaimsCase("129 members (7 registered, 122 extra)", r(#""dom":"dom-1""#, #""dom":"dom-1",\#(extras(122))"#, t), .malformed))
        cases.append(ClaimsCase("128 members (7 registered, 121 extra)", r(#""dom":"dom-1""#, #""dom":"dom-1",\#(extras(121))"#, t), nil))
        // Dates in other formats (in exp; the same parser reads iat and nbf).
        let dates = [
            "2026-03-02T12:00:00+00:00", "2026-03-02T12:00:00.000Z", "2026-03-02T12:00:00.5Z", "2026-03-02t12:00:00Z",
            "2026-03-02T12:00:00z", "2026-03-02T12:00:00", "2026-03-02 12:00:00Z", "2026-02-30T12:00:00Z",
            "2026-03-02T23:59:60Z", "0000-03-02T12:00:00Z", "2026-3-2T12:00:00Z", "2026-03-02T24:00:00Z",
            "2026-13-02T12:00:00Z", "2026-00-02T12:00:00Z", "2026-03-00T12:00:00Z", "+2026-03-02T12:00:00Z",
            "20260302T120000Z", "1772452800", "", " 2026-03-02T12:00:00Z", "2026-03-02T12:00:00Z ", "2027-02-29T12:00:00Z",
            "２０２６-03-02T12:00:00Z",
        ]
        for d in dates {
            cases.append(ClaimsCase("exp \"\(d)\"", r("2026-03-02T12:00:00Z", d, t), .malformed))
        }
        cases.append(ClaimsCase("exp in a leap year, Feb 29", r("2026-03-02T12:00:00Z", "2028-02-29T12:00:00Z", t), nil))
        // Generations.
        let generations: [(String, PATValidationError.Code?)] = [
            ("-1", .malformed), ("0", .malformed), ("-0", .malformed), ("1", nil), ("9007199254740991", nil),
            ("9007199254740992", .malformed), ("9223372036854775807", .malformed), ("9223372036854775808", .malformed),
            ("18446744073709551616", .malformed), ("99999999999999999999999999999999999999", .malformed),
            ("1.0", .malformed), ("1.5", .malformed), ("1e3", .malformed), ("1E0", .malformed), ("10e-1", .malformed),
            ("01", .malformed), ("+1", .malformed), ("0x10", .malformed), ("Infinity", .malformed), ("NaN", .malformed),
            (String(repeating: "9", count: 65), .malformed),
        ]
        for (g, expected) in generations {
            cases.append(ClaimsCase("gen \(g.prefix(24))", r(#""gen":2"#, #""gen":\#(g)"#, t), expected))
        }
        // Lineage (`par`): bounded to 4 ancestors, each "<key>.<gen>" (the ancestor's 16-byte list
        // key in canonical base64url) in canonical form, no PAT twice; a revoked ancestor refuses the token.
        func key(_ id: String) -> String { RevocationList.tokenKey(id).base64URL }
        let a = key("ancestorAncestorAncest"), b = key("bncestorAncestorAncest"), c = key("cncestorAncestorAncest")
        let d = key("dncestorAncestorAncest"), e = key("encestorAncestorAncest")
        let escaped = "\\u00" + String(a.utf8.first ?? 0, radix: 16) + a.dropFirst()
        let lineage: [(String, String, PATValidationError.Code?)] = [
            ("one ancestor", #"["\#(a).1"]"#, nil),
            ("four ancestors", #"["\#(a).1","\#(b).7","\#(c).1","\#(d).9007199254740991"]"#, nil),
            ("five ancestors", #"["\#(a).1","\#(b).1","\#(c).1","\#(d).1","\#(e).1"]"#, .malformed),
            ("an escaped entry", #"["\#(escaped).1"]"#, nil),
            ("empty", "[]", .malformed), ("null", "null", .malformed), ("a string", #""\#(a).1""#, .malformed),
            ("an object", #"{"\#(a)":1}"#, .malformed), ("a number entry", "[1]", .malformed), ("a nested array", #"[["\#(a).1"]]"#, .malformed),
            ("no generation", #"["\#(a)"]"#, .malformed), ("generation 0", #"["\#(a).0"]"#, .malformed),
            ("leading zero", #"["\#(a).01"]"#, .malformed), ("generation 2^53", #"["\#(a).9007199254740992"]"#, .malformed),
            ("generation with a space", #"["\#(a). 1"]"#, .malformed), ("trailing space", #"["\#(a).1 "]"#, .malformed),
            ("a 21-character key", #"["\#(a.dropLast()).1"]"#, .malformed), ("a jti instead of a key", #"["ancestorAncestorAncest.1"]"#, .malformed),
            ("a non-ASCII key", #"["\#(a.dropLast())\u00e9.1"]"#, .malformed), ("one PAT twice", #"["\#(a).1","\#(a).2"]"#, .malformed),
            ("an ancestor below its floor", #"["\#(a).1","\#(key(Hostile.revokedID)).2"]"#, .ancestorRevoked),
            ("an ancestor at its floor", #"["\#(key(Hostile.revokedID)).3"]"#, nil),
            ("a trailing comma", #"["\#(a).1",]"#, .malformed), ("two commas", #"["\#(a).1",,"\#(b).1"]"#, .malformed),
            ("unterminated", #"["\#(a).1""#, .malformed),
        ]
        for (label, par, expected) in lineage {
            cases.append(ClaimsCase("par: \(label)", r(#""dom":"dom-1""#, #""dom":"dom-1","par":\#(par)"#, t), expected))
        }
        cases.append(ClaimsCase("par: duplicated key", r(#""dom":"dom-1""#, #""dom":"dom-1","par":["\#(a).1"],"par":["\#(b).1"]"#, t), .malformed))
        return cases
    }()

    @Test("claims: duplicates, wrong types, dates, generations, ranges", arguments: claimsCases)
    func claims(_ c: ClaimsCase) throws {
        #expect(try Hostile.outcome(Hostile.sign(c.json)) == c.expected)
        // The parser alone agrees, and what it accepts can be issued again.
        do {
            let parsed = try PATClaims(json: Array(c.json.utf8))
            #expect(c.expected == nil || c.expected == .ancestorRevoked, "PATClaims accepted what validation refuses")
            #expect(throws: Never.self) { _ = try Issuer(key: Hostile.signer).issue(parsed) }
        } catch {
            #expect(error.code == c.expected)
        }
    }

    @Test("\"JTI\" travels as an extra claim; \"jti\" stays the PAT id")
    func caseSensitiveKeys() throws {
        let json = Hostile.replacing(#""dom":"dom-1""#, #""dom":"dom-1","JTI":"other""#)
        let pat = try Hostile.validator().validate(Hostile.sign(json))
        #expect(pat.id == Hostile.jti)
        #expect(pat[claim: "JTI"] == .string("other"))
    }

    // MARK: - keys named in the footer

    static let footerCases: [TokenCase] = {
        let kid = Hostile.signer.id.rawValue
        let material = Base64URL.encode(Hostile.signer.publicKey.bytes)
        let sign = { (footer: String) in Hostile.sign(Hostile.claims, footer: footer) }
        var cases: [TokenCase] = [
            TokenCase("signed by a key the verifier does not know", Hostile.sign(Hostile.claims, with: Hostile.stranger), .unknownKey),
            TokenCase("signed by the retired key", Hostile.sign(Hostile.claims, with: Hostile.retired), .unknownKey),
            TokenCase("kid of the retired key, signed by the active key", sign(#"{"kid":"\#(Hostile.retired.id.rawValue)"}"#), .unknownKey),
            TokenCase("kid of the active key, signed by a stranger",
                      Hostile.sign(Hostile.claims, with: Hostile.stranger, footer: Fixture.footer(for: Hostile.signer)), .badSignature),
            TokenCase("kid that is not base64url", sign(#"{"kid":"k4.pid.not-an-id!"}"#), .unknownKey),
            TokenCase("kid of a k4.lid", sign(#"{"kid":"k4.lid.\#(kid.dropFirst(7))"}"#), .malformed),
            TokenCase("kid of another version (k3.pid)", sign(#"{"kid":"k3.pid.\#(kid.dropFirst(7))"}"#), .malformed),
            TokenCase("kid as a number", sign(#"{"kid":4}"#), .malformed),
            TokenCase("kid missing", sign(#"{"key":"\#(kid)"}"#), .malformed),
            TokenCase("kid twice", sign(#"{"kid":"\#(kid)","kid":"\#(kid)"}"#), .malformed),
            TokenCase("footer not JSON", sign(kid), .malformed),
            TokenCase("footer a JSON array", sign(#"["\#(kid)"]"#), .malformed),
            TokenCase("footer with extra members, no key material", sign(#"{"kid":"\#(kid)","rotated":"2026-01"}"#), nil),
            TokenCase("footer with spaces", sign(#" { "kid" : "\#(kid)" } "#), nil),
            TokenCase("kid written with escapes (same bytes once decoded)", sign(#"{"kid":"k4\u002epid.\#(kid.dropFirst(7))"}"#), nil),
            TokenCase("kid re-spelled with U+212A KELVIN SIGN for a K", sign(#"{"kid":"\#(kid.replacingOccurrences(of: "K", with: "\u{212A}"))"}"#),
                      kid.contains("K") ? .unknownKey : nil),
        ]
        // Key material, as the kid and hidden in another member, raw and escaped.
        for type in ["k4.public.", "k4.secret.", "k4.local.", "k4.seal.", "k3.public.", "k3.secret.", "k1.local.", "k4.secret-wrap."] {
            cases.append(TokenCase("footer kid \(type)…", sign(#"{"kid":"\#(type)\#(material)"}"#), .malformed))
            cases.append(TokenCase("footer member \(type)… next to a valid kid", sign(#"{"kid":"\#(kid)","k":"\#(type)\#(material)"}"#), .malformed))
            let escaped = type.replacingOccurrences(of: ".", with: "\\u002e")
            cases.append(TokenCase("footer member \(type)… hidden by escapes", sign(#"{"kid":"\#(kid)","k":"\#(escaped)\#(material)"}"#), .malformed))
        }
        cases.append(TokenCase("footer member key with a \\u escape for 'k'", sign(#"{"kid":"\#(kid)","\u006b4.public.x":1}"#), .malformed))
        cases.append(TokenCase("a PASERK as the bare footer", sign(Hostile.signer.publicKey.paserk), .malformed))
        return cases
    }()

    @Test("unknown, retired or malformed kids and key material in the footer", arguments: footerCases)
    func footers(_ c: TokenCase) throws {
        #expect(try Hostile.outcome(c.token) == c.expected)
    }

    // MARK: - a list passed as a token, a token passed as a list

    @Test("a revocation list is never a token")
    func listAsToken() throws {
        let list = try Hostile.list()
        // The bytes as they are, as text.
        #expect(try Hostile.outcome(String(decoding: list, as: UTF8.self)) == .malformed)
        // Re-framed as a v4.public token: body as the message, the list's signature as the signature.
        let reframed = "v4.public." + Base64URL.encode(list) + "." + Base64URL.encode(Fixture.footer(for: Hostile.signer))
        #expect(try Hostile.outcome(reframed) == .badSignature)
        // Even when the body's digest is the message (what the list's signature covers, minus the domain).
        let body = Array(list.dropLast(64)), signature = Array(list.suffix(64))
        let digest = Sodium.blake2b(body, length: 64)
        let digestToken = "v4.public." + Base64URL.encode(digest + signature) + "." + Base64URL.encode(Fixture.footer(for: Hostile.signer))
        #expect(try Hostile.outcome(digestToken) == .badSignature)
    }

    @Test("a token is never a revocation list")
    func tokenAsList() throws {
        let error = patError { try RevocationList(verifying: Array(Hostile.token.utf8), keys: Hostile.keys) }
        #expect(error?.isInvalidDocument == true)
        // Its decoded payload (message ‖ signature) is no list either.
        let parts = try PASETOv4Public.parse(Hostile.token)
        #expect(patError { try RevocationList(verifying: parts.message + parts.signature, keys: Hostile.keys) }?.isInvalidDocument == true)
        // Nor is a list header in front of a token's signature: the signature's domain differs.
        let list = try Hostile.list()
        let grafted = Array(list.dropLast(64)) + parts.signature
        #expect(patError { try RevocationList(verifying: grafted, keys: Hostile.keys) }?.isInvalidDocument == true)
        #expect(patError { try Hostile.validator().installRevocations(Array(Hostile.token.utf8)) }?.isInvalidDocument == true)
    }

    // MARK: - revocation lists

    struct ListCase: Sendable, CustomTestStringConvertible {
        let label: String
        let bytes: @Sendable () throws -> [UInt8]
        var testDescription: String { label }
    }

    static let malformedLists: [ListCase] = [
        ListCase(label: "signed by an unknown key") { try Hostile.list(signer: Hostile.stranger) },
        ListCase(label: "signed by the retired key") { try Hostile.list(signer: Hostile.retired) },
        ListCase(label: "empty") { [] },
        ListCase(label: "magic only") { Array("PATKRL03".utf8) },
        ListCase(label: "another magic (PATKRL04)") {
            var b = try Hostile.list()
            b[7] = UInt8(ascii: "4")
            return b
        },
        ListCase(label: "the version 2 magic (PATKRL02)") {
            var b = try Hostile.list()
            b[7] = UInt8(ascii: "2")
            return b
        },
        ListCase(label: "a delta's magic (PATKRD01)") {
            var b = try Hostile.list()
            b[5] = UInt8(ascii: "D")
            b[6] = UInt8(ascii: "0")
            b[7] = UInt8(ascii: "1")
            return b
        },
        ListCase(label: "the version 1 magic (PATKRL01)") {
            var b = try Hostile.list()
            b[7] = UInt8(ascii: "1")
            return b
        },
        ListCase(label: "truncated by one byte") { Array(try Hostile.list().dropLast()) },
        ListCase(label: "one extra byte") { try Hostile.list() + [0] },
        ListCase(label: "signature flipped") {
            var b = try Hostile.list()
            b[b.count - 1] ^= 1
            return b
        },
        ListCase(label: "body flipped") {
            var b = try Hostile.list()
            b[8 + 1 + 51] ^= 1 // the sequence
            return b
        },
        ListCase(label: "kid length 255 over garbage") { Array("PATKRL03".utf8) + [255] + [UInt8](repeating: 0x41, count: 300) },
        ListCase(label: "kid not UTF-8") { Array("PATKRL03".utf8) + [4, 0xFF, 0xFE, 0xFD, 0xFC] + [UInt8](repeating: 0, count: 100) },
        ListCase(label: "header claiming 2^32−1 + 2^32−1 entries") {
            var b = try Hostile.list()
            let counts = 8 + 1 + 51 + 24
            for i in counts..<(counts + 8) { b[i] = 0xFF }
            return b
        },
        ListCase(label: "a token's text") { Array(Hostile.token.utf8) },
        ListCase(label: "a key set document") { Hostile.keys.encoded() },
    ]

    @Test("malformed, foreign-signed or tampered lists are invalid documents", arguments: malformedLists)
    func malformedList(_ c: ListCase) throws {
        let bytes = try c.bytes()
        #expect(patError { try RevocationList(verifying: bytes, keys: Hostile.keys) }?.isInvalidDocument == true)
        let validator = try Hostile.validator()
        #expect(patError { try validator.installRevocations(bytes) }?.isInvalidDocument == true)
        #expect(validator.revocations?.sequence == Hostile.listSequence, "the held list stays")
    }

    @Test("a list signed by a key retired after it was installed no longer installs; held lists stay")
    func listOfRetiredKey() throws {
        let validator = try Hostile.validator()
        let newer = try Hostile.list(sequence: Hostile.listSequence + 1)
        var keys = Hostile.keys
        try keys.retire(Hostile.signer.id)
        validator.replaceKeys(keys)
        #expect(patError { try validator.installRevocations(newer) }?.isInvalidDocument == true)
    }

    @Test("rollback: a lower sequence is refused; the same sequence with other content too",
          arguments: [Hostile.listSequence - 1, 1])
    func rollback(_ lower: UInt64) throws {
        let validator = try Hostile.validator()
        let error = patError { try validator.installRevocations(try Hostile.list(sequence: lower)) }
        #expect(error == .rollback(held: Hostile.listSequence, offered: lower))
        // Same sequence, different content (another next-update).
        let twin = try Hostile.list(nextUpdate: Hostile.now.adding(seconds: 7200))
        #expect(patError { try validator.installRevocations(twin) }?.isInvalidDocument == true)
        // The very same list again is fine; a higher sequence installs.
        #expect(patError { try validator.installRevocations(try Hostile.list()) } == nil)
        #expect(patError { try validator.installRevocations(try Hostile.list(sequence: Hostile.listSequence + 1)) } == nil)
        #expect(validator.revocations?.sequence == Hostile.listSequence + 1)
    }

    struct StaleCase: Sendable, CustomTestStringConvertible {
        let label: String
        let offset: Int64          // clock − nextUpdate
        let grace: Int64
        let policy: Validator.StaleListPolicy
        let expected: PATValidationError.Code?
        var testDescription: String { label }
    }

    static let staleCases: [StaleCase] = [
        StaleCase(label: "at next-update", offset: 0, grace: 0, policy: .reject, expected: nil),
        StaleCase(label: "1 s past next-update (reject)", offset: 1, grace: 0, policy: .reject, expected: .staleRevocationList),
        StaleCase(label: "a day past next-update (reject)", offset: 86_400, grace: 0, policy: .reject, expected: .staleRevocationList),
        StaleCase(label: "within the grace", offset: 300, grace: 300, policy: .reject, expected: nil),
        StaleCase(label: "past the grace", offset: 301, grace: 300, policy: .reject, expected: .staleRevocationList),
        StaleCase(label: "stale, accept policy", offset: 86_400, grace: 0, policy: .accept, expected: nil),
    ]

    @Test("a list past its next-update", arguments: staleCases)
    func staleList(_ c: StaleCase) throws {
        let nextUpdate = Hostile.now.adding(seconds: 3600)
        let list = try RevocationList(verifying: try Hostile.list(nextUpdate: nextUpdate), keys: Hostile.keys)
        let clock = nextUpdate.adding(seconds: c.offset)
        var policy = Validator.Policy()
        policy.staleGrace = c.grace
        policy.staleListPolicy = c.policy
        let validator = Validator(keys: Hostile.keys, revocations: list, policy: policy, clock: { clock })
        // A token valid at that time.
        let json = Hostile.replacing("2026-03-02T12:00:00Z", "2026-06-01T00:00:00Z")
        #expect(validationCode { try validator.validate(Hostile.sign(json)) } == c.expected)
    }

    @Test("no list held: every token is refused unless the policy allows it")
    func missingList() throws {
        let validator = Validator(keys: Hostile.keys, clock: { Hostile.now })
        #expect(validationCode { try validator.validate(Hostile.token) } == .missingRevocationList)
        var policy = Validator.Policy()
        policy.requireRevocationList = false
        let lenient = Validator(keys: Hostile.keys, policy: policy, clock: { Hostile.now })
        #expect(validationCode { try lenient.validate(Hostile.token) } == nil)
    }

    @Test("revoked generations through the list are refused, later ones pass", arguments: [(1, true), (2, true), (3, false), (4, false)] as [(Int, Bool)])
    func revokedGenerations(_ generation: Int, _ revoked: Bool) throws {
        let json = Hostile.replacing(Hostile.jti, Hostile.revokedID, in: Hostile.replacing(#""gen":2"#, #""gen":\#(generation)"#))
        #expect(try Hostile.outcome(Hostile.sign(json)) == (revoked ? .revoked : nil))
    }

    // MARK: - key files

    enum KeyFileExpectation: Sendable {
        case loads, insecure, invalidKey, io
    }

    struct KeyFileCase: Sendable, CustomTestStringConvertible {
        let label: String
        let mode: mode_t
        /// The file's content given the real k4.secret PASERK (nil: keep the file the store wrote).
        let content: (@Sendable (String) -> [UInt8])?
        let expected: KeyFileExpectation
        var testDescription: String { label }

        init(_ label: String, mode: mode_t = 0o600, _ expected: KeyFileExpectation, content: (@Sendable (String) -> [UInt8])? = nil) {
            self.label = label
            self.mode = mode
            self.content = content
            self.expected = expected
        }
    }

    static let keyFileCases: [KeyFileCase] = [
        KeyFileCase("as written (0600)", .loads),
        KeyFileCase("read-only for the owner (0400)", mode: 0o400, .loads),
        KeyFileCase("mode 0644", mode: 0o644, .insecure),
        KeyFileCase("mode 0640", mode: 0o640, .insecure),
        KeyFileCase("mode 0604", mode: 0o604, .insecure),
        KeyFileCase("mode 0660", mode: 0o660, .insecure),
        KeyFileCase("mode 0602 (others may write)", mode: 0o602, .insecure),
        KeyFileCase("mode 0644 even with garbage inside", mode: 0o644, .insecure) { _ in Array("garbage".utf8) },
        KeyFileCase("without the trailing newline", .loads) { Array($0.utf8) },
        KeyFileCase("surrounded by spaces and blank lines", .loads) { Array(("\n  " + $0 + "  \n\n").utf8) },
        KeyFileCase("CRLF line ending (written on Windows)", .loads) { Array(($0 + "\r\n").utf8) },
        KeyFileCase("empty", .invalidKey) { _ in [] },
        KeyFileCase("only a newline", .invalidKey) { _ in [0x0A] },
        KeyFileCase("truncated by one character", .invalidKey) { Array(($0.dropLast() + "\n").utf8) },
        KeyFileCase("truncated to half", .invalidKey) { Array($0.prefix($0.count / 2).utf8) },
        KeyFileCase("one character garbled (public half no longer matches)", .invalidKey) { paserk in
            var chars = Array(paserk)
            chars[20] = chars[20] == "A" ? "B" : "A"
            return Array(String(chars).utf8)
        },
        KeyFileCase("a non-alphabet character inside", .invalidKey) { paserk in
            var chars = Array(paserk)
            chars[30] = "*"
            return Array(String(chars).utf8)
        },
        KeyFileCase("NUL bytes", .invalidKey) { _ in [UInt8](repeating: 0, count: 96) },
        KeyFileCase("binary (the raw 64 key bytes)", .invalidKey) { paserk in
            Base64URL.decode(String(paserk.dropFirst("k4.secret.".count))) ?? []
        },
        KeyFileCase("a k4.public in the .secret file", .invalidKey) { paserk in
            let key = try? SecretKey.fromPASERK(paserk)
            return Array((key?.publicKey.paserk ?? "k4.public.").utf8)
        },
        KeyFileCase("a k3.secret", .invalidKey) { Array(("k3.secret." + $0.dropFirst("k4.secret.".count)).utf8) },
        KeyFileCase("a k4.local", .invalidKey) { _ in Array(("k4.local." + Base64URL.encode([UInt8](repeating: 9, count: 32))).utf8) },
        KeyFileCase("uppercase prefix K4.SECRET.", .invalidKey) { Array(("K4.SECRET." + $0.dropFirst("k4.secret.".count)).utf8) },
        KeyFileCase("two keys in one file", .invalidKey) { Array(($0 + "\n" + $0 + "\n").utf8) },
        KeyFileCase("another valid key (not the one the name says)", .invalidKey) { _ in
            Array(Hostile.stranger.exportPASERK().utf8)
        },
        KeyFileCase("10 MB", .io) { _ in [UInt8](repeating: 0x41, count: 10_000_000) },
    ]

    @Test("key files with bad permissions or bad content", arguments: keyFileCases)
    func keyFile(_ c: KeyFileCase) throws {
        let dir = try TempDirectory()
        defer { dir.remove() }
        let store = KeyStore(directory: dir.path)
        let key = try store.generate(now: Hostile.now)
        let path = store.secretKeyPath(key.id)
        if let content = c.content {
            try SecureFile.writeAtomically(path, content(key.exportPASERK()), mode: 0o600)
        }
        #expect(chmod(path, c.mode) == 0)
        let result = Result { () throws(PATKitError) -> SecretKey in try store.secretKey(key.id) }
        switch (c.expected, result) {
        case (.loads, .success(let loaded)):
            #expect(loaded.id == key.id)
            #expect(try store.signingKey().id == key.id)
        case (.insecure, .failure(.insecureKeyFile(let reported, let mode))):
            #expect(reported == path)
            #expect(mode & 0o777 == UInt32(c.mode))
        case (.invalidKey, .failure(.invalidKey(let message))):
            // Never the key material in the message.
            #expect(!message.contains(String(key.exportPASERK().dropFirst(10).prefix(16))))
        case (.io, .failure(.io)): break
        default: Issue.record("expected \(c.expected), got \(result)")
        }
    }

    @Test("a secret key file that is a symlink is refused")
    func keyFileSymlink() throws {
        let dir = try TempDirectory()
        defer { dir.remove() }
        let store = KeyStore(directory: dir.path)
        let key = try store.generate(now: Hostile.now)
        let path = store.secretKeyPath(key.id)
        #expect(rename(path, dir.file("elsewhere")) == 0)
        #expect(symlink(dir.file("elsewhere"), path) == 0)
        #expect(patError { try store.secretKey(key.id) }?.isIO == true)
    }

    @Test("a garbled keyset.json is refused", arguments: [
        ("", false), ("{", false), (#"{"keys":{}}"#, false), ("\u{0}\u{1}\u{2}", false), (#"{"keys":[1]}"#, false),
        (#"{"keys":[{"kid":"k4.pid.x","key":"k4.public.x"}]}"#, true), (#"{"keys":[{"kid":"k4.pid.x","key":"k4.secret.x"}]}"#, true),
    ] as [(String, Bool)])
    func garbledKeySet(_ content: String, _ badKey: Bool) throws {
        let dir = try TempDirectory()
        defer { dir.remove() }
        let store = KeyStore(directory: dir.path)
        _ = try store.generate(now: Hostile.now)
        try SecureFile.writeAtomically(store.manifestPath, Array(content.utf8))
        let error = patError { try store.keySet() }
        #expect((badKey ? error?.isInvalidKey : error?.isInvalidDocument) == true, "\(String(describing: error))")
        #expect(patError { try store.signingKey() } != nil)
    }

    @Test("a truncated keyset.json at every length is refused, never half-read")
    func truncatedKeySet() throws {
        let full = Hostile.keys.encoded()
        for length in 0..<(full.count - 1) { // the last byte is the newline: dropping it still parses
            let error = patError { try KeySet(json: Array(full.prefix(length))) }
            #expect(error?.isInvalidDocument == true, "length \(length): \(String(describing: error))")
        }
        #expect(try KeySet(json: full) == Hostile.keys)
    }

    // MARK: - the clock

    struct ClockCase: Sendable, CustomTestStringConvertible {
        let label: String
        let offsetFromExp: Int64
        let expected: PATValidationError.Code?
        var testDescription: String { label }
    }

    static let expiry = Hostile.now.adding(seconds: 3600)

    static let clockCases: [ClockCase] = [
        ClockCase(label: "1 s before exp", offsetFromExp: -1, expected: nil),
        ClockCase(label: "exactly at exp", offsetFromExp: 0, expected: nil),
        ClockCase(label: "exp + 1 s (inside the leeway)", offsetFromExp: 1, expected: nil),
        ClockCase(label: "exp + leeway", offsetFromExp: 60, expected: nil),
        ClockCase(label: "exp + leeway + 1 s", offsetFromExp: 61, expected: .expired),
        ClockCase(label: "a year after exp", offsetFromExp: 365 * 86_400, expected: .expired),
    ]

    @Test("tokens at and around exp", arguments: clockCases)
    func aroundExpiry(_ c: ClockCase) throws {
        let json = Hostile.replacing("2026-03-02T12:00:00Z", Self.expiry.rfc3339)
        let token = Hostile.sign(json)
        let clock = TestClock(Hostile.now)
        let validator = try Hostile.validator(clock: { clock.now })
        _ = try validator.validate(token) // cached while valid
        clock.set(Self.expiry.adding(seconds: c.offsetFromExp))
        #expect(validationCode { try validator.validate(token) } == c.expected)
        let uncached = try Hostile.validator(cache: false, clock: { clock.now })
        #expect(validationCode { try uncached.validate(token) } == c.expected)
    }

    @Test("a clock that jumps backwards and forwards again")
    func clockJumpsBack() throws {
        let issuedAt = try #require(Timestamp(rfc3339: "2026-01-31T11:00:00Z"))
        let clock = TestClock(Hostile.now)
        for cache in [true, false] {
            clock.set(Hostile.now)
            let validator = try Hostile.validator(cache: cache, clock: { clock.now })
            #expect(validationCode { try validator.validate(Hostile.token) } == nil)
            // Back to before iat − leeway: not yet valid (also from the cache).
            clock.set(issuedAt.adding(seconds: -61))
            #expect(validationCode { try validator.validate(Hostile.token) } == .notYetValid)
            // Exactly iat − leeway: valid again.
            clock.set(issuedAt.adding(seconds: -60))
            #expect(validationCode { try validator.validate(Hostile.token) } == nil)
            // Far back (a clock reset to the epoch), then forward to now.
            clock.set(Timestamp(seconds: 0))
            #expect(validationCode { try validator.validate(Hostile.token) } == .notYetValid)
            clock.set(Hostile.now)
            #expect(validationCode { try validator.validate(Hostile.token) } == nil)
        }
    }

    @Test("nbf in the future, at the edges of the leeway", arguments: [(-61, .notYetValid), (-60, nil), (0, nil)] as [(Int64, PATValidationError.Code?)])
    func notBefore(_ offset: Int64, _ expected: PATValidationError.Code?) throws {
        let nbf = Hostile.now.adding(seconds: 600)
        let json = Hostile.replacing(#""dom":"dom-1""#, #""dom":"dom-1","nbf":"\#(nbf.rfc3339)""#)
        let clock = nbf.adding(seconds: offset)
        let validator = try Hostile.validator(clock: { clock })
        #expect(validationCode { try validator.validate(Hostile.sign(json)) } == expected)
    }

    // MARK: - the other parsers of untrusted text

    @Test("PASERK strings of other types, versions and shapes are invalid keys", arguments: [
        "", "k4.public.", "k4.secret.", "k4.pid.", "k3.public.AAAA", "k4.public.\u{212A}", "K4.PUBLIC.AAAA",
        "k4.public." + String(repeating: "A", count: 42) + "=", "k4.public." + String(repeating: "A", count: 44),
        "k4.public." + String(repeating: "/", count: 43), "k4.public." + String(repeating: "A", count: 10_000),
    ])
    func paserkStrings(_ text: String) {
        #expect(patError { try PublicKey(paserk: text) }?.isInvalidKey == true)
        #expect(patError { try SecretKey.fromPASERK(text) }?.isInvalidKey == true)
        #expect(patError { try KeyID(text) }?.isInvalidKey == true)
    }

    @Test("scope strings outside the grammar are invalid scopes", arguments: [
        "", ":", "a:", ":b", "a:b:", "a:b:c:d", "A:b", "a:B", "a b:c", "a:b:c d", "a:b:*x", "a:b:é", "a:b:\u{0}",
        String(repeating: "a", count: 65) + ":b", "a:" + String(repeating: "b", count: 65), "a:b:" + String(repeating: "c", count: 129),
        "clients:view\n", "clients:view:\u{212A}",
    ])
    func scopeStrings(_ text: String) {
        #expect(patError { try Scope(parsing: text) }?.isInvalidScope == true)
        #expect(patError { try ScopeSet(claim: text) }?.isInvalidScope == true || text.isEmpty)
    }

    @Test("scope claims with bad separators or too many scopes", arguments: [
        " clients:view", "clients:view ", "clients:view  channels:view", "clients:view\tchannels:view",
        Array(repeating: "clients:view", count: 257).joined(separator: " "),
    ])
    func scopeClaims(_ claim: String) {
        #expect(patError { try ScopeSet(claim: claim) }?.isInvalidScope == true)
    }

    @Test("durations outside the grammar or range", arguments: [
        "", "s", "0s", "-1d", "+1d", "1.5h", "1 d", "1D", "1dd", "١d", "９d", "101y", "9223372036854775807s", "99999999999999999999s",
    ])
    func durations(_ text: String) {
        #expect(patError { try TimeSpan(parsing: text) }?.isInvalidArgument == true)
    }
}
