import Testing
@testable import PATKit

@Suite("Revocation list")
struct RevocationListTests {
    let key: SecretKey
    let keys: KeySet
    let horizon = Fixture.now.adding(seconds: 30 * Fixture.day)

    init() throws {
        key = try Fixture.key(1)
        keys = KeySet(keys: [key.publicKey])
    }

    func sign(_ builder: RevocationList.Builder, sequence: UInt64 = 1, with signer: SecretKey? = nil,
              nextUpdate: Timestamp? = nil) throws -> [UInt8] {
        try builder.sign(with: signer ?? key, sequence: sequence, issuedAt: Fixture.now,
                         nextUpdate: nextUpdate ?? Fixture.now.adding(seconds: Fixture.hour))
    }

    func makeList(_ builder: RevocationList.Builder, sequence: UInt64 = 1) throws -> RevocationList {
        try RevocationList(verifying: sign(builder, sequence: sequence), keys: keys)
    }

    /// A builder with one entry of each kind.
    func sampleBuilder() -> RevocationList.Builder {
        var b = RevocationList.Builder()
        b.revoke(id: "superseded-pat-id-0000000", below: 3, horizon: horizon)
        b.delete(id: "deleted-pat-id-000000000", horizon: horizon)
        b.revokeAll(subject: "mallory", issuedBefore: Fixture.now, horizon: horizon)
        return b
    }

    @Test("build, sign and verify")
    func roundTrip() throws {
        let bytes = try sign(sampleBuilder(), sequence: 7)
        #expect(bytes.count == 8 + 1 + 51 + 8 + 8 + 8 + 4 + 4 + 4 + 4 + 3 * 32 + 64)
        #expect(Array(bytes.prefix(8)) == Array("PATKRL03".utf8))
        let list = try RevocationList(verifying: bytes, keys: keys)
        #expect(list.sequence == 7)
        #expect(list.issuedAt == Fixture.now)
        #expect(list.nextUpdate == Fixture.now.adding(seconds: Fixture.hour))
        #expect(list.signer == key.id)
        #expect(list.tokenEntryCount == 2)
        #expect(list.ownerEntryCount == 1)
        #expect(list.signature == Array(bytes.suffix(64)))
        // An empty list is fine too.
        let empty = try makeList(RevocationList.Builder())
        #expect(empty.tokenEntryCount == 0 && empty.ownerEntryCount == 0)
        #expect(empty.check(try Fixture.claims()) == nil)
    }

    @Test("signing refuses sequence 0 and next-update not after issue")
    func signArguments() throws {
        let b = RevocationList.Builder()
        #expect(patError { try b.sign(with: key, sequence: 0, issuedAt: Fixture.now, nextUpdate: Fixture.now.adding(seconds: 1)) }?.isInvalidArgument == true)
        #expect(patError { try b.sign(with: key, sequence: 1, issuedAt: Fixture.now, nextUpdate: Fixture.now) }?.isInvalidArgument == true)
    }

    @Test("floors: revoking below gen+1 kills that generation and older, newer passes")
    func floors() throws {
        let id = PATClaims.newID()
        var b = RevocationList.Builder()
        b.revoke(id: id, below: 3, horizon: horizon) // generation 2 was revoked; 3 is the re-issue
        let list = try makeList(b)
        for gen: UInt64 in [1, 2] {
            #expect(list.check(try Fixture.claims(id: id, generation: gen)) == .superseded(floor: 3))
        }
        for gen: UInt64 in [3, 4, PATClaims.maxGeneration] {
            #expect(list.check(try Fixture.claims(id: id, generation: gen)) == nil)
        }
        // Other PATs are untouched.
        #expect(list.check(try Fixture.claims(id: PATClaims.newID(), generation: 1)) == nil)
    }

