import PATKit
import PATRegistry
import PATStore

/// The management service: the one place that creates, lists, re-scopes, revokes, regenerates
/// and deletes PATs, for every front end (the `pat` CLI, the HTTP management API).
///
/// For each operation it
/// - checks the caller's permission (`Caller`), ownership and the input, once (`Identifier`
///   for owners, names, domains and ids; the scope catalog; the lifetime policy);
/// - applies the delegation rules (`Delegation`: domain, scopes, lifetime, lineage, who may
///   undo a revocation);
/// - makes the change in one registry transaction, which also records the change's event in
///   the outbox (`ManagementEvent`, naming the actor) and raises the change counter;
/// - then publishes (when a `Republisher` is set, as in `pat serve`; the CLI leaves that to
///   `pat publish` or a running `pat serve`) and calls `onChange`. Each result carries its
///   `Publication`: whether verifiers can see the change yet.
///
/// Errors are `ManagementError`s, worded for no front end in particular.
public struct PATManagement: Sendable {
    public let store: any PATRegistryStore
    public let keyStore: KeyStore
    public var policy: ManagementPolicy
    /// The current time (a test or `PAT_NOW` may substitute another).
    public var clock: @Sendable () -> Timestamp
    /// Publishes after every change; nil: changes wait for `pat publish`.
    public var republisher: Republisher?
    /// Called after every committed change (e.g. to wake the webhook dispatcher).
    public var onChange: @Sendable () -> Void

    public static let maxNameLength = 256
    public static let maxDescriptionLength = 1024

    public init(store: any PATRegistryStore, keyStore: KeyStore, policy: ManagementPolicy = ManagementPolicy(),
                clock: @escaping @Sendable () -> Timestamp = { Timestamp.now() }, republisher: Republisher? = nil,
                onChange: @escaping @Sendable () -> Void = {}) {
        self.store = store
        self.keyStore = keyStore
        self.policy = policy
        self.clock = clock
        self.republisher = republisher
        self.onChange = onChange
    }

    // MARK: create

    /// Creates a PAT (generation 1) and returns its first token (none when created revoked).
    public func create(_ request: CreateRequest, by caller: Caller) async throws(ManagementError) -> IssuedPAT {
        try caller.require(.create)
        let owner = try caller.owner(request.owner)
        let name = request.name
        try Identifier.check(name, field: "name", maxBytes: 4 * PATManagement.maxNameLength, maxCharacters: PATManagement.maxNameLength)
        let description = request.description
        if let description { try checkDescription(description) }
        let rules = Delegation(caller: caller, policy: policy)
        let domain = try rules.domain(request.domain)
        let scopes = try checkNewScopes(request.scopes)
        try rules.checkScopes(scopes)
        let now = clock()
        let key = try signingKey()
        let principal = caller.principal, revoked = request.revoked
        let issued = try await change(id: nil) { tx in
            try await tx.lockOwner(owner) // names, revoke-all: one change to an owner's PATs at a time, on every node
            let expiresAt = try rules.expiry(request.expiry, now: now, domainPolicy: try await Delegation.lifetimePolicy(of: domain, tx))
            let lineage = try rules.lineage(reissuing: nil, parentRecord: try await rules.liveParent(tx, now: now))
            if let existing = try await tx.record(owner: owner, name: name) {
                throw ManagementError(.nameTaken, field: "name",
                                      "owner \(Printable.clip(owner, 64)) already has a PAT named \"\(Printable.clip(name, 64))\" "
                                      + "(id \(existing.id)): choose another name, or delete that PAT first")
            }
            var id = PATClaims.newID()
            while try await PATManagement.isTaken(id, tx) { id = PATClaims.newID() } // 128 random bits: never in practice
            var record = PATRecord(id: id, owner: owner, domain: domain, name: name, description: description,
                                   scopes: scopes, generation: 1, floor: 1, createdAt: now, expiresAt: expiresAt,
                                   lineage: lineage)
            let issued: IssuedPAT
            if revoked {
                record.floor = 2
                record.revokedAt = now
                record.revokedBy = principal
                issued = IssuedPAT(record: record, token: nil, issuedAt: now)
            } else {
                issued = try await PATManagement.issue(record, now: now, key: key, tx: tx)
            }
            try await tx.insert(record)
            _ = try await tx.recordChange(ManagementEvent.created.change(data: record.json(at: now), actor: principal, at: now))
            return issued
        }
        var result = issued
        result.publication = await changed("create")
        return result
    }

