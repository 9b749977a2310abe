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
        // Leak responses: the first report of each leaked PAT generation (where it was found, by
        // what), so that a repeated or replayed report revokes and announces nothing twice.
        Migration(
            identifier: "v5",
            sqlite: """
                CREATE TABLE leaks (
                    id TEXT NOT NULL,
                    generation INTEGER NOT NULL,
                    reported_at INTEGER NOT NULL,
                    url TEXT NOT NULL,
                    source TEXT NOT NULL,
                    PRIMARY KEY (id, generation)
                );
                """,
            postgres: [
                """
                CREATE TABLE patkit.leaks (
                    id TEXT COLLATE "C" NOT NULL,
                    generation BIGINT NOT NULL,
                    reported_at BIGINT NOT NULL,
                    url TEXT NOT NULL,
                    source TEXT NOT NULL,
                    PRIMARY KEY (id, generation)
                )
                """,
            ]
        ),
        // Usage reported by edges: the last use per PAT, uses per UTC day, the client addresses
        // seen (a few per PAT, for the new-address event). Apart from `pats`: a report never
        // takes a PAT's lock, and a change to a PAT never overwrites a report.
        Migration(
            identifier: "v6",
            sqlite: """
                CREATE TABLE pat_usage (
                    id TEXT NOT NULL PRIMARY KEY,
                    first_used_at INTEGER NOT NULL,
                    last_used_at INTEGER NOT NULL,
                    last_used_from TEXT,
                    last_outcome TEXT NOT NULL,
                    uses INTEGER NOT NULL CHECK (uses >= 0)
                );
                CREATE TABLE pat_usage_days (
                    id TEXT NOT NULL,
                    day INTEGER NOT NULL,
                    uses INTEGER NOT NULL CHECK (uses >= 0),
                    PRIMARY KEY (id, day)
                );
                CREATE TABLE pat_addresses (
                    id TEXT NOT NULL,
                    address TEXT NOT NULL,
                    first_seen INTEGER NOT NULL,
                    last_seen INTEGER NOT NULL,
                    PRIMARY KEY (id, address)
                );
                """,
            postgres: [
                """
                CREATE TABLE patkit.pat_usage (
                    id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
                    first_used_at BIGINT NOT NULL,
                    last_used_at BIGINT NOT NULL,
                    last_used_from TEXT,
                    last_outcome TEXT NOT NULL,
                    uses BIGINT NOT NULL CHECK (uses >= 0)
                )
                """,
                """
                CREATE TABLE patkit.pat_usage_days (
                    id TEXT COLLATE "C" NOT NULL,
                    day BIGINT NOT NULL,
                    uses BIGINT NOT NULL CHECK (uses >= 0),
                    PRIMARY KEY (id, day)
                )
                """,
                """
                CREATE TABLE patkit.pat_addresses (
                    id TEXT COLLATE "C" NOT NULL,
                    address TEXT COLLATE "C" NOT NULL,
                    first_seen BIGINT NOT NULL,
                    last_seen BIGINT NOT NULL,
                    PRIMARY KEY (id, address)
                )
                """,
            ]
        ),
        // Expiry: the notices sent (one per PAT, expiry instant and lead time: a regenerate with a
        // new expiry is warned about again), an index to find the PATs expiring soon, and the
        // maximum lifetime per domain.
        Migration(
            identifier: "v7",
            sqlite: """
                CREATE TABLE expiry_notices (
                    id TEXT NOT NULL,
                    expires_at INTEGER NOT NULL,
                    lead_seconds INTEGER NOT NULL,
                    sent_at INTEGER NOT NULL,
                    PRIMARY KEY (id, expires_at, lead_seconds)
                );
                CREATE INDEX pats_expires_at ON pats (expires_at);
                CREATE TABLE lifetime_policies (
                    domain TEXT NOT NULL PRIMARY KEY,
                    max_lifetime INTEGER NOT NULL CHECK (max_lifetime > 0),
                    updated_at INTEGER NOT NULL
                );
                """,
            postgres: [
                """
                CREATE TABLE patkit.expiry_notices (
                    id TEXT COLLATE "C" NOT NULL,
                    expires_at BIGINT NOT NULL,
                    lead_seconds BIGINT NOT NULL,
                    sent_at BIGINT NOT NULL,
                    PRIMARY KEY (id, expires_at, lead_seconds)
                )
                """,
                "CREATE INDEX pats_expires_at ON patkit.pats (expires_at)",
                """
                CREATE TABLE patkit.lifetime_policies (
                    domain TEXT COLLATE "C" NOT NULL PRIMARY KEY,
                    max_lifetime BIGINT NOT NULL CHECK (max_lifetime > 0),
                    updated_at BIGINT NOT NULL
                )
                """,
            ]
        ),
        // Incremental publishing (issue 15): every change to what the revocation list is built
        // from — a `pats` row with a floor above 1 (a superseded entry, its overlap), a tombstone,
        // an owner revocation: inserted, updated or deleted — is logged by a trigger, so that no
        // write path can forget it. `kind` 0 names a PAT id, 1 an owner. A publisher stamps the
        // unstamped changes with its sequence (`stamp`, NULL until then) under the publish lock,
        // and a publisher holding the list of sequence S rebuilds only the keys stamped above S.
        Migration(
            identifier: "v8",
            sqlite: """
                CREATE TABLE list_changes (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    kind INTEGER NOT NULL CHECK (kind IN (0, 1)),
                    key TEXT NOT NULL,
                    stamp INTEGER
                );
                CREATE INDEX list_changes_stamp ON list_changes (stamp);
                CREATE TRIGGER pats_list_insert AFTER INSERT ON pats WHEN NEW.floor > 1
                BEGIN INSERT INTO list_changes (kind, key) VALUES (0, NEW.id); END;
                CREATE TRIGGER pats_list_update AFTER UPDATE ON pats
                WHEN (OLD.floor > 1 OR NEW.floor > 1)
                     AND (OLD.id IS NOT NEW.id OR OLD.floor IS NOT NEW.floor OR OLD.max_expires_at IS NOT NEW.max_expires_at
                          OR OLD.overlap_generation IS NOT NEW.overlap_generation OR OLD.overlap_until IS NOT NEW.overlap_until)
                BEGIN
                    INSERT INTO list_changes (kind, key) VALUES (0, OLD.id);
                    INSERT INTO list_changes (kind, key) SELECT 0, NEW.id WHERE NEW.id IS NOT OLD.id;
                END;
                CREATE TRIGGER pats_list_delete AFTER DELETE ON pats WHEN OLD.floor > 1
                BEGIN INSERT INTO list_changes (kind, key) VALUES (0, OLD.id); END;
                CREATE TRIGGER tombstones_list_insert AFTER INSERT ON tombstones
                BEGIN INSERT INTO list_changes (kind, key) VALUES (0, NEW.jti); END;
                CREATE TRIGGER tombstones_list_update AFTER UPDATE ON tombstones
                BEGIN
                    INSERT INTO list_changes (kind, key) VALUES (0, OLD.jti);
                    INSERT INTO list_changes (kind, key) SELECT 0, NEW.jti WHERE NEW.jti IS NOT OLD.jti;
                END;
                CREATE TRIGGER tombstones_list_delete AFTER DELETE ON tombstones
                BEGIN INSERT INTO list_changes (kind, key) VALUES (0, OLD.jti); END;
                CREATE TRIGGER owner_revocations_list_insert AFTER INSERT ON owner_revocations
                BEGIN INSERT INTO list_changes (kind, key) VALUES (1, NEW.owner); END;
                CREATE TRIGGER owner_revocations_list_update AFTER UPDATE ON owner_revocations
                BEGIN
                    INSERT INTO list_changes (kind, key) VALUES (1, OLD.owner);
                    INSERT INTO list_changes (kind, key) SELECT 1, NEW.owner WHERE NEW.owner IS NOT OLD.owner;
                END;
                CREATE TRIGGER owner_revocations_list_delete AFTER DELETE ON owner_revocations
                BEGIN INSERT INTO list_changes (kind, key) VALUES (1, OLD.owner); END;
                """,
            postgres: [
                """
                CREATE TABLE patkit.list_changes (
                    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                    kind SMALLINT NOT NULL CHECK (kind IN (0, 1)),
                    key TEXT COLLATE "C" NOT NULL,
                    stamp BIGINT
                )
                """,
                "CREATE INDEX list_changes_stamp ON patkit.list_changes (stamp)",
                // Arguments: the kind, then the column naming the key.
                """
                CREATE FUNCTION patkit.log_list_change() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    IF TG_OP IN ('UPDATE', 'DELETE') THEN
                        INSERT INTO patkit.list_changes (kind, key) VALUES (TG_ARGV[0]::smallint, to_jsonb(OLD) ->> TG_ARGV[1]);
                    END IF;
                    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND (to_jsonb(NEW) ->> TG_ARGV[1]) IS DISTINCT FROM (to_jsonb(OLD) ->> TG_ARGV[1])) THEN
                        INSERT INTO patkit.list_changes (kind, key) VALUES (TG_ARGV[0]::smallint, to_jsonb(NEW) ->> TG_ARGV[1]);
                    END IF;
                    RETURN NULL;
                END
                $$
                """,
                """
                CREATE TRIGGER pats_list_insert AFTER INSERT ON patkit.pats FOR EACH ROW WHEN (NEW.floor > 1)
                EXECUTE FUNCTION patkit.log_list_change('0', 'id')
                """,
                """
                CREATE TRIGGER pats_list_update AFTER UPDATE ON patkit.pats FOR EACH ROW
                WHEN ((OLD.floor > 1 OR NEW.floor > 1)
                      AND (OLD.id, OLD.floor, OLD.max_expires_at, OLD.overlap_generation, OLD.overlap_until)
                          IS DISTINCT FROM (NEW.id, NEW.floor, NEW.max_expires_at, NEW.overlap_generation, NEW.overlap_until))
                EXECUTE FUNCTION patkit.log_list_change('0', 'id')
                """,
                """
                CREATE TRIGGER pats_list_delete AFTER DELETE ON patkit.pats FOR EACH ROW WHEN (OLD.floor > 1)
                EXECUTE FUNCTION patkit.log_list_change('0', 'id')
                """,
                """
                CREATE TRIGGER tombstones_list_change AFTER INSERT OR UPDATE OR DELETE ON patkit.tombstones FOR EACH ROW
                EXECUTE FUNCTION patkit.log_list_change('0', 'jti')
                """,
                """
                CREATE TRIGGER owner_revocations_list_change AFTER INSERT OR UPDATE OR DELETE ON patkit.owner_revocations
                FOR EACH ROW EXECUTE FUNCTION patkit.log_list_change('1', 'owner')
                """,
            ]
        ),
    ]
}
