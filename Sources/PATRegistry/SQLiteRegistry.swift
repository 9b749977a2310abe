import Foundation
import GRDB
import PATStore
import Synchronization

/// The registry in an SQLite database (default `HOME/pat.db`), created on first use.
///
/// - WAL journal, `synchronous = FULL`: a committed change survives a crash or power loss.
/// - Every write transaction is `BEGIN IMMEDIATE`, so a read-modify-write never races another
///   process; a busy database is waited for (`busyTimeout`) instead of failing.
/// - The schema is versioned by `DatabaseMigrator` ("v1", "v2", …); opening migrates it, under
///   a file lock so two processes creating the database at once do not collide.
/// - Rows map to records through GRDB's `Codable` record protocols (`Rows.swift`).
///
/// Transactions: the store protocol's transaction body is async (a server back end such as
/// PostgreSQL awaits every statement), while GRDB runs each database access as one synchronous
/// closure on its own serial queue. So a transaction here is an explicit `BEGIN` … `COMMIT`
/// spanning several GRDB accesses (each awaited on GRDB's queue, never blocking the caller's
/// thread). `allowsUnsafeTransactions` permits the transaction to stay open between accesses;
/// `gate` keeps every other access of this process out meanwhile, and every transaction ends in
/// `COMMIT` or `ROLLBACK`, cancelled or not.
public final class SQLiteRegistry: PATRegistryStore {
    public let path: String
    /// How often `externalChanges()` reads the change counter while someone listens.
    public let changePollInterval: Duration
    private let queue: DatabaseQueue
    private let gate = AsyncGate()
    /// The change counter up to which every change is known to `externalChanges()`'s listeners:
    /// made here, or announced. Nil while nobody listens.
    private let knownChanges = KnownChanges()
    private let feed: ChangeFeed

    /// The default database of a home: `HOME/pat.db`.
    public static func defaultPath(in home: PATHome) -> String { home.path + "/pat.db" }

    /// Opens (creating and migrating when needed) the registry of `home`.
    public convenience init(home: PATHome, busyTimeout: TimeInterval = 30) throws {
        do { try SecureFile.createDirectory(home.path, mode: 0o700) } catch {
            throw RegistryError(.database, "cannot create the PATKit home \(home.path): \(error)")
        }
        try self.init(path: SQLiteRegistry.defaultPath(in: home), busyTimeout: busyTimeout)
    }

    /// Opens (creating and migrating when needed) the database at `path`.
    public init(path: String, busyTimeout: TimeInterval = 30, changePollInterval: Duration = .milliseconds(500)) throws {
        self.path = path
        self.changePollInterval = changePollInterval
        let interval = changePollInterval
        let known = knownChanges
        feed = ChangeFeed { feed in await SQLiteRegistry.pollChanges(path: path, interval: interval, known: known, feed: feed) }
        var config = Configuration()
        config.busyMode = .timeout(busyTimeout)
        config.journalMode = .wal
        config.label = "pat.registry"
        config.allowsUnsafeTransactions = true // see the type's comment
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        do {
            queue = try FileLock(path: path + ".lock").withLock {
                // Created 0600 before SQLite opens it (SQLite would use the umask, often 0644);
                // its -wal and -shm files take the database's mode.
                try SecureFile.createIfAbsent(path, mode: 0o600)
                let queue = try DatabaseQueue(path: path, configuration: config)
                try queue.writeWithoutTransaction { db in
                    if try SQLiteRegistry.migrator.hasBeenSuperseded(db) {
                        let known = try SQLiteRegistry.migrator.appliedIdentifiers(db).sorted().joined(separator: ", ")
                        throw RegistryError(.database, "\(path) has schema migrations this pat does not know (\(known)): "
                                            + "it was written by a newer pat; upgrade pat to use it")
                    }
                }
                try SQLiteRegistry.migrator.migrate(queue)
                return queue
            }
        } catch let error as RegistryError {
            throw error
        } catch {
            throw SQLiteRegistry.describe(error, path: path)
        }
    }

