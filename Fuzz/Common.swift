// Shared fixtures and helpers of the libFuzzer targets in Fuzz/Targets.
//
// Every target is compiled together with Sources/PATKit/*.swift into one module named
// PATKit (see scripts/fuzz.sh), so it reaches internal API without @testable.
// A violated invariant prints what went wrong and aborts: libFuzzer records the input.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

enum FuzzFixture {
    /// 2026-01-31T12:00:00Z: the fuzzers' fixed "now".
    static let now = Timestamp(seconds: 1_769_860_800)
    static let leeway: Int64 = 60

    /// The active signing key (deterministic, generated for the fuzzers; no vector material).
    static let signer: SecretKey = key(0xA1)
    /// Listed in the key set but retired: verifies nothing.
    static let retired: SecretKey = key(0xB2)
    /// Not in the key set at all.
    static let stranger: SecretKey = key(0xC3)
    /// The trust anchor that signs key sets, and the anchors pinning it.
    static let anchor: SecretKey = key(0xD4)
    static let anchors: TrustAnchors = {
        guard let anchors = try? TrustAnchors([anchor.publicKey]) else { fail("anchors") }
        return anchors
    }()

    static func key(_ byte: UInt8) -> SecretKey {
        guard let key = try? SecretKey.fromSeed([UInt8](repeating: byte, count: 32)) else { fail("fromSeed failed") }
        return key
    }

    static let keys: KeySet = {
        var set = KeySet([KeySet.Entry(key: retired.publicKey, created: now.adding(seconds: -400 * 86_400)),
                          KeySet.Entry(key: signer.publicKey, created: now.adding(seconds: -30 * 86_400))])
        do { try set.retire(retired.id) } catch { fail("retire: \(error)") }
        return set
    }()

    // The revocation list the token fuzzer validates against.
    static let revokedID = "revokedRevokedRevoked0"    // generations below 3 revoked
    static let revokedFloor: UInt64 = 3
    static let deletedID = "deletedDeletedDeleted0"    // every generation
    static let revokedOwner = "mallory"                // tokens issued before `ownerCutoff`
    static let ownerCutoff = now.adding(seconds: -600)
    static let listSequence: UInt64 = 7

    static let listBytes: [UInt8] = {
        var b = RevocationList.Builder()
        let horizon = now.adding(seconds: 90 * 86_400)
        b.revoke(id: revokedID, below: revokedFloor, horizon: horizon)
        b.delete(id: deletedID, horizon: horizon)
        b.revokeAll(subject: revokedOwner, issuedBefore: ownerCutoff, horizon: horizon)
        do {
            return try b.sign(with: signer, sequence: listSequence, issuedAt: now.adding(seconds: -3600),
                              nextUpdate: now.adding(seconds: 86_400))
        } catch { fail("list: \(error)") }
    }()

    static let list: RevocationList = {
        do { return try RevocationList(verifying: listBytes, keys: keys) } catch { fail("list: \(error)") }
    }()

    static func validator(cacheCapacity: Int) -> Validator {
        var policy = Validator.Policy()
        policy.leeway = leeway
        policy.cacheCapacity = cacheCapacity
        return Validator(keys: keys, revocations: list, policy: policy, clock: { FuzzFixture.now })
    }

    /// The same trust, with and without the validation cache: they must always agree.
    static let cached = validator(cacheCapacity: 64)
    static let uncached = validator(cacheCapacity: 0)

    /// Claims that validate at `now` (the footer and signature fuzzers sign these).
    static let validClaims: [UInt8] = Array(
        #"{"jti":"fuzzFuzzFuzzFuzzFuzz00","sub":"user-1","gen":2,"iat":"2026-01-31T11:00:00Z","exp":"2026-03-02T12:00:00Z","dom":"dom-1","scope":"clients:view:* channels:connect_client:ch-42"}"#.utf8)

    static func footer(_ key: SecretKey) -> [UInt8] { Footer.encode(key.id) }

    /// `validClaims` signed by the active key: a token the validators accept.
    static let validToken = PASETOv4Public.sign(message: validClaims, footer: footer(signer), with: signer)
}

/// The base list of the delta fuzzer: every table filled, with keys a fuzzer finds by mutating a
/// byte — `key(n)` is 16 bytes of `n` — rather than BLAKE2b outputs.
enum DeltaFixture {
    static let sequence: UInt64 = 7

    static func key(_ byte: UInt8) -> EntryKey { EntryKey([UInt8](repeating: byte, count: 16)) }

