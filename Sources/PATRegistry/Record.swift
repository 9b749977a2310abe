import PATStore

/// The status of a PAT, derived from its record and the current time; never stored.
public enum PATStatus: String, Sendable, Equatable, CaseIterable, CustomStringConvertible {
    /// The current generation is valid and not expired.
    case active
    /// The current generation's `exp` has passed (and it was not revoked).
    case expired
    /// Every issued generation is below the floor: revoked by `revoke` or revoke-all.
    case revoked
    /// The PAT itself is not revoked, but a token in its lineage (the PAT that minted it, or one
    /// above that) was revoked, regenerated or deleted: edges refuse its tokens
    /// (`ancestor_revoked`). Derived by the management service (`PATRecord.revokedAncestor`).
    case ancestorRevoked = "ancestor_revoked"

    public var description: String { rawValue }
}

/// Which records `list` returns.
public enum StatusFilter: String, Sendable, Equatable, CaseIterable {
    case active, expired, revoked, all

    public func matches(_ status: PATStatus) -> Bool {
        switch self {
        case .all: return true
        case .active: return status == .active
        case .expired: return status == .expired
        // Revoked directly or through an ancestor: edges refuse the tokens either way.
        case .revoked: return status == .revoked || status == .ancestorRevoked
        }
    }
}

/// One PAT as the issuer remembers it. The token itself is never stored: it is shown once,
/// when a generation is issued, and cannot be shown again.
///
/// Revocation works through generations: every (re)issue raises `generation`, and `floor`
/// is the lowest generation still valid. Revoking sets `floor = generation + 1`; a
/// regenerate or scope change issues `generation + 1` and sets `floor` to it, so every
/// older token dies. The published revocation list carries `id → floor`.
public struct PATRecord: Sendable, Equatable {
    /// `jti`: random, kept for the PAT's whole life.
    public var id: String
    /// `sub`.
    public var owner: String
    /// `dom`: the domain the PAT acts in.
    public var domain: String?
    /// 1–256 characters, unique per owner among non-deleted PATs.
    public var name: String
    public var description: String?
    public var scopes: ScopeSet
    /// The generation of the current token.
    public var generation: UInt64
    /// The lowest valid generation.
    public var floor: UInt64
    public var createdAt: Timestamp
    public var updatedAt: Timestamp
    /// `exp` of the current generation.
    public var expiresAt: Timestamp
    /// The latest `exp` of every generation ever issued: the horizon of the PAT's
    /// revocation-list entry (after it, every generation the entry kills has expired).
    public var maxExpiresAt: Timestamp
    /// When the current token was issued by a regenerate or a scope change (nil: never).
    public var lastRotatedAt: Timestamp?
    /// When the PAT was revoked; nil unless its status is revoked.
    public var revokedAt: Timestamp?
    /// Who revoked it (nil: not revoked, or revoked before the registry recorded it). Decides
    /// who may bring it back with a regenerate.
    public var revokedBy: Principal?
    /// The lineage of the current generation: the tokens that issued it, root first (empty:
    /// issued by the CLI or by `pats:admin`). Its token carries the same chain as `par`.
    public var lineage: [Ancestor]
    /// What edges reported of its use (nil: no use reported). Read with the record; never
    /// written by `insert` or `update` (usage has its own tables: `recordUsage`).
    public var usage: PATUsage?
    /// After a regenerate with an overlap: the previous generation, valid until `until` though
    /// below the floor (nil: none). Any later change that moves the floor ends it.
    public var overlap: Overlap?
    /// The first ancestor in `lineage` whose generation the registry no longer holds valid
    /// (revoked, regenerated past it, or deleted): edges refuse this PAT's tokens. Derived by the
    /// management service when it reads a record (nil: none, or not derived); never stored.
    public var revokedAncestor: Ancestor?

    /// The one generation below the floor that stays valid for a while after a rotation.
    public struct Overlap: Sendable, Equatable {
        public var generation: UInt64
        public var until: Timestamp

        public init(generation: UInt64, until: Timestamp) {
            self.generation = generation
            self.until = until
        }
    }