    /// Opens the existing database at `path` for reading only: nothing is created, migrated or
    /// locked, so reading works on a read-only home and a mistyped path creates no file. Writes
    /// through it fail.
    public init(readingOnly path: String, busyTimeout: TimeInterval = 30) throws {
        self.path = path
        self.changePollInterval = .milliseconds(500)
        feed = ChangeFeed { _ in }
        guard SecureFile.exists(path) else {
            throw RegistryError(.database, "no registry at \(path): nothing was recorded in this home yet (`pat create` records a PAT)")
        }
        var config = Configuration()
        config.readonly = true
        config.busyMode = .timeout(busyTimeout)
        config.label = "pat.registry"
        config.allowsUnsafeTransactions = true // see the type's comment
        do {
            do {
                queue = try DatabaseQueue(path: path, configuration: config)
            } catch let error as DatabaseError where error.resultCode == .SQLITE_CANTOPEN && access(SQLiteRegistry.folder(of: path), W_OK) != 0 {
                // A WAL database in a folder we may not write: SQLite cannot create its -shm
                // file, so it is read as immutable (no locks). Only the folder's owner can change
                // it meanwhile, and a read command then shows what was committed when it began.
                queue = try DatabaseQueue(path: "file:" + SQLiteRegistry.uriEscaped(path) + "?immutable=1", configuration: config)
            }
            let current = try queue.read { db in try SQLiteRegistry.migrator.hasCompletedMigrations(db) }
            guard current else {
                throw RegistryError(.database, "\(path) has a schema this pat does not read (written by another pat version): "
                                    + "run a command that writes, e.g. `pat publish`, to migrate it, or use the matching pat")
            }
        } catch let error as RegistryError {
            throw error
        } catch {
            throw SQLiteRegistry.describe(error, path: path)
        }
    }

