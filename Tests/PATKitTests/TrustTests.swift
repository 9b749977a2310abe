import Synchronization
import Testing
@testable import PATKit

/// The signed key set and its trust anchors, the list's prune margin, and the bounds on
/// sequence numbers (security review M4, L2, L5).
@Suite("Signed key set and trust anchors")
struct TrustTests {
    let anchor: SecretKey
    let signing: SecretKey
    let anchors: TrustAnchors

    init() throws {
        anchor = try Fixture.key(70)
        signing = try Fixture.key(71)
        anchors = try TrustAnchors([anchor.publicKey])
    }

    func signedSet(_ keys: [PublicKey]? = nil, retired: [KeyID] = [], sequence: UInt64 = 10, by signer: SecretKey? = nil,
                   issuedAt: Timestamp = Fixture.now.adding(seconds: -60),
                   nextUpdate: Timestamp = Fixture.now.adding(seconds: Fixture.hour)) throws -> [UInt8] {
        var set = KeySet(keys: keys ?? [signing.publicKey])
        for id in retired { try set.retire(id) }
        return try SignedKeySet.sign(set, with: signer ?? anchor, sequence: sequence, issuedAt: issuedAt, nextUpdate: nextUpdate)
    }

    func list(_ signer: SecretKey, sequence: UInt64, margin: Int64 = 60, keys: KeySet, _ edit: (inout RevocationList.Builder) -> Void = { _ in })
        throws -> RevocationList {
        var builder = RevocationList.Builder()
        edit(&builder)
        let bytes = try builder.sign(with: signer, sequence: sequence, issuedAt: Fixture.now.adding(seconds: -60),
                                     nextUpdate: Fixture.now.adding(seconds: Fixture.hour), pruneMargin: margin)
        return try RevocationList(verifying: bytes, keys: keys)
    }

    // MARK: the anchor-only rule

    @Test("a key set verifies only with a pinned anchor; no other key vouches for keys")
    func anchorOnly() throws {
        let set = try SignedKeySet(verifying: signedSet(), anchors: anchors)
        #expect(set.sequence == 10)
        #expect(set.signer == anchor.id)
        #expect(set.keys.verificationKey(for: signing.id) != nil)

        // Signed by the trusted signing key itself (a rotation chain): refused, anchors only.
        let chained = try signedSet(by: signing)
        #expect(patError { try SignedKeySet(verifying: chained, anchors: anchors) }?.message.contains("not a pinned trust anchor") == true)
        // Signed by an attacker's own anchor.
        let forged = try signedSet([try Fixture.key(99).publicKey], by: try Fixture.key(98))
        #expect(patError { try SignedKeySet(verifying: forged, anchors: anchors) }?.isInvalidDocument == true)
        // A plain, unsigned set.
        let plain = KeySet(keys: [signing.publicKey]).encoded()
        #expect(patError { try SignedKeySet(verifying: plain, anchors: anchors) }?.message.contains("not signed") == true)
        // Several anchors: any of them will do.
        let second = try Fixture.key(72)
        let both = try TrustAnchors([second.publicKey, anchor.publicKey])
        #expect(try SignedKeySet(verifying: signedSet(by: second), anchors: both).signer == second.id)
    }

