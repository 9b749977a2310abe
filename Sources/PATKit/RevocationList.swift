/// Why the revocation list refuses a token.
public enum Revocation: Sendable, Equatable, CustomStringConvertible {
    /// The PAT was revoked, regenerated or re-scoped: generations below `floor` are dead.
    case superseded(floor: UInt64)
    /// The PAT was deleted: no generation is valid.
    case deleted
    /// Every PAT of the owner issued before `before` was revoked (revoke-all).
    case ownerRevoked(before: Timestamp)
    /// A token that minted this one (`par`) is dead: its generation is below `floor`.
    case ancestorRevoked(PATAncestor, floor: UInt64)

    public var description: String {
        switch self {
        case .superseded(let floor): return "generations below \(floor) of this PAT are no longer valid (revoked, regenerated or re-scoped)"
        case .deleted: return "the PAT was deleted"
        case .ownerRevoked(let before): return "every PAT of this owner issued before \(before) was revoked"
        case .ancestorRevoked(let ancestor, let floor):
            let fate = floor == UInt64.max ? "was deleted" : "was revoked, regenerated or re-scoped (generations below \(floor) are dead)"
            return "the token that minted this one (ancestor \(ancestor)) \(fate); what it minted dies with it"
        }
    }
}

/// The signed, versioned revocation list: PAT id → lowest valid generation, owner → revoke-all
/// instant, and PAT id → the previous generation that stays valid for a while after a
/// regenerate with an overlap. One rule covers revoke, regenerate and delete.
///
/// Binary form (little-endian), 32 bytes an entry (byte-level description in FORMATS.md):
/// ```
/// "PATKRL03" | u8 kid length | kid | u64 sequence | i64 issuedAt | i64 nextUpdate | u32 pruneMargin
/// | u32 token entries | u32 owner entries | u32 overlap entries
/// | token entries:   16-byte BLAKE2b-128("patkit.jti\0" ‖ jti), u64 floor, i64 horizon   (ascending by key)
/// | owner entries:   16-byte BLAKE2b-128("patkit.sub\0" ‖ sub), i64 before, i64 horizon  (ascending by key)
/// | overlap entries: 16-byte BLAKE2b-128("patkit.jti\0" ‖ jti), u64 generation, i64 until (ascending by key)
/// | 64-byte Ed25519 signature over PAE("patkit.revocation-list.v3", BLAKE2b-512(everything before it))
/// ```
/// The signature's domain string and piece count differ from PASETO's, from the key set's and
/// from a delta's, so a list can never pass as a token, a key set or a delta, nor they as a
/// list. An entry's horizon is the latest `exp` among the generations it kills; the issuer
/// prunes an entry once its horizon is more than `pruneMargin` seconds past, so a verifier must
/// not use a clock-skew leeway larger than `pruneMargin` (the `Validator` refuses such a list).
///
/// An overlap entry keeps exactly one generation below the floor valid until an instant (a
/// rotation without downtime: `pat regenerate --overlap 1h`); it never revives a deleted PAT.
///
/// A list can also be the result of applying signed deltas to an earlier one
/// (`applying(_:)`, `RevocationDelta`): it then holds the earlier tables plus the changes, and
/// `bytes` is the very document the issuer signed at the new sequence.
public struct RevocationList: Sendable {
    public let sequence: UInt64
    public let issuedAt: Timestamp
    public let nextUpdate: Timestamp
    /// Seconds past an entry's horizon before the issuer prunes it: the largest leeway a
    /// verifier may use with this list.
    public let pruneMargin: Int64
    /// The key that signed the list.
    public let signer: KeyID
    public let signature: [UInt8]
    /// The tables as read from a signed document (the list itself, or an earlier one).
    let tables: ListTables
    /// Changes applied by deltas since `tables` were read (possibly none but the header); nil
    /// when `tables.storage` is this very list.
    let overlay: Overlay?
    public let tokenEntryCount: Int
    public let ownerEntryCount: Int
    public let overlapEntryCount: Int

    /// Bytes the loaded list holds in memory: the signed file bytes plus the indexes (changes
    /// applied by deltas not counted).
    public var memoryFootprint: Int { tables.storage.count + EntryTable.allCases.reduce(0) { $0 + tables[$1].indexBytes } }

