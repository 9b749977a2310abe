import PATStore

/// Where PAT records live, behind one protocol for every back end: SQLite (`SQLiteRegistry`,
/// the embedded default) and PostgreSQL (`PostgresRegistry` in `PATRegistryPostgres`, for
/// several issuer nodes on one database).
///
/// Both methods run `body` in one transaction: everything it does through the transaction
/// commits together when it returns, and is rolled back when it throws. `read` sees one
/// consistent state. `write` transactions are read-modify-write transactions that never lose
/// an update, in this process, in other processes or on other nodes:
///
/// - SQLite runs them one at a time (`BEGIN IMMEDIATE`).
/// - PostgreSQL runs them concurrently at READ COMMITTED and serializes what must be serial
///   with locks the body takes through the transaction: `lockOwner`/`lockRecord` (every
///   change to an owner's PATs, one owner at a time), `publishSequence` (publishes, one at a
///   time), unique constraints (ids, names). A body must therefore take the lock before it
///   reads what it is about to change.
///
/// `write` may run `body` more than once when the database asks for a retry (a PostgreSQL
/// deadlock or serialization failure), so `body` must have no effect outside the transaction.
/// The transaction must not be used after `body` returns. A database that cannot be reached
/// in time fails with `RegistryError.Kind.unavailable` (callers answer "try again later").
///
/// The store keeps what must survive every process and be shared by every issuer node: the
/// records, tombstones, owner revocations, the sequence of the last published list, the
/// change counter and the outbox of change events.
public protocol PATRegistryStore: Sendable {
    func read<T: Sendable>(_ body: @Sendable (any RegistryTransaction) async throws -> T) async throws -> T
    func write<T: Sendable>(_ body: @Sendable (any RegistryTransaction) async throws -> T) async throws -> T

    /// Yields once each time changes committed through *another* store (another process, another
    /// issuer node) may have happened since the last element — changes made through this store
    /// are not announced: their maker knows. Elements coalesce (a slow consumer sees one for
    /// many changes); a consumer reads the store to learn what changed. The first element comes
    /// once the store watches (whatever happened before is the consumer's to read). SQLite polls
    /// the change counter; PostgreSQL listens (`LISTEN`/`NOTIFY`) and also yields after
    /// re-connecting, since notifications may have been missed meanwhile. The stream ends when the
    /// consumer stops iterating (its task is cancelled) or the store is closed.
    func externalChanges() -> AsyncStream<Void>

    /// Releases the store's connections and background work; later transactions fail.
    func close() async
}

/// The operations available inside one registry transaction. Identities (ids, owners, names)
/// compare as bytes.
public protocol RegistryTransaction: Sendable {
    /// The live (non-deleted) record with this id.
    func record(id: String) async throws -> PATRecord?
    /// The live record of `owner` named `name`.
    func record(owner: String, name: String) async throws -> PATRecord?

    /// In a write transaction: makes this transaction the only one changing `owner`'s PATs
    /// (records, tombstones, owner revocation) until it ends, waiting for one that does. Take it
    /// before reading what the transaction will change: a change to a PAT reads its record
    /// through `lockRecord`, creating a PAT or revoking all of an owner's locks the owner first.
    /// SQLite write transactions are serial already (a no-op there).
    func lockOwner(_ owner: String) async throws
    /// The live record with this id, read after locking its owner (`lockOwner`): what a write
    /// transaction changes a PAT from.
    func lockRecord(id: String) async throws -> PATRecord?
    /// Live records, optionally of one owner and status at `now`, ordered by owner, name, id (bytes).
    func records(owner: String?, status: StatusFilter, now: Timestamp) async throws -> [PATRecord]
    /// The number of live records.
    func recordCount() async throws -> Int
    /// Adds a new record; throws a conflict when its id or (owner, name) is taken.
    func insert(_ record: PATRecord) async throws
    /// Replaces the stored record of the same id; throws a conflict when its (owner, name) is taken.
    func update(_ record: PATRecord) async throws
    /// Removes a live record (the caller adds the tombstone).
    func removeRecord(id: String) async throws

