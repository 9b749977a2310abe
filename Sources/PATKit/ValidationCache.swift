import Synchronization

/// Remembers tokens that passed the expensive checks (decoding, signature, claims parsing)
/// so that a token seen before costs a hash-table lookup. Keyed by the exact token string:
/// a hit is only ever produced by the same bytes. Bounded in entries and in bytes (FIFO
/// eviction per shard; each entry is charged `Entry.cost`, an estimate of the memory it
/// holds), and sharded to keep threads off each other's locks.
///
/// The cache never answers alone: the `Validator` re-checks expiry, not-before, the current
/// revocation list and the domain on every hit, and an entry counts only under the key set
/// (epoch) it was verified with.
final class ValidationCache: Sendable {
    final class Entry: Sendable {
        let pat: VerifiedPAT
        let tokenKey: EntryKey
        let ownerKey: EntryKey
        let keysEpoch: UInt64

        init(pat: VerifiedPAT, tokenKey: EntryKey, ownerKey: EntryKey, keysEpoch: UInt64) {
            self.pat = pat
            self.tokenKey = tokenKey
            self.ownerKey = ownerKey
            self.keysEpoch = keysEpoch
        }

        /// Bytes the cache holds for this entry and the token that keys it: an estimate from
        /// the structure's sizes, checked against the measured growth of the resident set (see
        /// the benchmarks' `cache_bytes_per_entry`). It errs high.
        static func cost(token: String, pat: VerifiedPAT) -> Int {
            let claims = pat.claims
            // The entry object, the dictionary slot and the FIFO slot.
            var bytes = 640
            bytes += heap(token.utf8.count)
            for text in [claims.id, claims.subject, claims.issuer, claims.audience, claims.domain] {
                if let text { bytes += heap(text.utf8.count) }
            }
            // The scope array (a scope is three strings, 48 bytes, plus malloc rounding), each string maybe on the heap.
            bytes += 32 + claims.scopes.scopes.count * 64
            for scope in claims.scopes.scopes {
                bytes += heap(scope.entity.utf8.count) + heap(scope.operation.utf8.count) + heap(scope.id?.utf8.count ?? 0)
            }
            // Extra claims: their tree, charged at four times their JSON size.
            if claims.extra.count > 0 { bytes += 64 + 4 * JSONWriter.encode(.object(claims.extra)).count }
            return bytes
        }

        /// A string's heap allocation: none up to 15 UTF-8 bytes (stored inline), else its
        /// storage header, the bytes and malloc's rounding.
        private static func heap(_ count: Int) -> Int { count <= 15 ? 0 : (32 + count + 1 + 16 + 15) & ~15 }
    }

    struct Shard {
        var entries: [String: (entry: Entry, cost: Int)] = [:]
        /// Insertion order; `head` is the oldest live slot. Compacted as it drains.
        var order: [String] = []
        var head = 0
        var bytes = 0

        mutating func evictOldest() {
            guard head < order.count else { return }
            let token = order[head]
            head += 1
            if let removed = entries.removeValue(forKey: token) { bytes -= removed.cost }
            if head > 64, head * 2 > order.count {
                order.removeFirst(head)
                head = 0
            }
        }
    }

    final class ShardBox: Sendable {
        let mutex = Mutex(Shard())
    }

    static let shardCount = 16
    private let shards: [ShardBox]
    /// Lookups answered from the cache (tests and benchmarks observe real hits with it).
    private let hitCounter = Atomic<Int>(0)
    private let perShardCount: Int
    private let perShardBytes: Int
    let capacity: Int
    let maxBytes: Int

    init(capacity: Int, maxBytes: Int = .max) {
        self.capacity = capacity
        self.maxBytes = maxBytes
        perShardCount = max(1, (capacity + ValidationCache.shardCount - 1) / ValidationCache.shardCount)
        perShardBytes = max(1, maxBytes / ValidationCache.shardCount)
        shards = (0..<ValidationCache.shardCount).map { _ in ShardBox() }
    }

    /// Picks a shard from signature characters just before the footer: random for every
    /// genuine token, and only a performance matter for any other string. Not the very last
    /// one: 512 signature bits end in a character carrying only 2 of them (4 values, which
    /// used to fill 2 shards of 16), so two full characters before it are mixed.
    @inline(__always)
    private func shardIndex(_ token: String) -> Int {
        let utf8 = token.utf8
        var index = utf8.endIndex
        var steps = 0
        while index > utf8.startIndex, steps < 600 {
            index = utf8.index(before: index)
            steps += 1
            if utf8[index] == UInt8(ascii: ".") { break }
        }
        guard utf8.distance(from: utf8.startIndex, to: index) >= 3 else { return 0 }
        let second = utf8[utf8.index(index, offsetBy: -2)], third = utf8[utf8.index(index, offsetBy: -3)]
        return (Int(second) &* 31 &+ Int(third)) & (ValidationCache.shardCount - 1)
    }

    func lookup(_ token: String, epoch: UInt64) -> Entry? {
        // Swift compares and hashes non-ASCII strings by canonical equivalence (U+212A KELVIN
        // SIGN == "K"), so only an ASCII key matches byte for byte. Verified tokens are ASCII.
        guard ValidationCache.isASCII(token) else { return nil }
        let entry = shards[shardIndex(token)].mutex.withLock { $0.entries[token]?.entry }
        guard let entry, entry.keysEpoch == epoch else { return nil }
        hitCounter.add(1, ordering: .relaxed)
        return entry
    }

    @inline(__always)
    static func isASCII(_ token: String) -> Bool {
        var token = token
        return token.withUTF8 { bytes in
            var high: UInt8 = 0
            for b in bytes { high |= b }
            return high < 0x80
        }
    }

    /// Remembers `entry` under `token` unless it alone would take more than a shard's share
    /// of the byte budget; evicts the oldest entries to stay within both bounds.
    func insert(_ token: String, _ entry: Entry) {
        let cost = Entry.cost(token: token, pat: entry.pat)
        guard cost <= perShardBytes else { return }
        let countLimit = perShardCount, byteLimit = perShardBytes
        shards[shardIndex(token)].mutex.withLock { shard in
            if let old = shard.entries.updateValue((entry, cost), forKey: token) {
                shard.bytes += cost - old.cost
            } else {
                shard.order.append(token)
                shard.bytes += cost
            }
            while shard.entries.count > countLimit || shard.bytes > byteLimit, shard.head < shard.order.count {
                shard.evictOldest()
            }
        }
    }

    func removeAll() {
        for shard in shards {
            shard.mutex.withLock { $0 = Shard() }
        }
    }

    /// Lookups answered from the cache so far.
    var hits: Int { hitCounter.load(ordering: .relaxed) }

    var count: Int { shards.reduce(0) { total, shard in total + shard.mutex.withLock { $0.entries.count } } }
    /// The bytes charged for the entries held now.
    var bytes: Int { shards.reduce(0) { total, shard in total + shard.mutex.withLock { $0.bytes } } }
}
