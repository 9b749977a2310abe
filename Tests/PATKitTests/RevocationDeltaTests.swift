import PATTestSupport
import Testing
@testable import PATKit

/// Signed deltas between revocation lists: applying one yields the issuer's next list byte for
/// byte, and a delta is never confused with a list, a key set or a delta for another base.
@Suite("Revocation list deltas")
struct RevocationDeltaTests {
    let key: SecretKey
    let keys: KeySet
    let horizon = Fixture.now.adding(seconds: 30 * Fixture.day)

    init() throws {
        key = try Fixture.key(7)
        keys = KeySet(keys: [key.publicKey])
    }

    func sign(_ builder: RevocationList.Builder, sequence: UInt64, key: SecretKey? = nil) throws -> [UInt8] {
        try builder.sign(with: key ?? self.key, sequence: sequence, issuedAt: Fixture.now.adding(seconds: Int64(sequence)),
                         nextUpdate: Fixture.now.adding(seconds: Fixture.hour + Int64(sequence)))
    }

    /// One random change of the kinds an issuer makes: revoke, regenerate (with or without an
    /// overlap), delete, revoke-all, and pruning entries whose horizon passed.
    static func randomChange(_ builder: inout RevocationList.Builder, ids: [String], rng: inout SplitMix64, step: Int) {
        let id = ids[Int(rng.next() % UInt64(ids.count))]
        let horizon = Fixture.now.adding(seconds: Int64(rng.next() % 1000) * 60)
        switch rng.next() % 6 {
        case 0, 1: builder.revoke(id: id, below: 2 + rng.next() % 5, horizon: horizon)
        case 2: builder.delete(id: id, horizon: horizon)
        case 3: builder.revokeAll(subject: "owner-\(rng.next() % 8)", issuedBefore: Fixture.now.adding(seconds: Int64(step)), horizon: horizon)
        case 4:
            builder.revoke(id: id, below: 3 + rng.next() % 3, horizon: horizon)
            builder.keep(id: id, generation: 1 + rng.next() % 3, until: Fixture.now.adding(seconds: Int64(rng.next() % 600)))
        default: builder.prune(now: Fixture.now.adding(seconds: Int64(rng.next() % 1000) * 60), margin: 60)
        }
    }