    static let magic: [UInt8] = Array("PATKRL03".utf8)
    static var domain: [UInt8] { SignedDocument.revocationListDomain }
    static let entrySize = 32
    /// The margin `prune` and `sign` use unless told otherwise: 60 s, the default leeway.
    public static let defaultPruneMargin: Int64 = 60
    /// The largest prune margin a signer writes: 7 days.
    public static let maxPruneMargin: Int64 = 7 * 86_400
    /// Refused before parsing: 8 Mi entries.
    public static let defaultMaxBytes = 256 * 1024 * 1024

    /// What the signature covers: the domain string and a BLAKE2b-512 digest of the body,
    /// so a list of millions of entries is hashed in one pass and never copied.
    static func signedMessage(_ body: UnsafeRawBufferPointer) -> [UInt8] {
        PASETOv4Public.pae([domain, Sodium.blake2b(body, length: 64)])
    }

    // MARK: lookup

    /// The 16-byte lookup key of a PAT id.
    public static func tokenKey(_ id: String) -> EntryKey { EntryKey(hashing: id, domain: "patkit.jti") }
    public static func ownerKey(_ subject: String) -> EntryKey { EntryKey(hashing: subject, domain: "patkit.sub") }

    /// Whether the list refuses a PAT with these claims now.
    public func check(_ claims: PATClaims) -> Revocation? {
        check(claims, tokenKey: nil, ownerKey: nil, now: Timestamp.now())
    }

    /// Whether the list refuses a PAT with these claims at `now`: its own entry, its owner's,
    /// and the entry of every ancestor in its lineage (`par`); a generation kept by an overlap
    /// entry passes until the overlap ends. O(1 + lineage depth).
    public func check(_ claims: PATClaims, at now: Timestamp) -> Revocation? {
        check(claims, tokenKey: nil, ownerKey: nil, now: now)
    }

    /// The same with lookup keys computed earlier (nil: hash here, only if the table is
    /// non-empty). Ancestors carry their keys: no hashing for them. Not part of the API: the
    /// benchmarks (a package of their own) time the lookup alone through this SPI.
    @_spi(Benchmarks) public func check(_ claims: PATClaims, tokenKey: EntryKey?, ownerKey: EntryKey?, now: Timestamp) -> Revocation? {
        if tokenEntryCount > 0 {
            let key = tokenKey ?? RevocationList.tokenKey(claims.id)
            if let (floor, _) = tokenEntry(key), claims.generation < floor, !overlapKeeps(key, claims.generation, floor: floor, now) {
                return floor == UInt64.max ? .deleted : .superseded(floor: floor)
            }
        }
        if ownerEntryCount > 0, let (before, _) = ownerEntry(ownerKey ?? RevocationList.ownerKey(claims.subject)),
           claims.issuedAt.seconds < Int64(bitPattern: before) {
            return .ownerRevoked(before: Timestamp(seconds: Int64(bitPattern: before)))
        }
        if tokenEntryCount > 0, !claims.lineage.isEmpty {
            // Every ancestor has the token's own `sub` (only an owner's own tokens mint with
            // lineage), so the owner check above covers the ancestors' revoke-all too.
            for ancestor in claims.lineage {
                if let (floor, _) = tokenEntry(ancestor.key), ancestor.generation < floor,
                   !overlapKeeps(ancestor.key, ancestor.generation, floor: floor, now) {
                    return .ancestorRevoked(ancestor, floor: floor)
                }
            }
        }
        return nil
    }

    /// True when an overlap entry keeps `generation` (below `floor`) of the PAT valid at `now`.
    @inline(__always)
    private func overlapKeeps(_ key: EntryKey, _ generation: UInt64, floor: UInt64, _ now: Timestamp) -> Bool {
        guard overlapEntryCount > 0, floor != UInt64.max, let (kept, until) = overlapEntry(key) else { return false }
        return kept == generation && now.seconds <= Int64(bitPattern: until)
    }

    @inline(__always)
    func tokenEntry(_ key: EntryKey) -> (UInt64, UInt64)? {
        if let overlay, let change = overlay.tokens[key] { return change.map { ($0.first, $0.second) } }
        return tables.tokens.lookup(key)
    }

    @inline(__always)
    func ownerEntry(_ key: EntryKey) -> (UInt64, UInt64)? {
        if let overlay, let change = overlay.owners[key] { return change.map { ($0.first, $0.second) } }
        return tables.owners.lookup(key)
    }

    @inline(__always)
    func overlapEntry(_ key: EntryKey) -> (UInt64, UInt64)? {
        if let overlay, let change = overlay.overlaps[key] { return change.map { ($0.first, $0.second) } }
        return tables.overlaps.lookup(key)
    }

