import PATStore

/// When a token expires: after a lifetime from now, or at an instant.
public enum Expiry: Sendable, Equatable {
    case after(TimeSpan)
    case at(Timestamp)
}

/// A token that was just issued, with its record. The token is shown once and never stored.
public struct IssuedPAT: Sendable {
    public let record: PATRecord
    public let token: String
    /// The token's `iat`.
    public let issuedAt: Timestamp
}

/// The outcome of `revoke`.
public struct RevokeResult: Sendable {
    public let record: PATRecord
    /// True when the PAT was already revoked: nothing changed.
    public let wasAlreadyRevoked: Bool
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
}

/// The everyday PAT lifecycle on top of a registry: create, change scopes, revoke,
/// revoke-all, regenerate, delete. Each operation is one registry transaction; operations
/// that issue a token sign it with the keystore's signing key inside that transaction and
/// return it once.
///
/// Nothing reaches verifiers until `Publisher.publish()` signs a new revocation list.
public struct Lifecycle: Sendable {
    public let store: any PATRegistryStore
    public let keyStore: KeyStore
    /// Scopes being added (create, scope add) must be in this catalog.
    public var catalog: ScopeCatalog
    /// The longest lifetime a token may be issued with (default 1 year).
    public var maxLifetime: TimeSpan
    /// The current time (a test or `PAT_NOW` may substitute another).
    public var clock: @Sendable () -> Timestamp

    public static let defaultMaxLifetime = TimeSpan(seconds: 365 * 86_400)

    public init(store: any PATRegistryStore, keyStore: KeyStore, catalog: ScopeCatalog = .magistrala,
                maxLifetime: TimeSpan = Lifecycle.defaultMaxLifetime,
                clock: @escaping @Sendable () -> Timestamp = { Timestamp.now() }) {
        self.store = store
        self.keyStore = keyStore
        self.catalog = catalog
        self.maxLifetime = maxLifetime
        self.clock = clock
    }

    // MARK: create

    /// Creates a PAT (generation 1) and returns its first token.
    public func create(owner: String, name: String, description: String? = nil, scopes: ScopeSet,
                       expiry: Expiry, domain: String? = nil) throws -> IssuedPAT {
        try PATRecord.validateOwner(owner)
        try PATRecord.validateName(name)
        if let description { try PATRecord.validateDescription(description) }
        if let domain { try PATRecord.validateDomain(domain) }
        guard !scopes.isEmpty else {
            throw RegistryError(.invalid, "a PAT needs at least one scope: pass --scope ENTITY:OPERATION[:ID] (e.g. clients:view)")
        }
        try catalog.check(scopes)
        let now = clock()
        let expiresAt = try resolve(expiry, now: now)
        let key = try keyStore.signingKey()
        return try store.write { tx in
            if let existing = try tx.record(owner: owner, name: name) {
                throw RegistryError(.conflict, "owner \(owner) already has a PAT named \"\(name)\" (id \(existing.id)): "
                                    + "choose another --name, or delete that PAT first")
            }
            var id = PATClaims.newID()
            while try tx.record(id: id) != nil || tx.tombstone(id: id) != nil { id = PATClaims.newID() }
            let record = PATRecord(id: id, owner: owner, domain: domain, name: name, description: description,
                                   scopes: scopes, generation: 1, floor: 1, createdAt: now, expiresAt: expiresAt)
            let issued = try issue(record, now: now, key: key, tx: tx)
            try tx.insert(record)
            return issued
        }
    }

    // MARK: scopes

    /// Adds scopes (checked against the catalog) and re-issues the PAT.
    public func addScopes(id: String, _ scopes: [Scope]) throws -> IssuedPAT {
        try catalog.check(ScopeSet(scopes))
        return try changeScopes(id: id, action: "add scopes to") { current in
            let missing = scopes.filter { !current.scopes.contains($0) }
            guard !missing.isEmpty else {
                throw RegistryError(.conflict, "PAT already has \(scopes.map(\.description).joined(separator: " ")); nothing changed "
                                    + "and no token was issued")
            }
            return current.adding(scopes)
        }
    }