    static func folder(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    /// `path` for a `file:` URI: `%`, `?` and `#` percent-encoded.
    static func uriEscaped(_ path: String) -> String {
        var out = ""
        for character in path {
            switch character {
            case "%": out += "%25"
            case "?": out += "%3F"
            case "#": out += "%23"
            default: out.append(character)
            }
        }
        return out
    }

    /// The schema (`RegistrySchema`), one GRDB migration per version.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        for migration in RegistrySchema.migrations {
            migrator.registerMigration(migration.identifier) { db in try db.execute(sql: migration.sqlite) }
        }
        return migrator
    }

    public func read<T: Sendable>(_ body: @Sendable (any RegistryTransaction) async throws -> T) async throws -> T {
        try await transaction(begin: "BEGIN DEFERRED", body)
    }

    public func write<T: Sendable>(_ body: @Sendable (any RegistryTransaction) async throws -> T) async throws -> T {
        try await transaction(begin: "BEGIN IMMEDIATE", body)
    }

    public func externalChanges() -> AsyncStream<Void> { feed.subscribe() }

    /// Ends `externalChanges()`' streams. The database itself closes with the object.
    public func close() async { feed.close() }

    /// The poller behind `externalChanges()`: reads the change counter every `interval` through
    /// its own connection, and announces a rise that this process's commits do not explain.
    private static func pollChanges(path: String, interval: Duration, known: KnownChanges, feed: ChangeFeed) async {
        guard let reader = try? SQLiteRegistry(path: path, changePollInterval: interval) else { return }
        known.value.withLock { $0 = nil }
        while !Task.isCancelled {
            if let counter = try? await reader.changeCounter() {
                // The first reading announces too: the listener starts from a known point.
                let announce = known.value.withLock { known -> Bool in
                    defer { known = max(known ?? counter, counter) }
                    return known.map { counter > $0 } ?? true
                }
                if announce { feed.broadcast() }
            }
            do { try await Task.sleep(for: interval) } catch { return }
        }
    }

    /// After a commit of this process that raised the change counter from `before` to `after`:
    /// announces the changes of others committed since the last known value, if any.
    private func noteOwnChanges(before: UInt64, after: UInt64) {
        let announce = knownChanges.value.withLock { known -> Bool in
            guard let current = known else { return false }
            known = max(current, after)
            return before > current
        }
        if announce { feed.broadcast() }
    }

    private func transaction<T: Sendable>(begin: String, _ body: @Sendable (any RegistryTransaction) async throws -> T) async throws -> T {
        let path = self.path
        return try await gate.withLock {
            let tx = SQLiteTransaction(queue: queue, path: path)
            do { try await tx.access { db in try db.execute(sql: begin) } } catch {
                throw SQLiteRegistry.describe(error, path: path)
            }
            let result: T
            do {
                result = try await body(tx)
            } catch {
                try? await tx.access { db in if db.isInsideTransaction { try db.execute(sql: "ROLLBACK") } }
                throw SQLiteRegistry.describe(error, path: path)
            }
            FaultPoint.reached("registry.uncommitted", path)
            do {
                try await tx.access { db in try db.execute(sql: "COMMIT") }
            } catch {
                try? await tx.access { db in if db.isInsideTransaction { try db.execute(sql: "ROLLBACK") } }
                throw SQLiteRegistry.describe(error, path: path)
            }
            if let changes = tx.tally.range { noteOwnChanges(before: changes.before, after: changes.after) }
            return result
        }
    }

    /// The change counter up to which every change is known to `externalChanges()`' listeners.
    final class KnownChanges: Sendable {
        let value = Mutex<UInt64?>(nil)
    }

    /// Turns database errors into messages that say what to do; other errors pass through.
    static func describe(_ error: any Error, path: String) -> any Error {
        guard let error = error as? DatabaseError else { return error }
        switch error.resultCode {
        case .SQLITE_BUSY, .SQLITE_LOCKED:
            return RegistryError(.unavailable, "the registry \(path) stayed locked by another process past the busy timeout: "
                                 + "wait for it to finish and try again")
        case .SQLITE_READONLY, .SQLITE_CANTOPEN, .SQLITE_PERM, .SQLITE_AUTH:
            return RegistryError(.database, "cannot open the registry \(path) for writing (\(error.message ?? "\(error.resultCode)")): "
                                 + "check that the PATKit home exists and is writable")
        case .SQLITE_CORRUPT, .SQLITE_NOTADB:
            return RegistryError(.database, "the registry \(path) is not a valid SQLite database (\(error.message ?? "corrupt")): "
                                 + "restore it from a backup")
        case .SQLITE_FULL, .SQLITE_IOERR:
            return RegistryError(.database, "cannot write the registry \(path) (\(error.message ?? "I/O error")): check free disk space")
        case .SQLITE_CONSTRAINT:
            return RegistryError(.conflict, "registry \(path): \(error.message ?? "constraint violated")")
        default:
            return RegistryError(.database, "registry \(path): \(error.message ?? "\(error)")")
        }
    }
}

/// One SQLite transaction: every operation is one access on GRDB's queue, inside the
/// `BEGIN` … `COMMIT` that `SQLiteRegistry` opened.
struct SQLiteTransaction: RegistryTransaction {
    let queue: DatabaseQueue
    let path: String
    /// The change counter before and after this transaction's recorded changes.
    let tally = ChangeTally()

    final class ChangeTally: Sendable {
        private let value = Mutex<(before: UInt64, after: UInt64)?>(nil)
        var range: (before: UInt64, after: UInt64)? { value.withLock { $0 } }
        func note(before: UInt64, after: UInt64) {
            value.withLock { $0 = ($0?.before ?? before, after) }
        }
    }

