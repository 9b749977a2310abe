internal import CSodium

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

/// The signed, versioned revocation list: PAT id → lowest valid generation, and
/// owner → revoke-all instant. One rule covers revoke, regenerate and delete.
///
/// Binary form (little-endian), 32 bytes an entry (byte-level description in FORMATS.md):
/// ```
/// "PATKRL02" | u8 kid length | kid | u64 sequence | i64 issuedAt | i64 nextUpdate | u32 pruneMargin
/// | u32 token entries | u32 owner entries
/// | token entries: 16-byte BLAKE2b-128("patkit.jti\0" ‖ jti), u64 floor, i64 horizon (ascending by hash)
/// | owner entries: 16-byte BLAKE2b-128("patkit.sub\0" ‖ sub), i64 before, i64 horizon (ascending by hash)
/// | 64-byte Ed25519 signature over PAE("patkit.revocation-list.v2", BLAKE2b-512(everything before it))
/// ```
/// The signature's domain string and piece count differ from PASETO's and from the key set's,
/// so a list can never pass as a token or a key set, nor they as a list. An entry's horizon is
/// the latest `exp` among the generations it kills; the issuer prunes an entry once its horizon
/// is more than `pruneMargin` seconds past, so a verifier must not use a clock-skew leeway
/// larger than `pruneMargin` (the `Validator` refuses such a list).
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
    let tokens: HashTable
    let owners: HashTable

    /// Bytes the loaded list holds in memory: the signed file bytes plus both indexes.
    public var memoryFootprint: Int { tokens.storageBytes + tokens.indexBytes + owners.indexBytes }
    public var tokenEntryCount: Int { tokens.count }
    public var ownerEntryCount: Int { owners.count }

    static let magic: [UInt8] = Array("PATKRL02".utf8)
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

    /// Whether the list refuses a PAT with these claims: its own entry, its owner's, and the
    /// entry of every ancestor in its lineage (`par`). O(1 + lineage depth).
    public func check(_ claims: PATClaims) -> Revocation? {
        check(claims, tokenKey: nil, ownerKey: nil)
    }

    /// The same with lookup keys computed earlier (nil: hash here, only if the table is
    /// non-empty). Ancestors carry their keys: no hashing for them. Not part of the API: the
    /// benchmarks (a package of their own) time the lookup alone through this SPI.
    @_spi(Benchmarks) public func check(_ claims: PATClaims, tokenKey: EntryKey?, ownerKey: EntryKey?) -> Revocation? {
        if tokens.count > 0, let (floor, _) = tokens.lookup(tokenKey ?? RevocationList.tokenKey(claims.id)),
           claims.generation < floor {
            return floor == UInt64.max ? .deleted : .superseded(floor: floor)
        }
        if owners.count > 0, let (before, _) = owners.lookup(ownerKey ?? RevocationList.ownerKey(claims.subject)),
           claims.issuedAt.seconds < Int64(bitPattern: before) {
            return .ownerRevoked(before: Timestamp(seconds: Int64(bitPattern: before)))
        }
        if tokens.count > 0, !claims.lineage.isEmpty {
            // Every ancestor has the token's own `sub` (only an owner's own tokens mint with
            // lineage), so the owner check above covers the ancestors' revoke-all too.
            for ancestor in claims.lineage {
                if let (floor, _) = tokens.lookup(ancestor.key), ancestor.generation < floor {
                    return .ancestorRevoked(ancestor, floor: floor)
                }
            }
        }
        return nil
    }

    /// True when `now` is past next-update plus `grace` seconds.
    public func isStale(at now: Timestamp, grace: Int64) -> Bool { now > nextUpdate.adding(seconds: grace) }

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
    public static let maxHeaderBytes = 8 + 1 + 255 + 8 * 3 + 4 * 3

    /// Parses and verifies a list. It must be signed by an active key of `keys`.
    public init(verifying bytes: [UInt8], keys: KeySet, maxBytes: Int = RevocationList.defaultMaxBytes) throws(PATKitError) {
        guard bytes.count <= maxBytes else {
            throw .invalidDocument("revocation list of \(bytes.count) bytes exceeds the limit of \(maxBytes)")
        }
        var reader = ByteReader(bytes)
        let magic = reader.take(8)
        guard let magic, magic.elementsEqual(RevocationList.magic) else {
            if magic?.elementsEqual(Array("PATKRL01".utf8)) == true {
                throw .invalidDocument("a version 1 revocation list (PATKRL01): this verifier reads version 2 (PATKRL02), "
                                       + "which declares its prune margin; republish with a current `pat publish`")
            }
            throw .invalidDocument("not a PATKit revocation list (bad magic; expected PATKRL02)")
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
              let tokenCount = reader.u32(), let ownerCount = reader.u32() else {
            throw .invalidDocument("revocation list: truncated header")
        }
        let entriesStart = reader.offset
        let expected = entriesStart + (Int(tokenCount) + Int(ownerCount)) * RevocationList.entrySize + 64
        guard bytes.count == expected else {
            throw .invalidDocument("revocation list: length \(bytes.count) does not match its \(tokenCount) + \(ownerCount) entries (expected \(expected))")
        }
        guard let key = keys.verificationKey(for: signer) else {
            throw .invalidDocument("revocation list is signed by \(signer), which is not an active key of the key set")
        }
        let bodyLength = bytes.count - 64
        let signedOK = bytes.withUnsafeBytes { raw in
            let message = RevocationList.signedMessage(UnsafeRawBufferPointer(rebasing: raw[..<bodyLength]))
            return message.withUnsafeBytes { m in
                key.bytes.withUnsafeBytes { pk in
                    Sodium.verifyDetached(signature: UnsafeRawBufferPointer(rebasing: raw[bodyLength...]), message: m, publicKey: pk)
                }
            }
        }
        guard signedOK else { throw .invalidDocument("revocation list signature does not verify with \(signer)") }
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

        let storage = bytes
        let ownersStart = entriesStart + Int(tokenCount) * RevocationList.entrySize
        guard let tokens = HashTable(storage: storage, start: entriesStart, count: Int(tokenCount)),
              let owners = HashTable(storage: storage, start: ownersStart, count: Int(ownerCount)) else {
            throw .invalidDocument("revocation list entries are not in strictly ascending order (duplicate or unsorted)")
        }
        self.sequence = sequence
        self.issuedAt = issuedAt
        self.nextUpdate = nextUpdate
        self.pruneMargin = Int64(margin)
        self.signer = signer
        self.signature = Array(bytes[bodyLength...])
        self.tokens = tokens
        self.owners = owners
    }

    /// The entries, for carrying them into the next list.
    public var builder: Builder {
        var b = Builder()
        tokens.forEach { key, floor, horizon in b.tokenEntries[key] = (floor, Int64(bitPattern: horizon)) }
        owners.forEach { key, before, horizon in b.ownerEntries[key] = (Int64(bitPattern: before), Int64(bitPattern: horizon)) }
        return b
    }

    // MARK: building

    /// Collects entries and signs a list. Merging keeps the strongest rule: the highest floor,
    /// the latest revoke-all instant, the latest horizon.
    public struct Builder: Sendable {
        var tokenEntries: [EntryKey: (floor: UInt64, horizon: Int64)] = [:]
        var ownerEntries: [EntryKey: (before: Int64, horizon: Int64)] = [:]

        public init() {}

        public var tokenEntryCount: Int { tokenEntries.count }
        public var ownerEntryCount: Int { ownerEntries.count }

        /// Makes room for this many entries at once (a publisher knows how many it will add):
        /// at 1,000,000 entries, growing the tables step by step costs about 0.3 s.
        public mutating func reserveCapacity(tokens: Int, owners: Int = 0) {
            tokenEntries.reserveCapacity(tokens)
            ownerEntries.reserveCapacity(owners)
        }

        /// Generations of PAT `id` below `floor` are dead until `horizon` (their latest `exp`).
        public mutating func revoke(id: String, below floor: UInt64, horizon: Timestamp) {
            revoke(key: RevocationList.tokenKey(id), below: floor, horizon: horizon)
        }

        public mutating func revoke(key: EntryKey, below floor: UInt64, horizon: Timestamp) {
            let old = tokenEntries[key]
            tokenEntries[key] = (max(floor, old?.floor ?? 0), max(horizon.seconds, old?.horizon ?? .min))
        }

        /// Every generation of PAT `id` is dead.
        public mutating func delete(id: String, horizon: Timestamp) {
            revoke(id: id, below: UInt64.max, horizon: horizon)
        }

        /// Every PAT of `subject` issued before `before` is dead until `horizon`.
        public mutating func revokeAll(subject: String, issuedBefore before: Timestamp, horizon: Timestamp) {
            let key = RevocationList.ownerKey(subject)
            let old = ownerEntries[key]
            ownerEntries[key] = (max(before.seconds, old?.before ?? .min), max(horizon.seconds, old?.horizon ?? .min))
        }

        /// Drops entries whose horizon is more than `margin` seconds past: the tokens they kill
        /// have expired even for a verifier with that much clock-skew leeway. Sign with the same
        /// margin (`sign(…, pruneMargin:)`), which verifiers then hold their leeway to.
        @discardableResult
        public mutating func prune(now: Timestamp, margin: Int64 = RevocationList.defaultPruneMargin) -> Int {
            let before = tokenEntries.count + ownerEntries.count
            let cutoff = now.adding(seconds: -max(0, margin)).seconds
            tokenEntries = tokenEntries.filter { $0.value.horizon >= cutoff }
            ownerEntries = ownerEntries.filter { $0.value.horizon >= cutoff }
            return before - tokenEntries.count - ownerEntries.count
        }

        /// The signed binary list. `pruneMargin` is the margin entries were pruned with (see
        /// `prune(now:margin:)`): verifiers refuse the list when their leeway exceeds it.
        public func sign(with key: SecretKey, sequence: UInt64, issuedAt: Timestamp, nextUpdate: Timestamp,
                         pruneMargin: Int64 = RevocationList.defaultPruneMargin) throws(PATKitError) -> [UInt8] {
            try SignedDocument.checkSequence(sequence, "revocation list")
            guard issuedAt < nextUpdate else { throw .invalidArgument("next-update must be after the issue time") }
            guard pruneMargin >= 0, pruneMargin <= RevocationList.maxPruneMargin else {
                throw .invalidArgument("prune margin must be 0–\(RevocationList.maxPruneMargin) seconds")
            }
            var out: [UInt8] = []
            out.reserveCapacity(128 + (tokenEntries.count + ownerEntries.count) * RevocationList.entrySize)
            out += RevocationList.magic
            let kid = Array(key.id.rawValue.utf8)
            out.append(UInt8(kid.count))
            out += kid
            out.appendLE(sequence)
            out.appendLE(UInt64(bitPattern: issuedAt.seconds))
            out.appendLE(UInt64(bitPattern: nextUpdate.seconds))
            out.appendLE(UInt32(pruneMargin))
            out.appendLE(UInt32(tokenEntries.count))
            out.appendLE(UInt32(ownerEntries.count))
            for (k, v) in tokenEntries.sorted(by: { $0.key < $1.key }) {
                out += k.bytes
                out.appendLE(v.floor)
                out.appendLE(UInt64(bitPattern: v.horizon))
            }
            for (k, v) in ownerEntries.sorted(by: { $0.key < $1.key }) {
                out += k.bytes
                out.appendLE(UInt64(bitPattern: v.before))
                out.appendLE(UInt64(bitPattern: v.horizon))
            }
            let message = out.withUnsafeBytes { RevocationList.signedMessage($0) }
            out += message.withUnsafeBytes { key.sign($0) }
            return out
        }
    }
}