    @Test("merging keeps the highest floor and latest horizon")
    func merging() throws {
        let id = PATClaims.newID()
        var b = RevocationList.Builder()
        b.revoke(id: id, below: 5, horizon: horizon)
        b.revoke(id: id, below: 2, horizon: Fixture.now)
        #expect(b.tokenEntryCount == 1)
        let list = try makeList(b)
        #expect(list.check(try Fixture.claims(id: id, generation: 4)) == .superseded(floor: 5))
        // The later horizon survived: pruning just after the earlier one keeps the entry.
        var carried = list.builder
        #expect(carried.prune(now: Fixture.now.adding(seconds: 1)) == 0)
    }

    @Test("delete kills every generation")
    func delete() throws {
        let id = PATClaims.newID()
        var b = RevocationList.Builder()
        b.revoke(id: id, below: 4, horizon: horizon)
        b.delete(id: id, horizon: horizon)
        let list = try makeList(b)
        for gen: UInt64 in [1, 4, 1000, PATClaims.maxGeneration] {
            #expect(list.check(try Fixture.claims(id: id, generation: gen)) == .deleted)
        }
    }

    @Test("revoke-all kills the owner's PATs issued before the instant, not later ones")
    func revokeAll() throws {
        let cut = Fixture.now.adding(seconds: -Fixture.hour)
        var b = RevocationList.Builder()
        b.revokeAll(subject: "alice", issuedBefore: cut, horizon: horizon)
        let list = try makeList(b)
        #expect(list.check(try Fixture.claims(subject: "alice", issuedAt: cut.adding(seconds: -1))) == .ownerRevoked(before: cut))
        #expect(list.check(try Fixture.claims(subject: "alice", issuedAt: cut)) == nil)
        #expect(list.check(try Fixture.claims(subject: "alice", issuedAt: cut.adding(seconds: 1))) == nil)
        #expect(list.check(try Fixture.claims(subject: "bob", issuedAt: cut.adding(seconds: -1))) == nil)
        // A later revoke-all of the same owner moves the instant forward, never back.
        var later = list.builder
        later.revokeAll(subject: "alice", issuedBefore: Fixture.now, horizon: horizon)
        later.revokeAll(subject: "alice", issuedBefore: cut.adding(seconds: -Fixture.day), horizon: horizon)
        let list2 = try makeList(later, sequence: 2)
        #expect(list2.ownerEntryCount == 1)
        #expect(list2.check(try Fixture.claims(subject: "alice", issuedAt: cut.adding(seconds: 1))) == .ownerRevoked(before: Fixture.now))
    }

    @Test("the revocation reasons read well")
    func descriptions() {
        #expect(Revocation.deleted.description.contains("deleted"))
        #expect(Revocation.superseded(floor: 3).description.contains("below 3"))
        #expect(Revocation.ownerRevoked(before: Fixture.now).description.contains("2026-01-31T12:00:00Z"))
    }

    @Test("prune drops entries whose horizon has passed")
    func prune() throws {
        var b = RevocationList.Builder()
        let gone = PATClaims.newID(), kept = PATClaims.newID(), edge = PATClaims.newID()
        b.revoke(id: gone, below: 2, horizon: Fixture.now.adding(seconds: -1))
        b.revoke(id: kept, below: 2, horizon: Fixture.now.adding(seconds: 1))
        b.revoke(id: edge, below: 2, horizon: Fixture.now)
        b.revokeAll(subject: "old", issuedBefore: Fixture.now, horizon: Fixture.now.adding(seconds: -10))
        b.revokeAll(subject: "new", issuedBefore: Fixture.now, horizon: Fixture.now.adding(seconds: 10))
        var withLeeway = b
        #expect(withLeeway.prune(now: Fixture.now, margin: 5) == 1) // only "old" (horizon now-10 < now-5)
        var withDefault = b
        #expect(withDefault.prune(now: Fixture.now) == 0) // default leeway 60 s, as verifiers
        #expect(b.prune(now: Fixture.now, margin: 0) == 2)
        #expect(b.tokenEntryCount == 2)
        #expect(b.ownerEntryCount == 1)
        let list = try makeList(b)
        #expect(list.check(try Fixture.claims(id: gone)) == nil)
        #expect(list.check(try Fixture.claims(id: kept)) == .superseded(floor: 2))
        #expect(list.check(try Fixture.claims(id: edge)) == .superseded(floor: 2))
        #expect(list.check(try Fixture.claims(subject: "old", issuedAt: Fixture.now.adding(seconds: -5))) == nil)
        #expect(list.check(try Fixture.claims(subject: "new", issuedAt: Fixture.now.adding(seconds: -5))) != nil)
    }

