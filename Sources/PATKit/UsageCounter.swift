import Synchronization

/// Counts, in memory, how PATs are used at an edge — per PAT id: uses per UTC day, first and
/// last use, the last client address and the last outcome (`accepted`, or the refusal code) —
/// for a reporter to send to the issuer in the background (`PATUsageReporter` in PATEdge).
/// Validation never waits for it: recording is a short critical section on one of 16 shards
/// (chosen by the id's hash), after the validator has decided, and never does I/O.
///
/// Bounded: at most `capacity` distinct PATs are held between two drains; a use of a PAT not
/// held while full is dropped and counted (`dropped`). Only ids the validator vouched for are
/// counted: accepted tokens, and refusals that come after the signature verified (expired,
/// revoked, wrong domain, missing scope…) — never an id read from a forged token, which anyone
/// could make up to fill the table.
public final class UsageCounter: Sendable {
    /// One PAT's use since the last drain.
    public struct Entry: Sendable, Equatable {
        public var id: String
        public var firstUsedAt: Timestamp
        public var lastUsedAt: Timestamp
        public var lastAddress: String?
        /// `accepted`, or the refusal code.
        public var lastOutcome: String
        /// Uses per UTC day (days since 1970-01-01), oldest first.
        public var days: [(day: Int64, uses: UInt64)]

        public var uses: UInt64 { days.reduce(0) { $0 &+ $1.uses } }

        public static func == (a: Entry, b: Entry) -> Bool {
            a.id == b.id && a.firstUsedAt == b.firstUsedAt && a.lastUsedAt == b.lastUsedAt && a.lastAddress == b.lastAddress
                && a.lastOutcome == b.lastOutcome && a.days.map(\.day) == b.days.map(\.day) && a.days.map(\.uses) == b.days.map(\.uses)
        }

        /// Adds one use.
        mutating func add(at time: Timestamp, address: String?, outcome: String) {
            let day = UsageCounter.day(of: time)
            if let last = days.indices.last, days[last].day == day {
                days[last].uses &+= 1
            } else if let index = days.firstIndex(where: { $0.day == day }) {
                days[index].uses &+= 1
            } else {
                days.append((day, 1))
                days.sort { $0.day < $1.day }
            }
            if time < firstUsedAt { firstUsedAt = time }
            if time >= lastUsedAt {
                lastUsedAt = time
                if let address { lastAddress = address }
                lastOutcome = outcome
            }
        }

        /// Adds `other` (the same PAT).
        mutating func merge(_ other: Entry) {
            for (day, uses) in other.days {
                if let index = days.firstIndex(where: { $0.day == day }) { days[index].uses &+= uses } else { days.append((day, uses)) }
            }
            days.sort { $0.day < $1.day }
            firstUsedAt = min(firstUsedAt, other.firstUsedAt)
            if other.lastUsedAt >= lastUsedAt {
                lastUsedAt = other.lastUsedAt
                if let address = other.lastAddress { lastAddress = address }
                lastOutcome = other.lastOutcome
            }
        }
    }

    public static let accepted = "accepted"
    public static let defaultCapacity = 100_000
    static let shardCount = 16

    /// The most distinct PATs held between two drains.
    public let capacity: Int
    private let perShard: Int
    private let shards: [Shard]
    private let droppedUses = Atomic<UInt64>(0)

    public init(capacity: Int = UsageCounter.defaultCapacity) {
        self.capacity = max(UsageCounter.shardCount, capacity)
        perShard = max(1, self.capacity / UsageCounter.shardCount)
        shards = (0..<UsageCounter.shardCount).map { _ in Shard() }
    }

    /// One lock and its part of the table.
    private final class Shard: Sendable {
        let table = Mutex<[String: Entry]>([:])
        func withLock<R>(_ body: (inout [String: Entry]) -> R) -> R { table.withLock { body(&$0) } }
    }

    /// Uses dropped because the table was full, since the counter was made.
    public var dropped: UInt64 { droppedUses.load(ordering: .relaxed) }

