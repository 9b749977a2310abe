import PATStore

/// A leak of one PAT generation as the registry remembers it: the first report of it (where it
/// was found and by whom). A generation is reported once: a repeated report (a replayed
/// request, the same token found again) changes nothing and fires no event.
public struct LeakRecord: Sendable, Equatable {
    public var id: String
    public var generation: UInt64
    public var reportedAt: Timestamp
    /// Where the token was found (a URL, or `pat scan`'s location); never the token.
    public var url: String
    /// What found it: a secret scanner's `source` (`content`, `commit`, …) or `pat_scan`.
    public var source: String

    public init(id: String, generation: UInt64, reportedAt: Timestamp, url: String, source: String) {
        self.id = id
        self.generation = generation
        self.reportedAt = reportedAt
        self.url = url
        self.source = source
    }
}
