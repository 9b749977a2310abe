import PATKit

/// What a republisher has published and whether publishing works: the one place the numbers
/// live that `GET /status` shows, the log reports, and a metrics exporter reads
/// (`Republisher.status`).
public struct PublishStatus: Sendable, Equatable {
    /// The last list this republisher wrote (nil before its first): sequence, issue time and
    /// next-update — past the next-update (plus their grace) verifiers refuse every token.
    public var lastSequence: UInt64?
    public var lastPublishedAt: Timestamp?
    public var nextUpdate: Timestamp?
    /// Changes that no list published here holds yet, as far as this server knows: each change
    /// committed through its service counts one, each announcement of changes committed
    /// elsewhere (the CLI, another node) at least one. 0 when every known change is published.
    public var unpublishedChanges: UInt64
    /// The error of the last attempt when it failed; nil once a publish succeeds.
    public var lastError: String?
    public var lastErrorAt: Timestamp?
    /// The first failure since the last success; nil while publishing works.
    public var failingSince: Timestamp?
    /// Failed attempts since the last success.
    public var consecutiveFailures: Int
    /// While failing: how long until the next retry.
    public var nextRetryIn: Duration?
    /// Totals since the republisher was made (for rates).
    public var publishes: UInt64
    public var failures: UInt64
    /// While failing: whether the last probe found the published folder writable (false: a
    /// folder made read-only, or a file's path taken by something else; true: the cause is
    /// elsewhere, e.g. the database). Nil while publishing works or before the first probe.
    public var publishedFolderWritable: Bool?

    /// True while the last attempt failed: some changes may not reach verifiers.
    public var isFailing: Bool { lastError != nil }

    public init(lastSequence: UInt64? = nil, lastPublishedAt: Timestamp? = nil, nextUpdate: Timestamp? = nil,
                unpublishedChanges: UInt64 = 0, lastError: String? = nil, lastErrorAt: Timestamp? = nil,
                failingSince: Timestamp? = nil, consecutiveFailures: Int = 0, nextRetryIn: Duration? = nil,
                publishes: UInt64 = 0, failures: UInt64 = 0, publishedFolderWritable: Bool? = nil) {
        self.lastSequence = lastSequence
        self.lastPublishedAt = lastPublishedAt
        self.nextUpdate = nextUpdate
        self.unpublishedChanges = unpublishedChanges
        self.lastError = lastError
        self.lastErrorAt = lastErrorAt
        self.failingSince = failingSince
        self.consecutiveFailures = consecutiveFailures
        self.nextRetryIn = nextRetryIn
        self.publishes = publishes
        self.failures = failures
        self.publishedFolderWritable = publishedFolderWritable
    }

    /// The JSON form (`/status`'s `publishing`): every member present, `null` when unknown.
    public var json: JSONObject {
        func time(_ t: Timestamp?) -> JSONValue { t.map { .string($0.rfc3339) } ?? .null }
        var o = JSONObject()
        o.set("lastSequence", lastSequence.map { .number(String($0)) } ?? .null)
        o.set("lastPublishedAt", time(lastPublishedAt))
        o.set("nextUpdate", time(nextUpdate))
        o.set("unpublishedChanges", .number(String(unpublishedChanges)))
        o.set("failing", .bool(isFailing))
        o.set("lastError", lastError.map { .string($0) } ?? .null)
        o.set("lastErrorAt", time(lastErrorAt))
        o.set("failingSince", time(failingSince))
        o.set("consecutiveFailures", .number(String(consecutiveFailures)))
        o.set("nextRetryInMilliseconds", nextRetryIn.map { .number(String(max(0, Int64($0 / .milliseconds(1))))) } ?? .null)
        o.set("publishes", .number(String(publishes)))
        o.set("failures", .number(String(failures)))
        o.set("publishedFolderWritable", publishedFolderWritable.map { .bool($0) } ?? .null)
        return o
    }
}
