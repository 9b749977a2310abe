// Fuzz target "delta": RevocationDelta(verifying:keys:), RevocationDelta.chain(verifying:keys:),
// RevocationDelta.split(chain:), RevocationDelta.UnverifiedHeader and RevocationList.applying(_:)
// on untrusted bytes (format PATKRD01, FORMATS.md §6), against the base list `DeltaFixture.base`
// (sequence 7, every table filled, keys `key(n)` = 16 bytes of n).
//
// The first byte picks the mode:
//   'S'  the rest describes a delta — u8 flags, u64 baseSequence, u64 sequence, i64 issuedAt,
//        i64 nextUpdate, u32 prune margin, u32 × 3 new entry counts, u8 × 6 section counts, then the
//        section bytes (32-byte upserts, 16-byte removals, in layout order; a section gets what is
//        left when the bytes run out) — assembled with consistent lengths and signed by the active
//        key, so that every check after the signature is reached. Flags: bit 0, the base is the
//        fixture list (its sequence and signature); bit 1, the new counts are the model's (so that
//        applying can succeed). Parsing and applying must decide exactly as a model of §6 does;
//   'M'  the rest is 33-byte changes to the base list's entries — op (bits 0–1 the table, bit 2
//        remove), a 16-byte key, two u64 values — the first half making list 8, the rest list 9,
//        both signed; the deltas `make` writes must verify, apply (alone and as a chain) to those
//        very lists byte for byte, and refuse to apply to any other list;
//   else the input is a delta or chain as received (signed by whoever).
// Invariants: every refusal is a typed invalid-document error; an accepted delta is signed by the
// active key, its unverified header agrees with it, it splits as one piece; an applied delta gives
// exactly the model's entries, header and list signature, its bytes re-parse to the same list,
// compaction changes nothing, and `make` from the base to the result writes the delta back byte
// for byte (the format is canonical).

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = input(data, size)
    switch bytes.first {
    case UInt8(ascii: "S"): fuzzSignedDelta(Array(bytes.dropFirst()))
    case UInt8(ascii: "M"): fuzzMadeDeltas(Array(bytes.dropFirst()))
    default: fuzzReceived(bytes)
    }
    return 0
}

private typealias Entry = (key: EntryKey, value: EntryValue)

// MARK: 'S': a signed delta from fuzzed fields

