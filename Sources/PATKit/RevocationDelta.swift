/// A signed change from one revocation list to the next: the entries added or changed and the
/// entries removed, the new list's header, and the new list's own signature — so that applying
/// it to the base list gives, byte for byte, the list the issuer signed at the new sequence
/// (`RevocationList.applying(_:)`). One revocation on a list of a million entries is a delta of
/// about 360 bytes instead of a 32 MB download.
///
/// Binary form (little-endian; byte-level description in FORMATS.md):
/// ```
/// "PATKRD01" | u8 kid length | kid | u64 baseSequence | 64-byte base list signature
/// | u64 sequence | i64 issuedAt | i64 nextUpdate | u32 pruneMargin          (the new list's header)
/// | u32 token entries | u32 owner entries | u32 overlap entries          (the new list's counts)
/// | u32 × 6: upserted and removed, for tokens, owners, overlaps
/// | upserted token entries (32 bytes each) | removed token keys (16 bytes each)
/// | upserted owner entries | removed owner keys | upserted overlap entries | removed overlap keys
/// | 64-byte signature of the new list
/// | 64-byte Ed25519 signature over PAE("patkit.revocation-delta.v1", BLAKE2b-512(everything before it))
/// ```
/// Each section is strictly ascending by key; a key is never both upserted and removed in one
/// table; the same key signs the delta and the new list. A delta names its base by sequence
/// and signature, so it applies to exactly one list. Several deltas in a row (a *chain*, as an
/// issuer answers `?since=SEQ` for an edge several sequences behind) are simply concatenated:
/// each one's length follows from its header.
public struct RevocationDelta: Sendable {
    /// The key that signed the delta and the new list.
    public let signer: KeyID
    /// The list this delta applies to: its sequence and its signature.
    public let baseSequence: UInt64
    public let baseSignature: [UInt8]
    /// The new list's header.
    public let sequence: UInt64
    public let issuedAt: Timestamp
    public let nextUpdate: Timestamp
    public let pruneMargin: Int64
    /// The new list's entry counts.
    public let tokenEntryCount: Int
    public let ownerEntryCount: Int
    public let overlapEntryCount: Int
    /// The new list's signature.
    public let listSignature: [UInt8]
    /// The document as verified.
    public let bytes: [UInt8]
    /// Per table (`EntryTable.rawValue`): entries added or changed, keys removed.
    let upserts: [[(key: EntryKey, value: EntryValue)]]
    let removals: [[EntryKey]]

    static let magic: [UInt8] = Array("PATKRD01".utf8)
    static var domain: [UInt8] { SignedDocument.revocationDeltaDomain }
    /// Refused before parsing: a delta is small; anything near this size is better sent whole.
    public static let defaultMaxBytes = 32 * 1024 * 1024

    /// Entries added, changed or removed, in every table.
    public var changeCount: Int { upserts.reduce(0) { $0 + $1.count } + removals.reduce(0) { $0 + $1.count } }

    /// True when `bytes` start with a delta's magic. Says nothing about validity.
    public static func looksLikeDelta(_ bytes: some Collection<UInt8>) -> Bool { bytes.prefix(8).elementsEqual(magic) }

    /// What the signature covers: the domain string and a BLAKE2b-512 digest of the body.
    static func signedMessage(_ body: UnsafeRawBufferPointer) -> [UInt8] {
        PASETOv4Public.pae([domain, Sodium.blake2b(body, length: 64)])
    }

    // MARK: parsing

    /// A delta's header fields, read WITHOUT checking the signature: for a server deciding
    /// which deltas chain to which lists it serves. Never a basis for accepting anything.
    public struct UnverifiedHeader: Sendable, Equatable {
        public let baseSequence: UInt64
        public let baseSignature: [UInt8]
        public let sequence: UInt64
        /// The signature of the list the delta leads to (its last 128 bytes' first half).
        public let listSignature: [UInt8]