    // MARK: read

    /// The records of `owner` (nil: the caller's own; for the operator, every owner's) with
    /// `status`, ordered by owner, name and id.
    /// - Parameters:
    ///   - unusedFor: only PATs no edge reported a use of within this span: last used before
    ///     now − span, or never used and created before then.
    ///   - expiringWithin: only active PATs that expire within this span from now.
    public func list(owner: String? = nil, status: StatusFilter = .all, unusedFor: TimeSpan? = nil, expiringWithin: TimeSpan? = nil,
                     by caller: Caller) async throws(ManagementError) -> [PATRecord] {
        try caller.require(.list)
        let owner: String? = (owner == nil && caller.isLocalOperator) ? nil : try caller.owner(owner)
        let now = clock()
        // A revoked ancestor is derived, not stored: the store's filter cannot see it. `revoked`
        // reads every record (an ancestor may have revoked any of them); the other filters drop
        // what turns out to be ancestor-revoked.
        let records = try await read { tx in
            try await tx.derivingRevokedAncestors(try await tx.records(owner: owner, status: status == .revoked ? .all : status, now: now),
                                                  now: now)
        }
        return records.filter { record in
            guard status.matches(record.status(at: now)) else { return false }
            if let unusedFor {
                let cutoff = now.adding(seconds: -unusedFor.seconds)
                guard (record.usage?.lastUsedAt ?? record.createdAt) < cutoff else { return false }
            }
            if let expiringWithin {
                guard record.status(at: now) == .active, record.expiresAt <= now.adding(seconds: expiringWithin.seconds) else { return false }
            }
            return true
        }
    }

    /// One record the caller manages.
    public func record(id: String, by caller: Caller) async throws(ManagementError) -> PATRecord {
        try caller.require(.read, id: id)
        try Identifier.checkPATID(id)
        let now = clock()
        return try await read { tx in try await PATManagement.visibleRecord(id, caller: caller, now: now, tx) }
    }

    // MARK: scopes

    /// Adds scopes (checked against the catalog) and re-issues the PAT.
    public func addScopes(id: String, _ scopes: [Scope], by caller: Caller) async throws(ManagementError) -> IssuedPAT {
        try caller.require(.update, id: id)
        let added = try checkNewScopes(scopes)
        return try await changeScopes(id: id, by: caller, action: "add scopes to") { current throws(ManagementError) in
            let missing = added.filter { !current.scopes.contains($0) }
            guard !missing.isEmpty else {
                throw ManagementError(.conflict, field: "scopes",
                                      "PAT \(id) already has \(added.claim); nothing changed and no token was issued")
            }
            return current.adding(Array(added))
        }
    }

    /// Removes scopes and re-issues the PAT.
    public func removeScopes(id: String, _ scopes: [Scope], by caller: Caller) async throws(ManagementError) -> IssuedPAT {
        try caller.require(.update, id: id)
        guard !scopes.isEmpty else { throw ManagementError(.invalidInput, field: "scopes", "must hold at least one scope") }
        return try await changeScopes(id: id, by: caller, action: "remove scopes from") { current throws(ManagementError) in
            let absent = scopes.filter { !current.scopes.contains($0) }
            guard absent.isEmpty else {
                throw ManagementError(.invalidInput, field: "scopes",
                                      "PAT \(id) does not have \(absent.map(\.description).joined(separator: " ")) "
                                      + "(its scopes: \(current.isEmpty ? "none" : current.claim)); nothing changed")
            }
            return current.removing(scopes)
        }
    }