private func fuzzSignedDelta(_ rest: [UInt8]) {
    let headerBytes = 1 + 8 * 4 + 4 + 3 * 4 + 6
    guard rest.count >= headerBytes else { return }
    var reader = ByteReader(rest)
    guard let flags = reader.u8(), let fuzzedBase = reader.u64(), let sequence = reader.u64(), let issued = reader.u64(),
          let next = reader.u64(), let margin = reader.u32(), let t = reader.u32(), let o = reader.u32(), let v = reader.u32()
    else { return }
    var wanted: [Int] = []
    for _ in 0..<6 { wanted.append(Int(reader.u8() ?? 0)) }
    let useFixtureBase = flags & 1 != 0, modelCounts = flags & 2 != 0
    let baseSequence = useFixtureBase ? DeltaFixture.sequence : fuzzedBase
    let baseSignature = useFixtureBase ? DeltaFixture.base.signature : [UInt8](repeating: UInt8(truncatingIfNeeded: fuzzedBase), count: 64)

    // Sections in layout order: per table, upserts (32 bytes) then removals (16 bytes).
    var upserts: [[Entry]] = [], removals: [[EntryKey]] = []
    var sectionBytes: [UInt8] = []
    var offset = headerBytes
    for table in EntryTable.allCases {
        var added: [Entry] = []
        for _ in 0..<wanted[table.rawValue * 2] where rest.count - offset >= 32 {
            var entry = ByteReader(rest, offset: offset)
            guard let key = entry.take(16), let first = entry.u64(), let second = entry.u64() else { break }
            added.append((EntryKey(key), EntryValue(first: first, second: second)))
            sectionBytes += rest[offset..<(offset + 32)]
            offset += 32
        }
        var removed: [EntryKey] = []
        for _ in 0..<wanted[table.rawValue * 2 + 1] where rest.count - offset >= 16 {
            removed.append(EntryKey(rest[offset..<(offset + 16)]))
            sectionBytes += rest[offset..<(offset + 16)]
            offset += 16
        }
        upserts.append(added)
        removals.append(removed)
    }

    // The model of applying to the base: per table, removed keys held, upserts differing.
    var model: [[EntryKey: EntryValue]] = []
    var applies = true
    for table in EntryTable.allCases {
        var entries: [EntryKey: EntryValue] = [:]
        DeltaFixture.base.forEachEntry(table) { key, first, second in entries[key] = EntryValue(first: first, second: second) }
        for key in removals[table.rawValue] {
            if entries.removeValue(forKey: key) == nil { applies = false }
        }
        for (key, value) in upserts[table.rawValue] {
            if entries[key] == value { applies = false }
            entries[key] = value
        }
        model.append(entries)
    }
    let counts = modelCounts ? model.map { UInt32(truncatingIfNeeded: $0.count) } : [t, o, v]

    var body = RevocationDelta.magic
    let kid = Array(FuzzFixture.signer.id.rawValue.utf8)
    body.append(UInt8(kid.count))
    body += kid
    body.appendLE(baseSequence)
    body += baseSignature
    body.appendLE(sequence)
    body.appendLE(issued)
    body.appendLE(next)
    body.appendLE(margin)
    for count in counts { body.appendLE(count) }
    for table in EntryTable.allCases {
        body.appendLE(UInt32(upserts[table.rawValue].count))
        body.appendLE(UInt32(removals[table.rawValue].count))
    }
    body += sectionBytes
    let listSignature = [UInt8](repeating: 0x5A, count: 64)
    body += listSignature
    let message = body.withUnsafeBytes { RevocationDelta.signedMessage($0) }
    let signed = body + message.withUnsafeBytes { FuzzFixture.signer.sign($0) }

    // The model of parsing (§6, verification step 2).
    func ascending(_ keys: [EntryKey]) -> Bool { zip(keys, keys.dropFirst()).allSatisfy { $0 < $1 } }
    var wellFormed = baseSequence >= 1 && sequence <= SignedDocument.maxSequence && sequence > baseSequence
        && Int64(bitPattern: issued) < Int64(bitPattern: next) && Int64(margin) <= RevocationList.maxPruneMargin
    for table in EntryTable.allCases {
        let added = upserts[table.rawValue].map(\.key), removed = removals[table.rawValue]
        wellFormed = wellFormed && ascending(added) && ascending(removed) && Set(added).isDisjoint(with: removed)
    }
    let delta: RevocationDelta
    do { delta = try RevocationDelta(verifying: signed, keys: FuzzFixture.keys) } catch {
        invariant(!wellFormed, "a well-formed signed delta is refused: \(error)")
        invariant(error.isInvalidDocument, "a signed delta refused with \(error)")
        return
    }
    invariant(wellFormed, "accepted a delta the model refuses (base \(baseSequence), sequence \(sequence), issued \(issued), next \(next))")
    invariant(delta.baseSequence == baseSequence && delta.baseSignature == baseSignature && delta.sequence == sequence
              && delta.issuedAt.seconds == Int64(bitPattern: issued) && delta.nextUpdate.seconds == Int64(bitPattern: next)
              && delta.pruneMargin == Int64(margin) && delta.listSignature == listSignature, "header fields")
    invariant([delta.tokenEntryCount, delta.ownerEntryCount, delta.overlapEntryCount] == counts.map { Int($0) }, "announced counts")
    for table in EntryTable.allCases {
        invariant(delta.upserts[table.rawValue].map(\.key) == upserts[table.rawValue].map(\.key)
                  && delta.upserts[table.rawValue].map(\.value) == upserts[table.rawValue].map(\.value)
                  && delta.removals[table.rawValue] == removals[table.rawValue], "\(table.name) sections")
    }
    checkAccepted(delta, signed)

    let expected = useFixtureBase && applies && zip(model, counts).allSatisfy { $0.count == Int($1) }
    let result: RevocationList
    do { result = try DeltaFixture.base.applying(delta) } catch {
        invariant(!expected, "a delta the model applies is refused: \(error)")
        invariant(error.isInvalidDocument, "applying refused with \(error)")
        return
    }
    invariant(expected, "applied a delta the model refuses (fixture base \(useFixtureBase), entries held \(applies))")
    checkApplied(result, delta, model: model)
    // The format is canonical: the delta from the base to the result is this one, byte for byte.
    do {
        let made = try RevocationDelta.make(from: DeltaFixture.base, to: result, signedWith: FuzzFixture.signer)
        invariant(made == signed, "make(from: base, to: applied) differs from the delta applied")
    } catch { fail("no delta can be made to an applied list: \(error)") }
}

// MARK: 'M': deltas made between fuzzed lists