        /// nil when `bytes` are not one whole delta.
        public init?(_ bytes: [UInt8]) {
            guard let length = try? RevocationDelta.length(in: bytes, at: 0), length == bytes.count else { return nil }
            var reader = ByteReader(bytes, offset: 8)
            guard let kidLength = reader.u8(), reader.take(Int(kidLength)) != nil, let base = reader.u64(),
                  let baseSignature = reader.take(64), let sequence = reader.u64() else { return nil }
            self.baseSequence = base
            self.baseSignature = Array(baseSignature)
            self.sequence = sequence
            self.listSignature = Array(bytes[(bytes.count - 128)..<(bytes.count - 64)])
        }
    }

    /// Fixed part of the header after the kid: base sequence, base signature, new header,
    /// new counts, section counts.
    private static let fixedHeaderBytes = 8 + 64 + 8 + 8 + 8 + 4 + 3 * 4 + 6 * 4

    /// The length of the delta starting at `offset` of `bytes`, read from its header; nil when
    /// too short to tell. Throws when it does not start with a delta's magic.
    static func length(in bytes: [UInt8], at offset: Int) throws(PATKitError) -> Int? {
        var reader = ByteReader(bytes, offset: offset)
        guard let magic = reader.take(8) else { return nil }
        guard magic.elementsEqual(RevocationDelta.magic) else {
            if magic.elementsEqual(RevocationList.magic) {
                throw .invalidDocument("a whole revocation list was given where a delta was expected")
            }
            throw .invalidDocument("not a PATKit revocation list delta (bad magic; expected PATKRD01)")
        }
        guard let kidLength = reader.u8(), reader.take(Int(kidLength) + fixedHeaderBytes - 24) != nil else { return nil }
        var sections: [Int] = []
        for _ in 0..<6 {
            guard let count = reader.u32() else { return nil }
            sections.append(Int(count))
        }
        let entries = (sections[0] + sections[2] + sections[4]) * RevocationList.entrySize + (sections[1] + sections[3] + sections[5]) * 16
        return reader.offset - offset + entries + 128
    }

    /// Splits a chain of concatenated deltas (at least one), without verifying them.
    public static func split(chain bytes: [UInt8], maxCount: Int = 10_000) throws(PATKitError) -> [[UInt8]] {
        var out: [[UInt8]] = []
        var offset = 0
        while offset < bytes.count {
            guard out.count < maxCount else { throw .invalidDocument("a delta chain of more than \(maxCount) deltas") }
            guard let length = try length(in: bytes, at: offset), length <= bytes.count - offset else {
                throw .invalidDocument("revocation list delta \(out.count + 1) of the chain is truncated")
            }
            out.append(Array(bytes[offset..<(offset + length)]))
            offset += length
        }
        guard !out.isEmpty else { throw .invalidDocument("an empty delta chain") }
        return out
    }

