import PATStore

/// The operations available inside one registry transaction. Everything done through one
/// value of this type commits together or not at all.
public protocol RegistryTransaction {
    /// The live (non-deleted) record with this id.
    func record(id: String) throws -> PATRecord?
    /// The live record of `owner` named `name`.
    func record(owner: String, name: String) throws -> PATRecord?
    /// Live records, optionally of one owner and status at `now`, ordered by owner then name.
    func records(owner: String?, status: StatusFilter, now: Timestamp) throws -> [PATRecord]
    /// The number of live records.
    func recordCount() throws -> Int
    /// Adds a new record; throws a conflict when its id or (owner, name) is taken.
    func insert(_ record: PATRecord) throws
    /// Replaces the stored record of the same id.
    func update(_ record: PATRecord) throws
    /// Removes a live record (the caller adds the tombstone).
    func removeRecord(id: String) throws

    /// Entries of live records whose floor is above 1 (some generation is dead).
    func supersededEntries() throws -> [SupersededEntry]

    func tombstone(id: String) throws -> Tombstone?
    func insertTombstone(_ tombstone: Tombstone) throws
    func tombstones() throws -> [Tombstone]
    /// Removes tombstones whose horizon is before `cutoff`; returns how many.
    func removeTombstones(horizonBefore cutoff: Timestamp) throws -> Int

    func ownerRevocation(owner: String) throws -> OwnerRevocation?
    /// Stores the revocation, merged with the owner's existing one (the stronger wins).
    func saveOwnerRevocation(_ revocation: OwnerRevocation) throws
    func ownerRevocations() throws -> [OwnerRevocation]
    /// Removes owner revocations whose horizon is before `cutoff`; returns how many.
    func removeOwnerRevocations(horizonBefore cutoff: Timestamp) throws -> Int

    /// The sequence number of the last published revocation list (0: never published).
    func publishSequence() throws -> UInt64
    func setPublishSequence(_ sequence: UInt64) throws
}

/// Where PAT records live. SQLite (`SQLiteRegistry`) is the default; another database can
/// implement these two methods. `write` runs `body` in one exclusive read-modify-write
/// transaction (committed when `body` returns, rolled back when it throws); concurrent
/// writers, in this process or others, wait for each other instead of failing.
public protocol PATRegistryStore: Sendable {
    func read<T>(_ body: (any RegistryTransaction) throws -> T) throws -> T
    func write<T>(_ body: (any RegistryTransaction) throws -> T) throws -> T
}

extension PATRegistryStore {
    /// Adds a new record.
    public func create(_ record: PATRecord) throws {
        try write { tx in try tx.insert(record) }
    }

    /// The live record with this id, or nil.
    public func get(id: String) throws -> PATRecord? {
        try read { tx in try tx.record(id: id) }
    }

    /// The live record with this id; throws "no PAT with id …" (or "was deleted").
    public func require(id: String) throws -> PATRecord {
        try read { tx in try tx.requireRecord(id: id) }
    }

    public func list(owner: String? = nil, status: StatusFilter = .all, now: Timestamp) throws -> [PATRecord] {
        try read { tx in try tx.records(owner: owner, status: status, now: now) }
    }

    /// Reads, changes and writes back one record in one transaction.
    @discardableResult
    public func update(id: String, _ change: (inout PATRecord) throws -> Void) throws -> PATRecord {
        try write { tx in
            var record = try tx.requireRecord(id: id)
            try change(&record)
            record.id = id
            try tx.update(record)
            return record
        }
    }

    /// Deletes a record, leaving a tombstone whose horizon is its latest `exp`.
    @discardableResult
    public func delete(id: String, now: Timestamp) throws -> Tombstone {
        try write { tx in try tx.deleteRecord(id: id, now: now) }
    }

    public func tombstone(id: String) throws -> Tombstone? {
        try read { tx in try tx.tombstone(id: id) }
    }

    public func ownerRevocations() throws -> [OwnerRevocation] {
        try read { tx in try tx.ownerRevocations() }
    }

    public func publishSequence() throws -> UInt64 {
        try read { tx in try tx.publishSequence() }
    }

    public func count() throws -> Int {
        try read { tx in try tx.recordCount() }
    }
}

extension RegistryTransaction {
    /// The live record, or a "no PAT with id" / "was deleted" error.
    public func requireRecord(id: String) throws -> PATRecord {
        if let record = try record(id: id) { return record }
        if let tombstone = try tombstone(id: id) { throw RegistryError.deleted(tombstone) }
        throw RegistryError.notFound(id)
    }

    /// Removes a live record and records its tombstone.
    public func deleteRecord(id: String, now: Timestamp) throws -> Tombstone {
        let record = try requireRecord(id: id)
        let tombstone = Tombstone(id: record.id, owner: record.owner, horizon: record.maxExpiresAt, deletedAt: now)
        try removeRecord(id: id)
        try insertTombstone(tombstone)
        return tombstone
    }
}