    @Test("applying a delta gives, byte for byte, the list signed at the new sequence (random change sequences)",
          arguments: [1, 2, 3, 4, 5, 6, 7, 8] as [UInt64])
    func propertyByteForByte(seed: UInt64) throws {
        var rng = SplitMix64(seed: seed)
        let ids = (0..<40).map { "pat-\($0)-" + String(repeating: "x", count: 16) }
        var builder = RevocationList.Builder()
        var signed = [try sign(builder, sequence: 1)]
        var held = try RevocationList(verifying: signed[0], keys: keys)
        var chain: [UInt8] = []
        let chainBase = held
        for step in 2...60 {
            for _ in 0...(rng.next() % 4) { Self.randomChange(&builder, ids: ids, rng: &rng, step: step) }
            let bytes = try sign(builder, sequence: UInt64(step))
            let next = try RevocationList(verifying: bytes, keys: keys)
            let previous = try RevocationList(verifying: signed[signed.count - 1], keys: keys)
            let delta = try RevocationDelta.make(from: previous, to: next, signedWith: key)
            let verified = try RevocationDelta(verifying: delta, keys: keys)
            #expect(verified.baseSequence == UInt64(step - 1) && verified.sequence == UInt64(step))
            // Applied to the list held (itself possibly built from earlier deltas, kept as an
            // overlay or compacted at a small threshold to cover both paths).
            held = try held.applying(verified, compactAt: Int(rng.next() % 8))
            #expect(held.bytes == bytes, "seed \(seed), step \(step): the applied list differs from the signed one")
            #expect(try RevocationList(verifying: held.bytes, keys: keys).sequence == UInt64(step))
            #expect(held.tokenEntryCount == next.tokenEntryCount && held.ownerEntryCount == next.ownerEntryCount
                    && held.overlapEntryCount == next.overlapEntryCount)
            signed.append(bytes)
            chain += delta
        }
        // A chain of every delta, from the first list, leads to the last one too.
        var fromChain = chainBase
        for delta in try RevocationDelta.chain(verifying: chain, keys: keys) { fromChain = try fromChain.applying(delta) }
        #expect(fromChain.bytes == signed[signed.count - 1])
        // Lookups on an applied list answer as on the list fetched whole.
        let whole = try RevocationList(verifying: signed[signed.count - 1], keys: keys)
        for id in ids {
            for generation in 1...6 as ClosedRange<UInt64> {
                let claims = try Fixture.claims(id: id, subject: "owner-\(generation % 8)", generation: generation)
                #expect(fromChain.check(claims, at: Fixture.now) == whole.check(claims, at: Fixture.now))
            }
        }
    }

    @Test("one change on a large list is a delta under 1 KiB")
    func smallDelta() throws {
        var builder = RevocationList.Builder()
        let count = 100_000 // 1,000,000 in scripts/delta-size.sh: the size does not depend on it
        builder.reserveCapacity(tokens: count)
        for i in 0..<count { builder.revoke(key: EntryKey(high: UInt64(i) &* 0x9E37_79B9_7F4A_7C15, low: UInt64(i)), below: 2, horizon: horizon) }
        let base = try RevocationList(verifying: try sign(builder, sequence: 1), keys: keys)
        builder.revoke(id: "just-revoked-pat-00000", below: 2, horizon: horizon)
        let next = try RevocationList(verifying: try sign(builder, sequence: 2), keys: keys)
        let delta = try RevocationDelta.make(from: base, to: next, signedWith: key)
        #expect(delta.count <= 1024, "a delta of \(delta.count) bytes")
        #expect(try base.applying(RevocationDelta(verifying: delta, keys: keys)).bytes == next.bytes)
    }

    // MARK: trust

    /// Lists 1 → 2 → 3 with one revocation each, and the deltas between them.
    func threeLists() throws -> (lists: [[UInt8]], deltas: [[UInt8]]) {
        var builder = RevocationList.Builder()
        var lists: [[UInt8]] = []
        for sequence in 1...3 as ClosedRange<UInt64> {
            builder.revoke(id: "pat-\(sequence)-0000000000000", below: 2, horizon: horizon)
            lists.append(try sign(builder, sequence: sequence))
        }
        let parsed = try lists.map { try RevocationList(verifying: $0, keys: keys) }
        let deltas = [try RevocationDelta.make(from: parsed[0], to: parsed[1], signedWith: key),
                      try RevocationDelta.make(from: parsed[1], to: parsed[2], signedWith: key)]
        return (lists, deltas)
    }

    @Test("a delta passed as a list, a list as a delta, and a key set as either are refused")
    func confusion() throws {
        let (lists, deltas) = try threeLists()
        #expect(patError { try RevocationList(verifying: deltas[0], keys: keys) }?.isInvalidDocument == true)
        #expect(patError { try RevocationDelta(verifying: lists[1], keys: keys) }?.message.contains("whole revocation list") == true)
        // The delta's body under a list's magic: its signature (own domain string) never verifies as a list's.
        var relabelled = deltas[0]
        relabelled.replaceSubrange(0..<8, with: Array("PATKRL03".utf8))
        #expect(patError { try RevocationList(verifying: relabelled, keys: keys) }?.isInvalidDocument == true)
        // A list's signature over a body relabelled as a delta never verifies as a delta's.
        var asDelta = lists[1]
        asDelta.replaceSubrange(0..<8, with: Array("PATKRD01".utf8))
        #expect(patError { try RevocationDelta(verifying: asDelta, keys: keys) }?.isInvalidDocument == true)
        let set = try SignedKeySet.sign(keys, with: key, sequence: 1, issuedAt: Fixture.now, nextUpdate: Fixture.now.adding(seconds: 60))
        #expect(patError { try RevocationDelta(verifying: set, keys: keys) }?.isInvalidDocument == true)
    }

    @Test("a delta for another base, a broken chain, a foreign signer and tampering are refused")
    func wrongBaseAndSigner() throws {
        let (lists, deltas) = try threeLists()
        let list1 = try RevocationList(verifying: lists[0], keys: keys)
        let list2 = try RevocationList(verifying: lists[1], keys: keys)
        // 2 → 3 does not apply to 1.
        #expect(patError { try list1.applying(RevocationDelta(verifying: deltas[1], keys: keys)) }?.message.contains("another list") == true)
        // Another list under the same sequence (equivocation): the base signature differs.
        var other = RevocationList.Builder()
        other.revoke(id: "someone-else-0000000000", below: 2, horizon: horizon)
        let twin = try RevocationList(verifying: try sign(other, sequence: 1), keys: keys)
        #expect(patError { try twin.applying(RevocationDelta(verifying: deltas[0], keys: keys)) }?.message.contains("another signature") == true)
        // A chain with a gap.
        #expect(patError { try RevocationDelta.chain(verifying: deltas[1] + deltas[0], keys: keys) }?.message.contains("broken") == true)
        // Signed by a key the edge does not trust.
        let stranger = try Fixture.key(9)
        var b = RevocationList.Builder()
        b.revoke(id: "pat-1-0000000000000", below: 2, horizon: horizon)
        let foreignBase = try RevocationList(verifying: try sign(b, sequence: 1, key: stranger), keys: KeySet(keys: [stranger.publicKey]))
        b.revoke(id: "pat-9-0000000000000", below: 2, horizon: horizon)
        let foreignNext = try RevocationList(verifying: try sign(b, sequence: 2, key: stranger), keys: KeySet(keys: [stranger.publicKey]))
        let foreign = try RevocationDelta.make(from: foreignBase, to: foreignNext, signedWith: stranger)
        #expect(patError { try RevocationDelta(verifying: foreign, keys: keys) }?.message.contains("not an active key") == true)
        // Every single-byte flip is refused.
        for index in stride(from: 0, to: deltas[0].count, by: 7) {
            var flipped = deltas[0]
            flipped[index] ^= 0x01
            #expect(patError { try list1.applying(RevocationDelta(verifying: flipped, keys: keys)) } != nil, "byte \(index)")
        }
        // A delta never goes down: none can be made, and the validator refuses a rollback.
        #expect(patError { try RevocationDelta.make(from: list2, to: list1, signedWith: key) } != nil)
        let validator = Fixture.validator(keys: [key.publicKey], list: list2)
        #expect(patError { try validator.installRevocations(delta: deltas[0]) }?.isInvalidDocument == true)
        #expect(try validator.installRevocations(delta: deltas[1]).sequence == 3)
        #expect(validator.revocations?.bytes == lists[2])
        // The same delta twice: its base is no longer held.
        #expect(patError { try validator.installRevocations(delta: deltas[1]) }?.isInvalidDocument == true)
    }

    @Test("a delta across several sequences applies to its base only, not to another list under that sequence")
    func skipping() throws {
        let (lists, _) = try threeLists()
        let list1 = try RevocationList(verifying: lists[0], keys: keys)
        let list3 = try RevocationList(verifying: lists[2], keys: keys)
        // 1 → 3 is fine (two changes); applied to a list that already holds one of them, it re-states it.
        let skip = try RevocationDelta.make(from: list1, to: list3, signedWith: key)
        #expect(try list1.applying(RevocationDelta(verifying: skip, keys: keys)).bytes == lists[2])
        var holding = RevocationList.Builder()
        holding.revoke(id: "pat-1-0000000000000", below: 2, horizon: horizon)
        holding.revoke(id: "pat-2-0000000000000", below: 2, horizon: horizon)
        let wrongBase = try RevocationList(verifying: try sign(holding, sequence: 1), keys: keys)
        // Same sequence, other signature: refused before anything else.
        #expect(patError { try wrongBase.applying(RevocationDelta(verifying: skip, keys: keys)) } != nil)
    }
}