    /// Parses and verifies a delta. It must be signed by an active key of `keys`. Whether it
    /// applies to a list is `RevocationList.applying(_:)`'s to say.
    public init(verifying bytes: [UInt8], keys: KeySet, maxBytes: Int = RevocationDelta.defaultMaxBytes) throws(PATKitError) {
        guard bytes.count <= maxBytes else {
            throw .invalidDocument("revocation list delta of \(bytes.count) bytes exceeds the limit of \(maxBytes)")
        }
        guard let length = try RevocationDelta.length(in: bytes, at: 0) else {
            throw .invalidDocument("revocation list delta: truncated header")
        }
        guard length == bytes.count else {
            throw .invalidDocument("revocation list delta: length \(bytes.count) does not match its header (expected \(length))")
        }
        var reader = ByteReader(bytes, offset: 8)
        guard let kidLength = reader.u8(), let kidBytes = reader.take(Int(kidLength)),
              let kidText = String(validating: kidBytes, as: UTF8.self) else {
            throw .invalidDocument("revocation list delta: truncated signer key id")
        }
        let signer: KeyID
        do { signer = try KeyID(kidText) } catch {
            throw .invalidDocument("revocation list delta: the signer is not a k4.pid key id")
        }
        guard let key = keys.verificationKey(for: signer) else {
            throw .invalidDocument("revocation list delta is signed by \(signer), which is not an active key of the key set")
        }
        let bodyLength = bytes.count - 64
        let signedOK = bytes.withUnsafeBytes { raw in
            let message = RevocationDelta.signedMessage(UnsafeRawBufferPointer(rebasing: raw[..<bodyLength]))
            return message.withUnsafeBytes { m in
                key.bytes.withUnsafeBytes { pk in
                    Sodium.verifyDetached(signature: UnsafeRawBufferPointer(rebasing: raw[bodyLength...]), message: m, publicKey: pk)
                }
            }
        }
        guard signedOK else { throw .invalidDocument("revocation list delta signature does not verify with \(signer)") }

        // Signed: the length check above guarantees every read below succeeds.
        guard let baseSequence = reader.u64(), let baseSignature = reader.take(64), let sequence = reader.u64(),
              let issued = reader.u64(), let next = reader.u64(), let margin = reader.u32(),
              let tokens = reader.u32(), let owners = reader.u32(), let overlaps = reader.u32() else {
            throw .invalidDocument("revocation list delta: truncated header")
        }
        var sectionCounts: [Int] = []
        for _ in 0..<6 {
            guard let count = reader.u32() else { throw .invalidDocument("revocation list delta: truncated header") }
            sectionCounts.append(Int(count))
        }
        guard baseSequence >= 1, sequence <= SignedDocument.maxSequence else {
            throw .invalidDocument("revocation list delta sequences must be from 1 to 2^53 − 1")
        }
        guard sequence > baseSequence else {
            throw .invalidDocument("revocation list delta goes from sequence \(baseSequence) to \(sequence): sequences must increase")
        }
        let issuedAt = Timestamp(seconds: Int64(bitPattern: issued))
        let nextUpdate = Timestamp(seconds: Int64(bitPattern: next))
        guard issuedAt < nextUpdate else { throw .invalidDocument("revocation list delta: next-update is not after the issue time") }
        guard Int64(margin) <= RevocationList.maxPruneMargin else {
            throw .invalidDocument("revocation list delta: prune margin of \(margin) s exceeds \(RevocationList.maxPruneMargin) s")
        }
        var upserts: [[(key: EntryKey, value: EntryValue)]] = []
        var removals: [[EntryKey]] = []
        for table in EntryTable.allCases {
            var added: [(key: EntryKey, value: EntryValue)] = []
            added.reserveCapacity(sectionCounts[table.rawValue * 2])
            for _ in 0..<sectionCounts[table.rawValue * 2] {
                guard let key = reader.take(16), let first = reader.u64(), let second = reader.u64() else {
                    throw .invalidDocument("revocation list delta: truncated entries")
                }
                let entryKey = EntryKey(key)
                if let last = added.last, !(last.key < entryKey) {
                    throw .invalidDocument("revocation list delta: \(table.name) entries are not in strictly ascending order")
                }
                added.append((entryKey, EntryValue(first: first, second: second)))
            }
            var removed: [EntryKey] = []
            removed.reserveCapacity(sectionCounts[table.rawValue * 2 + 1])
            for _ in 0..<sectionCounts[table.rawValue * 2 + 1] {
                guard let key = reader.take(16) else { throw .invalidDocument("revocation list delta: truncated removals") }
                let entryKey = EntryKey(key)
                if let last = removed.last, !(last < entryKey) {
                    throw .invalidDocument("revocation list delta: removed \(table.name) keys are not in strictly ascending order")
                }
                removed.append(entryKey)
            }
            if !added.isEmpty, !removed.isEmpty {
                let removedSet = Set(removed)
                if added.contains(where: { removedSet.contains($0.key) }) {
                    throw .invalidDocument("revocation list delta both changes and removes one \(table.name) entry")
                }
            }
            upserts.append(added)
            removals.append(removed)
        }
        guard let listSignature = reader.take(64) else { throw .invalidDocument("revocation list delta: truncated") }
        self.signer = signer
        self.baseSequence = baseSequence
        self.baseSignature = Array(baseSignature)
        self.sequence = sequence
        self.issuedAt = issuedAt
        self.nextUpdate = nextUpdate
        self.pruneMargin = Int64(margin)
        self.tokenEntryCount = Int(tokens)
        self.ownerEntryCount = Int(owners)
        self.overlapEntryCount = Int(overlaps)
        self.listSignature = Array(listSignature)
        self.bytes = bytes
        self.upserts = upserts
        self.removals = removals
    }

