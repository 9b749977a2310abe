// Fuzz target "revocation": RevocationList(verifying:keys:) on untrusted bytes.
//
// The first byte picks the mode:
//   'S'  the rest describes a list body — u8 tokens, u8 owners, u64 sequence, i64 issuedAt, i64 nextUpdate,
//        u32 prune margin, then 32-byte entries (the first `tokens` are token entries, the next
//        `owners` owner entries, the rest overlap entries; list v3) —
//        which is assembled with the correct counts, signed by the active key and parsed, so
//        the header checks, the ordering checks and the hash tables are reached. The outcome
//        must match a model of the rules exactly;
//   else the input is a list as received (also signed by whoever: magic, lengths, kid, signature).
// Invariants: an accepted list is signed by the active key, re-builds and re-signs to the very
// same bytes, finds every one of its entries, and installs on a validator (same list again: no-op;
// lower sequence: rollback; a prune margin below the validator's leeway: refused).

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = input(data, size)
    if bytes.first == UInt8(ascii: "S") {
        fuzzSignedBody(Array(bytes.dropFirst()))
    } else {
        if let list = try? RevocationList(verifying: bytes, keys: FuzzFixture.keys) { checkAccepted(list, bytes) }
    }
    return 0
}

private func fuzzSignedBody(_ rest: [UInt8]) {
    guard rest.count >= 30 else { return }
    var reader = ByteReader(rest)
    let tokenSplit = Int(reader.u8()!), ownerSplit = Int(reader.u8()!)
    let sequence = reader.u64()!, issued = Int64(bitPattern: reader.u64()!), next = Int64(bitPattern: reader.u64()!)
    let margin = reader.u32()!
    let entryBytes = Array(rest[30...].prefix((rest.count - 30) / 32 * 32))
    let entryCount = entryBytes.count / 32
    let tokenCount = min(tokenSplit, entryCount), ownerCount = min(ownerSplit, entryCount - tokenCount)
    let overlapCount = entryCount - tokenCount - ownerCount

    var body = RevocationList.magic
    let kid = Array(FuzzFixture.signer.id.rawValue.utf8)
    body.append(UInt8(kid.count))
    body += kid
    body.appendLE(sequence)
    body.appendLE(UInt64(bitPattern: issued))
    body.appendLE(UInt64(bitPattern: next))
    body.appendLE(margin)
    body.appendLE(UInt32(tokenCount))
    body.appendLE(UInt32(ownerCount))
    body.appendLE(UInt32(overlapCount))
    body += entryBytes
    let message = body.withUnsafeBytes { RevocationList.signedMessage($0) }
    let signed = body + message.withUnsafeBytes { FuzzFixture.signer.sign($0) }

    // The model: 1 ≤ sequence ≤ 2^53 − 1, issued < next, margin ≤ 7 days, each table strictly
    // ascending by its 16-byte key.
    func ascending(_ range: Range<Int>) -> Bool {
        guard range.count > 1 else { return true }
        for i in range.dropFirst() {
            let previous = entryBytes[((i - 1) * 32)..<((i - 1) * 32 + 16)], current = entryBytes[(i * 32)..<(i * 32 + 16)]
            guard previous.lexicographicallyPrecedes(current) else { return false }
        }
        return true
    }
    let expectValid = sequence >= 1 && sequence <= SignedDocument.maxSequence && issued < next
        && Int64(margin) <= RevocationList.maxPruneMargin && ascending(0..<tokenCount)
        && ascending(tokenCount..<(tokenCount + ownerCount)) && ascending((tokenCount + ownerCount)..<entryCount)
    let list: RevocationList
    do { list = try RevocationList(verifying: signed, keys: FuzzFixture.keys) } catch {
        invariant(!expectValid, "a well-formed signed list is refused: \(error)")
        invariant(error.isInvalidDocument, "a signed list refused with \(error)")
        return
    }
    invariant(expectValid, "accepted a list the model refuses (sequence \(sequence), issued \(issued), next \(next))")
    invariant(list.sequence == sequence && list.issuedAt.seconds == issued && list.nextUpdate.seconds == next
              && list.pruneMargin == Int64(margin), "header fields")
    invariant(list.tokenEntryCount == tokenCount && list.ownerEntryCount == ownerCount && list.overlapEntryCount == overlapCount,
              "entry counts")
    checkAccepted(list, signed)
}