    /// Removes scopes and re-issues the PAT.
    public func removeScopes(id: String, _ scopes: [Scope]) throws -> IssuedPAT {
        try changeScopes(id: id, action: "remove scopes from") { current in
            let absent = scopes.filter { !current.scopes.contains($0) }
            guard absent.isEmpty else {
                let held = current.isEmpty ? "none" : current.claim
                throw RegistryError(.invalid, "PAT does not have \(absent.map(\.description).joined(separator: " ")) "
                                    + "(its scopes: \(held)); nothing changed")
            }
            return current.removing(scopes)
        }
    }

    /// Removes every scope and re-issues the PAT (the new token grants nothing).
    public func clearScopes(id: String) throws -> IssuedPAT {
        try changeScopes(id: id, action: "clear the scopes of") { current in
            guard !current.isEmpty else {
                throw RegistryError(.conflict, "PAT has no scopes; nothing changed and no token was issued")
            }
            return ScopeSet()
        }
    }

    /// A scope change re-issues like a regenerate (new generation, older tokens die) but keeps
    /// the expiry. Only an active PAT can change: regenerate a revoked or expired one first.
    private func changeScopes(id: String, action: String,
                              _ change: (ScopeSet) throws -> ScopeSet) throws -> IssuedPAT {
        let now = clock()
        let key = try keyStore.signingKey()
        return try store.write { tx in
            var record = try tx.requireRecord(id: id)
            let status = record.status(at: now)
            guard status == .active else {
                throw RegistryError(.conflict, "cannot \(action) PAT \(id): it is \(status). Regenerate it first "
                                    + "(`pat regenerate \(id) --expires-in 30d`), then change its scopes")
            }
            let scopes: ScopeSet
            do { scopes = try change(record.scopes) } catch let error as RegistryError {
                throw RegistryError(error.kind, "PAT \(id): \(error.message)")
            }
            try nextGeneration(&record)
            record.scopes = scopes
            record.floor = record.generation
            record.lastRotatedAt = now
            record.updatedAt = now
            let issued = try issue(record, now: now, key: key, tx: tx)
            try tx.update(record)
            return issued
        }
    }

    // MARK: revoke

    /// Revokes every generation issued so far (floor = generation + 1).
    public func revoke(id: String) throws -> RevokeResult {
        let now = clock()
        return try store.write { tx in
            var record = try tx.requireRecord(id: id)
            if record.isRevoked { return RevokeResult(record: record, wasAlreadyRevoked: true) }
            record.floor = record.generation + 1
            record.revokedAt = now
            record.updatedAt = now
            try tx.update(record)
            return RevokeResult(record: record, wasAlreadyRevoked: false)
        }
    }

    /// Revokes every PAT of `owner`: each record is marked revoked, and an owner entry refuses
    /// every token of the owner issued up to and including this second — also tokens issued
    /// outside the registry (`pat issue`). Its horizon covers the owner's records and any token
    /// issued within the lifetime policy.
    public func revokeAll(owner: String) throws -> RevokeAllResult {
        try PATRecord.validateOwner(owner)
        let now = clock()
        let before = now.adding(seconds: 1) // fail closed: tokens issued in this second die too
        return try store.write { tx in
            let records = try tx.records(owner: owner, status: .all, now: now)
            var revoked: [PATRecord] = []
            var horizon = before.adding(seconds: maxLifetime.seconds)
            for var record in records {
                horizon = max(horizon, record.maxExpiresAt)
                guard !record.isRevoked else { continue }
                record.floor = record.generation + 1
                record.revokedAt = now
                record.updatedAt = now
                try tx.update(record)
                revoked.append(record)
            }
            let entry = OwnerRevocation(owner: owner, issuedBefore: before, horizon: horizon, revokedAt: now)
            try tx.saveOwnerRevocation(entry)
            return RevokeAllResult(owner: owner, revoked: revoked, alreadyRevoked: records.count - revoked.count,
                                   ownerRevocation: try tx.ownerRevocation(owner: owner) ?? entry)
        }
    }