    func entry(_ table: EntryTable, _ key: EntryKey) -> EntryValue? {
        let found: (UInt64, UInt64)?
        switch table {
        case .tokens: found = tokenEntry(key)
        case .owners: found = ownerEntry(key)
        case .overlaps: found = overlapEntry(key)
        }
        return found.map { EntryValue(first: $0.0, second: $0.1) }
    }

    func count(_ table: EntryTable) -> Int {
        switch table {
        case .tokens: return tokenEntryCount
        case .owners: return ownerEntryCount
        case .overlaps: return overlapEntryCount
        }
    }

    /// The token entry of PAT `id`: generations below `floor` are dead (`UInt64.max`: deleted).
    public func floor(of id: String) -> UInt64? { tokenEntry(RevocationList.tokenKey(id))?.0 }

    /// The overlap entry of PAT `id`: `generation` stays valid until `until` though below the floor.
    public func overlap(of id: String) -> (generation: UInt64, until: Timestamp)? {
        overlapEntry(RevocationList.tokenKey(id)).map { ($0.0, Timestamp(seconds: Int64(bitPattern: $0.1))) }
    }

    /// True when `now` is past next-update plus `grace` seconds.
    public func isStale(at now: Timestamp, grace: Int64) -> Bool { now > nextUpdate.adding(seconds: grace) }

    /// Every entry of `table` in ascending key order, changes applied.
    func forEachEntry(_ table: EntryTable, _ body: (EntryKey, UInt64, UInt64) -> Void) {
        let base = tables[table]
        guard let changes = overlay?[table], !changes.isEmpty else {
            base.forEach(body)
            return
        }
        let sorted = changes.sorted { $0.key < $1.key }
        var next = 0
        base.forEach { key, first, second in
            while next < sorted.count, sorted[next].key < key {
                if let value = sorted[next].value { body(sorted[next].key, value.first, value.second) }
                next += 1
            }
            if next < sorted.count, sorted[next].key == key {
                if let value = sorted[next].value { body(key, value.first, value.second) }
                next += 1
            } else {
                body(key, first, second)
            }
        }
        while next < sorted.count {
            if let value = sorted[next].value { body(sorted[next].key, value.first, value.second) }
            next += 1
        }
    }

    // MARK: the document

    /// The signed document: the bytes verified, or — after deltas were applied — the bytes the
    /// issuer signed at this sequence, rebuilt (O(entries); call it when the bytes are needed,
    /// e.g. to cache or serve the list, not per request).
    public var bytes: [UInt8] {
        guard let overlay else { return tables.storage }
        var out = RevocationList.header(signer: signer, sequence: sequence, issuedAt: issuedAt, nextUpdate: nextUpdate,
                                        pruneMargin: pruneMargin,
                                        counts: (tokenEntryCount, ownerEntryCount, overlapEntryCount))
        out.reserveCapacity(out.count + (tokenEntryCount + ownerEntryCount + overlapEntryCount) * RevocationList.entrySize + 64)
        for table in EntryTable.allCases {
            if overlay[table].isEmpty {
                tables[table].withEntryBytes { out.append(contentsOf: $0) }
            } else {
                forEachEntry(table) { key, first, second in
                    key.append(to: &out)
                    out.appendLE(first)
                    out.appendLE(second)
                }
            }
        }
        out += signature
        return out
    }

    /// The same list read into plain tables (no changes on top): what applying many deltas
    /// comes back to.
    func compacted() throws(PATKitError) -> RevocationList {
        guard overlay != nil else { return self }
        return try RevocationList(parsing: bytes, keys: nil)
    }

