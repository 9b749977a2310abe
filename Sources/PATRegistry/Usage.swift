import PATStore

/// What the issuer knows about a PAT's use, from the usage reports of its edges (`POST
/// /v3/personal-access-tokens/usage`): never from the validation path itself, which makes no
/// database call. Kept apart from the record (its own tables), so that a usage report never
/// takes a PAT's lock and a change to the PAT never overwrites what a report wrote.
public struct PATUsage: Sendable, Equatable {
    /// The first and last use an edge reported.
    public var firstUsedAt: Timestamp
    public var lastUsedAt: Timestamp
    /// The client address of the last use (as the edge saw it), when the edge knew one.
    public var lastUsedFrom: String?
    /// The outcome of the last use: `accepted`, or the refusal code (`expired`, `revoked`,
    /// `scope_missing`, …).
    public var lastOutcome: String
    /// Uses reported in all.
    public var uses: UInt64

    public init(firstUsedAt: Timestamp, lastUsedAt: Timestamp, lastUsedFrom: String?, lastOutcome: String, uses: UInt64) {
        self.firstUsedAt = firstUsedAt
        self.lastUsedAt = lastUsedAt
        self.lastUsedFrom = lastUsedFrom
        self.lastOutcome = lastOutcome
        self.uses = uses
    }
}

/// Uses of a PAT on one UTC day (days since 1970-01-01).
public struct UsageDay: Sendable, Equatable {
    public var day: Int64
    public var uses: UInt64

    public init(day: Int64, uses: UInt64) {
        self.day = day
        self.uses = uses
    }

    /// The UTC day of `time`.
    public static func day(of time: Timestamp) -> Int64 {
        time.seconds >= 0 ? time.seconds / 86_400 : (time.seconds - 86_399) / 86_400
    }

    /// How long uses per day are kept (days).
    public static let retention: Int64 = 400

    /// `YYYY-MM-DD`.
    public var date: String { String(Timestamp(seconds: day * 86_400).rfc3339.prefix(10)) }
}

/// One PAT's usage as one edge report carries it: what the edge counted since its last flush.
public struct UsageUpdate: Sendable, Equatable {
    public var id: String
    public var firstUsedAt: Timestamp
    public var lastUsedAt: Timestamp
    public var lastUsedFrom: String?
    public var lastOutcome: String
    /// Uses per UTC day (one or two days in a few seconds' report).
    public var days: [UsageDay]

    public init(id: String, firstUsedAt: Timestamp, lastUsedAt: Timestamp, lastUsedFrom: String?, lastOutcome: String,
                days: [UsageDay]) {
        self.id = id
        self.firstUsedAt = firstUsedAt
        self.lastUsedAt = lastUsedAt
        self.lastUsedFrom = lastUsedFrom
        self.lastOutcome = lastOutcome
        self.days = days
    }

    /// Uses in all.
    public var uses: UInt64 { days.reduce(0) { $0 &+ $1.uses } }
}

/// What storing one `UsageUpdate` found.
public enum UsageRecorded: Sendable, Equatable {
    /// No live record has this id (deleted, unknown, or issued outside the registry): nothing stored.
    case unknownPAT
    /// Stored.
    case recorded(newAddress: Bool)
}
