/// The registry's schema, one migration per version, for every back end in one place: each
/// migration holds its SQLite and its PostgreSQL form, and both back ends apply the same
/// versions in the same order (SQLite through GRDB's `DatabaseMigrator`, PostgreSQL through
/// `patkit.migrations`). Never edit a released migration: append one, in both dialects.
///
/// The two forms hold the same tables and columns, with two deliberate differences:
/// - PostgreSQL keeps everything in the schema `patkit`, and compares and orders identity
///   columns as bytes (`COLLATE "C"`), as SQLite's default `BINARY` collation does;
/// - PostgreSQL's change counter is a sequence, not a `meta` row: every write transaction
///   raises it, and a row would make all of them queue on its lock until they commit.
public enum RegistrySchema {
    public struct Migration: Sendable {
        /// "v1", "v2", …: the identifier each back end records as applied.
        public let identifier: String
        /// One script (several statements).
        public let sqlite: String
        /// One statement per element (PostgreSQL's extended protocol runs one at a time).
        public let postgres: [String]
    }

    /// The PostgreSQL schema holding the registry.
    public static let postgresSchema = "patkit"

    public static let migrations: [Migration] = [
        Migration(
            identifier: "v1",
            sqlite: """
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
                """,
            postgres: [
                """
                CREATE TABLE patkit.pats (
                    id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
                    owner TEXT COLLATE "C" NOT NULL,
                    domain TEXT COLLATE "C",
                    name TEXT COLLATE "C" NOT NULL,
                    description TEXT,
                    scopes TEXT NOT NULL,
                    generation BIGINT NOT NULL CHECK (generation >= 1),
                    floor BIGINT NOT NULL CHECK (floor >= 1 AND floor <= generation + 1),
                    created_at BIGINT NOT NULL,
                    updated_at BIGINT NOT NULL,
                    expires_at BIGINT NOT NULL,
                    max_expires_at BIGINT NOT NULL CHECK (max_expires_at >= expires_at),
                    last_rotated_at BIGINT,
                    revoked_at BIGINT,
                    UNIQUE (owner, name)
                )
                """,
                "CREATE INDEX pats_superseded ON patkit.pats (id, floor, max_expires_at) WHERE floor > 1",
                """
                CREATE TABLE patkit.tombstones (
                    jti TEXT COLLATE "C" NOT NULL PRIMARY KEY,
                    owner TEXT COLLATE "C" NOT NULL,
                    horizon BIGINT NOT NULL,
                    deleted_at BIGINT NOT NULL
                )
                """,
                "CREATE INDEX tombstones_horizon ON patkit.tombstones (horizon)",
                """
                CREATE TABLE patkit.owner_revocations (
                    owner TEXT COLLATE "C" NOT NULL PRIMARY KEY,
                    issued_before BIGINT NOT NULL,
                    horizon BIGINT NOT NULL,
                    revoked_at BIGINT NOT NULL
                )
                """,
                "CREATE TABLE patkit.meta (key TEXT COLLATE \"C\" NOT NULL PRIMARY KEY, value BIGINT NOT NULL)",
                "INSERT INTO patkit.meta (key, value) VALUES ('publish_sequence', 0)",
            ]
        ),
        // Delegation: who revoked a PAT, the lineage of its current generation, the outbox of
        // change events and the change counter.
        Migration(
            identifier: "v2",
            sqlite: """
                ALTER TABLE pats ADD COLUMN revoked_by TEXT;
                ALTER TABLE pats ADD COLUMN lineage TEXT NOT NULL DEFAULT '';
                CREATE TABLE outbox (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    delivery TEXT NOT NULL UNIQUE,
                    name TEXT NOT NULL,
                    payload BLOB NOT NULL,
                    created_at INTEGER NOT NULL
                );
                INSERT INTO meta (key, value) VALUES ('change_counter', 0);
                """,
            postgres: [
                "ALTER TABLE patkit.pats ADD COLUMN revoked_by TEXT",
                "ALTER TABLE patkit.pats ADD COLUMN lineage TEXT NOT NULL DEFAULT ''",
                """
                CREATE TABLE patkit.outbox (
                    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                    delivery TEXT NOT NULL UNIQUE,
                    name TEXT NOT NULL,
                    payload BYTEA NOT NULL,
                    created_at BIGINT NOT NULL
                )
                """,
                "CREATE SEQUENCE patkit.change_counter",
            ]
        ),
        // Several issuer nodes: an outbox event is claimed by one node's webhook dispatcher at a
        // time, for a lease (milliseconds since 1970 by the database's clock) that its holder
        // renews while it delivers and that runs out when the holder dies.
        Migration(
            identifier: "v3",
            sqlite: """
                ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
                ALTER TABLE outbox ADD COLUMN claimed_until INTEGER;
                """,
            postgres: [
                "ALTER TABLE patkit.outbox ADD COLUMN claimed_by TEXT",
                "ALTER TABLE patkit.outbox ADD COLUMN claimed_until BIGINT",
            ]
        ),
        // Rotation without downtime (issue 11 §4): after a regenerate with an overlap, the previous
        // generation stays valid until `overlap_until`; the list carries it as an overlap entry.
        Migration(
            identifier: "v4",
            sqlite: """
                ALTER TABLE pats ADD COLUMN overlap_generation INTEGER;
                ALTER TABLE pats ADD COLUMN overlap_until INTEGER;
                """,
            postgres: [
                "ALTER TABLE patkit.pats ADD COLUMN overlap_generation BIGINT",
                "ALTER TABLE patkit.pats ADD COLUMN overlap_until BIGINT",
            ]
        ),
    ]
}