    /// Tokens 0x10–0x17 (0x17 deleted), owners 0x20–0x22, an overlap on 0x10 and 0x11.
    static var builder: RevocationList.Builder {
        var b = RevocationList.Builder()
        let horizon = FuzzFixture.now.adding(seconds: 30 * 86_400)
        for i in UInt8(0)..<7 { b.revoke(key: key(0x10 + i), below: UInt64(i) + 2, horizon: horizon) }
        b.revoke(key: key(0x17), below: UInt64.max, horizon: horizon)
        for i in UInt8(0)..<3 {
            b.ownerEntries[key(0x20 + i)] = (FuzzFixture.now.adding(seconds: -600 * Int64(i + 1)).seconds, horizon.seconds)
        }
        b.overlapEntries[key(0x10)] = (1, FuzzFixture.now.adding(seconds: 3600).seconds)
        b.overlapEntries[key(0x11)] = (2, FuzzFixture.now.adding(seconds: 60).seconds)
        return b
    }

    static let baseBytes: [UInt8] = {
        do {
            return try builder.sign(with: FuzzFixture.signer, sequence: sequence, issuedAt: FuzzFixture.now.adding(seconds: -3600),
                                    nextUpdate: FuzzFixture.now.adding(seconds: 86_400))
        } catch { fail("delta base: \(error)") }
    }()

    static let base: RevocationList = {
        do { return try RevocationList(verifying: baseBytes, keys: FuzzFixture.keys) } catch { fail("delta base: \(error)") }
    }()
}

/// Stops the fuzzer with a message: an invariant does not hold for this input.
func fail(_ message: String, file: StaticString = #fileID, line: UInt = #line) -> Never {
    var text = "INVARIANT VIOLATED (\(file):\(line)): \(message)\n"
    text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    abort()
}

@inline(__always)
func invariant(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String,
               file: StaticString = #fileID, line: UInt = #line) {
    if !condition() { fail(message(), file: file, line: line) }
}

/// Byte equality: Swift's `==` on String is Unicode canonical equivalence, not what a
/// verifier means by "the same token".
func sameBytes(_ a: String, _ b: String) -> Bool { a.utf8.elementsEqual(b.utf8) }
func sameBytes(_ a: String?, _ b: String?) -> Bool {
    switch (a, b) {
    case (nil, nil): return true
    case (let x?, let y?): return sameBytes(x, y)
    default: return false
    }
}

func text(_ bytes: some Sequence<UInt8>) -> String { String(decoding: Array(bytes), as: UTF8.self) }

func input(_ data: UnsafePointer<UInt8>, _ size: Int) -> [UInt8] {
    Array(UnsafeBufferPointer(start: data, count: size))
}

/// A validation's outcome, comparable across validators.
enum Outcome: Equatable, CustomStringConvertible {
    case accepted(VerifiedPAT)
    case rejected(PATValidationError.Code)

    init(_ body: () throws(PATValidationError) -> VerifiedPAT) {
        do { self = .accepted(try body()) } catch { self = .rejected(error.code) }
    }

    var code: PATValidationError.Code? {
        if case .rejected(let c) = self { return c }
        return nil
    }