    @Test("carry-forward through list.builder keeps every entry")
    func carryForward() throws {
        let first = try makeList(sampleBuilder())
        var next = first.builder
        #expect(next.tokenEntryCount == 2 && next.ownerEntryCount == 1)
        let added = PATClaims.newID()
        next.revoke(id: added, below: 2, horizon: horizon)
        let second = try makeList(next, sequence: 2)
        #expect(second.tokenEntryCount == 3 && second.ownerEntryCount == 1)
        #expect(second.check(try Fixture.claims(id: "superseded-pat-id-0000000", generation: 2)) == .superseded(floor: 3))
        #expect(second.check(try Fixture.claims(id: "deleted-pat-id-000000000", generation: 9)) == .deleted)
        #expect(second.check(try Fixture.claims(subject: "mallory", issuedAt: Fixture.now.adding(seconds: -1))) == .ownerRevoked(before: Fixture.now))
        #expect(second.check(try Fixture.claims(id: added)) == .superseded(floor: 2))
        // Re-signing the carried entries unchanged gives the same body.
        let again = try sign(first.builder, sequence: 1)
        let fresh = try sign(sampleBuilder(), sequence: 1)
        #expect(again == fresh)
    }

    @Test("lookups work in a large list")
    func largeList() throws {
        var b = RevocationList.Builder()
        let ids = (0..<5000).map { "pat-\($0)-padding-to-22-chars" }
        for (i, id) in ids.enumerated() { b.revoke(id: id, below: UInt64(i % 7 + 2), horizon: horizon) }
        for i in 0..<300 { b.revokeAll(subject: "user-\(i)", issuedBefore: Fixture.now, horizon: horizon) }
        let list = try makeList(b)
        #expect(list.tokenEntryCount == 5000 && list.ownerEntryCount == 300)
        for (i, id) in ids.enumerated() where i % 97 == 0 {
            let floor = UInt64(i % 7 + 2)
            #expect(list.check(try Fixture.claims(id: id, subject: "nobody", generation: floor - 1)) == .superseded(floor: floor))
            #expect(list.check(try Fixture.claims(id: id, subject: "nobody", generation: floor)) == nil)
        }
        #expect(list.check(try Fixture.claims(id: "pat-5000-padding-to-22-chars", subject: "nobody")) == nil)
        #expect(list.check(try Fixture.claims(subject: "user-299", issuedAt: Fixture.now.adding(seconds: -1))) != nil)
        #expect(list.check(try Fixture.claims(subject: "user-300", issuedAt: Fixture.now.adding(seconds: -1))) == nil)
    }

    // MARK: refusals

    @Test("a list signed by a key outside the key set is refused")
    func unknownSigner() throws {
        let stranger = try Fixture.key(9)
        let bytes = try sign(sampleBuilder(), with: stranger)
        #expect(patError { try RevocationList(verifying: bytes, keys: keys) }?.isInvalidDocument == true)
        // Nor by a retired key.
        var retired = KeySet(keys: [key.publicKey, stranger.publicKey])
        try retired.retire(stranger.id)
        #expect(patError { try RevocationList(verifying: bytes, keys: retired) }?.isInvalidDocument == true)
        // A signer named in the header that differs from the real signer fails the signature.
        var forged = bytes
        let ownID = Array(key.id.rawValue.utf8)
        forged.replaceSubrange(9..<(9 + ownID.count), with: ownID)
        #expect(patError { try RevocationList(verifying: forged, keys: keys) }?.isInvalidDocument == true)
    }