private func fuzzMadeDeltas(_ rest: [UInt8]) {
    let records = rest.count / 33
    var builder = DeltaFixture.builder
    var lists: [[UInt8]] = []
    for (half, range) in [0..<(records / 2), (records / 2)..<records].enumerated() {
        for i in range {
            var reader = ByteReader(rest, offset: i * 33)
            guard let op = reader.u8(), let keyBytes = reader.take(16), let first = reader.u64(), let second = reader.u64() else { return }
            let key = EntryKey(keyBytes), remove = op & 4 != 0
            switch op & 3 {
            case 0: builder.tokenEntries[key] = remove ? nil : (first, Int64(bitPattern: second))
            case 1: builder.ownerEntries[key] = remove ? nil : (Int64(bitPattern: first), Int64(bitPattern: second))
            default: builder.overlapEntries[key] = remove ? nil : (first, Int64(bitPattern: second))
            }
        }
        let sequence = DeltaFixture.sequence + 1 + UInt64(half)
        do {
            lists.append(try builder.sign(with: FuzzFixture.signer, sequence: sequence, issuedAt: FuzzFixture.now.adding(seconds: Int64(half)),
                                          nextUpdate: FuzzFixture.now.adding(seconds: 86_400)))
        } catch { fail("a list cannot be signed: \(error)") }
    }
    let middle: RevocationList, last: RevocationList
    do {
        middle = try RevocationList(verifying: lists[0], keys: FuzzFixture.keys)
        last = try RevocationList(verifying: lists[1], keys: FuzzFixture.keys)
    } catch { fail("a list the builder signed does not verify: \(error)") }

    let first: [UInt8], second: [UInt8]
    do {
        first = try RevocationDelta.make(from: DeltaFixture.base, to: middle, signedWith: FuzzFixture.signer)
        second = try RevocationDelta.make(from: middle, to: last, signedWith: FuzzFixture.signer)
    } catch { fail("make failed: \(error)") }
    do {
        let d1 = try RevocationDelta(verifying: first, keys: FuzzFixture.keys)
        let d2 = try RevocationDelta(verifying: second, keys: FuzzFixture.keys)
        checkAccepted(d1, first)
        checkAccepted(d2, second)
        let applied = try DeltaFixture.base.applying(d1)
        invariant(applied.bytes == lists[0], "base + delta is not the list it was made to")
        let chained = try RevocationDelta.chain(verifying: first + second, keys: FuzzFixture.keys)
        invariant(chained.count == 2, "a chain of two splits into \(chained.count)")
        var held = DeltaFixture.base
        for delta in chained { held = try held.applying(delta, compactAt: 0) }
        invariant(held.bytes == lists[1], "base + chain is not the list it was made to")
        // A delta applies to its base only.
        for (list, delta) in [(DeltaFixture.base, d2), (applied, d1), (middle, d1)] {
            do {
                _ = try list.applying(delta)
                fail("delta \(delta.baseSequence) → \(delta.sequence) applied to list \(list.sequence)")
            } catch { invariant(error.isInvalidDocument, "another base refused with \(error)") }
        }
    } catch { fail("a made delta is refused: \(error)") }
    do {
        _ = try RevocationDelta.chain(verifying: second + first, keys: FuzzFixture.keys)
        fail("accepted a chain in the wrong order")
    } catch { invariant(error.isInvalidDocument, "a broken chain refused with \(error)") }
}

// MARK: received bytes

private func fuzzReceived(_ bytes: [UInt8]) {
    let header = RevocationDelta.UnverifiedHeader(bytes)
    do {
        let delta = try RevocationDelta(verifying: bytes, keys: FuzzFixture.keys)
        checkAccepted(delta, bytes)
        if let result = try? DeltaFixture.base.applying(delta) {
            invariant(delta.baseSequence == DeltaFixture.sequence && delta.baseSignature == DeltaFixture.base.signature,
                      "applied to another base")
            var model: [[EntryKey: EntryValue]] = []
            for table in EntryTable.allCases {
                var entries: [EntryKey: EntryValue] = [:]
                DeltaFixture.base.forEachEntry(table) { key, first, second in entries[key] = EntryValue(first: first, second: second) }
                for key in delta.removals[table.rawValue] { entries.removeValue(forKey: key) }
                for (key, value) in delta.upserts[table.rawValue] { entries[key] = value }
                model.append(entries)
            }
            checkApplied(result, delta, model: model)
        }
    } catch {
        invariant(error.isInvalidDocument, "a received delta refused with \(error)")
    }
    // A chain: each piece verified and applied in turn, until one is refused.
    do {
        let pieces = try RevocationDelta.split(chain: bytes)
        invariant(pieces.reduce(0) { $0 + $1.count } == bytes.count && pieces.allSatisfy { !$0.isEmpty }, "split loses bytes")
        if pieces.count == 1 { invariant(header != nil, "one whole delta has no unverified header") }
        let chain = try RevocationDelta.chain(verifying: bytes, keys: FuzzFixture.keys)
        invariant(chain.count == pieces.count, "chain and split disagree")
        var held = DeltaFixture.base
        for delta in chain { held = try held.applying(delta) }
        invariant(held.signature == chain.last?.listSignature, "a chain's result has another signature")
    } catch {
        invariant(error.isInvalidDocument, "a received chain refused with \(error)")
    }
}