    @Test("a tampered payload or signature and any extra member are refused")
    func tampering() throws {
        let good = try signedSet()
        let text = String(decoding: good, as: UTF8.self)
        var otherKeys = try signedSet([try Fixture.key(97).publicKey])
        // The payload of one document under the signature of another.
        let payloadA = try #require(text.split(separator: "\"")[3...3].first)
        var mixed = String(decoding: otherKeys, as: UTF8.self)
        let payloadB = try #require(mixed.split(separator: "\"")[3...3].first)
        mixed = mixed.replacingOccurrences(of: String(payloadB), with: String(payloadA))
        #expect(patError { try SignedKeySet(verifying: Array(mixed.utf8), anchors: anchors) }?.message.contains("does not verify") == true)
        otherKeys = Array(text.replacingOccurrences(of: "}\n", with: ",\"extra\":1}\n").utf8)
        #expect(patError { try SignedKeySet(verifying: otherKeys, anchors: anchors) }?.isInvalidDocument == true)
        #expect(patError { try SignedKeySet(verifying: Array(good.dropLast(5)), anchors: anchors) }?.isInvalidDocument == true)
        #expect(patError { try SignedKeySet(verifying: [UInt8](repeating: 0x20, count: SignedKeySet.maxDocumentBytes + 1), anchors: anchors) }?
            .isInvalidDocument == true)
    }

    @Test("a key set's signature can pass for no token and no list, and theirs not for a key set")
    func ownDomain() throws {
        // A token the anchor signed, repackaged as a key set: message as payload, its signature.
        let token = try Issuer(key: anchor).issue(Fixture.claims())
        let parts = try PASETOv4Public.parse(token)
        func envelope(_ payload: [UInt8], _ signature: [UInt8]) -> [UInt8] {
            Array(#"{"payload":"\#(Base64URL.encode(payload))","signer":"\#(anchor.id.rawValue)","signature":"\#(Base64URL.encode(signature))"}"#.utf8)
        }
        #expect(patError { try SignedKeySet(verifying: envelope(parts.message, parts.signature), anchors: anchors) }?.message
            .contains("does not verify") == true)
        // A list the anchor signed, repackaged likewise.
        let listBytes = try RevocationList.Builder().sign(with: anchor, sequence: 1, issuedAt: Fixture.now, nextUpdate: Fixture.now.adding(seconds: 60))
        #expect(patError { try SignedKeySet(verifying: envelope(Array(listBytes.dropLast(64)), Array(listBytes.suffix(64))), anchors: anchors) }?
            .message.contains("does not verify") == true)
        // And the key set's signature over its payload never verifies as a token or a list.
        let set = try SignedKeySet(verifying: signedSet(), anchors: anchors)
        let text = String(decoding: set.bytes, as: UTF8.self)
        let fields = text.split(separator: "\"")
        let payload = try #require(Base64URL.decode(String(fields[3])))
        let signature = try #require(Base64URL.decode(String(fields[11])))
        let asToken = "v4.public." + Base64URL.encode(payload + signature)
        #expect(validationCode { try Fixture.validator(keys: [anchor.publicKey]).validate(asToken) } != nil)
        let asList = Array("PATKRL03".utf8) + payload + signature
        #expect(patError { try RevocationList(verifying: asList, keys: KeySet(keys: [anchor.publicKey])) }?.isInvalidDocument == true)
    }

    // MARK: the validator

    @Test("rollback and equivocation of the key set are refused")
    func rollback() throws {
        let validator = Fixture.validator(keys: [])
        try validator.install(SignedKeySet(verifying: signedSet(sequence: 10), anchors: anchors))
        #expect(patError { try validator.install(SignedKeySet(verifying: signedSet(sequence: 9), anchors: anchors)) }
            == .keySetRollback(held: 10, offered: 9))
        let other = try signedSet(sequence: 10, issuedAt: Fixture.now.adding(seconds: -30))
        #expect(patError { try validator.install(SignedKeySet(verifying: other, anchors: anchors)) }?.message.contains("held sequence 10") == true)
        try validator.install(SignedKeySet(verifying: signedSet(sequence: 10), anchors: anchors)) // the same document again: fine
        try validator.install(SignedKeySet(verifying: signedSet(sequence: 11), anchors: anchors))
        #expect(validator.signedKeySet?.sequence == 11)
    }

    @Test("a new key set drops a held list whose signer it no longer trusts (M4)")
    func dropsUntrustedList() throws {
        let newer = try Fixture.key(73)
        var policy = Validator.Policy()
        policy.cacheCapacity = 100
        let validator = Validator(keys: KeySet(), policy: policy, clock: { Fixture.now })
        let first = try SignedKeySet(verifying: signedSet([signing.publicKey, newer.publicKey], sequence: 1), anchors: anchors)
        try validator.install(first, revocations: list(signing, sequence: 5, keys: first.keys))
        let byNewer = try Issuer(key: newer).issue(Fixture.claims())
        #expect(throws: Never.self) { try validator.validate(byNewer) }
        #expect(throws: Never.self) { try validator.validate(byNewer) } // cached

        // The issuer retires the key that signed the list; the new list has not arrived yet.
        let second = try SignedKeySet(verifying: signedSet([signing.publicKey, newer.publicKey], retired: [signing.id], sequence: 2),
                                      anchors: anchors)
        try validator.install(second)
        #expect(validator.revocations == nil)
        #expect(validator.droppedList == Validator.DroppedList(sequence: 5, signer: signing.id, keySetSequence: 2))
        #expect(validationCode { try validator.validate(byNewer) } == .missingRevocationList, "refused (503), never accepted on an untrusted list")
        #expect(validator.droppedList?.description.contains("not an active key of key set 2") == true)

        // The list the new key signs restores service.
        try validator.install(list(newer, sequence: 6, keys: second.keys))
        #expect(validator.droppedList == nil)
        #expect(throws: Never.self) { try validator.validate(byNewer) }

        // Together in one step (as a refresher does when both arrive): no gap at all.
        let third = try SignedKeySet(verifying: signedSet([newer.publicKey], sequence: 3), anchors: anchors)
        try validator.install(third, revocations: list(newer, sequence: 7, keys: third.keys))
        #expect(throws: Never.self) { try validator.validate(byNewer) }
    }

    @Test("a stale key set refuses every token unless the policy accepts stale data")
    func staleKeySet() throws {
        let clock = TestClock(Fixture.now)
        let strict = Validator(keys: KeySet(), clock: { clock.now })
        var lenientPolicy = Validator.Policy()
        lenientPolicy.staleListPolicy = .accept
        let lenient = Validator(keys: KeySet(), policy: lenientPolicy, clock: { clock.now })
        let set = try SignedKeySet(verifying: signedSet(nextUpdate: Fixture.now.adding(seconds: 600)), anchors: anchors)
        let longList = try RevocationList(verifying: RevocationList.Builder().sign(with: signing, sequence: 1, issuedAt: Fixture.now.adding(seconds: -60),
                                                                                    nextUpdate: Fixture.now.adding(seconds: Fixture.day)),
                                          keys: set.keys)
        for validator in [strict, lenient] { try validator.install(set, revocations: longList) }
        let token = try Issuer(key: signing).issue(Fixture.claims())
        #expect(throws: Never.self) { try strict.validate(token) }
        clock.set(Fixture.now.adding(seconds: 601))
        #expect(validationCode { try strict.validate(token) } == .staleKeySet)
        #expect(throws: Never.self) { try lenient.validate(token) }
    }

    @Test("no key set at all is 'cannot decide', not 'bad token'")
    func missingKeySet() throws {
        let token = try Issuer(key: signing).issue(Fixture.claims())
        #expect(validationCode { try Validator(keys: KeySet()).validate(token) } == .missingKeySet)
    }

    // MARK: leeway vs pruning (L2)

    @Test("the list carries its prune margin; a verifier refuses a leeway above it (L2)")
    func pruneMargin() throws {
        let keys = KeySet(keys: [signing.publicKey])
        let narrow = try list(signing, sequence: 1, margin: 60, keys: keys)
        #expect(narrow.pruneMargin == 60)
        let raw = try RevocationList.Builder().sign(with: signing, sequence: 1, issuedAt: Fixture.now, nextUpdate: Fixture.now.adding(seconds: 1),
                                                    pruneMargin: 3600)
        #expect(RevocationList.UnverifiedHeader(raw)?.pruneMargin == 3600)
        #expect(try RevocationList(verifying: raw, keys: keys).pruneMargin == 3600)

        var wide = Validator.Policy()
        wide.leeway = 3600
        let validator = Validator(keys: keys, policy: wide, clock: { Fixture.now })
        #expect(patError { try validator.install(narrow) }?.message.contains("prune margin") == true)
        #expect(validator.revocations == nil)
        let token = try Issuer(key: signing).issue(Fixture.claims())
        #expect(validationCode { try validator.validate(token) } == .missingRevocationList)
        // A list handed to the initialiser is held to the same rule, on every call.
        let given = Validator(keys: keys, revocations: narrow, policy: wide, clock: { Fixture.now })
        #expect(validationCode { try given.validate(token) } == .missingRevocationList)
        // A margin covering the leeway is accepted.
        try validator.install(list(signing, sequence: 2, margin: 3600, keys: keys))
        #expect(throws: Never.self) { try validator.validate(token) }
    }

    @Test("pruning keeps an entry until its horizon is more than the margin past")
    func pruningFollowsTheMargin() throws {
        var builder = RevocationList.Builder()
        builder.revoke(id: "pruned-at-margin-0000000", below: 2, horizon: Fixture.now.adding(seconds: -120))
        var wide = builder
        #expect(builder.prune(now: Fixture.now, margin: 60) == 1)
        #expect(wide.prune(now: Fixture.now, margin: 3600) == 0)
        #expect(throws: PATKitError.self) {
            try RevocationList.Builder().sign(with: signing, sequence: 1, issuedAt: Fixture.now, nextUpdate: Fixture.now.adding(seconds: 1),
                                              pruneMargin: -1)
        }
    }

    // MARK: sequences (L5)

    @Test("sequences are bounded to 2^53 − 1 with a clear error, in lists and key sets")
    func sequenceBound() throws {
        let max = SignedDocument.maxSequence
        #expect(max == (1 << 53) - 1)
        #expect(throws: Never.self) {
            try RevocationList.Builder().sign(with: signing, sequence: max, issuedAt: Fixture.now, nextUpdate: Fixture.now.adding(seconds: 1))
        }
        #expect(patError {
            try RevocationList.Builder().sign(with: signing, sequence: max + 1, issuedAt: Fixture.now, nextUpdate: Fixture.now.adding(seconds: 1))
        }?.message.contains("2^53") == true)
        #expect(patError { try signedSet(sequence: max + 1) }?.message.contains("2^53") == true)
        #expect(patError { try SignedDocument.nextSequence(after: max, "revocation list") }?.message.contains("2^53") == true)
        #expect(patError { try SignedDocument.nextSequence(after: UInt64.max, "revocation list") } != nil, "no arithmetic trap")
        #expect(try SignedDocument.nextSequence(after: 41, "x") == 42)

        // A list signed with an out-of-range sequence (by hand) is refused when read.
        for sequence in [max + 1, UInt64(1) << 63, UInt64.max] {
            let forged = try RevocationList.Builder().signedBytes(signing, sequence: sequence)
            #expect(patError { try RevocationList(verifying: forged, keys: KeySet(keys: [signing.publicKey])) }?.message.contains("2^53") == true)
        }
    }

    // MARK: anchors file

    @Test("anchor files: comments, blank lines and CRLF are fine; secrets and junk are refused without echo")
    func anchorFiles() throws {
        let second = try Fixture.key(74)
        let text = "# issuer anchors\r\n\r\n  \(anchor.publicKey.paserk)  \r\n\(second.publicKey.paserk)\n\(anchor.publicKey.paserk)\n"
        let parsed = try TrustAnchors(text: Array(text.utf8))
        #expect(parsed.keys.map(\.id) == [anchor.id, second.id], "in order, without duplicates")
        #expect(try TrustAnchors(text: Array(parsed.text.utf8)) == parsed)

        let secretLine = anchor.exportPASERK()
        let refused = patError { try TrustAnchors(text: Array("\(secretLine)\n".utf8)) }
        #expect(refused?.message.contains("k4.secret") == true)
        #expect(refused?.description.contains(String(secretLine.dropFirst(10))) == false, "the secret is never echoed")
        #expect(patError { try TrustAnchors(text: Array("# nothing\n".utf8)) }?.isInvalidDocument == true)
        #expect(patError { try TrustAnchors([]) }?.isInvalidArgument == true)
    }

    @Test("a line that is not a PASERK is never echoed, only a known version and type (fuzz target signedkeyset's finding)")
    func nonPASERKLinesAreNotEchoed() throws {
        // What the fuzzer found: a line "t.<material>" was echoed up to its second dot, here the
        // same material as a secret named in a comment above it.
        let found: [UInt8] = Array("# k4.secret.D".utf8) + [0xCB] + Array("Dw8PBB\nt.D".utf8) + [0xCB] + Array("Dw8PBB\n".utf8)
        let refused = try #require(patError { try TrustAnchors(text: found) })
        #expect(!refused.description.contains("Dw8PBB"), "\(refused)")
        #expect(refused.description.contains("not a PASERK"), "\(refused)")
        for (line, named) in [("x.SECRETMATERIAL9.rest", "not a PASERK"), ("k4.SECRETMATERIAL9.rest", "k4 with an unknown type"),
                              ("k3.public.AAAA", "k3.public"), ("k4.local-wrap.pie.AAAA", "k4.local-wrap")] {
            let error = try #require(patError { try TrustAnchors(text: Array("\(line)\n".utf8)) })
            #expect(error.description.contains(named), "\(line): \(error)")
            #expect(!error.description.contains("SECRETMATERIAL"), "\(line): \(error)")
            let key = try #require(patError { _ = try PublicKey(paserk: line) })
            #expect(!key.description.contains("SECRETMATERIAL"), "\(line): \(key)")
        }
    }
}

extension RevocationList.Builder {
    /// The entries signed with an arbitrary (even out-of-range) sequence, by hand: what a
    /// hostile or broken signer could produce.
    func signedBytes(_ key: SecretKey, sequence: UInt64 = 1) throws -> [UInt8] {
        var bytes = try sign(with: key, sequence: 1, issuedAt: Fixture.now, nextUpdate: Fixture.now.adding(seconds: 60))
        bytes.removeLast(64)
        let offset = 8 + 1 + Int(bytes[8])
        withUnsafeBytes(of: sequence.littleEndian) { for i in 0..<8 { bytes[offset + i] = $0[i] } }
        let message = bytes.withUnsafeBytes { RevocationList.signedMessage($0) }
        return bytes + message.withUnsafeBytes { key.sign($0) }
    }
}