    /// Runs `body` on GRDB's queue. Not cancellable: a transaction always gets to its
    /// `COMMIT` or `ROLLBACK`.
    func access<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            queue.asyncWriteWithoutTransaction { db in
                continuation.resume(with: Result { try body(db) })
            }
        }
    }

    func record(id: String) async throws -> PATRecord? {
        try await access { db in try SQLiteTransaction.withUsage(db, PATRow.fetchOne(db, key: id)) }
    }

    func record(owner: String, name: String) async throws -> PATRecord? {
        try await access { db in
            try SQLiteTransaction.withUsage(db, PATRow.filter(PATRow.Columns.owner == owner && PATRow.Columns.name == name).fetchOne(db))
        }
    }

    /// The row's record with its usage (its own table).
    private static func withUsage(_ db: Database, _ row: PATRow?) throws -> PATRecord? {
        guard let row else { return nil }
        var record = try row.record()
        record.usage = try UsageRow.fetchOne(db, key: row.id)?.usage
        return record
    }

    /// Write transactions are serial (`BEGIN IMMEDIATE`): nothing to lock.
    func lockOwner(_ owner: String) async throws {}

    func lockRecord(id: String) async throws -> PATRecord? { try await record(id: id) }

    func records(owner: String?, status: StatusFilter, now: Timestamp) async throws -> [PATRecord] {
        try await access { db in
            var request = PATRow.all()
            if let owner { request = request.filter(PATRow.Columns.owner == owner) }
            let floor = PATRow.Columns.floor, generation = PATRow.Columns.generation, expiresAt = PATRow.Columns.expiresAt
            switch status {
            case .all: break
            case .revoked: request = request.filter(floor > generation)
            case .expired: request = request.filter(floor <= generation && expiresAt <= now.seconds)
            case .active: request = request.filter(floor <= generation && expiresAt > now.seconds)
            }
            let rows = try request.order(PATRow.Columns.owner, PATRow.Columns.name, PATRow.Columns.id).fetchAll(db)
            let usage = owner.map { UsageRow.filter(sql: "id IN (SELECT id FROM pats WHERE owner = ?)", arguments: [$0]) } ?? UsageRow.all()
            var usageByID: [String: PATUsage] = [:]
            for row in try usage.fetchAll(db) { usageByID[row.id] = row.usage }
            return try rows.map { row in
                var record = try row.record()
                record.usage = usageByID[row.id]
                return record
            }
        }
    }

    func recordCount() async throws -> Int {
        try await access { db in try PATRow.fetchCount(db) }
    }

    func insert(_ record: PATRecord) async throws {
        try record.checkInvariants()
        let row = PATRow(record)
        try await access { db in
            if let existing = try PATRow.filter(PATRow.Columns.owner == row.owner && PATRow.Columns.name == row.name).fetchOne(db) {
                throw RegistryError(.conflict, "owner \(row.owner) already has a PAT named \"\(row.name)\" (id \(existing.id))")
            }
            if try PATRow.exists(db, key: row.id) || TombstoneRow.exists(db, key: row.id) {
                throw RegistryError(.conflict, "a PAT with id \(row.id) already exists or existed")
            }
            try row.insert(db)
        }
    }

    func update(_ record: PATRecord) async throws {
        try record.checkInvariants()
        let row = PATRow(record)
        try await access { db in
            if let other = try PATRow.filter(PATRow.Columns.owner == row.owner && PATRow.Columns.name == row.name).fetchOne(db),
               other.id != row.id {
                throw RegistryError(.conflict, "owner \(row.owner) already has a PAT named \"\(row.name)\" (id \(other.id))")
            }
            do { try row.update(db) } catch RecordError.recordNotFound {
                throw RegistryError.notFound(row.id)
            }
        }
    }

    func removeRecord(id: String) async throws {
        let removed = try await access { db in
            guard try PATRow.deleteOne(db, key: id) else { return false }
            // What only a live record needs: its usage and expiry notices.
            for table in ["pat_usage", "pat_usage_days", "pat_addresses", "expiry_notices"] {
                try db.execute(sql: "DELETE FROM \(table) WHERE id = ?", arguments: [id])
            }
            return true
        }
        guard removed else { throw RegistryError.notFound(id) }
    }

    /// Read through a raw row cursor, not a `Codable` record: the list is built from every
    /// revoked PAT, and at 1,000,000 of them decoding records cost 0.4 s of a publish (measured:
    /// perf, `scripts/multinode-bench.py publish`).
    func supersededEntries() async throws -> [SupersededEntry] {
        try await access { db in
            let count = try PATRow.filter(PATRow.Columns.floor > 1).fetchCount(db)
            return try SQLiteTransaction.supersededEntries(db, reserving: count)
        }
    }

    /// Superseded entries of the rows `condition` selects among those with a floor above 1.
    private static func supersededEntries(_ db: Database, reserving count: Int, where condition: String = "",
                                          arguments: StatementArguments = []) throws -> [SupersededEntry] {
        var entries: [SupersededEntry] = []
        entries.reserveCapacity(count)
        let rows = try Row.fetchCursor(db, sql: "SELECT id, floor, max_expires_at, overlap_generation, overlap_until FROM pats WHERE floor > 1"
                                           + condition, arguments: arguments)
        while let row = try rows.next() {
            let floor: Int64 = row[1]
            guard floor >= 1 else { throw RegistryError(.database, "a PAT has a floor below 1 in the registry") }
            let id: String = row[0]
            let overlap: PATRecord.Overlap? = row.hasNull(atIndex: 3) && row.hasNull(atIndex: 4)
                ? nil : try PATRow.overlap(id: id, generation: row[3], until: row[4])
            entries.append(SupersededEntry(id: id, floor: UInt64(floor), horizon: Timestamp(seconds: row[2]), overlap: overlap))
        }
        return entries
    }

    func tombstone(id: String) async throws -> Tombstone? {
        try await access { db in try TombstoneRow.fetchOne(db, key: id) }?.tombstone
    }

    func insertTombstone(_ tombstone: Tombstone) async throws {
        let row = TombstoneRow(tombstone)
        try await access { db in
            if var existing = try TombstoneRow.fetchOne(db, key: row.jti) {
                existing.horizon = max(existing.horizon, row.horizon)
                try existing.update(db)
            } else {
                try row.insert(db)
            }
        }
    }

    func tombstones() async throws -> [Tombstone] {
        try await access { db in try TombstoneRow.order(TombstoneRow.Columns.jti).fetchAll(db) }.map(\.tombstone)
    }

    func removeTombstones(horizonBefore cutoff: Timestamp) async throws -> Int {
        try await access { db in try TombstoneRow.filter(TombstoneRow.Columns.horizon < cutoff.seconds).deleteAll(db) }
    }

    func ownerRevocation(owner: String) async throws -> OwnerRevocation? {
        try await access { db in try OwnerRevocationRow.fetchOne(db, key: owner) }?.revocation
    }

    func saveOwnerRevocation(_ revocation: OwnerRevocation) async throws {
        try await access { db in
            let merged = try OwnerRevocationRow.fetchOne(db, key: revocation.owner).map { $0.revocation.merged(with: revocation) } ?? revocation
            try OwnerRevocationRow(merged).save(db)
        }
    }

    func ownerRevocations() async throws -> [OwnerRevocation] {
        try await access { db in try OwnerRevocationRow.order(OwnerRevocationRow.Columns.owner).fetchAll(db) }.map(\.revocation)
    }

    func removeOwnerRevocations(horizonBefore cutoff: Timestamp) async throws -> Int {
        try await access { db in try OwnerRevocationRow.filter(OwnerRevocationRow.Columns.horizon < cutoff.seconds).deleteAll(db) }
    }

    func publishSequence() async throws -> UInt64 {
        try await access { db in try MetaRow.value(db, MetaRow.publishSequence) }
    }

    func setPublishSequence(_ sequence: UInt64) async throws {
        try await access { db in try MetaRow.set(db, MetaRow.publishSequence, sequence) }
    }

    func stampListChanges(_ sequence: UInt64, forgettingThrough: UInt64) async throws {
        try await access { db in
            try db.execute(sql: "UPDATE list_changes SET stamp = ? WHERE stamp IS NULL", arguments: [Int64(sequence)])
            try db.execute(sql: "DELETE FROM list_changes WHERE stamp <= ?", arguments: [Int64(forgettingThrough)])
        }
    }

    func listChanges(after sequence: UInt64) async throws -> ListChanges {
        try await access { db in
            let after: StatementArguments = [Int64(sequence)]
            var changes = ListChanges()
            for row in try Row.fetchAll(db, sql: "SELECT DISTINCT kind, key FROM list_changes WHERE stamp > ?", arguments: after) {
                let key: String = row[1]
                if row[0] as Int64 == 0 { changes.ids.append(key) } else { changes.owners.append(key) }
            }
            let changedIDs = " IN (SELECT key FROM list_changes WHERE kind = 0 AND stamp > ?)"
            changes.superseded = try SQLiteTransaction.supersededEntries(db, reserving: changes.ids.count, where: " AND id" + changedIDs,
                                                                         arguments: after)
            changes.tombstones = try TombstoneRow.fetchAll(db, sql: "SELECT * FROM tombstones WHERE jti" + changedIDs, arguments: after)
                .map(\.tombstone)
            changes.ownerRevocations = try OwnerRevocationRow.fetchAll(
                db, sql: "SELECT * FROM owner_revocations WHERE owner IN (SELECT key FROM list_changes WHERE kind = 1 AND stamp > ?)",
                arguments: after).map(\.revocation)
            return changes
        }
    }

    func recordChange(_ event: ChangeEvent) async throws -> ChangeEvent {
        let (stored, counter) = try await access { db in
            var row = EventRow(event)
            try row.insert(db)
            let id = db.lastInsertedRowID
            try EventRow.filter(EventRow.Columns.id <= id - Int64(ChangeEvent.outboxCapacity)).deleteAll(db)
            let counter = try MetaRow.value(db, MetaRow.changeCounter)
            try MetaRow.set(db, MetaRow.changeCounter, counter + 1)
            row.id = id
            return (row.event, counter)
        }
        tally.note(before: counter, after: counter + 1)
        return stored
    }

    func changeCounter() async throws -> UInt64 {
        try await access { db in try MetaRow.value(db, MetaRow.changeCounter) }
    }

    func events(after id: Int64, limit: Int) async throws -> [ChangeEvent] {
        try await access { db in
            try EventRow.filter(EventRow.Columns.id > id).order(EventRow.Columns.id).limit(limit).fetchAll(db)
        }.map(\.event)
    }

    func removeEvents(_ ids: [Int64]) async throws {
        guard !ids.isEmpty else { return }
        try await access { db in _ = try EventRow.deleteAll(db, keys: ids) }
    }

    /// Milliseconds since 1970 by SQLite's clock (the machine's).
    private static let nowMilliseconds = "SELECT CAST(ROUND((julianday('now') - 2440587.5) * 86400000) AS INTEGER)"

    func claimEvents(claimant: String, lease: Duration, limit: Int) async throws -> [ChangeEvent] {
        let leaseMilliseconds = lease.milliseconds
        return try await access { db in
            let now = try Int64.fetchOne(db, sql: SQLiteTransaction.nowMilliseconds) ?? 0
            let claimable = EventRow.Columns.claimedUntil == nil || EventRow.Columns.claimedUntil <= now
            var rows = try EventRow.filter(claimable).order(EventRow.Columns.id).limit(max(0, limit)).fetchAll(db)
            for index in rows.indices {
                rows[index].claimedBy = claimant
                rows[index].claimedUntil = now + leaseMilliseconds
                try rows[index].update(db)
            }
            return rows.map(\.event)
        }
    }

    func renewClaims(_ ids: [Int64], claimant: String, lease: Duration) async throws -> [Int64] {
        guard !ids.isEmpty else { return [] }
        let leaseMilliseconds = lease.milliseconds
        return try await access { db in
            let now = try Int64.fetchOne(db, sql: SQLiteTransaction.nowMilliseconds) ?? 0
            let held = EventRow.filter(keys: ids).filter(EventRow.Columns.claimedBy == claimant)
            let kept = try Int64.fetchAll(db, held.select(EventRow.Columns.id))
            try held.updateAll(db, EventRow.Columns.claimedUntil.set(to: now + leaseMilliseconds))
            return kept
        }
    }

    func releaseClaims(_ ids: [Int64], claimant: String) async throws {
        guard !ids.isEmpty else { return }
        try await access { db in
            _ = try EventRow.filter(keys: ids).filter(EventRow.Columns.claimedBy == claimant)
                .updateAll(db, EventRow.Columns.claimedBy.set(to: nil), EventRow.Columns.claimedUntil.set(to: nil))
        }
    }
}

