import Synchronization

/// Remembers tokens that passed the expensive checks (decoding, signature, claims parsing)
/// so that a token seen before costs a hash-table lookup. Keyed by the exact token string:
/// a hit is only ever produced by the same bytes. Bounded (FIFO eviction per shard) and
/// sharded to keep threads off each other's locks.
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
    }

    struct Shard {
        var entries: [String: Entry] = [:]
        var order: [String] = []
        var head = 0
    }

    final class ShardBox: Sendable {
        let mutex = Mutex(Shard())
    }

    static let shardCount = 16
    private let shards: [ShardBox]
    /// Lookups answered from the cache (tests and benchmarks observe real hits with it).
    private let hitCounter = Atomic<Int>(0)
    private let perShard: Int
    let capacity: Int

    init(capacity: Int) {
        self.capacity = capacity
        perShard = max(1, (capacity + ValidationCache.shardCount - 1) / ValidationCache.shardCount)
        shards = (0..<ValidationCache.shardCount).map { _ in ShardBox() }
    }

    /// Picks a shard from the last signature characters before the footer: random for
    /// every genuine token, and only a performance matter for any other string.
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
        guard index > utf8.startIndex else { return 0 }
        return Int(utf8[utf8.index(before: index)]) & (ValidationCache.shardCount - 1)
    }

    func lookup(_ token: String, epoch: UInt64) -> Entry? {
        // Swift compares and hashes non-ASCII strings by canonical equivalence (U+212A KELVIN
        // SIGN == "K"), so only an ASCII key matches byte for byte. Verified tokens are ASCII.
        guard ValidationCache.isASCII(token) else { return nil }
        let entry = shards[shardIndex(token)].mutex.withLock { $0.entries[token] }
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

    func insert(_ token: String, _ entry: Entry) {
        let limit = perShard
        shards[shardIndex(token)].mutex.withLock { shard in
            if shard.entries.updateValue(entry, forKey: token) != nil { return }
            if shard.order.count < limit {
                shard.order.append(token)
            } else {
                shard.entries[shard.order[shard.head]] = nil
                shard.order[shard.head] = token
                shard.head = (shard.head + 1) % limit
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
}