    /// Splits and verifies a chain of deltas (see `split(chain:)`); each must be signed by an
    /// active key of `keys` and follow the one before it.
    public static func chain(verifying bytes: [UInt8], keys: KeySet, maxBytes: Int = RevocationDelta.defaultMaxBytes) throws(PATKitError) -> [RevocationDelta] {
        guard bytes.count <= maxBytes else {
            throw .invalidDocument("revocation list delta chain of \(bytes.count) bytes exceeds the limit of \(maxBytes)")
        }
        var deltas: [RevocationDelta] = []
        for piece in try split(chain: bytes) {
            let delta = try RevocationDelta(verifying: piece, keys: keys, maxBytes: maxBytes)
            if let previous = deltas.last, delta.baseSequence != previous.sequence || delta.baseSignature != previous.listSignature {
                throw .invalidDocument("revocation list delta chain is broken: a delta to \(previous.sequence) is followed by one from \(delta.baseSequence)")
            }
            deltas.append(delta)
        }
        return deltas
    }

    // MARK: making

    /// The delta from `base` to `list`, signed with `key` — which must be the key that signed
    /// `list`. Both are lists this process holds (verified or built); `list` must be newer.
    public static func make(from base: RevocationList, to list: RevocationList, signedWith key: SecretKey) throws(PATKitError) -> [UInt8] {
        guard key.id == list.signer else {
            throw .invalidArgument("a delta is signed by the key that signed its list (\(list.signer)), not \(key.id)")
        }
        guard list.sequence > base.sequence else {
            throw .invalidArgument("a delta goes to a higher sequence: \(base.sequence) → \(list.sequence)")
        }
        let from = try base.compacted(), to = try list.compacted()
        var out = RevocationDelta.magic
        let kid = Array(key.id.rawValue.utf8)
        out.append(UInt8(kid.count))
        out += kid
        out.appendLE(base.sequence)
        out += base.signature
        out.appendLE(list.sequence)
        out.appendLE(UInt64(bitPattern: list.issuedAt.seconds))
        out.appendLE(UInt64(bitPattern: list.nextUpdate.seconds))
        out.appendLE(UInt32(list.pruneMargin))
        out.appendLE(UInt32(list.tokenEntryCount))
        out.appendLE(UInt32(list.ownerEntryCount))
        out.appendLE(UInt32(list.overlapEntryCount))
        var sections: [(upserted: [UInt8], upsertCount: Int, removed: [UInt8], removeCount: Int)] = []
        for table in EntryTable.allCases {
            sections.append(diff(from.tables[table], to.tables[table]))
        }
        for section in sections {
            out.appendLE(UInt32(section.upsertCount))
            out.appendLE(UInt32(section.removeCount))
        }
        for section in sections {
            out += section.upserted
            out += section.removed
        }
        out += list.signature
        let message = out.withUnsafeBytes { RevocationDelta.signedMessage($0) }
        out += message.withUnsafeBytes { key.sign($0) }
        return out
    }

    /// Entries of `new` that `old` lacks or holds with other values (32 bytes each), and keys
    /// of `old` that `new` lacks (16 bytes each): one merge pass over two sorted tables.
    private static func diff(_ old: HashTable, _ new: HashTable) -> (upserted: [UInt8], upsertCount: Int, removed: [UInt8], removeCount: Int) {
        var upserted: [UInt8] = [], removed: [UInt8] = []
        var upsertCount = 0, removeCount = 0
        let size = RevocationList.entrySize
        old.withEntryBytes { a in
            new.withEntryBytes { b in
                var i = 0, j = 0
                let n = a.count / size, m = b.count / size
                while i < n || j < m {
                    if j >= m || (i < n && HashTable.key(a, i * size) < HashTable.key(b, j * size)) {
                        removed.append(contentsOf: UnsafeRawBufferPointer(rebasing: a[(i * size)..<(i * size + 16)]))
                        removeCount += 1
                        i += 1
                    } else if i >= n || HashTable.key(b, j * size) < HashTable.key(a, i * size) {
                        upserted.append(contentsOf: UnsafeRawBufferPointer(rebasing: b[(j * size)..<(j * size + size)]))
                        upsertCount += 1
                        j += 1
                    } else {
                        if !UnsafeRawBufferPointer(rebasing: a[(i * size)..<(i * size + size)])
                            .elementsEqual(UnsafeRawBufferPointer(rebasing: b[(j * size)..<(j * size + size)])) {
                            upserted.append(contentsOf: UnsafeRawBufferPointer(rebasing: b[(j * size)..<(j * size + size)]))
                            upsertCount += 1
                        }
                        i += 1
                        j += 1
                    }
                }
            }
        }
        return (upserted, upsertCount, removed, removeCount)
    }
}