private func checkAccepted(_ list: RevocationList, _ bytes: [UInt8]) {
    invariant(sameBytes(list.signer.rawValue, FuzzFixture.signer.id.rawValue), "accepted a list signed by \(list.signer)")
    invariant(list.sequence >= 1 && list.sequence <= SignedDocument.maxSequence && list.issuedAt < list.nextUpdate, "header rules")
    invariant(list.signature == Array(bytes.suffix(64)), "signature")

    // Every entry is found with its own values.
    var count = 0
    for table in EntryTable.allCases {
        list.forEachEntry(table) { key, first, second in
            count += 1
            invariant(list.entry(table, key) == EntryValue(first: first, second: second), "\(table) entry not found")
        }
    }
    invariant(count == list.tokenEntryCount + list.ownerEntryCount + list.overlapEntryCount, "entry count")

    // Rebuilt from its entries and re-signed with the same header, it is the same bytes.
    let rebuilt: [UInt8]
    do {
        rebuilt = try list.builder.sign(with: FuzzFixture.signer, sequence: list.sequence,
                                        issuedAt: list.issuedAt, nextUpdate: list.nextUpdate, pruneMargin: list.pruneMargin)
    } catch { fail("an accepted list cannot be re-signed: \(error)") }
    // The issuer writes an overlap entry only beside a token entry whose floor is above its
    // generation and is not a deletion (FORMATS.md); others are inert for verifiers and are not
    // re-built. With none of those, the list re-builds to its own bytes.
    var inertOverlaps = 0
    list.forEachEntry(.overlaps) { key, generation, _ in
        guard let floor = list.entry(.tokens, key)?.first, floor != UInt64.max, generation < floor else {
            inertOverlaps += 1
            return
        }
    }
    if inertOverlaps == 0 {
        invariant(rebuilt == bytes, "an accepted list does not re-build to its own bytes")
    } else {
        invariant(rebuilt.count == bytes.count - inertOverlaps * RevocationList.entrySize, "re-built without exactly the inert overlaps")
    }

    // Installation: a fresh validator takes it; the same list again is a no-op; a lower sequence is a rollback.
    let validator = Validator(keys: FuzzFixture.keys, policy: Validator.Policy(), clock: { FuzzFixture.now })
    guard list.pruneMargin >= validator.policy.leeway else {
        do {
            try validator.install(list)
            fail("installed a list whose prune margin \(list.pruneMargin) s is below the leeway")
        } catch {
            invariant(error.isInvalidDocument, "a narrow margin refused with \(error)")
        }
        return
    }
    do {
        try validator.install(list)
        try validator.install(list)
    } catch { fail("an accepted list does not install: \(error)") }
    if list.sequence > 1 {
        let older: RevocationList
        do {
            older = try RevocationList(verifying: RevocationList.Builder().sign(
                with: FuzzFixture.signer, sequence: list.sequence - 1, issuedAt: FuzzFixture.now,
                nextUpdate: FuzzFixture.now.adding(seconds: 60)), keys: FuzzFixture.keys)
        } catch { fail("an empty list does not verify: \(error)") }
        do {
            try validator.install(older)
            fail("installed a lower sequence over \(list.sequence)")
        } catch {
            invariant(error == .rollback(held: list.sequence, offered: list.sequence - 1), "rollback refused with \(error)")
        }
    }
}

extension PATKitError {
    var isInvalidDocument: Bool { if case .invalidDocument = self { true } else { false } }
}