    /// Removes every scope and re-issues the PAT (the new token grants nothing).
    public func clearScopes(id: String, by caller: Caller) async throws(ManagementError) -> IssuedPAT {
        try caller.require(.update, id: id)
        return try await changeScopes(id: id, by: caller, action: "clear the scopes of") { current throws(ManagementError) in
            guard !current.isEmpty else {
                throw ManagementError(.conflict, "PAT \(id) has no scopes; nothing changed and no token was issued")
            }
            return ScopeSet()
        }
    }

    /// A scope change re-issues like a regenerate (new generation, older tokens die) but keeps
    /// the expiry. Only an active PAT can change: regenerate a revoked or expired one first.
    private func changeScopes(id: String, by caller: Caller, action: String,
                              _ change: @escaping @Sendable (ScopeSet) throws(ManagementError) -> ScopeSet) async throws(ManagementError) -> IssuedPAT {
        try Identifier.checkPATID(id)
        let rules = Delegation(caller: caller, policy: policy)
        let now = clock()
        let key = try signingKey()
        let principal = caller.principal
        let issued = try await self.change(id: id) { tx in
            var record = try await PATManagement.visibleRecord(id, caller: caller, now: now, tx)
            let status = record.status(at: now)
            guard status == .active else {
                throw ManagementError(.conflict, field: "id", "cannot \(action) PAT \(id): it is \(status); regenerate it first, "
                                      + "then change its scopes")
            }
            let scopes = try change(record.scopes)
            try rules.checkScopes(scopes)
            try rules.checkDomain(record.domain)
            try rules.checkWithinParent(record.expiresAt, field: "id")
            record.scopes = scopes
            return try await PATManagement.reissue(&record, rules: rules, event: .scopesChanged, by: principal, now: now, key: key, tx: tx)
        }
        var result = issued
        result.publication = await changed(action)
        return result
    }

    // MARK: revoke

    /// Revokes every generation issued so far (floor = generation + 1), recording who did.
    public func revoke(id: String, by caller: Caller) async throws(ManagementError) -> RevokeResult {
        try caller.require(.revoke, id: id)
        try Identifier.checkPATID(id)
        let now = clock()
        let principal = caller.principal, admin = caller.isAdmin
        let result = try await change(id: id) { tx in
            var record = try await PATManagement.visibleRecord(id, caller: caller, now: now, tx)
            if record.isRevoked {
                // An admin's revoke of a PAT its owner revoked makes it the admin's to undo.
                if admin, record.revokedBy?.isOwnerActingAlone(record.owner) ?? false {
                    record.revokedBy = principal
                    try await tx.update(record)
                }
                return RevokeResult(record: record, wasAlreadyRevoked: true)
            }
            try await PATManagement.markRevoked(&record, by: principal, now: now, tx: tx)
            return RevokeResult(record: record, wasAlreadyRevoked: false)
        }
        var answer = result
        answer.publication = result.wasAlreadyRevoked ? unchanged : await changed("revoke")
        return answer
    }

    /// Revokes every PAT of `owner`: each record is marked revoked, and an owner entry refuses
    /// every token of the owner issued up to and including this second — also tokens issued
    /// outside the registry (`pat issue`). Its horizon covers the owner's records and any token
    /// issued within the lifetime policy.
    public func revokeAll(owner requested: String, by caller: Caller) async throws(ManagementError) -> RevokeAllResult {
        try caller.require(.revoke)
        let owner = try caller.owner(requested)
        let now = clock()
        let before = now.adding(seconds: 1) // fail closed: tokens issued in this second die too
        let principal = caller.principal, maxLifetime = policy.maxLifetime
        let result = try await change(id: nil) { tx in
            try await tx.lockOwner(owner) // no PAT of the owner created or re-issued meanwhile, on any node
            let records = try await tx.records(owner: owner, status: .all, now: now)
            var revoked: [PATRecord] = []
            var horizon = before.adding(seconds: maxLifetime.seconds)
            for var record in records {
                horizon = max(horizon, record.maxExpiresAt)
                guard !record.isRevoked else { continue }
                try await PATManagement.markRevoked(&record, by: principal, now: now, tx: tx)
                revoked.append(record)
            }
            let entry = OwnerRevocation(owner: owner, issuedBefore: before, horizon: horizon, revokedAt: now)
            try await tx.saveOwnerRevocation(entry)
            return RevokeAllResult(owner: owner, revoked: revoked, alreadyRevoked: records.count - revoked.count,
                                   ownerRevocation: try await tx.ownerRevocation(owner: owner) ?? entry)
        }
        var answer = result
        answer.publication = await changed("revoke all")
        return answer
    }

