/// Whether a change reached verifiers, as the service tells its caller (the API answers it as
/// `"published"`, with a warning when it is false).
public enum Publication: Sendable, Equatable {
    /// A list holding the change was published: `sequence` (or a later one).
    case published(sequence: UInt64)
    /// The change is recorded but publishing failed: verifiers do not see it yet. The
    /// republisher retries with backoff until a publish succeeds; `reason` is the failure (for
    /// logs and operators, not for API clients).
    case failed(reason: String)
    /// This service does not publish (the CLI): verifiers learn of the change from the next
    /// `pat publish`, or from a running `pat serve`, which notices it.
    case deferred

    /// True once verifiers can see the change.
    public var isPublished: Bool {
        if case .published = self { return true }
        return false
    }
}
