import PATStore

/// Where PAT records live, behind one protocol for every back end: SQLite (`SQLiteRegistry`,
/// the embedded default) and any server database (PostgreSQL).
///
/// Both methods run `body` in one transaction: everything it does through the transaction
/// commits together when it returns, and is rolled back when it throws. `write` transactions
/// are exclusive read-modify-write transactions: concurrent writers, in this process or in
/// others, wait for each other instead of failing or interleaving. `read` sees one consistent
/// state. The transaction must not be used after `body` returns.
///
/// The store keeps what must survive every process and be shared by every issuer node: the
/// records, tombstones, owner revocations, the sequence of the last published list, the
/// change counter and the outbox of change events.
public protocol PATRegistryStore: Sendable {
    func read<T: Sendable>(_ body: @Sendable (any RegistryTransaction) async throws -> T) async throws -> T
    func write<T: Sendable>(_ body: @Sendable (any RegistryTransaction) async throws -> T) async throws -> T
}

/// The operations available inside one registry transaction. Identities (ids, owners, names)
/// compare as bytes.
public protocol RegistryTransaction: Sendable {
    /// The live (non-deleted) record with this id.
    func record(id: String) async throws -> PATRecord?
    /// The live record of `owner` named `name`.
    func record(owner: String, name: String) async throws -> PATRecord?
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

    /// The sequence number of the last published revocation list (0: never published).
    func publishSequence() async throws -> UInt64
    func setPublishSequence(_ sequence: UInt64) async throws

    /// Appends `event` to the outbox and raises the change counter by one; returns the event
    /// with its id. Keeps at most `ChangeEvent.outboxCapacity` events (the oldest go).
    func recordChange(_ event: ChangeEvent) async throws -> ChangeEvent
    /// Raised by every recorded change, never lowered: a server compares it to notice changes
    /// made by other processes.
    func changeCounter() async throws -> UInt64
    /// Events in the outbox with an id above `id`, oldest first, at most `limit`.
    func events(after id: Int64, limit: Int) async throws -> [ChangeEvent]
    /// Removes events from the outbox (delivered, or given up on).
    func removeEvents(_ ids: [Int64]) async throws
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