    /// Entries of live records whose floor is above 1 (some generation is dead).
    func supersededEntries() async throws -> [SupersededEntry]

    func tombstone(id: String) async throws -> Tombstone?
    /// Adds a tombstone; one that exists keeps the later horizon.
    func insertTombstone(_ tombstone: Tombstone) async throws
    func tombstones() async throws -> [Tombstone]
    /// Removes tombstones whose horizon is before `cutoff`; returns how many.
    func removeTombstones(horizonBefore cutoff: Timestamp) async throws -> Int

    func ownerRevocation(owner: String) async throws -> OwnerRevocation?
    /// Stores the revocation, merged with the owner's existing one (the stronger wins).
    func saveOwnerRevocation(_ revocation: OwnerRevocation) async throws
    func ownerRevocations() async throws -> [OwnerRevocation]
    /// Removes owner revocations whose horizon is before `cutoff`; returns how many.
    func removeOwnerRevocations(horizonBefore cutoff: Timestamp) async throws -> Int

    /// The sequence number of the last published revocation list (0: never published). In a
    /// write transaction it also makes this the only publishing transaction until it ends
    /// (PostgreSQL: a row lock): a publisher reads it *first*, so that everything it reads after
    /// includes every change committed before its sequence was taken, and two publishers on two
    /// nodes never take the same or a lower sequence.
    func publishSequence() async throws -> UInt64
    func setPublishSequence(_ sequence: UInt64) async throws
    /// Stamps every list change not stamped yet with `sequence` — the sequence of the list being
    /// published, taken first in the same write transaction — and forgets the changes stamped at or
    /// below `forgettingThrough`. A list change is a `pats` row with a floor above 1, a tombstone or
    /// an owner revocation inserted, updated or deleted, logged by the schema's triggers (v8).
    /// A change committed after the stamp stays unstamped for the next publish: everything this
    /// publish reads after stamping holds at least the changes it stamped.
    func stampListChanges(_ sequence: UInt64, forgettingThrough: UInt64) async throws
    /// The ids and owners with a list change stamped above `sequence`, with their rows now.
    func listChanges(after sequence: UInt64) async throws -> ListChanges

    /// Appends `event` to the outbox and raises the change counter by one; returns the event
    /// with its id. Keeps at most `ChangeEvent.outboxCapacity` events (the oldest go).
    func recordChange(_ event: ChangeEvent) async throws -> ChangeEvent
    /// Raised by every recorded change, never lowered (PostgreSQL: a sequence, so a change that
    /// rolls back may raise it too). For diagnostics and tests; servers learn of other
    /// processes' changes from `PATRegistryStore.externalChanges()`.
    func changeCounter() async throws -> UInt64
    /// Events in the outbox with an id above `id`, oldest first, at most `limit`, claimed or not.
    func events(after id: Int64, limit: Int) async throws -> [ChangeEvent]
    /// Removes events from the outbox (delivered, or given up on).
    func removeEvents(_ ids: [Int64]) async throws

    /// Claims up to `limit` events, oldest first, that no one holds (never claimed, released, or
    /// whose lease ran out — its end is at or before now: its holder died), for `claimant` until `lease` from now by the
    /// database's clock. Claimers on several nodes never get the same event while a lease holds
    /// (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so they do not wait for each other either).
    func claimEvents(claimant: String, lease: Duration, limit: Int) async throws -> [ChangeEvent]
    /// Extends `claimant`'s leases on these events to `lease` from now; returns the ids it
    /// still held (a lease that ran out may have gone to another claimant).
    func renewClaims(_ ids: [Int64], claimant: String, lease: Duration) async throws -> [Int64]
    /// Gives `claimant`'s claims on these events back, for any claimant to take at once.
    func releaseClaims(_ ids: [Int64], claimant: String) async throws

