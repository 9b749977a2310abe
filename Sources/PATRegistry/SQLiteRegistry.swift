import Foundation
import GRDB
import PATStore

/// The registry in an SQLite database (default `HOME/pat.db`), created on first use.
///
/// - WAL journal, `synchronous = FULL`: a committed change survives a crash or power loss.
/// - Every change is one `BEGIN IMMEDIATE` transaction, so a read-modify-write never races
///   another process; a busy database is waited for (`busyTimeout`) instead of failing.
/// - The schema is versioned by `DatabaseMigrator` ("v1", …); opening migrates it, under a
///   file lock so two processes creating the database at once do not collide.
public final class SQLiteRegistry: PATRegistryStore {
    public let path: String
    private let queue: DatabaseQueue

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
    public init(path: String, busyTimeout: TimeInterval = 30) throws {
        self.path = path
        var config = Configuration()
        config.busyMode = .timeout(busyTimeout)
        config.journalMode = .wal
        config.label = "pat.registry"
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

    /// The schema, one migration per version. Never edit a released migration: add one.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE pats (
                    id TEXT NOT NULL PRIMARY KEY,
                    owner TEXT NOT NULL,
                    domain TEXT,
                    name TEXT NOT NULL,
                    description TEXT,
                    scopes TEXT NOT NULL,
                    generation INTEGER NOT NULL CHECK (generation >= 1),
                    floor INTEGER NOT NULL CHECK (floor >= 1 AND floor <= generation + 1),
                    created_at INTEGER NOT NULL,
                    updated_at INTEGER NOT NULL,
                    expires_at INTEGER NOT NULL,
                    max_expires_at INTEGER NOT NULL CHECK (max_expires_at >= expires_at),
                    last_rotated_at INTEGER,
                    revoked_at INTEGER,
                    UNIQUE (owner, name)
                );
                CREATE INDEX pats_superseded ON pats (id, floor, max_expires_at) WHERE floor > 1;
                CREATE TABLE tombstones (
                    jti TEXT NOT NULL PRIMARY KEY,
                    owner TEXT NOT NULL,
                    horizon INTEGER NOT NULL,
                    deleted_at INTEGER NOT NULL
                );
                CREATE INDEX tombstones_horizon ON tombstones (horizon);
                CREATE TABLE owner_revocations (
                    owner TEXT NOT NULL PRIMARY KEY,
                    issued_before INTEGER NOT NULL,
                    horizon INTEGER NOT NULL,
                    revoked_at INTEGER NOT NULL
                );
                CREATE TABLE meta (
                    key TEXT NOT NULL PRIMARY KEY,
                    value INTEGER NOT NULL
                );
                INSERT INTO meta (key, value) VALUES ('publish_sequence', 0);
                """)
        }
        return migrator
    }

    public func read<T>(_ body: (any RegistryTransaction) throws -> T) throws -> T {
        do {
            return try queue.read { db in try body(SQLiteTransaction(db: db)) }
        } catch {
            throw SQLiteRegistry.describe(error, path: path)
        }
    }

    public func write<T>(_ body: (any RegistryTransaction) throws -> T) throws -> T {
        do {
            return try queue.writeWithoutTransaction { db in
                var result: T?
                try db.inTransaction(.immediate) {
                    result = try body(SQLiteTransaction(db: db))
                    FaultPoint.reached("registry.uncommitted", path)
                    return .commit
                }
                guard let result else {
                    throw RegistryError(.database, "\(path): the transaction ended without a result")
                }
                return result
            }
        } catch {
            throw SQLiteRegistry.describe(error, path: path)
        }
    }

    /// Turns database errors into messages that say what to do; other errors pass through.
    static func describe(_ error: any Error, path: String) -> any Error {
        guard let error = error as? DatabaseError else { return error }
        switch error.resultCode {
        case .SQLITE_BUSY, .SQLITE_LOCKED:
            return RegistryError(.database, "the registry \(path) stayed locked by another process past the busy timeout: "
                                 + "wait for it to finish and try again")
        case .SQLITE_READONLY, .SQLITE_CANTOPEN, .SQLITE_PERM, .SQLITE_AUTH:
            return RegistryError(.database, "cannot open the registry \(path) for writing (\(error.message ?? "\(error.resultCode)")): "
                                 + "check that the PATKit home exists and is writable, or pass --home DIR")
        case .SQLITE_CORRUPT, .SQLITE_NOTADB:
            return RegistryError(.database, "the registry \(path) is not a valid SQLite database (\(error.message ?? "corrupt")): "
                                 + "restore it from a backup")
        case .SQLITE_FULL, .SQLITE_IOERR:
            return RegistryError(.database, "cannot write the registry \(path) (\(error.message ?? "I/O error")): check free disk space")
        default:
            return RegistryError(.database, "registry \(path): \(error.message ?? "\(error)")")
        }
    }
}

/// The SQLite form of one transaction.
struct SQLiteTransaction: RegistryTransaction {
    let db: Database

    static let columns = """
        id, owner, domain, name, description, scopes, generation, floor, created_at, updated_at, \
        expires_at, max_expires_at, last_rotated_at, revoked_at
        """

    func record(id: String) throws -> PATRecord? {
        try Row.fetchOne(db, sql: "SELECT \(Self.columns) FROM pats WHERE id = ?", arguments: [id]).map(Self.record(from:))
    }

    func record(owner: String, name: String) throws -> PATRecord? {
        try Row.fetchOne(db, sql: "SELECT \(Self.columns) FROM pats WHERE owner = ? AND name = ?", arguments: [owner, name])
            .map(Self.record(from:))
    }

    func records(owner: String?, status: StatusFilter, now: Timestamp) throws -> [PATRecord] {
        var conditions: [String] = []
        var arguments: StatementArguments = []
        if let owner {
            conditions.append("owner = ?")
            arguments += [owner]
        }
        switch status {
        case .all: break
        case .revoked: conditions.append("floor > generation")
        case .expired:
            conditions.append("floor <= generation AND expires_at <= ?")
            arguments += [now.seconds]
        case .active:
            conditions.append("floor <= generation AND expires_at > ?")
            arguments += [now.seconds]
        }
        let whereClause = conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND ")
        return try Row.fetchAll(db, sql: "SELECT \(Self.columns) FROM pats\(whereClause) ORDER BY owner, name, id",
                                arguments: arguments).map(Self.record(from:))
    }

    func recordCount() throws -> Int {
        try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM pats") ?? 0
    }

    func insert(_ record: PATRecord) throws {
        try record.validate()
        if let existing = try self.record(owner: record.owner, name: record.name) {
            throw RegistryError(.conflict, "owner \(record.owner) already has a PAT named \"\(record.name)\" (id \(existing.id)): "
                                + "choose another --name, or delete that PAT first")
        }
        if try self.record(id: record.id) != nil || tombstone(id: record.id) != nil {
            throw RegistryError(.conflict, "a PAT with id \(record.id) already exists or existed")
        }
        try db.execute(sql: "INSERT INTO pats (\(Self.columns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       arguments: Self.arguments(record))
    }

    func update(_ record: PATRecord) throws {
        try record.validate()
        if let other = try self.record(owner: record.owner, name: record.name), other.id != record.id {
            throw RegistryError(.conflict, "owner \(record.owner) already has a PAT named \"\(record.name)\" (id \(other.id))")
        }
        var arguments = Self.arguments(record)
        arguments += [record.id]
        try db.execute(sql: """
            UPDATE pats SET id = ?, owner = ?, domain = ?, name = ?, description = ?, scopes = ?, generation = ?, floor = ?,
                created_at = ?, updated_at = ?, expires_at = ?, max_expires_at = ?, last_rotated_at = ?, revoked_at = ?
            WHERE id = ?
            """, arguments: arguments)
        guard db.changesCount == 1 else { throw RegistryError.notFound(record.id) }
    }

    func removeRecord(id: String) throws {
        try db.execute(sql: "DELETE FROM pats WHERE id = ?", arguments: [id])
        guard db.changesCount == 1 else { throw RegistryError.notFound(id) }
    }

    func supersededEntries() throws -> [SupersededEntry] {
        let rows = try Row.fetchAll(db, sql: "SELECT id, floor, max_expires_at FROM pats WHERE floor > 1")
        return try rows.map { row in
            SupersededEntry(id: try row.decode(String.self, forColumn: "id"),
                            floor: try Self.unsigned(row, "floor"),
                            horizon: Timestamp(seconds: try row.decode(Int64.self, forColumn: "max_expires_at")))
        }
    }

    func tombstone(id: String) throws -> Tombstone? {
        try Row.fetchOne(db, sql: "SELECT jti, owner, horizon, deleted_at FROM tombstones WHERE jti = ?", arguments: [id])
            .map(Self.tombstone(from:))
    }

    func insertTombstone(_ tombstone: Tombstone) throws {
        try db.execute(sql: """
            INSERT INTO tombstones (jti, owner, horizon, deleted_at) VALUES (?, ?, ?, ?)
            ON CONFLICT (jti) DO UPDATE SET horizon = max(horizon, excluded.horizon)
            """, arguments: [tombstone.id, tombstone.owner, tombstone.horizon.seconds, tombstone.deletedAt.seconds])
    }

    func tombstones() throws -> [Tombstone] {
        try Row.fetchAll(db, sql: "SELECT jti, owner, horizon, deleted_at FROM tombstones ORDER BY jti").map(Self.tombstone(from:))
    }

    func removeTombstones(horizonBefore cutoff: Timestamp) throws -> Int {
        try db.execute(sql: "DELETE FROM tombstones WHERE horizon < ?", arguments: [cutoff.seconds])
        return db.changesCount
    }

    func ownerRevocation(owner: String) throws -> OwnerRevocation? {
        try Row.fetchOne(db, sql: "SELECT owner, issued_before, horizon, revoked_at FROM owner_revocations WHERE owner = ?",
                         arguments: [owner]).map(Self.ownerRevocation(from:))
    }

    func saveOwnerRevocation(_ revocation: OwnerRevocation) throws {
        let merged = try ownerRevocation(owner: revocation.owner).map { $0.merged(with: revocation) } ?? revocation
        try db.execute(sql: """
            INSERT INTO owner_revocations (owner, issued_before, horizon, revoked_at) VALUES (?, ?, ?, ?)
            ON CONFLICT (owner) DO UPDATE SET issued_before = excluded.issued_before, horizon = excluded.horizon,
                revoked_at = excluded.revoked_at
            """, arguments: [merged.owner, merged.issuedBefore.seconds, merged.horizon.seconds, merged.revokedAt.seconds])
    }

    func ownerRevocations() throws -> [OwnerRevocation] {
        try Row.fetchAll(db, sql: "SELECT owner, issued_before, horizon, revoked_at FROM owner_revocations ORDER BY owner")
            .map(Self.ownerRevocation(from:))
    }

    func removeOwnerRevocations(horizonBefore cutoff: Timestamp) throws -> Int {
        try db.execute(sql: "DELETE FROM owner_revocations WHERE horizon < ?", arguments: [cutoff.seconds])
        return db.changesCount
    }

    func publishSequence() throws -> UInt64 {
        let value = try Int64.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'publish_sequence'") ?? 0
        guard value >= 0 else { throw RegistryError(.database, "the stored publish sequence \(value) is negative") }
        return UInt64(value)
    }

    func setPublishSequence(_ sequence: UInt64) throws {
        guard sequence <= UInt64(Int64.max) else { throw RegistryError(.invalid, "publish sequence \(sequence) is too large") }
        try db.execute(sql: """
            INSERT INTO meta (key, value) VALUES ('publish_sequence', ?)
            ON CONFLICT (key) DO UPDATE SET value = excluded.value
            """, arguments: [Int64(sequence)])
    }

    // MARK: mapping

    static func arguments(_ r: PATRecord) -> StatementArguments {
        [r.id, r.owner, r.domain, r.name, r.description, r.scopes.claim, Int64(r.generation), Int64(r.floor),
         r.createdAt.seconds, r.updatedAt.seconds, r.expiresAt.seconds, r.maxExpiresAt.seconds,
         r.lastRotatedAt?.seconds, r.revokedAt?.seconds]
    }

    static func record(from row: Row) throws -> PATRecord {
        let id = try row.decode(String.self, forColumn: "id")
        let scopeText = try row.decode(String.self, forColumn: "scopes")
        let scopes: ScopeSet
        do { scopes = try ScopeSet(claim: scopeText) } catch {
            throw RegistryError(.database, "PAT \(id) has unreadable scopes in the registry (\(error))")
        }
        func time(_ column: String) throws -> Timestamp { Timestamp(seconds: try row.decode(Int64.self, forColumn: column)) }
        func optionalTime(_ column: String) throws -> Timestamp? {
            try row.decode(Int64?.self, forColumn: column).map { Timestamp(seconds: $0) }
        }
        return PATRecord(
            id: id,
            owner: try row.decode(String.self, forColumn: "owner"),
            domain: try row.decode(String?.self, forColumn: "domain"),
            name: try row.decode(String.self, forColumn: "name"),
            description: try row.decode(String?.self, forColumn: "description"),
            scopes: scopes,
            generation: try unsigned(row, "generation"),
            floor: try unsigned(row, "floor"),
            createdAt: try time("created_at"),
            updatedAt: try time("updated_at"),
            expiresAt: try time("expires_at"),
            maxExpiresAt: try time("max_expires_at"),
            lastRotatedAt: try optionalTime("last_rotated_at"),
            revokedAt: try optionalTime("revoked_at"))
    }

    static func unsigned(_ row: Row, _ column: String) throws -> UInt64 {
        let value = try row.decode(Int64.self, forColumn: column)
        guard value >= 0 else { throw RegistryError(.database, "column \(column) holds a negative value \(value)") }
        return UInt64(value)
    }

    static func tombstone(from row: Row) throws -> Tombstone {
        Tombstone(id: try row.decode(String.self, forColumn: "jti"),
                  owner: try row.decode(String.self, forColumn: "owner"),
                  horizon: Timestamp(seconds: try row.decode(Int64.self, forColumn: "horizon")),
                  deletedAt: Timestamp(seconds: try row.decode(Int64.self, forColumn: "deleted_at")))
    }

    static func ownerRevocation(from row: Row) throws -> OwnerRevocation {
        OwnerRevocation(owner: try row.decode(String.self, forColumn: "owner"),
                        issuedBefore: Timestamp(seconds: try row.decode(Int64.self, forColumn: "issued_before")),
                        horizon: Timestamp(seconds: try row.decode(Int64.self, forColumn: "horizon")),
                        revokedAt: Timestamp(seconds: try row.decode(Int64.self, forColumn: "revoked_at")))
    }
}