extension SQLiteTransaction {
    // MARK: leaks

    func recordLeak(_ leak: LeakRecord) async throws -> Bool {
        try await access { db in
            try LeakRow(leak).insert(db, onConflict: .ignore)
            return db.changesCount > 0
        }
    }

    func leak(id: String, generation: UInt64) async throws -> LeakRecord? {
        try await access { db in
            try LeakRow.fetchOne(db, key: ["id": id, "generation": Int64(clamping: generation)])
        }?.leak
    }

    // MARK: usage

    func recordUsage(_ update: UsageUpdate, addressLimit: Int) async throws -> UsageRecorded {
        let uses = Int64(clamping: update.uses)
        return try await access { db in
            guard try PATRow.exists(db, key: update.id) else { return .unknownPAT }
            // Every right-hand side reads the row as it was: the newer report's last use wins.
            try db.execute(sql: """
                INSERT INTO pat_usage (id, first_used_at, last_used_at, last_used_from, last_outcome, uses)
                VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT (id) DO UPDATE SET
                    first_used_at = MIN(first_used_at, excluded.first_used_at),
                    last_used_from = CASE WHEN excluded.last_used_at >= last_used_at
                                          THEN COALESCE(excluded.last_used_from, last_used_from) ELSE last_used_from END,
                    last_outcome = CASE WHEN excluded.last_used_at >= last_used_at THEN excluded.last_outcome ELSE last_outcome END,
                    last_used_at = MAX(last_used_at, excluded.last_used_at),
                    uses = MIN(uses + excluded.uses, 9223372036854775807)
                """, arguments: [update.id, update.firstUsedAt.seconds, update.lastUsedAt.seconds, update.lastUsedFrom,
                                 update.lastOutcome, uses])
            for day in update.days {
                try db.execute(sql: """
                    INSERT INTO pat_usage_days (id, day, uses) VALUES (?, ?, ?)
                    ON CONFLICT (id, day) DO UPDATE SET uses = MIN(uses + excluded.uses, 9223372036854775807)
                    """, arguments: [update.id, day.day, Int64(clamping: day.uses)])
            }
            if let newest = update.days.map(\.day).max() {
                try UsageDayRow.filter(UsageDayRow.Columns.id == update.id && UsageDayRow.Columns.day < newest - UsageDay.retention)
                    .deleteAll(db)
            }
            guard let address = update.lastUsedFrom else { return .recorded(newAddress: false) }
            let seen = update.lastUsedAt.seconds
            // Write transactions are serial here (BEGIN IMMEDIATE): what this reads stays true until it commits.
            let inserted = try Bool.fetchOne(db, sql: "SELECT NOT EXISTS (SELECT 1 FROM pat_addresses WHERE id = ? AND address = ?)",
                                             arguments: [update.id, address]) ?? false
            if inserted {
                try db.execute(sql: "INSERT INTO pat_addresses (id, address, first_seen, last_seen) VALUES (?, ?, ?, ?)",
                               arguments: [update.id, address, seen, seen])
            } else {
                try db.execute(sql: "UPDATE pat_addresses SET last_seen = MAX(last_seen, ?) WHERE id = ? AND address = ?",
                               arguments: [seen, update.id, address])
            }
            let known = try Int.fetchOne(db, sql: "SELECT count(*) FROM pat_addresses WHERE id = ?", arguments: [update.id]) ?? 0
            if known > addressLimit {
                try db.execute(sql: """
                    DELETE FROM pat_addresses WHERE id = ? AND address IN (
                        SELECT address FROM pat_addresses WHERE id = ? AND address <> ? ORDER BY last_seen, address LIMIT ?)
                    """, arguments: [update.id, update.id, address, known - addressLimit])
            }
            return .recorded(newAddress: inserted && known > 1)
        }
    }