    @Test("every single-bit change is refused")
    func tampered() throws {
        let bytes = try sign(sampleBuilder())
        #expect(patError { try RevocationList(verifying: bytes, keys: keys) } == nil)
        for index in bytes.indices {
            for bit in [0, 7] {
                var tampered = bytes
                tampered[index] ^= UInt8(1 << bit)
                let error = patError { try RevocationList(verifying: tampered, keys: keys) }
                // A byte of the signer's id may turn it into a string that is no key id at all.
                #expect(error?.isInvalidDocument == true || error?.isInvalidKey == true, "byte \(index) bit \(bit)")
            }
        }
        // An entry byte specifically (inside the first token entry).
        var entry = bytes
        entry[8 + 1 + 51 + 32 + 5] ^= 0x10
        #expect(patError { try RevocationList(verifying: entry, keys: keys) }?.isInvalidDocument == true)
    }

    @Test("truncated or extended lists are refused")
    func truncated() throws {
        let bytes = try sign(sampleBuilder())
        for length in [0, 1, 7, 8, 9, 40, 60, 90, bytes.count - 65, bytes.count - 64, bytes.count - 1] {
            let error = patError { try RevocationList(verifying: Array(bytes.prefix(length)), keys: keys) }
            #expect(error?.isInvalidDocument == true || error?.isInvalidKey == true, "length \(length)")
        }
        #expect(patError { try RevocationList(verifying: bytes + [0], keys: keys) }?.isInvalidDocument == true)
        #expect(patError { try RevocationList(verifying: bytes, keys: keys, maxBytes: bytes.count - 1) }?.isInvalidDocument == true)
    }

    @Test("unsorted or duplicated entries are refused even when signed")
    func unsortedEntries() throws {
        var b = RevocationList.Builder()
        b.revoke(id: "aaaaaaaaaaaaaaaaaaaaaa", below: 2, horizon: horizon)
        b.revoke(id: "bbbbbbbbbbbbbbbbbbbbbb", below: 2, horizon: horizon)
        let good = try sign(b)
        // Swap the two entries and re-sign the body with the real key.
        let start = 8 + 1 + 51 + 8 + 8 + 8 + 4 + 4
        var body = Array(good.dropLast(64))
        let first = Array(body[start..<(start + 32)])
        let second = Array(body[(start + 32)..<(start + 64)])
        body.replaceSubrange(start..<(start + 64), with: second + first)
        let message = body.withUnsafeBytes { RevocationList.signedMessage($0) }
        let swapped = body + message.withUnsafeBytes { key.sign($0) }
        #expect(patError { try RevocationList(verifying: swapped, keys: keys) }?.isInvalidDocument == true)
        // Duplicate entry.
        body.replaceSubrange(start..<(start + 64), with: first + first)
        let dupMessage = body.withUnsafeBytes { RevocationList.signedMessage($0) }
        let duplicated = body + dupMessage.withUnsafeBytes { key.sign($0) }
        #expect(patError { try RevocationList(verifying: duplicated, keys: keys) }?.isInvalidDocument == true)
    }

    @Test("a token is never a list, and a list is never a token")
    func domainSeparation() throws {
        let token = try Issuer(key: key).issue(try Fixture.claims())
        #expect(patError { try RevocationList(verifying: Array(token.utf8), keys: keys) }?.isInvalidDocument == true)
        let parts = try PASETOv4Public.parse(token)
        #expect(patError { try RevocationList(verifying: parts.message + parts.signature, keys: keys) }?.isInvalidDocument == true)

        // A list's bytes wrapped as a v4.public token, with a footer naming its signer.
        let bytes = try sign(sampleBuilder())
        let validator = Fixture.validator(keys: [key.publicKey])
        let wrapped = "v4.public." + Base64URL.encode(bytes) + "." + Base64URL.encode(Fixture.footer(for: key))
        #expect(validationCode { try validator.validate(wrapped) } == .badSignature)
        #expect(validationCode { try validator.validate("v4.public." + Base64URL.encode(bytes)) } == .malformed)
        // Nor does its signature verify over the list's body as a PASETO message.
        let body = Array(bytes.dropLast(64))
        let asParts = try PASETOv4Public.parse("v4.public." + Base64URL.encode(bytes))
        #expect(asParts.message == body)
        #expect(validationCode { try PASETOv4Public.verify(asParts, key: key.publicKey) } == .badSignature)
    }