    public init(id: String, owner: String, domain: String? = nil, name: String, description: String? = nil,
                scopes: ScopeSet, generation: UInt64 = 1, floor: UInt64 = 1, createdAt: Timestamp,
                updatedAt: Timestamp? = nil, expiresAt: Timestamp, maxExpiresAt: Timestamp? = nil,
                lastRotatedAt: Timestamp? = nil, revokedAt: Timestamp? = nil, revokedBy: Principal? = nil,
                lineage: [Ancestor] = [], overlap: Overlap? = nil, usage: PATUsage? = nil) {
        self.id = id
        self.owner = owner
        self.domain = domain
        self.name = name
        self.description = description
        self.scopes = scopes
        self.generation = generation
        self.floor = floor
        self.createdAt = createdAt
        self.updatedAt = updatedAt ?? createdAt
        self.expiresAt = expiresAt
        self.maxExpiresAt = maxExpiresAt ?? expiresAt
        self.lastRotatedAt = lastRotatedAt
        self.revokedAt = revokedAt
        self.revokedBy = revokedBy
        self.lineage = lineage
        self.usage = usage
        self.overlap = overlap
    }

    /// The overlap, while it lasts at `now`.
    public func overlap(at now: Timestamp) -> Overlap? {
        guard let overlap, now <= overlap.until else { return nil }
        return overlap
    }

    /// True when `generation` of this PAT is valid at `now` by the registry: issued, at or above
    /// the floor, or the previous generation kept by an overlap that has not ended.
    public func isLive(generation: UInt64, at now: Timestamp) -> Bool {
        guard generation <= self.generation else { return false }
        return generation >= floor || overlap(at: now)?.generation == generation
    }

    /// True when no generation issued so far is valid.
    public var isRevoked: Bool { floor > generation }

    /// The status at `now`: revoked wins over a revoked ancestor, which wins over expired.
    public func status(at now: Timestamp) -> PATStatus {
        if isRevoked { return .revoked }
        if revokedAncestor != nil { return .ancestorRevoked }
        if now >= expiresAt { return .expired }
        return .active
    }

    /// The claims of the current generation, issued at `issuedAt` (`par` from `lineage`).
    public func claims(issuedAt: Timestamp) throws(PATKitError) -> PATClaims {
        var ancestors: [PATAncestor] = []
        for entry in lineage { ancestors.append(try entry.ancestor) }
        return PATClaims(id: id, subject: owner, generation: generation, issuedAt: issuedAt, expiresAt: expiresAt,
                         domain: domain, scopes: scopes, lineage: ancestors)
    }

    /// One token above a PAT in the registry: the PAT id and generation (the token's `par`
    /// carries the same ancestor by its revocation-list key).
    public struct Ancestor: Sendable, Hashable, CustomStringConvertible {
        public let id: String
        public let generation: UInt64

        public init(id: String, generation: UInt64) {
            self.id = id
            self.generation = generation
        }

        /// Parses `"<id>.<gen>"`, as `description` prints it.
        public init(parsing text: some StringProtocol) throws(RegistryError) {
            guard let dot = text.lastIndex(of: "."), let generation = UInt64(text[text.index(after: dot)...]),
                  PATClaims.isValidID(String(text[..<dot])) else {
                throw RegistryError(.invalid, "\"\(text.prefix(64))\" is not \"<PAT id>.<generation>\"")
            }
            self.init(id: String(text[..<dot]), generation: generation)
        }

        /// `"<id>.<gen>"`.
        public var description: String { "\(id).\(generation)" }

        /// The same ancestor as `par` names it (by its revocation-list key).
        public var ancestor: PATAncestor {
            get throws(PATKitError) { try PATAncestor(id: id, generation: generation) }
        }
    }