    // MARK: regenerate

    /// Issues a new generation with a new expiry — for active, revoked and expired PATs alike.
    /// Name, description and scopes stay; every older token dies (floor = new generation).
    public func regenerate(id: String, expiry: Expiry) throws -> IssuedPAT {
        let now = clock()
        let expiresAt = try resolve(expiry, now: now)
        let key = try keyStore.signingKey()
        return try store.write { tx in
            var record = try tx.requireRecord(id: id)
            try nextGeneration(&record)
            record.floor = record.generation
            record.expiresAt = expiresAt
            record.maxExpiresAt = max(record.maxExpiresAt, expiresAt)
            record.lastRotatedAt = now
            record.revokedAt = nil
            record.updatedAt = now
            let issued = try issue(record, now: now, key: key, tx: tx)
            try tx.update(record)
            return issued
        }
    }

    // MARK: delete

    /// Deletes a PAT: the record goes, a tombstone makes every generation dead until the
    /// latest `exp` ever issued. The name becomes free again.
    @discardableResult
    public func delete(id: String) throws -> Tombstone {
        let now = clock()
        return try store.write { tx in try tx.deleteRecord(id: id, now: now) }
    }

    /// Deletes every PAT of `owner`; returns their tombstones.
    @discardableResult
    public func deleteAll(owner: String) throws -> [Tombstone] {
        try PATRecord.validateOwner(owner)
        let now = clock()
        return try store.write { tx in
            try tx.records(owner: owner, status: .all, now: now).map { try tx.deleteRecord(id: $0.id, now: now) }
        }
    }

    // MARK: helpers

    /// The expiry instant, after checking it against `now` and the lifetime policy.
    public func resolve(_ expiry: Expiry, now: Timestamp) throws -> Timestamp {
        let expiresAt: Timestamp
        switch expiry {
        case .after(let span): expiresAt = now.adding(seconds: span.seconds)
        case .at(let instant): expiresAt = instant
        }
        guard expiresAt > now else {
            throw RegistryError(.invalid, "the expiry \(expiresAt) is not in the future (now \(now)): "
                                + "pass a later --expires-at, or --expires-in DURATION")
        }
        let lifetime = expiresAt.seconds - now.seconds
        guard lifetime <= maxLifetime.seconds else {
            throw RegistryError(.policy, "a lifetime of \(formatDuration(lifetime)) (until \(expiresAt)) exceeds the maximum "
                                + "lifetime of \(formatDuration(maxLifetime.seconds)): choose an earlier expiry, or raise the "
                                + "policy with --max-lifetime")
        }
        return expiresAt
    }

    private func nextGeneration(_ record: inout PATRecord) throws {
        guard record.generation < PATClaims.maxGeneration else {
            throw RegistryError(.conflict, "PAT \(record.id) reached the last generation (2^53−1): create a new PAT")
        }
        record.generation += 1
    }

    /// Signs the record's current generation. After a revoke-all of the owner, `iat` is at
    /// least the revoke-all instant (at most one second ahead, inside any verifier's leeway)
    /// so that the new token is not refused by the owner entry.
    private func issue(_ record: PATRecord, now: Timestamp, key: SecretKey, tx: any RegistryTransaction) throws -> IssuedPAT {
        var issuedAt = now
        if let revocation = try tx.ownerRevocation(owner: record.owner), revocation.issuedBefore > issuedAt {
            issuedAt = revocation.issuedBefore
        }
        guard issuedAt < record.expiresAt else {
            throw RegistryError(.invalid, "PAT \(record.id) would expire (\(record.expiresAt)) before it is issued "
                                + "(\(issuedAt)): choose a later expiry")
        }
        let token = try Issuer(key: key).issue(record.claims(issuedAt: issuedAt))
        return IssuedPAT(record: record, token: token, issuedAt: issuedAt)
    }
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
