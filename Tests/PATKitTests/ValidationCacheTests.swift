import Testing
@testable import PATKit

/// The validation cache never returns a stale answer: every change takes effect on the very
/// next call for a token that is already cached.
@Suite struct ValidationCacheTests {
    let key: SecretKey
    let clock: TestClock

    init() throws {
        key = try Fixture.key(41)
        clock = TestClock(Fixture.now)
    }

    func list(sequence: UInt64, _ edit: (inout RevocationList.Builder) -> Void = { _ in }) throws -> RevocationList {
        var builder = RevocationList.Builder()
        edit(&builder)
        let bytes = try builder.sign(with: key, sequence: sequence, issuedAt: Fixture.now.adding(seconds: -60),
                                     nextUpdate: Fixture.now.adding(seconds: Fixture.hour))
        return try RevocationList(verifying: bytes, keys: KeySet(keys: [key.publicKey]))
    }

    func cachingValidator(keys: KeySet, capacity: Int = 1000) throws -> Validator {
        var policy = Validator.Policy()
        policy.cacheCapacity = capacity
        let clock = self.clock
        return Validator(keys: keys, revocations: try list(sequence: 1), policy: policy, clock: { clock.now })
    }

    /// Validates twice; the first call is a miss, the second must be answered from the cache
    /// (the hit counter moves only on a real hit).
    func warm(_ validator: Validator, _ token: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let hits = validator.cacheHitCount
        _ = try validator.validate(token)
        #expect(validator.cacheHitCount == hits, "a token seen for the first time is verified in full", sourceLocation: sourceLocation)
        _ = try validator.validate(token)
        #expect(validator.cacheHitCount == hits + 1, "the second validation is a cache hit", sourceLocation: sourceLocation)
    }

    /// The outcome of validating `token`, which must be answered from the cache: the rules are
    /// checked on the hit itself, not on a fresh verification.
    func codeOnHit(_ validator: Validator, _ token: String, domain: String? = nil,
                   sourceLocation: SourceLocation = #_sourceLocation) -> PATValidationError.Code? {
        let hits = validator.cacheHitCount
        let code = validationCode { try validator.validate(token, domain: domain) }
        #expect(validator.cacheHitCount == hits + 1, "answered from the cache", sourceLocation: sourceLocation)
        return code
    }

    @Test func revokedTokenIsRejectedOnTheNextCall() throws {
        let validator = try cachingValidator(keys: KeySet(keys: [key.publicKey]))
        let claims = try Fixture.claims(generation: 3)
        let token = try Issuer(key: key).issue(claims)
        try warm(validator, token)
        try validator.install(list(sequence: 2) { $0.revoke(id: claims.id, below: 4, horizon: claims.expiresAt) })
        #expect(codeOnHit(validator, token) == .revoked)
    }

    @Test func ownerRevokeAllReachesCachedTokens() throws {
        let validator = try cachingValidator(keys: KeySet(keys: [key.publicKey]))
        let claims = try Fixture.claims(subject: "mallory")
        let token = try Issuer(key: key).issue(claims)
        try warm(validator, token)
        try validator.install(list(sequence: 2) {
            $0.revokeAll(subject: "mallory", issuedBefore: Fixture.now, horizon: claims.expiresAt)
        })
        #expect(codeOnHit(validator, token) == .revoked)
    }

    @Test func expiryIsCheckedOnEveryHit() throws {
        let validator = try cachingValidator(keys: KeySet(keys: [key.publicKey]))
        let claims = try Fixture.claims(expiresAt: Fixture.now.adding(seconds: 120))
        let token = try Issuer(key: key).issue(claims)
        try warm(validator, token)
        clock.set(claims.expiresAt.adding(seconds: validator.policy.leeway))
        #expect(throws: Never.self) { try validator.validate(token) }
        clock.set(claims.expiresAt.adding(seconds: validator.policy.leeway + 1))
        #expect(codeOnHit(validator, token) == .expired)
    }

    @Test func notBeforeIsCheckedOnEveryHit() throws {
        let validator = try cachingValidator(keys: KeySet(keys: [key.publicKey]))
        let token = try Issuer(key: key).issue(Fixture.claims(notBefore: Fixture.now.adding(seconds: -10)))
        try warm(validator, token)
        clock.set(Fixture.now.adding(seconds: -10 - validator.policy.leeway - 1))
        #expect(codeOnHit(validator, token) == .notYetValid)
    }

    @Test func retiredKeyIsRejectedOnTheNextCall() throws {
        let newer = try Fixture.key(42)
        var keys = KeySet(keys: [key.publicKey, newer.publicKey])
        let validator = try cachingValidator(keys: keys)
        let oldToken = try Issuer(key: key).issue(Fixture.claims())
        let newToken = try Issuer(key: newer).issue(Fixture.claims())
        try warm(validator, oldToken)
        try warm(validator, newToken)
        try keys.retire(key.id)
        let hits = validator.cacheHitCount
        validator.replaceKeys(keys)
        #expect(validationCode { try validator.validate(oldToken) } == .unknownKey)
        #expect(throws: Never.self) { try validator.validate(newToken) }
        #expect(validator.cacheHitCount == hits, "a key change empties the cache: both were verified again")
    }

    @Test func staleListIsCheckedOnEveryHit() throws {
        let validator = try cachingValidator(keys: KeySet(keys: [key.publicKey]))
        let token = try Issuer(key: key).issue(Fixture.claims())
        try warm(validator, token)
        clock.set(Fixture.now.adding(seconds: Fixture.hour + 1))
        #expect(codeOnHit(validator, token) == .staleRevocationList)
    }

    @Test func domainIsCheckedOnEveryHit() throws {
        let validator = try cachingValidator(keys: KeySet(keys: [key.publicKey]))
        let token = try Issuer(key: key).issue(Fixture.claims(domain: "dom-1"))
        try warm(validator, token)
        #expect(codeOnHit(validator, token, domain: "dom-2") == .wrongDomain)
        #expect(codeOnHit(validator, token, domain: "dom-1") == nil)
    }

    @Test func aDifferentTokenNeverHits() throws {
        let validator = try cachingValidator(keys: KeySet(keys: [key.publicKey]))
        let token = try Issuer(key: key).issue(Fixture.claims())
        try warm(validator, token)
        let count = validator.cachedTokenCount
        let hits = validator.cacheHitCount
        // Same length, one character changed inside the signed payload.
        var bytes = Array(token.utf8)
        let position = "v4.public.".utf8.count + 5
        bytes[position] = bytes[position] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        let forged = String(decoding: bytes, as: UTF8.self)
        let code = validationCode { try validator.validate(forged) }
        #expect(code == .badSignature || code == .malformed)
        #expect(validator.cachedTokenCount == count)
        #expect(validator.cacheHitCount == hits, "no hit for other bytes")
    }

    @Test func cacheIsBounded() throws {
        let validator = try cachingValidator(keys: KeySet(keys: [key.publicKey]), capacity: 32)
        let issuer = Issuer(key: key)
        for _ in 0..<200 { _ = try validator.validate(issuer.issue(Fixture.claims())) }
        #expect(validator.cachedTokenCount <= 32)
        #expect(validator.cachedTokenCount > 0)
    }

    @Test func cacheCanBeTurnedOff() throws {
        let validator = try cachingValidator(keys: KeySet(keys: [key.publicKey]), capacity: 0)
        let token = try Issuer(key: key).issue(Fixture.claims())
        _ = try validator.validate(token)
        _ = try validator.validate(token)
        #expect(validator.cachedTokenCount == 0)
        #expect(validator.cacheHitCount == 0)
    }
}
