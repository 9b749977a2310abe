// Fuzz target "signedkeyset": SignedKeySet(verifying:anchors:) and TrustAnchors(text:) on
// untrusted bytes (a fetched keys.json, a pinned anchors file).
//
// The first byte picks the mode:
//   'P'  the rest is a key-set payload, signed by the fixture anchor and wrapped in the
//        envelope, so the payload parser is reached; the outcome must match a model of the rules;
//   'A'  the rest is an anchors file;
//   else the input is a document as received (envelope, signer, signature: anything).
// Invariants: an accepted set is signed by the pinned anchor, has 1 ≤ sequence ≤ 2^53 − 1,
// issuedAt < nextUpdate and an active key, and re-signs to the very same bytes; installing it
// twice is a no-op and a lower sequence is a rollback. Accepted anchor files re-encode to
// anchors that parse equal, and an error never echoes a secret key line.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = input(data, size)
    switch bytes.first {
    case UInt8(ascii: "P"):
        let payload = Array(bytes.dropFirst())
        let message = SignedKeySet.signedMessage(signer: FuzzFixture.anchor.id, payload: payload)
        let signature = message.withUnsafeBytes { FuzzFixture.anchor.sign($0) }
        let document = Array(#"{"payload":"\#(Base64URL.encode(payload))","signer":"\#(FuzzFixture.anchor.id.rawValue)","signature":"\#(Base64URL.encode(signature))"}"#.utf8)
        do {
            checkAccepted(try SignedKeySet(verifying: document, anchors: FuzzFixture.anchors))
        } catch {
            invariant(error.isInvalidDocument || error.isInvalidKey, "a signed payload refused with \(error)")
        }
    case UInt8(ascii: "A"):
        let text = Array(bytes.dropFirst())
        do {
            let anchors = try TrustAnchors(text: text)
            invariant(!anchors.keys.isEmpty && anchors.keys.count <= TrustAnchors.maxAnchors, "anchor count")
            let again = try? TrustAnchors(text: Array(anchors.text.utf8))
            invariant(again == anchors, "anchors do not round-trip")
        } catch {
            // Whatever a line held after a "k4.secret." header must not appear in the error. The
            // error may share words with it by chance (a secret " anchors" and "trust anchors, line
            // 2"), so a match is checked by difference: the same text with that material replaced
            // must give the very same error, else the error echoed it.
            let description = "\(error)"
            let decoded = String(decoding: text, as: UTF8.self)
            for line in decoded.split(whereSeparator: \.isNewline) {
                guard let range = line.firstRange(of: "k4.secret.") else { continue }
                let material = line[range.upperBound...].prefix(16)
                guard material.count >= 8, description.contains(material) else { continue }
                let other = String(material.map { $0 == "Q" ? "R" : "Q" })
                let altered = decoded[..<material.startIndex] + other + decoded[material.endIndex...]
                let before = patError { try TrustAnchors(text: Array(decoded.utf8)) }
                let after = patError { try TrustAnchors(text: Array(altered.utf8)) }
                invariant(before == after, "an anchors error echoes secret key material")
            }
        }
    default:
        if let set = try? SignedKeySet(verifying: bytes, anchors: FuzzFixture.anchors) { checkAccepted(set) }
    }
    return 0
}

private func checkAccepted(_ set: SignedKeySet) {
    invariant(set.signer == FuzzFixture.anchor.id, "accepted a key set signed by \(set.signer)")
    invariant(set.sequence >= 1 && set.sequence <= SignedDocument.maxSequence, "sequence \(set.sequence)")
    invariant(set.issuedAt < set.nextUpdate, "issuedAt < nextUpdate")
    invariant(!set.keys.activeKeys.isEmpty, "no active key")
    let resigned: [UInt8]
    do {
        resigned = try SignedKeySet.sign(set.keys, with: FuzzFixture.anchor, sequence: set.sequence,
                                         issuedAt: set.issuedAt, nextUpdate: set.nextUpdate)
    } catch { fail("an accepted key set cannot be re-signed: \(error)") }
    let again: SignedKeySet
    do { again = try SignedKeySet(verifying: resigned, anchors: FuzzFixture.anchors) } catch { fail("re-signed set refused: \(error)") }
    invariant(again.keys == set.keys && again.sequence == set.sequence, "re-signed set differs")

    let validator = Validator(keys: KeySet(), clock: { FuzzFixture.now })
    do {
        try validator.install(set)
        try validator.install(set)
    } catch { fail("an accepted key set does not install: \(error)") }
    if set.sequence > 1 {
        do {
            let older = try SignedKeySet(verifying: SignedKeySet.sign(set.keys, with: FuzzFixture.anchor, sequence: set.sequence - 1,
                                                                      issuedAt: set.issuedAt, nextUpdate: set.nextUpdate),
                                         anchors: FuzzFixture.anchors)
            try validator.install(older)
            fail("installed a lower key set sequence over \(set.sequence)")
        } catch {
            invariant(error == .keySetRollback(held: set.sequence, offered: set.sequence - 1), "rollback refused with \(error)")
        }
    }
}

extension PATKitError {
    var isInvalidDocument: Bool { if case .invalidDocument = self { true } else { false } }
    var isInvalidKey: Bool { if case .invalidKey = self { true } else { false } }
}

/// The error `body` throws, described; nil when it throws none.
private func patError(_ body: () throws -> Any) -> String? {
    do { _ = try body(); return nil } catch { return "\(error)" }
}
