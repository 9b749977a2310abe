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
        // The held list was signed by the retired key: it is dropped, not trusted (M4).
        #expect(validationCode { try validator.validate(newToken) } == .missingRevocationList)
        #expect(validator.droppedList?.signer == key.id)
        let fresh = try RevocationList(verifying: RevocationList.Builder().sign(with: newer, sequence: 2, issuedAt: Fixture.now.adding(seconds: -60),
                                                                                 nextUpdate: Fixture.now.adding(seconds: Fixture.hour)),
                                       keys: keys)
        try validator.install(fresh)
        #expect(validator.droppedList == nil)
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

    @Test("the cache is bounded in bytes, not only in entries, and oversize tokens are never cached (L1)")
    func boundedInBytes() throws {
        var policy = Validator.Policy()
        policy.cacheCapacity = 100_000
        policy.cacheMaxBytes = 256 * 1024
        let clock = self.clock
        let validator = Validator(keys: KeySet(keys: [key.publicKey]), revocations: try list(sequence: 1), policy: policy, clock: { clock.now })
        let issuer = Issuer(key: key)
        let scopes = (0..<20).map { "clients:view:client-number-\($0)" }
        for _ in 0..<2000 {
            _ = try validator.validate(try issuer.issue(Fixture.claims(scopes: scopes)))
        }
        #expect(validator.cachedBytes <= policy.cacheMaxBytes)
        #expect(validator.cachedBytes > policy.cacheMaxBytes / 2, "the budget is used, not wasted")
        #expect(validator.cachedTokenCount > 0 && validator.cachedTokenCount < 2000, "\(validator.cachedTokenCount) entries")

        // A token over cacheMaxTokenBytes is validated every time and never remembered.
        let wide = try issuer.issue(Fixture.claims(scopes: (0..<125).map { "clients:view:client-number-\($0)" }))
        #expect(wide.utf8.count > policy.cacheMaxTokenBytes)
        let before = validator.cachedTokenCount
        #expect(throws: Never.self) { try validator.validate(wide) }
        #expect(throws: Never.self) { try validator.validate(wide) }
        #expect(validator.cachedTokenCount == before)
    }

    @Test("an entry is charged at least its token and claims")
    func entryCost() throws {
        let small = try Issuer(key: key).issue(Fixture.claims())
        let large = try Issuer(key: key).issue(Fixture.claims(scopes: (0..<100).map { "channels:connect_client:channel-\($0)" }))
        let validator = Fixture.validator(keys: [key.publicKey])
        let smallCost = ValidationCache.Entry.cost(token: small, pat: try validator.validate(small))
        let largeCost = ValidationCache.Entry.cost(token: large, pat: try validator.validate(large))
        #expect(smallCost >= 640 + small.utf8.count)
        #expect(largeCost >= 2 * large.utf8.count, "the parsed scopes cost about as much again as the token")
        #expect(largeCost > smallCost)
    }

    @Test("every shard is used: the configured capacity is the capacity")
    func shardsAreAllUsed() throws {
        var policy = Validator.Policy()
        policy.cacheCapacity = 1600 // 100 a shard
        let validator = Validator(keys: KeySet(keys: [key.publicKey]), revocations: try list(sequence: 1), policy: policy, clock: { Fixture.now })
        let issuer = Issuer(key: key)
        // Claims of a length where message ‖ signature leaves 1 byte in the last base64 group:
        // the token's last signature character then carries only 2 random bits (the old shard
        // index read it, and so used 2 shards of 16).
        let subject = try #require((1...3).map { String(repeating: "u", count: $0) }.first { subject in
            guard let token = try? issuer.issue(Fixture.claims(subject: subject)),
                  let parts = try? PASETOv4Public.parse(token) else { return false }
            return (parts.messageBytes.count + 64) % 3 == 1
        })
        for _ in 0..<1600 { _ = try validator.validate(try issuer.issue(Fixture.claims(subject: subject))) }
        // Random spread over 16 shards of 100 keeps about 1540; two shards (the old bug) kept 200.
        #expect(validator.cachedTokenCount > 1300, "\(validator.cachedTokenCount) of 1600 cached")
    }
}
