import Testing
@testable import PATKit

struct DigestTests {
    @Test("HMAC-SHA-256 matches RFC 4231 test case 2")
    func hmacVector() {
        let mac = Digest.hmacSHA256(key: Array("Jefe".utf8), message: Array("what do ya want for nothing?".utf8))
        #expect(mac == hexBytes("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"))
    }

    @Test func blake2bLengthsAndConstantTimeCompare() {
        let a = Digest.blake2b(Array("x".utf8), length: 16)
        #expect(a.count == 16)
        #expect(Digest.blake2b(Array("x".utf8)).count == 32)
        #expect(Digest.constantTimeEqual(a, Digest.blake2b(Array("x".utf8), length: 16)))
        #expect(!Digest.constantTimeEqual(a, Digest.blake2b(Array("y".utf8), length: 16)))
        #expect(!Digest.constantTimeEqual(a, Array(a.dropLast())))
    }
}

struct AtomicInstallTests {
    func list(_ key: SecretKey, sequence: UInt64) throws -> [UInt8] {
        try RevocationList.Builder().sign(with: key, sequence: sequence, issuedAt: Fixture.now.adding(seconds: -60),
                                          nextUpdate: Fixture.now.adding(seconds: Fixture.hour))
    }

    @Test("the unverified header reads what the list says, and nothing else")
    func unverifiedHeader() throws {
        let key = try Fixture.key(61)
        let bytes = try list(key, sequence: 7)
        let header = try #require(RevocationList.UnverifiedHeader(bytes))
        #expect(header.sequence == 7)
        #expect(header.signer == key.id.rawValue)
        #expect(header.nextUpdate == Fixture.now.adding(seconds: Fixture.hour))
        #expect(RevocationList.unverifiedSequence(header: Array(bytes.prefix(RevocationList.maxHeaderBytes))) == 7)
        #expect(RevocationList.UnverifiedHeader(Array("v4.public.xyz".utf8)) == nil)
        #expect(RevocationList.UnverifiedHeader(Array(bytes.prefix(20))) == nil)
    }

    @Test("a rotation installs the new key set and its list together")
    func rotation() throws {
        let old = try Fixture.key(62), new = try Fixture.key(63)
        let oldKeys = KeySet(keys: [old.publicKey])
        let validator = Validator(keys: oldKeys, revocations: try RevocationList(verifying: list(old, sequence: 1), keys: oldKeys),
                                  clock: { Fixture.now })
        let newKeys = KeySet(keys: [new.publicKey])
        let newList = try RevocationList(verifying: list(new, sequence: 2), keys: newKeys)
        // One at a time, the list is refused (its signer is not yet trusted)...
        #expect(patError { try validator.install(newList) }?.isInvalidDocument == true)
        // ...together, both take effect at once.
        try validator.install(keys: newKeys, revocations: newList)
        #expect(validator.revocations?.sequence == 2)
        #expect(validationCode { try validator.validate(Issuer(key: old).issue(Fixture.claims())) } == .unknownKey)
        #expect(throws: Never.self) { try validator.validate(Issuer(key: new).issue(Fixture.claims())) }
        // Rollback is still refused.
        let stale = try RevocationList(verifying: list(new, sequence: 1), keys: newKeys)
        if case .rollback? = patError({ try validator.install(keys: newKeys, revocations: stale) }) {} else {
            Issue.record("expected a rollback refusal")
        }
    }
}