    // MARK: Validator.install

    @Test("install refuses rollback and same-sequence substitutes, accepts newer lists")
    func install() throws {
        let validator = Fixture.validator(keys: [key.publicKey]) { _ in }
        let list5 = try makeList(sampleBuilder(), sequence: 5)
        try validator.install(list5)
        #expect(validator.revocations?.sequence == 5)

        let list4 = try makeList(RevocationList.Builder(), sequence: 4)
        #expect(patError { try validator.install(list4) } == .rollback(held: 5, offered: 4))

        var other = sampleBuilder()
        other.revoke(id: PATClaims.newID(), below: 2, horizon: horizon)
        let other5 = try makeList(other, sequence: 5)
        #expect(patError { try validator.install(other5) }?.isInvalidDocument == true)
        #expect(validator.revocations?.signature == list5.signature)

        // The very same list again is harmless.
        #expect(patError { try validator.install(try makeList(sampleBuilder(), sequence: 5)) } == nil)

        let list6 = try makeList(other, sequence: 6)
        try validator.install(list6)
        #expect(validator.revocations?.sequence == 6)
        #expect(validator.revocations?.tokenEntryCount == 3)

        // installRevocations verifies bytes against the validator's keys.
        let bytes7 = try sign(other, sequence: 7)
        #expect(try validator.installRevocations(bytes7).sequence == 7)
        #expect(patError { try validator.installRevocations(try sign(other, sequence: 3)) } == .rollback(held: 7, offered: 3))
        #expect(PATKitError.rollback(held: 7, offered: 3).description.contains("rollback"))
    }

    @Test("install refuses a list whose signer is not an active key of the validator")
    func installForeignSigner() throws {
        let stranger = try Fixture.key(9)
        let foreignKeys = KeySet(keys: [stranger.publicKey])
        let foreign = try RevocationList(verifying: sign(sampleBuilder(), with: stranger), keys: foreignKeys)
        let validator = Fixture.validator(keys: [key.publicKey]) { _ in }
        #expect(patError { try validator.install(foreign) }?.isInvalidDocument == true)
        #expect(validator.revocations?.sequence == nil)
        #expect(patError { try validator.installRevocations(try sign(sampleBuilder(), with: stranger)) }?.isInvalidDocument == true)
    }

    @Test("the validator applies the installed list")
    func validatorRevocations() throws {
        let issuer = Issuer(key: key)
        let validator = Fixture.validator(keys: [key.publicKey]) { _ in }
        let id = PATClaims.newID()
        let gen1 = try issuer.issue(try Fixture.claims(id: id, generation: 1))
        let gen2 = try issuer.issue(try Fixture.claims(id: id, generation: 2))
        let deletedID = PATClaims.newID()
        let deleted = try issuer.issue(try Fixture.claims(id: deletedID, generation: 4))
        let owned = try issuer.issue(try Fixture.claims(subject: "carol", issuedAt: Fixture.now.adding(seconds: -100)))
        let ownedLater = try issuer.issue(try Fixture.claims(subject: "carol", issuedAt: Fixture.now.adding(seconds: -10)))

        try validator.install(try makeList(RevocationList.Builder(), sequence: 1))
        for token in [gen1, gen2, deleted, owned, ownedLater] {
            #expect(validationCode { try validator.validate(token) } == nil)
        }

        var b = RevocationList.Builder()
        b.revoke(id: id, below: 2, horizon: horizon)
        b.delete(id: deletedID, horizon: horizon)
        b.revokeAll(subject: "carol", issuedBefore: Fixture.now.adding(seconds: -50), horizon: horizon)
        try validator.install(try makeList(b, sequence: 2))
        #expect(validationCode { try validator.validate(gen1) } == .revoked)
        #expect(validationCode { try validator.validate(gen2) } == nil)
        #expect(validationCode { try validator.validate(deleted) } == .revoked)
        #expect(validationCode { try validator.validate(owned) } == .revoked)
        #expect(validationCode { try validator.validate(ownedLater) } == nil)
    }
}