    // MARK: regenerate

    /// Issues a new generation with a new expiry — for active, revoked and expired PATs alike.
    /// Name, description and scopes stay; every older token (and whatever it issued) dies — at
    /// once, or, with an `overlap`, the current generation (of an active PAT) and what it issued
    /// only once the overlap ends: a rotation without downtime. Regenerating again ends an
    /// overlap still running at once (only the generation just replaced may overlap).
    /// A PAT holding `pats:rotate_self` may regenerate itself (`Delegation`, rule 6).
    /// - Parameters:
    ///   - expiry: nil: the default lifetime.
    ///   - overlap: how long the current generation stays valid (nil or zero: not at all); at most
    ///     the policy's maximum, cut to that generation's own expiry, bounded by the delegation rules.
    public func regenerate(id: String, expiry: Expiry? = nil, overlap: TimeSpan? = nil,
                           by caller: Caller) async throws(ManagementError) -> IssuedPAT {
        let rules = Delegation(caller: caller, policy: policy)
        try rules.requireRegenerate(id)
        try Identifier.checkPATID(id)
        if let expiry { _ = try rules.expiry(expiry, now: clock()) } // the form, before the registry
        let now = clock()
        let key = try signingKey()
        let principal = caller.principal
        let issued = try await change(id: id) { tx in
            var record = try await PATManagement.visibleRecord(id, caller: caller, now: now, tx)
            let expiresAt = try rules.expiry(expiry, now: now, domainPolicy: try await Delegation.lifetimePolicy(of: record.domain, tx))
            try rules.checkMayRevive(record)
            try rules.checkScopes(record.scopes)
            try rules.checkDomain(record.domain)
            let kept = try rules.overlapEnd(overlap, for: record, now: now)
                .map { PATRecord.Overlap(generation: record.generation, until: $0) }
            record.expiresAt = expiresAt
            record.maxExpiresAt = max(record.maxExpiresAt, expiresAt)
            record.revokedAt = nil
            record.revokedBy = nil
            return try await PATManagement.reissue(&record, rules: rules, event: .regenerated, by: principal, now: now, key: key,
                                                   overlap: kept, tx: tx)
        }
        var result = issued
        result.publication = await changed("regenerate")
        return result
    }

    // MARK: delete

    /// Deletes a PAT: the record goes, a tombstone makes every generation dead until the
    /// latest `exp` ever issued. The name becomes free again.
    @discardableResult
    public func delete(id: String, by caller: Caller) async throws(ManagementError) -> DeletedPAT {
        try caller.require(.delete, id: id)
        try Identifier.checkPATID(id)
        let now = clock()
        let principal = caller.principal
        let deleted = try await change(id: id) { tx in
            let record = try await PATManagement.visibleRecord(id, caller: caller, now: now, tx)
            let deleted = DeletedPAT(record: record, tombstone: try await tx.deleteRecord(id: id, now: now))
            _ = try await tx.recordChange(ManagementEvent.deleted.change(data: deleted.json, actor: principal, at: now))
            return deleted
        }
        var result = deleted
        result.publication = await changed("delete")
        return result
    }

