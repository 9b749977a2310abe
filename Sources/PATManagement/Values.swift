import PATKit
import PATRegistry

/// When a token expires: after a lifetime from now, or at an instant.
public enum Expiry: Sendable, Equatable {
    case after(TimeSpan)
    case at(Timestamp)

    /// The input's name in errors: `duration` or `expiresAt`.
    var field: String {
        switch self {
        case .after: return "duration"
        case .at: return "expiresAt"
        }
    }
}

/// The issuing policy of a management service.
public struct ManagementPolicy: Sendable {
    /// Scopes being handed out (create, scope add) must be in this catalog.
    public var catalog: ScopeCatalog
    /// The longest lifetime a token may be issued with (default 1 year).
    public var maxLifetime: TimeSpan
    /// The lifetime of a token created or regenerated without an expiry (default 30 days),
    /// cut to the caller's own expiry for a caller that is bounded by it.
    public var defaultLifetime: TimeSpan
    /// Record a `personalAccessToken.usedFromNewAddress` event when an edge reports a PAT used
    /// from a client address not seen before for it (default off).
    public var notifyNewAddresses: Bool
    /// Client addresses remembered per PAT for that event (the least recently seen goes).
    public var addressesPerPAT: Int
    /// The longest overlap a regenerate may give the previous generation (default 7 days).
    public var maxOverlap: TimeSpan

    public static let defaultMaxLifetime = TimeSpan(seconds: 365 * 86_400)
    public static let defaultDefaultLifetime = TimeSpan(seconds: 30 * 86_400)
    public static let defaultMaxOverlap = TimeSpan(seconds: 7 * 86_400)

    public init(catalog: ScopeCatalog = .magistrala, maxLifetime: TimeSpan = ManagementPolicy.defaultMaxLifetime,
                defaultLifetime: TimeSpan = ManagementPolicy.defaultDefaultLifetime,
                maxOverlap: TimeSpan = ManagementPolicy.defaultMaxOverlap, notifyNewAddresses: Bool = false,
                addressesPerPAT: Int = 32) {
        self.catalog = catalog
        self.maxLifetime = maxLifetime
        self.defaultLifetime = defaultLifetime
        self.maxOverlap = maxOverlap
        self.notifyNewAddresses = notifyNewAddresses
        self.addressesPerPAT = max(1, addressesPerPAT)
    }
}

/// How long the previous generation stays valid after a regenerate (`pat regenerate --overlap
/// 1h`, `{"overlap": "1h"}`): `0`/`0s` (the default) or a duration such as `90s`, `15m`, `1h`, `2d`.
public enum OverlapSpan {
    /// nil for no overlap.
    public static func parse(_ text: String) throws(PATKitError) -> TimeSpan? {
        if let unit = text.last, text.dropLast().allSatisfy({ $0 == "0" }), !text.dropLast().isEmpty, "smhdwy".contains(unit) { return nil }
        if !text.isEmpty, text.allSatisfy({ $0 == "0" }) { return nil }
        do { return try TimeSpan(parsing: text) } catch {
            throw .invalidArgument("invalid overlap \"\(text.prefix(32))\": write 0 (none) or a duration such as 30m, 1h or 2d")
        }
    }
}

/// What `create` needs; nil members take the caller's defaults.
public struct CreateRequest: Sendable {
    /// The owner (`sub`); nil: the caller's own `sub` (the operator must name one).
    public var owner: String?
    public var name: String
    public var description: String?
    public var scopes: [Scope]
    /// nil: the default lifetime.
    public var expiry: Expiry?
    /// The domain (`dom`); nil: the caller's own domain (none for the operator and admins).
    public var domain: String?
    /// Create it revoked: recorded, announced, and no token issued.
    public var revoked: Bool

    public init(owner: String? = nil, name: String, description: String? = nil, scopes: [Scope], expiry: Expiry? = nil,
                domain: String? = nil, revoked: Bool = false) {
        self.owner = owner
        self.name = name
        self.description = description
        self.scopes = scopes
        self.expiry = expiry
        self.domain = domain
        self.revoked = revoked
    }
}

/// A PAT that was created or re-issued, with its record. The token is shown once and never stored.
public struct IssuedPAT: Sendable {
    public let record: PATRecord
    /// nil for a PAT created revoked (a token would never validate).
    public let token: String?
    /// The token's `iat`.
    public let issuedAt: Timestamp
    /// Whether verifiers can see the change yet (`.deferred` from a service that does not publish).
    public internal(set) var publication: Publication = .deferred
}

/// The outcome of `revoke`.
public struct RevokeResult: Sendable {
    public let record: PATRecord
    /// True when the PAT was already revoked: nothing reached verifiers.
    public let wasAlreadyRevoked: Bool
    /// Whether verifiers can see the change yet (`.deferred` from a service that does not publish).
    public internal(set) var publication: Publication = .deferred
}

/// The outcome of `revokeAll`.
public struct RevokeAllResult: Sendable {
    public let owner: String
    /// Records this call revoked.
    public let revoked: [PATRecord]
    /// Records of the owner that were revoked already.
    public let alreadyRevoked: Int
    /// The owner entry: every token of the owner issued before `issuedBefore` is refused.
    public let ownerRevocation: OwnerRevocation
    /// Whether verifiers can see the change yet (`.deferred` from a service that does not publish).
    public internal(set) var publication: Publication = .deferred
}

/// A deleted PAT: its last record and its tombstone.
public struct DeletedPAT: Sendable {
    public let record: PATRecord
    public let tombstone: Tombstone
    /// Whether verifiers can see the change yet (`.deferred` from a service that does not publish).
    public internal(set) var publication: Publication = .deferred
}

/// `90s`, `15m`, `2h`, `30d`, `1y`, or a sum such as `1d 2h` — for messages.
public func formatDuration(_ seconds: Int64) -> String {
    guard seconds > 0 else { return "0s" }
    let units: [(Int64, String)] = [(31_536_000, "y"), (86_400, "d"), (3600, "h"), (60, "m"), (1, "s")]
    var rest = seconds
    var parts: [String] = []
    for (size, name) in units where rest >= size {
        parts.append("\(rest / size)\(name)")
        rest %= size
        if parts.count == 2 { break }
    }
    return parts.joined(separator: " ")
}