    /// The header of a list document with these fields (everything before the entries).
    static func header(signer: KeyID, sequence: UInt64, issuedAt: Timestamp, nextUpdate: Timestamp, pruneMargin: Int64,
                       counts: (tokens: Int, owners: Int, overlaps: Int)) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(128)
        out += RevocationList.magic
        let kid = Array(signer.rawValue.utf8)
        out.append(UInt8(kid.count))
        out += kid
        out.appendLE(sequence)
        out.appendLE(UInt64(bitPattern: issuedAt.seconds))
        out.appendLE(UInt64(bitPattern: nextUpdate.seconds))
        out.appendLE(UInt32(pruneMargin))
        out.appendLE(UInt32(counts.tokens))
        out.appendLE(UInt32(counts.owners))
        out.appendLE(UInt32(counts.overlaps))
        return out
    }

    // MARK: parsing

    /// A list's header fields, read WITHOUT checking the signature: for an issuer choosing the
    /// next sequence above a file it wrote, or a server setting cache lifetimes on a file it
    /// serves. Never a basis for accepting anything.
    public struct UnverifiedHeader: Sendable, Equatable {
        public let signer: String
        public let sequence: UInt64
        public let issuedAt: Timestamp
        public let nextUpdate: Timestamp
        public let pruneMargin: Int64

        /// nil when `bytes` do not start with a list header.
        public init?(_ bytes: [UInt8]) {
            var reader = ByteReader(bytes)
            guard let magic = reader.take(8), magic.elementsEqual(RevocationList.magic),
                  let kidLength = reader.u8(), let kid = reader.take(Int(kidLength)),
                  let sequence = reader.u64(), let issued = reader.u64(), let next = reader.u64(),
                  let margin = reader.u32() else { return nil }
            signer = String(decoding: kid, as: UTF8.self)
            self.sequence = sequence
            issuedAt = Timestamp(seconds: Int64(bitPattern: issued))
            nextUpdate = Timestamp(seconds: Int64(bitPattern: next))
            pruneMargin = Int64(margin)
        }
    }

    /// The sequence number of `UnverifiedHeader`.
    public static func unverifiedSequence(header bytes: [UInt8]) -> UInt64? { UnverifiedHeader(bytes)?.sequence }

    /// Bytes enough to hold any list header (for `unverifiedSequence(header:)`).
    public static let maxHeaderBytes = 8 + 1 + 255 + 8 * 3 + 4 * 4

    /// True when `bytes` start with a list's magic (version 3), as opposed to a delta's. Says
    /// nothing about validity.
    public static func looksLikeList(_ bytes: some Collection<UInt8>) -> Bool { bytes.prefix(8).elementsEqual(magic) }

    /// Parses and verifies a list. It must be signed by an active key of `keys`.
    public init(verifying bytes: [UInt8], keys: KeySet, maxBytes: Int = RevocationList.defaultMaxBytes) throws(PATKitError) {
        guard bytes.count <= maxBytes else {
            throw .invalidDocument("revocation list of \(bytes.count) bytes exceeds the limit of \(maxBytes)")
        }
        try self.init(parsing: bytes, keys: keys)
    }

    /// Parses a list; checks its signature when `keys` is given (nil: bytes this process built).
    init(parsing bytes: [UInt8], keys: KeySet?) throws(PATKitError) {
        var reader = ByteReader(bytes)
        let magic = reader.take(8)
        guard let magic, magic.elementsEqual(RevocationList.magic) else {
            for (old, name) in [("PATKRL01", "version 1"), ("PATKRL02", "version 2")] where magic?.elementsEqual(Array(old.utf8)) == true {
                throw .invalidDocument("a \(name) revocation list (\(old)): this verifier reads version 3 (PATKRL03), "
                                       + "which can keep a regenerated PAT's previous generation valid for an overlap; "
                                       + "republish with a current `pat publish`")
            }
            if magic?.elementsEqual(RevocationDelta.magic) == true {
                throw .invalidDocument("a revocation list delta (PATKRD01) was given where a whole list was expected")
            }
            throw .invalidDocument("not a PATKit revocation list (bad magic; expected PATKRL03)")
        }
        guard let kidLength = reader.u8(), let kidBytes = reader.take(Int(kidLength)),
              let kidText = String(validating: kidBytes, as: UTF8.self) else {
            throw .invalidDocument("revocation list: truncated signer key id")
        }
        let signer: KeyID
        do { signer = try KeyID(kidText) } catch {
            throw .invalidDocument("revocation list: the signer is not a k4.pid key id")
        }
        guard let sequence = reader.u64(), let issued = reader.u64(), let next = reader.u64(), let margin = reader.u32(),
              let tokenCount = reader.u32(), let ownerCount = reader.u32(), let overlapCount = reader.u32() else {
            throw .invalidDocument("revocation list: truncated header")
        }
        let entriesStart = reader.offset
        let expected = entriesStart + (Int(tokenCount) + Int(ownerCount) + Int(overlapCount)) * RevocationList.entrySize + 64
        guard bytes.count == expected else {
            throw .invalidDocument("revocation list: length \(bytes.count) does not match its \(tokenCount) + \(ownerCount) + "
                                   + "\(overlapCount) entries (expected \(expected))")
        }
        let bodyLength = bytes.count - 64
        if let keys {
            guard let key = keys.verificationKey(for: signer) else {
                throw .invalidDocument("revocation list is signed by \(signer), which is not an active key of the key set")
            }
            let signedOK = bytes.withUnsafeBytes { raw in
                let message = RevocationList.signedMessage(UnsafeRawBufferPointer(rebasing: raw[..<bodyLength]))
                return message.withUnsafeBytes { m in
                    key.bytes.withUnsafeBytes { pk in
                        Sodium.verifyDetached(signature: UnsafeRawBufferPointer(rebasing: raw[bodyLength...]), message: m, publicKey: pk)
                    }
                }
            }
            guard signedOK else { throw .invalidDocument("revocation list signature does not verify with \(signer)") }
        }
        guard sequence >= 1 else { throw .invalidDocument("revocation list sequence must start at 1") }
        guard sequence <= SignedDocument.maxSequence else {
            throw .invalidDocument("revocation list sequence \(sequence) exceeds the largest allowed, 2^53 − 1")
        }
        let issuedAt = Timestamp(seconds: Int64(bitPattern: issued))
        let nextUpdate = Timestamp(seconds: Int64(bitPattern: next))
        guard issuedAt < nextUpdate else { throw .invalidDocument("revocation list next-update is not after its issue time") }
        guard Int64(margin) <= RevocationList.maxPruneMargin else {
            throw .invalidDocument("revocation list prune margin of \(margin) s exceeds \(RevocationList.maxPruneMargin) s")
        }
        guard let tables = ListTables(storage: bytes, start: entriesStart,
                                      counts: (Int(tokenCount), Int(ownerCount), Int(overlapCount))) else {
            throw .invalidDocument("revocation list entries are not in strictly ascending order (duplicate or unsorted)")
        }
        self.init(sequence: sequence, issuedAt: issuedAt, nextUpdate: nextUpdate, pruneMargin: Int64(margin), signer: signer,
                  signature: Array(bytes[bodyLength...]), tables: tables, overlay: nil,
                  counts: (Int(tokenCount), Int(ownerCount), Int(overlapCount)))
    }

    init(sequence: UInt64, issuedAt: Timestamp, nextUpdate: Timestamp, pruneMargin: Int64, signer: KeyID, signature: [UInt8],
         tables: ListTables, overlay: Overlay?, counts: (Int, Int, Int)) {
        self.sequence = sequence
        self.issuedAt = issuedAt
        self.nextUpdate = nextUpdate
        self.pruneMargin = pruneMargin
        self.signer = signer
        self.signature = signature
        self.tables = tables
        self.overlay = overlay
        (tokenEntryCount, ownerEntryCount, overlapEntryCount) = counts
    }

    /// The entries, for carrying them into the next list.
    public var builder: Builder {
        var b = Builder()
        b.reserveCapacity(tokens: tokenEntryCount, owners: ownerEntryCount)
        forEachEntry(.tokens) { key, floor, horizon in b.tokenEntries[key] = (floor, Int64(bitPattern: horizon)) }
        forEachEntry(.owners) { key, before, horizon in b.ownerEntries[key] = (Int64(bitPattern: before), Int64(bitPattern: horizon)) }
        forEachEntry(.overlaps) { key, generation, until in b.overlapEntries[key] = (generation, Int64(bitPattern: until)) }
        return b
    }
}

/// The three tables of one signed list document, indexed.
final class ListTables: Sendable {
    let storage: [UInt8]
    let tokens: HashTable
    let owners: HashTable
    let overlaps: HashTable

    /// nil when a table is not strictly ascending.
    init?(storage: [UInt8], start: Int, counts: (tokens: Int, owners: Int, overlaps: Int)) {
        let ownersStart = start + counts.tokens * RevocationList.entrySize
        let overlapsStart = ownersStart + counts.owners * RevocationList.entrySize
        guard let tokens = HashTable(storage: storage, start: start, count: counts.tokens),
              let owners = HashTable(storage: storage, start: ownersStart, count: counts.owners),
              let overlaps = HashTable(storage: storage, start: overlapsStart, count: counts.overlaps) else { return nil }
        self.storage = storage
        self.tokens = tokens
        self.owners = owners
        self.overlaps = overlaps
    }

    subscript(table: EntryTable) -> HashTable {
        switch table {
        case .tokens: return tokens
        case .owners: return owners
        case .overlaps: return overlaps
        }
    }
}