    func usageDays(id: String) async throws -> [UsageDay] {
        try await access { db in
            try UsageDayRow.filter(UsageDayRow.Columns.id == id).order(UsageDayRow.Columns.day).fetchAll(db)
        }.map { UsageDay(day: $0.day, uses: UInt64(max(0, $0.uses))) }
    }

    // MARK: expiry

    func expiringRecords(after: Timestamp, through: Timestamp) async throws -> [(record: PATRecord, noticed: Set<Int64>)] {
        try await access { db in
            let rows = try PATRow
                .filter(PATRow.Columns.floor <= PATRow.Columns.generation && PATRow.Columns.expiresAt > after.seconds
                        && PATRow.Columns.expiresAt <= through.seconds)
                .order(PATRow.Columns.expiresAt, PATRow.Columns.id).fetchAll(db)
            var noticed: [String: Set<Int64>] = [:]
            let notices = try ExpiryNoticeRow.filter(sql: """
                (id, expires_at) IN (SELECT id, expires_at FROM pats WHERE expires_at > ? AND expires_at <= ?)
                """, arguments: [after.seconds, through.seconds]).fetchAll(db)
            for notice in notices { noticed[notice.id, default: []].insert(notice.leadSeconds) }
            return try rows.map { row in (record: try row.record(), noticed: noticed[row.id] ?? []) }
        }
    }