// MARK: invariants

/// What holds for every delta that verified.
private func checkAccepted(_ delta: RevocationDelta, _ bytes: [UInt8]) {
    invariant(sameBytes(delta.signer.rawValue, FuzzFixture.signer.id.rawValue), "accepted a delta signed by \(delta.signer)")
    invariant(delta.bytes == bytes, "bytes")
    invariant(delta.baseSequence >= 1 && delta.sequence > delta.baseSequence && delta.sequence <= SignedDocument.maxSequence
              && delta.issuedAt < delta.nextUpdate && delta.pruneMargin <= RevocationList.maxPruneMargin, "header rules")
    guard let header = RevocationDelta.UnverifiedHeader(bytes) else { fail("an accepted delta has no unverified header") }
    invariant(header.baseSequence == delta.baseSequence && header.baseSignature == delta.baseSignature
              && header.sequence == delta.sequence && header.listSignature == delta.listSignature, "the unverified header disagrees")
    do {
        let pieces = try RevocationDelta.split(chain: bytes)
        invariant(pieces == [bytes], "one delta splits into more")
    } catch { fail("an accepted delta does not split: \(error)") }
    invariant(RevocationDelta.looksLikeDelta(bytes), "magic")
    var changes = 0
    for table in EntryTable.allCases {
        let added = delta.upserts[table.rawValue].map(\.key), removed = delta.removals[table.rawValue]
        invariant(zip(added, added.dropFirst()).allSatisfy { $0 < $1 } && zip(removed, removed.dropFirst()).allSatisfy { $0 < $1 },
                  "\(table.name) sections not strictly ascending")
        invariant(Set(added).isDisjoint(with: removed), "a \(table.name) key both upserted and removed")
        changes += added.count + removed.count
    }
    invariant(delta.changeCount == changes, "change count")
}

/// What holds for a list a delta was applied to: the model's entries, the delta's header and
/// list signature; its bytes re-parse to the same list; compacting changes nothing.
private func checkApplied(_ result: RevocationList, _ delta: RevocationDelta, model: [[EntryKey: EntryValue]]) {
    invariant(result.sequence == delta.sequence && result.issuedAt == delta.issuedAt && result.nextUpdate == delta.nextUpdate
              && result.pruneMargin == delta.pruneMargin && result.signature == delta.listSignature
              && sameBytes(result.signer.rawValue, delta.signer.rawValue), "the applied list's header")
    for table in EntryTable.allCases {
        var seen: [Entry] = []
        result.forEachEntry(table) { key, first, second in seen.append((key, EntryValue(first: first, second: second))) }
        let expected = model[table.rawValue].sorted { $0.key < $1.key }
        invariant(seen.map(\.key) == expected.map(\.key) && seen.map(\.value) == expected.map(\.value),
                  "\(table.name) entries differ from the model: \(seen.count) vs \(expected.count)")
        invariant(result.count(table) == expected.count, "\(table.name) count")
        for (key, value) in expected { invariant(result.entry(table, key) == value, "\(table.name) entry not found") }
    }
    let bytes = result.bytes
    let reparsed: RevocationList
    do { reparsed = try RevocationList(parsing: bytes, keys: nil) } catch { fail("an applied list's bytes do not parse: \(error)") }
    invariant(reparsed.bytes == bytes, "an applied list's bytes do not re-parse to themselves")
    do {
        let compacted = try result.compacted(), rebuilt = try DeltaFixture.base.applying(delta, compactAt: 0)
        invariant(compacted.bytes == bytes, "compacting changes the list")
        invariant(rebuilt.bytes == bytes, "applying with compaction differs")
    } catch { fail("compaction failed: \(error)") }
}

extension PATKitError {
    var isInvalidDocument: Bool { if case .invalidDocument = self { true } else { false } }
}