    /// Deletes every PAT of `owner` (nil: the caller's own).
    @discardableResult
    public func deleteAll(owner requested: String?, by caller: Caller) async throws(ManagementError) -> [DeletedPAT] {
        try caller.require(.delete)
        let owner = try caller.owner(requested)
        let now = clock()
        let principal = caller.principal
        let deleted = try await change(id: nil) { tx in
            try await tx.lockOwner(owner)
            var deleted: [DeletedPAT] = []
            for record in try await tx.records(owner: owner, status: .all, now: now) {
                let gone = DeletedPAT(record: record, tombstone: try await tx.deleteRecord(id: record.id, now: now))
                _ = try await tx.recordChange(ManagementEvent.deleted.change(data: gone.json, actor: principal, at: now))
                deleted.append(gone)
            }
            return deleted
        }
        let publication = deleted.isEmpty ? unchanged : await changed("delete all")
        return deleted.map { var one = $0; one.publication = publication; return one }
    }

    // MARK: helpers

    /// Issues the next generation of `record` (after the operation's own edits): the lineage
    /// of whoever re-issues it, every older generation — and whatever those issued — dead, but
    /// for the one `overlap` keeps (which replaces any earlier overlap: it ends at once).
    static func reissue(_ record: inout PATRecord, rules: Delegation, event: ManagementEvent, by principal: Principal,
                        now: Timestamp, key: SecretKey, overlap: PATRecord.Overlap? = nil,
                        tx: any RegistryTransaction) async throws -> IssuedPAT {
        record.lineage = try rules.lineage(reissuing: record.id, parentRecord: try await rules.liveParent(tx, now: now))
        record.revokedAncestor = nil // the new lineage is the caller's, live (`liveParent`)
        try nextGeneration(&record)
        record.floor = record.generation
        record.overlap = overlap
        record.lastRotatedAt = now
        record.updatedAt = now
        let issued = try await issue(record, now: now, key: key, tx: tx)
        try await tx.update(record)
        _ = try await tx.recordChange(event.change(data: record.json(at: now), actor: principal, at: now))
        return issued
    }

    /// Revokes every generation issued so far (floor = generation + 1), recording who did.
    static func markRevoked(_ record: inout PATRecord, by principal: Principal, now: Timestamp,
                            tx: any RegistryTransaction) async throws {
        record.floor = record.generation + 1
        record.overlap = nil // a revoke ends an overlap at once
        record.revokedAt = now
        record.revokedBy = principal
        record.updatedAt = now
        try await tx.update(record)
        _ = try await tx.recordChange(ManagementEvent.revoked.change(data: record.json(at: now), actor: principal, at: now))
    }

    /// The record, when it exists and the caller manages its owner; `notFound` otherwise (another
    /// owner's PAT is not revealed). The operator learns that a PAT was deleted. In a write
    /// transaction the record's owner is locked first (`lockRecord`): what the change reads is
    /// what no other node changes until it commits. With `now`, its `revokedAncestor` is derived
    /// (the status the record reports and the operations check).
    static func visibleRecord(_ id: String, caller: Caller, now: Timestamp? = nil, _ tx: any RegistryTransaction) async throws -> PATRecord {
        if let record = try await tx.lockRecord(id: id), caller.manages(record.owner) {
            guard let now else { return record }
            return try await tx.derivingRevokedAncestor(record, now: now)
        }
        if caller.isLocalOperator, let tombstone = try await tx.tombstone(id: id) {
            throw ManagementError(.deleted, field: "id",
                                  "PAT \(id) was deleted at \(tombstone.deletedAt); a deleted PAT cannot be changed or restored")
        }
        throw ManagementError.notFound(id)
    }

    /// True when a live record or a tombstone has this id.
    static func isTaken(_ id: String, _ tx: any RegistryTransaction) async throws -> Bool {
        if try await tx.record(id: id) != nil { return true }
        return try await tx.tombstone(id: id) != nil
    }