    // MARK: leaks

    /// Records the first report of a leaked PAT generation; false (and nothing changed) when that
    /// generation was reported before — by this node, another node, or a replayed request.
    func recordLeak(_ leak: LeakRecord) async throws -> Bool
    /// The first report of a leaked generation, if any.
    func leak(id: String, generation: UInt64) async throws -> LeakRecord?

    // MARK: usage

    /// Adds an edge's report of one PAT's use: the last use wins (by its time), uses add up per
    /// day (days older than `UsageDay.retention` are dropped), and the client address joins the
    /// PAT's known addresses (at most `addressLimit`; the least recently seen goes). Takes no
    /// lock on the PAT: usage lives in tables of its own. `newAddress` is true when the address
    /// was not known and the PAT had been seen from another address before (the first address
    /// of a PAT is not "new"); on several nodes exactly one report of an address finds it new.
    func recordUsage(_ update: UsageUpdate, addressLimit: Int) async throws -> UsageRecorded
    /// Uses per day of a PAT, oldest first.
    func usageDays(id: String) async throws -> [UsageDay]

    // MARK: expiry

    /// Active records (not revoked) whose expiry is after `after` and at or before `through`,
    /// soonest first, with the lead times (seconds) of the expiry notices already sent for their
    /// current expiry.
    func expiringRecords(after: Timestamp, through: Timestamp) async throws -> [(record: PATRecord, noticed: Set<Int64>)]
    /// Records that the notice for `id` expiring at `expiresAt`, `leadSeconds` ahead, is sent;
    /// false when it was already (on any node): the caller then sends nothing.
    func claimExpiryNotice(id: String, expiresAt: Timestamp, leadSeconds: Int64, at time: Timestamp) async throws -> Bool
    /// Removes notices of expiries before `cutoff`; returns how many.
    func removeExpiryNotices(expiresBefore cutoff: Timestamp) async throws -> Int

    // MARK: lifetime policies

    func lifetimePolicy(domain: String) async throws -> LifetimePolicy?
    /// Every domain's policy, ordered by domain (bytes).
    func lifetimePolicies() async throws -> [LifetimePolicy]
    /// Sets (or replaces) the domain's policy.
    func saveLifetimePolicy(_ policy: LifetimePolicy) async throws
    /// Removes the domain's policy; false when it had none.
    func removeLifetimePolicy(domain: String) async throws -> Bool
}

extension RegistryTransaction {
    /// The live record, or a "no PAT with id" / "was deleted" error.
    public func requireRecord(id: String) async throws -> PATRecord {
        if let record = try await record(id: id) { return record }
        if let tombstone = try await tombstone(id: id) { throw RegistryError.deleted(tombstone) }
        throw RegistryError.notFound(id)
    }

    /// Removes a live record and records its tombstone.
    public func deleteRecord(id: String, now: Timestamp) async throws -> Tombstone {
        let record = try await requireRecord(id: id)
        let tombstone = Tombstone(id: record.id, owner: record.owner, horizon: record.maxExpiresAt, deletedAt: now)
        try await removeRecord(id: id)
        try await insertTombstone(tombstone)
        return tombstone
    }
}

extension PATRegistryStore {
    /// The live record with this id, or nil.
    public func get(id: String) async throws -> PATRecord? {
        try await read { tx in try await tx.record(id: id) }
    }

    public func list(owner: String? = nil, status: StatusFilter = .all, now: Timestamp) async throws -> [PATRecord] {
        try await read { tx in try await tx.records(owner: owner, status: status, now: now) }
    }

    public func changeCounter() async throws -> UInt64 {
        try await read { tx in try await tx.changeCounter() }
    }

    public func publishSequence() async throws -> UInt64 {
        try await read { tx in try await tx.publishSequence() }
    }
}