    /// Distinct PATs held now.
    public var count: Int { shards.reduce(0) { total, shard in total + shard.withLock { $0.count } } }

    /// Counts a use of an accepted PAT.
    public func recordAccepted(_ pat: VerifiedPAT, address: String?, at time: Timestamp) {
        record(id: pat.id, outcome: UsageCounter.accepted, address: address, at: time)
    }

    /// Counts a refused use of `pat` (e.g. a missing scope, found after it was validated).
    public func recordRefused(_ pat: VerifiedPAT, code: PATValidationError.Code, address: String?, at time: Timestamp) {
        record(id: pat.id, outcome: code.rawValue, address: address, at: time)
    }

    /// Counts a refused token when the refusal came after its signature verified (so its id is
    /// genuine): `expired`, `not_yet_valid`, `revoked`, `ancestor_revoked`, `wrong_domain`,
    /// `scope_missing`, or a stale or missing list or key set. A malformed, forged or foreign
    /// token is not counted. The id is read again from the token: only on this refusal path.
    public func recordRefused(_ token: String, error: PATValidationError, address: String?, at time: Timestamp) {
        switch error.code {
        case .malformed, .tooLarge, .unknownKey, .badSignature, .missingKeySet: return
        default: break
        }
        guard let parts = try? PASETOv4Public.parse(token, maxBytes: PASETOv4Public.defaultMaxTokenBytes),
              let claims = try? PATClaims(jsonBytes: parts.messageBytes) else { return }
        record(id: claims.id, outcome: error.code.rawValue, address: address, at: time)
    }

    /// Counts one use of PAT `id`.
    public func record(id: String, outcome: String, address: String?, at time: Timestamp) {
        let shard = shards[UsageCounter.shard(of: id)]
        let held = shard.withLock { table -> Bool in
            if let index = table.index(forKey: id) {
                table.values[index].add(at: time, address: address, outcome: outcome)
                return true
            }
            guard table.count < perShard else { return false }
            var entry = Entry(id: id, firstUsedAt: time, lastUsedAt: time, lastAddress: address, lastOutcome: outcome, days: [])
            entry.add(at: time, address: address, outcome: outcome)
            table[id] = entry
            return true
        }
        if !held { droppedUses.add(1, ordering: .relaxed) }
    }

    /// Takes everything counted so far (the table is empty afterwards).
    public func drain() -> [Entry] {
        var out: [Entry] = []
        for shard in shards {
            let taken = shard.withLock { table -> [String: Entry] in
                defer { table = [:] }
                return table
            }
            out.append(contentsOf: taken.values)
        }
        return out
    }

    /// Puts back entries a reporter could not deliver, merged with what was counted since. What
    /// no longer fits is dropped and counted; returns the uses dropped.
    @discardableResult
    public func restore(_ entries: [Entry]) -> UInt64 {
        var lost: UInt64 = 0
        for entry in entries {
            let held = shards[UsageCounter.shard(of: entry.id)].withLock { table -> Bool in
                if let index = table.index(forKey: entry.id) {
                    table.values[index].merge(entry)
                    return true
                }
                guard table.count < perShard else { return false }
                table[entry.id] = entry
                return true
            }
            if !held { lost &+= entry.uses }
        }
        if lost > 0 { droppedUses.add(lost, ordering: .relaxed) }
        return lost
    }

    /// The UTC day of `time`.
    public static func day(of time: Timestamp) -> Int64 {
        time.seconds >= 0 ? time.seconds / 86_400 : (time.seconds - 86_399) / 86_400
    }

    private static func shard(of id: String) -> Int {
        // FNV-1a over the id's bytes: stable, cheap, no per-process seed needed.
        var hash: UInt32 = 2_166_136_261
        for byte in id.utf8 { hash = (hash ^ UInt32(byte)) &* 16_777_619 }
        return Int(hash % UInt32(shardCount))
    }
}