    private func checkDescription(_ description: String) throws(ManagementError) {
        guard description.count <= PATManagement.maxDescriptionLength, description.utf8.count <= 4 * PATManagement.maxDescriptionLength else {
            throw ManagementError(.invalidInput, field: "description", "must be at most \(PATManagement.maxDescriptionLength) characters")
        }
        // Every back end must store it byte for byte; PostgreSQL text cannot hold U+0000.
        guard !description.utf8.contains(0) else {
            throw ManagementError(.invalidInput, field: "description", "must not contain the NUL character (U+0000)")
        }
    }

    /// Scopes being handed out: at least one, at most `ScopeSet.maxCount`, each in the catalog
    /// (the error names `scopes[i]`).
    private func checkNewScopes(_ scopes: [Scope]) throws(ManagementError) -> ScopeSet {
        guard !scopes.isEmpty else {
            throw ManagementError(.invalidInput, field: "scopes", "must hold at least one scope, e.g. clients:view")
        }
        guard scopes.count <= ScopeSet.maxCount else {
            throw ManagementError(.invalidInput, field: "scopes", "holds more than \(ScopeSet.maxCount) scopes")
        }
        for (index, scope) in scopes.enumerated() {
            do { try policy.catalog.check(scope) } catch {
                throw ManagementError(.invalidInput, field: "scopes[\(index)]", "\(error)")
            }
        }
        return ScopeSet(scopes)
    }

    func signingKey() throws(ManagementError) -> SecretKey {
        do { return try keyStore.signingKey() } catch {
            throw ManagementError(.internalFailure, "no key to sign tokens with", underlying: "\(error)")
        }
    }

    static func nextGeneration(_ record: inout PATRecord) throws(ManagementError) {
        guard record.generation < PATClaims.maxGeneration else {
            throw ManagementError(.conflict, field: "id", "PAT \(record.id) reached the last generation (2^53−1): create a new PAT")
        }
        record.generation += 1
    }

    /// Signs the record's current generation. After a revoke-all of the owner, `iat` is at
    /// least the revoke-all instant (at most one second ahead, inside any verifier's leeway)
    /// so that the new token is not refused by the owner entry.
    static func issue(_ record: PATRecord, now: Timestamp, key: SecretKey, tx: any RegistryTransaction) async throws -> IssuedPAT {
        var issuedAt = now
        if let revocation = try await tx.ownerRevocation(owner: record.owner), revocation.issuedBefore > issuedAt {
            issuedAt = revocation.issuedBefore
        }
        guard issuedAt < record.expiresAt else {
            throw ManagementError(.invalidInput, field: "expiresAt",
                                  "PAT \(record.id) would expire (\(record.expiresAt)) before it is issued (\(issuedAt)): choose a later expiry")
        }
        do {
            let token = try Issuer(key: key).issue(try record.claims(issuedAt: issuedAt))
            return IssuedPAT(record: record, token: token, issuedAt: issuedAt)
        } catch .invalidClaims(let reason) {
            throw ManagementError(.invalidInput, field: "scopes", reason)
        }
    }

    /// Runs a write transaction; any failure becomes a `ManagementError`.
    func change<T: Sendable>(id: String?, _ body: @escaping @Sendable (any RegistryTransaction) async throws -> T) async throws(ManagementError) -> T {
        do { return try await store.write(body) } catch { throw ManagementError.wrapping(error, id: id) }
    }

    func read<T: Sendable>(_ body: @escaping @Sendable (any RegistryTransaction) async throws -> T) async throws(ManagementError) -> T {
        do { return try await store.read(body) } catch { throw ManagementError.wrapping(error) }
    }

    /// After a committed change: publish (when this service publishes) and notify.
    @discardableResult
    func changed(_ reason: String) async -> Publication {
        let publication = await republisher?.publishChange(reason: reason) ?? .deferred
        onChange()
        return publication
    }

    /// For an operation that changed nothing: whether what it asked for is published already.
    private var unchanged: Publication { republisher?.publication ?? .deferred }
}

extension Caller {
    var isLocalOperator: Bool {
        if case .localOperator = self { return true }
        return false
    }
}