/// A 16-byte lookup key: BLAKE2b-128 of a domain-separated string.
public struct EntryKey: Sendable, Hashable, Comparable {
    public let high: UInt64 // first 8 bytes, big-endian order, so < matches byte order
    public let low: UInt64

    init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    init(hashing text: String, domain: String) {
        var input = Array(domain.utf8)
        input.append(0)
        input += text.utf8
        let d = Sodium.blake2b(input, length: 16)
        var h: UInt64 = 0, l: UInt64 = 0
        for i in 0..<8 { h = h << 8 | UInt64(d[i]) }
        for i in 8..<16 { l = l << 8 | UInt64(d[i]) }
        self.init(high: h, low: l)
    }

    var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(16)
        for i in (0..<8).reversed() { out.append(UInt8(truncatingIfNeeded: high >> (UInt64(i) * 8))) }
        for i in (0..<8).reversed() { out.append(UInt8(truncatingIfNeeded: low >> (UInt64(i) * 8))) }
        return out
    }

    public static func < (a: EntryKey, b: EntryKey) -> Bool { a.high != b.high ? a.high < b.high : a.low < b.low }
}

/// Open-addressing index over the fixed-size entries of a list's bytes: O(1) lookups,
/// 4 bytes of index per slot on top of the 32-byte entries, built in one pass.
final class HashTable: Sendable {
    private let storage: [UInt8]
    private let start: Int
    let count: Int
    private let slots: [UInt32]
    private let mask: Int