@Suite("Overlap entries (rotation without downtime)")
struct OverlapEntryTests {
    @Test("the previous generation passes until the overlap ends, then dies; older ones never pass; a delete ends it")
    func overlap() throws {
        let key = try Fixture.key(3)
        let keys = KeySet(keys: [key.publicKey])
        let id = "rotated-pat-00000000000"
        let until = Fixture.now.adding(seconds: 3600)
        var builder = RevocationList.Builder()
        builder.revoke(id: id, below: 3, horizon: Fixture.now.adding(seconds: 86_400))
        builder.keep(id: id, generation: 2, until: until)
        let list = try RevocationList(verifying: builder.sign(with: key, sequence: 1, issuedAt: Fixture.now,
                                                              nextUpdate: Fixture.now.adding(seconds: 7200)), keys: keys)
        #expect(list.overlapEntryCount == 1)
        #expect(list.overlap(of: id)?.generation == 2 && list.overlap(of: id)?.until == until)
        let g1 = try Fixture.claims(id: id, generation: 1), g2 = try Fixture.claims(id: id, generation: 2)
        let g3 = try Fixture.claims(id: id, generation: 3)
        #expect(list.check(g2, at: Fixture.now) == nil)
        #expect(list.check(g2, at: until) == nil)
        #expect(list.check(g2, at: until.adding(seconds: 1)) == .superseded(floor: 3))
        #expect(list.check(g1, at: Fixture.now) == .superseded(floor: 3))
        #expect(list.check(g3, at: Fixture.now) == nil)
        // A regenerate during the overlap replaces it: generation 2 dies at once, 3 overlaps.
        builder.revoke(id: id, below: 4, horizon: Fixture.now.adding(seconds: 86_400))
        builder.keep(id: id, generation: 3, until: until)
        let again = try RevocationList(verifying: builder.sign(with: key, sequence: 2, issuedAt: Fixture.now,
                                                               nextUpdate: Fixture.now.adding(seconds: 60)), keys: keys)
        #expect(again.check(g2, at: Fixture.now) == .superseded(floor: 4))
        #expect(again.check(g3, at: Fixture.now) == nil)
        // A delete drops the overlap from the signed list.
        builder.delete(id: id, horizon: Fixture.now.adding(seconds: 86_400))
        let deleted = try RevocationList(verifying: builder.sign(with: key, sequence: 3, issuedAt: Fixture.now,
                                                                 nextUpdate: Fixture.now.adding(seconds: 60)), keys: keys)
        #expect(deleted.overlapEntryCount == 0)
        #expect(deleted.check(g3, at: Fixture.now) == .deleted)
        // The validator uses its own clock for the overlap.
        let validator = Fixture.validator(keys: [key.publicKey], list: list, now: until.adding(seconds: 1))
        let token = try Issuer(key: key).issue(try Fixture.claims(id: id, generation: 2, expiresAt: Fixture.now.adding(seconds: 7200)))
        #expect(validationCode { try validator.validate(token) } == .revoked)
        let during = Fixture.validator(keys: [key.publicKey], list: list, now: Fixture.now)
        #expect(validationCode { try during.validate(token) } == nil)
    }
}