extension RevocationList {
    /// The list `delta` makes of this one: byte for byte the list its issuer signed at
    /// `delta.sequence` (its `bytes`, `signature`, entries). The delta must be verified
    /// (`RevocationDelta(verifying:keys:)`) and name this list as its base (sequence and
    /// signature); each entry it removes must be here, each it adds or changes must differ from
    /// what is here, and the counts must come out as it says. O(changes): the result shares
    /// this list's tables and holds the changes on top, until they are many (then it is rebuilt
    /// once, O(entries)). Installing the result in a `Validator` applies the list rules
    /// (trusted signer, no rollback, prune margin) as for a list fetched whole.
    public func applying(_ delta: RevocationDelta) throws(PATKitError) -> RevocationList {
        try applying(delta, compactAt: max(1024, (tokenEntryCount + ownerEntryCount + overlapEntryCount) / 64))
    }

    /// The same, rebuilt into plain tables once more than `threshold` changes are on top.
    package func applying(_ delta: RevocationDelta, compactAt threshold: Int) throws(PATKitError) -> RevocationList {
        guard delta.baseSequence == sequence, delta.baseSignature == signature else {
            throw .invalidDocument("revocation list delta \(delta.baseSequence) → \(delta.sequence) applies to another list than "
                                   + "the one held (sequence \(sequence)\(delta.baseSequence == sequence ? ", another signature" : ""))")
        }
        var tables: [[EntryKey: EntryValue?]] = []
        var counts: [Int] = []
        for table in EntryTable.allCases {
            var changes = overlay?[table] ?? [:]
            var count = self.count(table)
            let base = self.tables[table]
            for key in delta.removals[table.rawValue] {
                guard entry(table, key) != nil else {
                    throw .invalidDocument("revocation list delta removes a \(table.name) entry the list \(sequence) does not hold")
                }
                if base.lookup(key) == nil { changes.removeValue(forKey: key) } else { changes.updateValue(nil, forKey: key) }
                count -= 1
            }
            for (key, value) in delta.upserts[table.rawValue] {
                let held = entry(table, key)
                if held == value {
                    throw .invalidDocument("revocation list delta re-states a \(table.name) entry the list \(sequence) holds unchanged")
                }
                if held == nil { count += 1 }
                if let original = base.lookup(key), original == (value.first, value.second) {
                    changes.removeValue(forKey: key)
                } else {
                    changes.updateValue(value, forKey: key)
                }
            }
            tables.append(changes)
            counts.append(count)
        }
        guard counts == [delta.tokenEntryCount, delta.ownerEntryCount, delta.overlapEntryCount] else {
            throw .invalidDocument("revocation list delta to \(delta.sequence) yields \(counts) entries, not the "
                                   + "\([delta.tokenEntryCount, delta.ownerEntryCount, delta.overlapEntryCount]) it announces")
        }
        let overlay = Overlay(tokens: tables[0], owners: tables[1], overlaps: tables[2])
        let result = RevocationList(sequence: delta.sequence, issuedAt: delta.issuedAt, nextUpdate: delta.nextUpdate,
                                    pruneMargin: delta.pruneMargin, signer: delta.signer, signature: delta.listSignature,
                                    tables: self.tables, overlay: overlay,
                                    counts: (counts[0], counts[1], counts[2]))
        return overlay.changeCount > threshold ? try result.compacted() : result
    }
}
