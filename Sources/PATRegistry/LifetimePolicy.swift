import PATStore

/// The longest lifetime a token of one domain may be issued with: the per-domain policy, data in
/// the registry (every issuer node reads the same), set with `pat policy set`. The stricter of it
/// and the service's global maximum applies.
public struct LifetimePolicy: Sendable, Equatable {
    public var domain: String
    public var maxLifetime: TimeSpan
    public var updatedAt: Timestamp

    public init(domain: String, maxLifetime: TimeSpan, updatedAt: Timestamp) {
        self.domain = domain
        self.maxLifetime = maxLifetime
        self.updatedAt = updatedAt
    }
}