    /// nil when the entries are not strictly ascending.
    init?(storage: [UInt8], start: Int, count: Int) {
        self.storage = storage
        self.start = start
        self.count = count
        var capacity = 8
        while capacity < count * 2 { capacity <<= 1 }
        mask = capacity - 1
        var slots = [UInt32](repeating: 0, count: capacity)
        let ok = storage.withUnsafeBytes { raw -> Bool in
            var previous: EntryKey? = nil
            for i in 0..<count {
                let key = HashTable.key(raw, start + i * RevocationList.entrySize)
                if let p = previous, !(p < key) { return false }
                previous = key
                var slot = Int(truncatingIfNeeded: key.low) & (capacity - 1)
                while slots[slot] != 0 { slot = (slot + 1) & (capacity - 1) }
                slots[slot] = UInt32(i + 1)
            }
            return true
        }
        guard ok else { return nil }
        self.slots = slots
    }

    @inline(__always)
    static func key(_ raw: UnsafeRawBufferPointer, _ offset: Int) -> EntryKey {
        EntryKey(high: UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self)),
                 low: UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: offset + 8, as: UInt64.self)))
    }

    var storageBytes: Int { storage.count }
    var indexBytes: Int { slots.count * MemoryLayout<UInt32>.stride }

    /// The entry's two 64-bit values.
    func lookup(_ key: EntryKey) -> (UInt64, UInt64)? {
        guard count > 0 else { return nil }
        return storage.withUnsafeBytes { raw -> (UInt64, UInt64)? in
            var slot = Int(truncatingIfNeeded: key.low) & mask
            while true {
                let index = slots[slot]
                if index == 0 { return nil }
                let offset = start + Int(index - 1) * RevocationList.entrySize
                if HashTable.key(raw, offset) == key {
                    return (UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: offset + 16, as: UInt64.self)),
                            UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: offset + 24, as: UInt64.self)))
                }
                slot = (slot + 1) & mask
            }
        }
    }

    func forEach(_ body: (EntryKey, UInt64, UInt64) -> Void) {
        storage.withUnsafeBytes { raw in
            for i in 0..<count {
                let offset = start + i * RevocationList.entrySize
                body(HashTable.key(raw, offset),
                     UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: offset + 16, as: UInt64.self)),
                     UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: offset + 24, as: UInt64.self)))
            }
        }
    }
}

struct ByteReader {
    let bytes: [UInt8]
    var offset = 0
    init(_ bytes: [UInt8]) { self.bytes = bytes }

    mutating func take(_ n: Int) -> ArraySlice<UInt8>? {
        guard n >= 0, bytes.count - offset >= n else { return nil }
        defer { offset += n }
        return bytes[offset..<(offset + n)]
    }

    mutating func u8() -> UInt8? { take(1)?.first }

    mutating func u32() -> UInt32? {
        guard let s = take(4) else { return nil }
        return s.reversed().reduce(0) { $0 << 8 | UInt32($1) }
    }

    mutating func u64() -> UInt64? {
        guard let s = take(8) else { return nil }
        return s.reversed().reduce(0) { $0 << 8 | UInt64($1) }
    }
}

extension Array where Element == UInt8 {
    mutating func appendLE<T: FixedWidthInteger>(_ value: T) {
        var v = value.littleEndian
        Swift.withUnsafeBytes(of: &v) { append(contentsOf: $0) }
    }
}