    var description: String {
        switch self {
        case .accepted(let pat): return "accepted(\(pat.id) gen \(pat.generation))"
        case .rejected(let code): return "rejected(\(code.rawValue))"
        }
    }
}

/// Validates with the uncached and the cached validator (twice: the second call is a cache
/// hit when the first succeeded); all three must agree.
func validateEverywhere(_ token: String) -> Outcome {
    let plain = Outcome { () throws(PATValidationError) -> VerifiedPAT in try FuzzFixture.uncached.validate(token) }
    let first = Outcome { () throws(PATValidationError) -> VerifiedPAT in try FuzzFixture.cached.validate(token) }
    let again = Outcome { () throws(PATValidationError) -> VerifiedPAT in try FuzzFixture.cached.validate(token) }
    invariant(plain == first && first == again,
              "cache changes the outcome: uncached \(plain), cached \(first), cached again \(again)")
    return plain
}

/// What `Validator.check` must decide for claims that parsed, at `FuzzFixture.now`
/// (an independent model of the time, revocation and domain rules).
func expectedOutcome(of claims: PATClaims) -> PATValidationError.Code? {
    let now = FuzzFixture.now.seconds, leeway = FuzzFixture.leeway
    if claims.issuedAt.seconds > now + leeway { return .notYetValid }
    if let nbf = claims.notBefore, nbf.seconds > now + leeway { return .notYetValid }
    if now > claims.expiresAt.seconds + leeway { return .expired }
    let id = Array(claims.id.utf8), subject = Array(claims.subject.utf8)
    if id == Array(FuzzFixture.revokedID.utf8), claims.generation < FuzzFixture.revokedFloor { return .revoked }
    if id == Array(FuzzFixture.deletedID.utf8) { return .revoked }
    if subject == Array(FuzzFixture.revokedOwner.utf8), claims.issuedAt < FuzzFixture.ownerCutoff { return .revoked }
    // Lineage: an ancestor below its floor kills the token (the list's floors, as above).
    for ancestor in claims.lineage {
        if ancestor.key == RevocationList.tokenKey(FuzzFixture.revokedID), ancestor.generation < FuzzFixture.revokedFloor { return .ancestorRevoked }
        if ancestor.key == RevocationList.tokenKey(FuzzFixture.deletedID) { return .ancestorRevoked }
    }
    return nil
}

/// Everything that must hold for a token the validators accepted.
func checkAccepted(_ token: String, _ pat: VerifiedPAT) {
    let parts: PASETOv4Public.Parts
    do { parts = try PASETOv4Public.parse(token) } catch { fail("accepted token does not parse: \(error)") }
    // Canonical: re-encoding the decoded parts gives the same bytes.
    let reencoded = PASETOv4Public.header + Base64URL.encode(parts.payload) + "." + Base64URL.encode(parts.footer)
    invariant(sameBytes(reencoded, token), "accepted token is not canonical: \(token) re-encodes as \(reencoded)")
    // The signer reproduces it exactly (Ed25519 is deterministic).
    let resigned = PASETOv4Public.sign(message: parts.message, footer: parts.footer, with: FuzzFixture.signer)
    invariant(sameBytes(resigned, token), "accepted token is not the signer's own encoding")
    // The footer names exactly the signing key, byte for byte.
    let kid: ArraySlice<UInt8>
    do { kid = try Footer.keyID(from: parts.footer) } catch { fail("accepted token's footer is refused: \(error)") }
    invariant(kid.elementsEqual(FuzzFixture.signer.id.rawValue.utf8), "accepted kid \(text(kid)) is not the signer's id")
    invariant(sameBytes(pat.keyID.rawValue, FuzzFixture.signer.id.rawValue), "VerifiedPAT names the wrong key")
    // Claims: the message parses to them, and they round-trip through JSON.
    let claims: PATClaims
    do { claims = try PATClaims(json: parts.message) } catch { fail("accepted token's claims do not parse: \(error)") }
    invariant(claims == pat.claims, "claims differ from the message")
    checkClaimsRoundTrip(claims)
    invariant(expectedOutcome(of: claims) == nil, "accepted claims the model refuses: \(expectedOutcome(of: claims)!)")
    invariant(FuzzFixture.list.check(claims) == nil, "accepted a revoked token")
}

/// Claims re-encode and re-parse to the same claims, byte for byte.
func checkClaimsRoundTrip(_ claims: PATClaims) {
    let encoded = JSONWriter.encode(.object(claims.json))
    let again: PATClaims
    do { again = try PATClaims(json: encoded) } catch {
        fail("re-encoded claims do not parse: \(error): \(String(decoding: encoded, as: UTF8.self))")
    }
    invariant(again == claims, "claims change in a round-trip")
    invariant(JSONWriter.encode(.object(again.json)) == encoded, "claims encoding is not stable")
    invariant(PATClaims.isValidID(claims.id), "parsed an invalid jti")
    invariant((1...PATClaims.maxGeneration).contains(claims.generation), "parsed gen \(claims.generation)")
    invariant(!claims.subject.isEmpty && claims.subject.utf8.count <= 256, "parsed an out-of-range sub")
    invariant(claims.scopes.count <= ScopeSet.maxCount, "more than \(ScopeSet.maxCount) scopes")
    for key in claims.extra.keys { invariant(!PATClaims.isRegistered(key), "registered claim \(key) in extra") }
    // Lineage: bounded, each entry prints back as the string it parsed from, never the token itself.
    invariant(claims.lineage.count <= PATAncestor.maxDepth, "lineage deeper than \(PATAncestor.maxDepth)")
    invariant(Set(claims.lineage.map(\.key)).count == claims.lineage.count, "one ancestor twice")
    for ancestor in claims.lineage {
        let reparsed = try? PATAncestor(parsing: ancestor.description)
        invariant(reparsed == ancestor, "ancestor \(ancestor) does not re-parse to itself")
        invariant(ancestor.key.base64URL.utf8.count == 22, "an ancestor key is not 22 characters")
    }
}
