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

    /// The key of 16 raw bytes (e.g. read from a document).
    init(_ bytes: some Collection<UInt8>) {
        var h: UInt64 = 0, l: UInt64 = 0
        for (i, byte) in bytes.prefix(16).enumerated() {
            if i < 8 { h = h << 8 | UInt64(byte) } else { l = l << 8 | UInt64(byte) }
        }
        self.init(high: h, low: l)
    }

    var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(16)
        append(to: &out)
        return out
    }

    func append(to out: inout [UInt8]) {
        for i in (0..<8).reversed() { out.append(UInt8(truncatingIfNeeded: high >> (UInt64(i) * 8))) }
        for i in (0..<8).reversed() { out.append(UInt8(truncatingIfNeeded: low >> (UInt64(i) * 8))) }
    }

    public static func < (a: EntryKey, b: EntryKey) -> Bool { a.high != b.high ? a.high < b.high : a.low < b.low }
}

/// The two 64-bit values of an entry, as stored (little-endian on the wire): a token entry's
/// floor and horizon, an owner entry's revoke-all instant and horizon, an overlap entry's
/// generation and end.
struct EntryValue: Sendable, Hashable {
    let first: UInt64
    let second: UInt64
}

/// The three entry tables of a revocation list, in document order.
enum EntryTable: Int, Sendable, CaseIterable {
    /// PAT id → lowest valid generation (`floor`), horizon.
    case tokens
    /// Owner → revoke-all instant (`before`), horizon.
    case owners
    /// PAT id → the one generation below the floor still valid (`generation`) and until when.
    case overlaps

    var name: String {
        switch self {
        case .tokens: return "token"
        case .owners: return "owner"
        case .overlaps: return "overlap"
        }
    }
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

    /// Every entry, in ascending key order.
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

    /// The raw 32-byte entries, in order (for copying them into another document).
    func withEntryBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        storage.withUnsafeBytes { raw in
            body(UnsafeRawBufferPointer(rebasing: raw[start..<(start + count * RevocationList.entrySize)]))
        }
    }
}

/// Changes applied to a list by deltas since its tables were built: per table, key → the new
/// value, or nil for an entry removed. Immutable once made; applying another delta makes a new
/// one (so a `RevocationList` stays a value that concurrent readers share), and a list whose
/// overlay grows past a bound is rebuilt into plain tables (`RevocationList.compacted()`), which
/// keeps applying a delta O(changes) amortized, without copying a million entries each time.
final class Overlay: Sendable {
    let tokens: [EntryKey: EntryValue?]
    let owners: [EntryKey: EntryValue?]
    let overlaps: [EntryKey: EntryValue?]

    init(tokens: [EntryKey: EntryValue?], owners: [EntryKey: EntryValue?], overlaps: [EntryKey: EntryValue?]) {
        self.tokens = tokens
        self.owners = owners
        self.overlaps = overlaps
    }

    subscript(table: EntryTable) -> [EntryKey: EntryValue?] {
        switch table {
        case .tokens: return tokens
        case .owners: return owners
        case .overlaps: return overlaps
        }
    }

    var changeCount: Int { tokens.count + owners.count + overlaps.count }
}

struct ByteReader {
    let bytes: [UInt8]
    var offset = 0
    init(_ bytes: [UInt8], offset: Int = 0) {
        self.bytes = bytes
        self.offset = offset
    }

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