    func claimExpiryNotice(id: String, expiresAt: Timestamp, leadSeconds: Int64, at time: Timestamp) async throws -> Bool {
        try await access { db in
            try ExpiryNoticeRow(id: id, expiresAt: expiresAt.seconds, leadSeconds: leadSeconds, sentAt: time.seconds)
                .insert(db, onConflict: .ignore)
            return db.changesCount > 0
        }
    }

    func removeExpiryNotices(expiresBefore cutoff: Timestamp) async throws -> Int {
        try await access { db in try ExpiryNoticeRow.filter(ExpiryNoticeRow.Columns.expiresAt < cutoff.seconds).deleteAll(db) }
    }

    // MARK: lifetime policies

    func lifetimePolicy(domain: String) async throws -> LifetimePolicy? {
        try await access { db in try LifetimePolicyRow.fetchOne(db, key: domain) }?.policy
    }

    func lifetimePolicies() async throws -> [LifetimePolicy] {
        try await access { db in try LifetimePolicyRow.order(LifetimePolicyRow.Columns.domain).fetchAll(db) }.map(\.policy)
    }

    func saveLifetimePolicy(_ policy: LifetimePolicy) async throws {
        try await access { db in try LifetimePolicyRow(policy).save(db) }
    }

    func removeLifetimePolicy(domain: String) async throws -> Bool {
        try await access { db in try LifetimePolicyRow.deleteOne(db, key: domain) }
    }
}

extension Duration {
    /// Whole milliseconds (rounded down), at least 0.
    package var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return max(0, seconds * 1000 + attoseconds / 1_000_000_000_000_000)
    }
}
