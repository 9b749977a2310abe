extension RevocationList.Builder {
    /// Signs the list `base` becomes when the entries of a few keys change, without rebuilding
    /// the others: byte for byte the list `sign(with:…)` makes from every entry (Ed25519
    /// signatures are deterministic), in O(entries) copying instead of a table of a million
    /// entries built and sorted again.
    ///
    /// - `base`: a list this process built or verified (its entries are carried over as they are);
    /// - this builder: the current entries of the changed keys only — a key of `changedTokens` or
    ///   `changedOwners` it does not hold is removed from the list (a PAT deleted and pruned, an
    ///   owner revocation pruned);
    /// - every entry, carried or new, is pruned as `prune(now:margin:)` would with `pruneMargin`,
    ///   and an overlap entry is kept only beside its PAT's token entry, as in `sign`.
    ///
    /// The caller must know every key whose entry changed since `base` (the registry's stamped
    /// list changes); anything it misses stays as `base` had it.
    /// - Returns: the signed list and how many token and owner entries were pruned.
    package func sign(updating base: RevocationList, changedTokens: Set<EntryKey>, changedOwners: Set<EntryKey>, now: Timestamp,
                      with key: SecretKey, sequence: UInt64, issuedAt: Timestamp, nextUpdate: Timestamp,
                      pruneMargin: Int64) throws(PATKitError) -> (bytes: [UInt8], pruned: Int) {
        try Self.checkSigning(sequence: sequence, issuedAt: issuedAt, nextUpdate: nextUpdate, pruneMargin: pruneMargin)
        let base = try base.compacted()
        var fresh = self
        var pruned = fresh.prune(now: now, margin: pruneMargin)
        let cutoff = now.adding(seconds: -max(0, pruneMargin)).seconds
        // Every key the builder was given counts as changed, pruned or not (its entry in `base`
        // must go too).
        let tokenKeys = changedTokens.union(tokenEntries.keys).union(overlapEntries.keys).sorted()
        let ownerKeys = changedOwners.union(ownerEntries.keys).sorted()

        var out = RevocationList.header(signer: key.id, sequence: sequence, issuedAt: issuedAt, nextUpdate: nextUpdate,
                                        pruneMargin: pruneMargin, counts: (0, 0, 0))
        let headerCount = out.count
        out.reserveCapacity(headerCount + (base.tokenEntryCount + base.ownerEntryCount + base.overlapEntryCount
                                           + fresh.tokenEntries.count + fresh.ownerEntries.count + fresh.overlapEntries.count)
                            * RevocationList.entrySize + 64)
        let live: (EntryKey, UInt64, UInt64) -> Bool = { _, _, horizon in Int64(bitPattern: horizon) >= cutoff }
        let tokens = Self.carry(base.tables.tokens, replacing: tokenKeys,
                                with: fresh.tokenEntries.map { ($0.key, $0.value.floor, UInt64(bitPattern: $0.value.horizon)) },
                                keeping: live, pruned: &pruned, into: &out)
        let owners = Self.carry(base.tables.owners, replacing: ownerKeys,
                                with: fresh.ownerEntries.map { ($0.key, UInt64(bitPattern: $0.value.before), UInt64(bitPattern: $0.value.horizon)) },
                                keeping: live, pruned: &pruned, into: &out)
        // A carried overlap's PAT is unchanged: it stays while its token entry does (not pruned).
        var overlapsPruned = 0
        let baseTokens = base.tables.tokens
        let overlaps = Self.carry(base.tables.overlaps, replacing: tokenKeys,
                                  with: fresh.effectiveOverlaps.map { ($0.key, $0.value.generation, UInt64(bitPattern: $0.value.until)) },
                                  keeping: { key, _, until in
                                      guard Int64(bitPattern: until) >= cutoff, let token = baseTokens.lookup(key) else { return false }
                                      return Int64(bitPattern: token.1) >= cutoff
                                  }, pruned: &overlapsPruned, into: &out)

        let header = RevocationList.header(signer: key.id, sequence: sequence, issuedAt: issuedAt, nextUpdate: nextUpdate,
                                           pruneMargin: pruneMargin, counts: (tokens, owners, overlaps))
        guard header.count == headerCount else { throw .invalidArgument("a list header's length depends on its signer only") }
        out.withUnsafeMutableBytes { raw in raw.copyBytes(from: header) }
        let message = out.withUnsafeBytes { RevocationList.signedMessage($0) }
        out += message.withUnsafeBytes { key.sign($0) }
        return (out, pruned)
    }

    /// Appends to `out` the entries of `table` whose keys are not in `replaced` (sorted) and that
    /// `keep` accepts (counting the others in `pruned`), merged in key order with `fresh` (keys
    /// among `replaced`); returns how many entries it appended. Kept runs are copied whole.
    private static func carry(_ table: HashTable, replacing replaced: [EntryKey], with fresh: [(EntryKey, UInt64, UInt64)],
                              keeping keep: (EntryKey, UInt64, UInt64) -> Bool, pruned: inout Int, into out: inout [UInt8]) -> Int {
        let fresh = fresh.sorted { $0.0 < $1.0 }
        let size = RevocationList.entrySize
        var count = 0, nextReplaced = 0, nextFresh = 0
        table.withEntryBytes { raw in
            var runStart = 0, runEnd = 0 // kept entries not yet copied: raw[runStart..<runEnd]
            func flush(_ out: inout [UInt8]) {
                if runEnd > runStart { out.append(contentsOf: UnsafeRawBufferPointer(rebasing: raw[runStart..<runEnd])) }
            }
            for offset in stride(from: 0, to: raw.count, by: size) {
                let key = HashTable.key(raw, offset)
                if nextFresh < fresh.count, fresh[nextFresh].0 < key {
                    flush(&out)
                    runStart = offset
                    runEnd = offset
                    while nextFresh < fresh.count, fresh[nextFresh].0 < key {
                        Self.append(fresh[nextFresh], to: &out)
                        nextFresh += 1
                        count += 1
                    }
                }
                while nextReplaced < replaced.count, replaced[nextReplaced] < key { nextReplaced += 1 }
                let first = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: offset + 16, as: UInt64.self))
                let second = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: offset + 24, as: UInt64.self))
                let isReplaced = nextReplaced < replaced.count && replaced[nextReplaced] == key
                if !isReplaced && keep(key, first, second) {
                    if runEnd != offset {
                        flush(&out)
                        runStart = offset
                    }
                    runEnd = offset + size
                    count += 1
                } else if !isReplaced {
                    pruned += 1
                }
            }
            flush(&out)
        }
        while nextFresh < fresh.count {
            Self.append(fresh[nextFresh], to: &out)
            nextFresh += 1
            count += 1
        }
        return count
    }

    private static func append(_ entry: (EntryKey, UInt64, UInt64), to out: inout [UInt8]) {
        entry.0.append(to: &out)
        out.appendLE(entry.1)
        out.appendLE(entry.2)
    }
}