    /// The storage invariants (the service checks every input rule before a record gets here).
    public func checkInvariants() throws(RegistryError) {
        guard (1...PATClaims.maxGeneration).contains(generation) else {
            throw RegistryError(.invalid, "generation \(generation) is outside 1…2^53−1")
        }
        guard floor >= 1, floor <= generation + 1 else {
            throw RegistryError(.invalid, "floor \(floor) must be from 1 to generation + 1 (\(generation + 1))")
        }
        guard maxExpiresAt >= expiresAt else {
            throw RegistryError(.invalid, "the latest expiry ever issued (\(maxExpiresAt)) is before the current one (\(expiresAt))")
        }
        guard lineage.count <= PATAncestor.maxDepth, Set(lineage.map(\.id)).count == lineage.count,
              !lineage.contains(where: { $0.id.utf8.elementsEqual(id.utf8) }) else {
            throw RegistryError(.invalid, "PAT \(id): lineage \(lineage) is deeper than \(PATAncestor.maxDepth) or repeats a PAT")
        }
        if let overlap {
            guard overlap.generation >= 1, overlap.generation < floor, floor <= generation else {
                throw RegistryError(.invalid, "PAT \(id): an overlap keeps generation \(overlap.generation), which must be "
                                    + "below the floor \(floor) of an unrevoked PAT")
            }
        }
    }
}

/// What is left of a deleted PAT: its id and the horizon until which the revocation list
/// must keep saying "every generation is dead".
public struct Tombstone: Sendable, Equatable {
    public var id: String
    public var owner: String
    public var horizon: Timestamp
    public var deletedAt: Timestamp

    public init(id: String, owner: String, horizon: Timestamp, deletedAt: Timestamp) {
        self.id = id
        self.owner = owner
        self.horizon = horizon
        self.deletedAt = deletedAt
    }
}

/// A revoke-all for an owner: every token of `owner` issued before `issuedBefore` is dead
/// until `horizon`.
public struct OwnerRevocation: Sendable, Equatable {
    public var owner: String
    public var issuedBefore: Timestamp
    public var horizon: Timestamp
    public var revokedAt: Timestamp

    public init(owner: String, issuedBefore: Timestamp, horizon: Timestamp, revokedAt: Timestamp) {
        self.owner = owner
        self.issuedBefore = issuedBefore
        self.horizon = horizon
        self.revokedAt = revokedAt
    }

    /// The stronger of two revocations of the same owner: the later instant and horizon.
    public func merged(with other: OwnerRevocation) -> OwnerRevocation {
        OwnerRevocation(owner: owner, issuedBefore: max(issuedBefore, other.issuedBefore),
                        horizon: max(horizon, other.horizon), revokedAt: max(revokedAt, other.revokedAt))
    }
}

/// A revocation-list entry of a live record (floor above 1), read without the rest of the
/// record, with its overlap (the previous generation kept valid until an instant), if any.
public struct SupersededEntry: Sendable, Equatable {
    public var id: String
    public var floor: UInt64
    public var horizon: Timestamp
    public var overlap: PATRecord.Overlap?

    public init(id: String, floor: UInt64, horizon: Timestamp, overlap: PATRecord.Overlap? = nil) {
        self.id = id
        self.floor = floor
        self.horizon = horizon
        self.overlap = overlap
    }
}

/// Errors of a registry store. The management service turns them into its own errors.
public struct RegistryError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable, Equatable {
        /// No PAT with that id.
        case notFound
        /// The PAT was deleted (only its tombstone is left).
        case deleted
        /// The change conflicts with the registry (a duplicate id or name).
        case conflict
        /// A record that breaks a storage invariant.
        case invalid
        /// The database could not be used.
        case database
        /// The database could not be reached, or did not answer in time (down, restarting,
        /// overloaded, a lock held too long): nothing was changed; try again later.
        case unavailable
    }

    public let kind: Kind
    public let message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }

    public static func notFound(_ id: String) -> RegistryError {
        RegistryError(.notFound, "no PAT with id \(id.prefix(128))")
    }

    public static func deleted(_ tombstone: Tombstone) -> RegistryError {
        RegistryError(.deleted, "PAT \(tombstone.id) was deleted at \(tombstone.deletedAt); a deleted PAT cannot be changed or restored")
    }
}
