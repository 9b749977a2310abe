import Foundation
import Logging
import PATRegistry
import PostgresNIO
import Synchronization

/// One PostgreSQL transaction (`PostgresRegistry` opened it on `connection`). Every identity
/// column is `COLLATE "C"`: compared and ordered as bytes. Locks are described on
/// `PostgresRegistry`.
struct PostgresTransaction: RegistryTransaction {
    let connection: PostgresConnection
    let writing: Bool
    let origin: String
    let logger: Logger
    /// Whether this transaction has already queued its change notification.
    private let notified = NotifiedFlag()

    init(connection: PostgresConnection, writing: Bool, origin: String, logger: Logger) {
        self.connection = connection
        self.writing = writing
        self.origin = origin
        self.logger = logger
    }

    final class NotifiedFlag: Sendable {
        private let value = Mutex(false)
        /// True the first time.
        func set() -> Bool { value.withLock { old in defer { old = true }; return !old } }
    }

    private static let recordColumns = """
        id, owner, domain, name, description, scopes, generation, floor, created_at, updated_at, expires_at, max_expires_at, \
        last_rotated_at, revoked_at, revoked_by, lineage, overlap_generation, overlap_until
        """

    @discardableResult
    private func query(_ query: PostgresQuery) async throws -> PostgresRowSequence {
        try await connection.query(query, logger: logger)
    }

    /// The records `query` selects (`recordColumns`), each with its usage (its own table).
    private func records(_ query: PostgresQuery) async throws -> [PATRecord] {
        var out: [PATRecord] = []
        let rows = try await self.query(query)
        for try await row in rows {
            out.append(try Self.record(row))
        }
        guard !out.isEmpty else { return out }
        var usage: [String: PATUsage] = [:]
        let ids = out.map(\.id)
        let usageRows = try await self.query("""
            SELECT id, first_used_at, last_used_at, last_used_from, last_outcome, uses FROM patkit.pat_usage WHERE id = ANY(\(ids))
            """)
        for try await (id, first, last, from, outcome, uses) in usageRows.decode((String, Int64, Int64, String?, String, Int64).self) {
            usage[id] = PATUsage(firstUsedAt: Timestamp(seconds: first), lastUsedAt: Timestamp(seconds: last), lastUsedFrom: from,
                                 lastOutcome: outcome, uses: UInt64(max(0, uses)))
        }
        for index in out.indices { out[index].usage = usage[out[index].id] }
        return out
    }

    private static func record(_ row: PostgresRow) throws -> PATRecord {
        let (id, owner, domain, name, description, scopes, generation, floor, createdAt, updatedAt, expiresAt, maxExpiresAt,
             lastRotatedAt, revokedAt, revokedBy, lineage, overlapGeneration, overlapUntil) = try row.decode(
            (String, String, String?, String, String?, String, Int64, Int64, Int64, Int64, Int64, Int64, Int64?, Int64?, String?,
             String, Int64?, Int64?).self)
        var principal: Principal? = nil
        if let revokedBy {
            do { principal = try JSONDecoder().decode(Principal.self, from: Data(revokedBy.utf8)) } catch {
                throw RegistryError(.database, "PAT \(id) has an unreadable revoked_by in the registry (\(error))")
            }
        }
        guard generation >= 1, floor >= 1 else { throw RegistryError(.database, "PAT \(id) has a generation or floor below 1") }
        return try PATRow(id: id, owner: owner, domain: domain, name: name, description: description, scopes: scopes,
                          generation: UInt64(generation), floor: UInt64(floor), createdAt: createdAt, updatedAt: updatedAt,
                          expiresAt: expiresAt, maxExpiresAt: maxExpiresAt, lastRotatedAt: lastRotatedAt, revokedAt: revokedAt,
                          revokedBy: principal, lineage: lineage, overlapGeneration: overlapGeneration,
                          overlapUntil: overlapUntil).record()
    }

    // MARK: records

    func record(id: String) async throws -> PATRecord? {
        try await records(PostgresQuery(unsafeSQL: "SELECT \(Self.recordColumns) FROM patkit.pats WHERE id = $1", binds: binds(id))).first
    }

    func record(owner: String, name: String) async throws -> PATRecord? {
        try await records(PostgresQuery(unsafeSQL: "SELECT \(Self.recordColumns) FROM patkit.pats WHERE owner = $1 AND name = $2",
                                        binds: binds(owner, name))).first
    }

    func lockOwner(_ owner: String) async throws {
        guard writing else { return }
        try await query("SELECT pg_advisory_xact_lock(\(PostgresRegistry.lockNamespace), hashtext(\(owner)))")
    }

    func lockRecord(id: String) async throws -> PATRecord? {
        guard writing else { return try await record(id: id) }
        // Statement 1 waits for the owner; statement 2 reads the record as it is once the lock is
        // held (READ COMMITTED: a new snapshot per statement).
        let rows = try await query("""
            SELECT pg_advisory_xact_lock(\(PostgresRegistry.lockNamespace), hashtext(owner)) FROM patkit.pats WHERE id = \(id)
            """).collect()
        guard !rows.isEmpty else { return nil }
        return try await record(id: id)
    }

    func records(owner: String?, status: StatusFilter, now: Timestamp) async throws -> [PATRecord] {
        var conditions: [String] = []
        var bindings = PostgresBindings()
        if let owner {
            bindings.append(owner)
            conditions.append("owner = $\(bindings.count)")
        }
        switch status {
        case .all: break
        case .revoked: conditions.append("floor > generation")
        case .expired:
            bindings.append(now.seconds)
            conditions.append("floor <= generation AND expires_at <= $\(bindings.count)")
        case .active:
            bindings.append(now.seconds)
            conditions.append("floor <= generation AND expires_at > $\(bindings.count)")
        }
        let filter = conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND ")
        return try await records(PostgresQuery(unsafeSQL: "SELECT \(Self.recordColumns) FROM patkit.pats\(filter) ORDER BY owner, name, id",
                                               binds: bindings))
    }

    func recordCount() async throws -> Int {
        try await single("SELECT count(*) FROM patkit.pats", Int64.self).map(Int.init) ?? 0
    }

    /// One statement: the constraints catch a taken id or name (the service checked the name under
    /// the owner's lock already), the `NOT EXISTS` a deleted PAT's id.
    func insert(_ record: PATRecord) async throws {
        try record.checkInvariants()
        let row = PATRow(record)
        let inserted = try await constrained(record) {
            try await query(PostgresQuery(unsafeSQL: """
                INSERT INTO patkit.pats (\(Self.recordColumns))
                SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18
                WHERE NOT EXISTS (SELECT 1 FROM patkit.tombstones WHERE jti = $1)
                RETURNING id
                """, binds: try rowBindings(row))).collect()
        }
        guard !inserted.isEmpty else { throw RegistryError(.conflict, "a PAT with id \(record.id) already exists or existed") }
    }

    func update(_ record: PATRecord) async throws {
        try record.checkInvariants()
        let row = PATRow(record)
        let updated = try await constrained(record) {
            try await query(PostgresQuery(unsafeSQL: """
                UPDATE patkit.pats SET owner = $2, domain = $3, name = $4, description = $5, scopes = $6, generation = $7, floor = $8,
                    created_at = $9, updated_at = $10, expires_at = $11, max_expires_at = $12, last_rotated_at = $13, revoked_at = $14,
                    revoked_by = $15, lineage = $16, overlap_generation = $17, overlap_until = $18
                WHERE id = $1 RETURNING id
                """, binds: try rowBindings(row))).collect()
        }
        guard !updated.isEmpty else { throw RegistryError.notFound(record.id) }
    }

    /// Runs a write of `record`; a unique violation becomes the conflict it means.
    private func constrained<T>(_ record: PATRecord, _ body: () async throws -> T) async throws -> T {
        do { return try await body() } catch let error as PSQLError where PostgresErrors.sqlState(error) == "23505" {
            if error.serverInfo?[.constraintName] == "pats_owner_name_key" {
                throw RegistryError(.conflict, "owner \(record.owner) already has a PAT named \"\(record.name)\"")
            }
            throw RegistryError(.conflict, "a PAT with id \(record.id) already exists or existed")
        }
    }

    func removeRecord(id: String) async throws {
        // With what only a live record needs: its usage and expiry notices.
        let removed = try await query("""
            WITH usage AS (DELETE FROM patkit.pat_usage WHERE id = \(id)),
                 days AS (DELETE FROM patkit.pat_usage_days WHERE id = \(id)),
                 addresses AS (DELETE FROM patkit.pat_addresses WHERE id = \(id)),
                 notices AS (DELETE FROM patkit.expiry_notices WHERE id = \(id))
            DELETE FROM patkit.pats WHERE id = \(id) RETURNING id
            """).collect()
        guard !removed.isEmpty else { throw RegistryError.notFound(id) }
    }

    /// One row of arrays rather than a row per entry: at 1,000,000 entries, decoding a million
    /// rows cost about 1 s of a publish, the arrays about a tenth of that (measured: perf,
    /// `scripts/multinode-bench.py publish`). A missing overlap comes as generation 0.
    func supersededEntries() async throws -> [SupersededEntry] {
        try await supersededEntries(query("""
            SELECT array_agg(id), array_agg(floor), array_agg(max_expires_at),
                   array_agg(COALESCE(overlap_generation, 0)), array_agg(COALESCE(overlap_until, 0))
            FROM patkit.pats WHERE floor > 1
            """))
    }

    /// The entries of one row of arrays, as `supersededEntries()` selects them.
    private func supersededEntries(_ result: PostgresRowSequence) async throws -> [SupersededEntry] {
        let rows = try await result.collect()
        guard let row = rows.first else { return [] }
        let (ids, floors, horizons, overlapGenerations, overlapEnds) = try row.decode(([String]?, [Int64]?, [Int64]?, [Int64]?, [Int64]?).self)
        guard let ids, let floors, let horizons, let overlapGenerations, let overlapEnds else { return [] }
        guard floors.count == ids.count, horizons.count == ids.count, overlapGenerations.count == ids.count,
              overlapEnds.count == ids.count else {
            throw RegistryError(.database, "the registry returned revoked PATs of unequal lengths")
        }
        var entries: [SupersededEntry] = []
        entries.reserveCapacity(ids.count)
        for index in ids.indices {
            guard floors[index] >= 1 else { throw RegistryError(.database, "PAT \(ids[index]) has a floor below 1") }
            let overlap = overlapGenerations[index] >= 1
                ? PATRecord.Overlap(generation: UInt64(overlapGenerations[index]), until: Timestamp(seconds: overlapEnds[index])) : nil
            entries.append(SupersededEntry(id: ids[index], floor: UInt64(floors[index]), horizon: Timestamp(seconds: horizons[index]),
                                           overlap: overlap))
        }
        return entries
    }

    // MARK: tombstones

    func tombstone(id: String) async throws -> Tombstone? {
        try await tombstones("SELECT jti, owner, horizon, deleted_at FROM patkit.tombstones WHERE jti = \(id)").first
    }

    func insertTombstone(_ tombstone: Tombstone) async throws {
        try await query("""
            INSERT INTO patkit.tombstones (jti, owner, horizon, deleted_at)
            VALUES (\(tombstone.id), \(tombstone.owner), \(tombstone.horizon.seconds), \(tombstone.deletedAt.seconds))
            ON CONFLICT (jti) DO UPDATE SET horizon = GREATEST(patkit.tombstones.horizon, EXCLUDED.horizon)
            """)
    }

    func tombstones() async throws -> [Tombstone] {
        try await tombstones("SELECT jti, owner, horizon, deleted_at FROM patkit.tombstones ORDER BY jti")
    }

    private func tombstones(_ query: PostgresQuery) async throws -> [Tombstone] {
        var out: [Tombstone] = []
        for try await (id, owner, horizon, deletedAt) in try await self.query(query).decode((String, String, Int64, Int64).self) {
            out.append(Tombstone(id: id, owner: owner, horizon: Timestamp(seconds: horizon), deletedAt: Timestamp(seconds: deletedAt)))
        }
        return out
    }

    func removeTombstones(horizonBefore cutoff: Timestamp) async throws -> Int {
        try await count("WITH gone AS (DELETE FROM patkit.tombstones WHERE horizon < \(cutoff.seconds) RETURNING 1) SELECT count(*) FROM gone")
    }

    // MARK: owner revocations

    func ownerRevocation(owner: String) async throws -> OwnerRevocation? {
        try await ownerRevocations("""
            SELECT owner, issued_before, horizon, revoked_at FROM patkit.owner_revocations WHERE owner = \(owner)
            """).first
    }

    func saveOwnerRevocation(_ revocation: OwnerRevocation) async throws {
        try await query("""
            INSERT INTO patkit.owner_revocations (owner, issued_before, horizon, revoked_at)
            VALUES (\(revocation.owner), \(revocation.issuedBefore.seconds), \(revocation.horizon.seconds), \(revocation.revokedAt.seconds))
            ON CONFLICT (owner) DO UPDATE SET
                issued_before = GREATEST(patkit.owner_revocations.issued_before, EXCLUDED.issued_before),
                horizon = GREATEST(patkit.owner_revocations.horizon, EXCLUDED.horizon),
                revoked_at = GREATEST(patkit.owner_revocations.revoked_at, EXCLUDED.revoked_at)
            """)
    }

    func ownerRevocations() async throws -> [OwnerRevocation] {
        try await ownerRevocations("SELECT owner, issued_before, horizon, revoked_at FROM patkit.owner_revocations ORDER BY owner")
    }

    private func ownerRevocations(_ query: PostgresQuery) async throws -> [OwnerRevocation] {
        var out: [OwnerRevocation] = []
        for try await (owner, before, horizon, revokedAt) in try await self.query(query).decode((String, Int64, Int64, Int64).self) {
            out.append(OwnerRevocation(owner: owner, issuedBefore: Timestamp(seconds: before), horizon: Timestamp(seconds: horizon),
                                       revokedAt: Timestamp(seconds: revokedAt)))
        }
        return out
    }

    func removeOwnerRevocations(horizonBefore cutoff: Timestamp) async throws -> Int {
        try await count("""
            WITH gone AS (DELETE FROM patkit.owner_revocations WHERE horizon < \(cutoff.seconds) RETURNING 1) SELECT count(*) FROM gone
            """)
    }

    // MARK: publishing

    func publishSequence() async throws -> UInt64 {
        // In a write transaction the row lock makes this the only publisher until it ends.
        let lock = writing ? " FOR UPDATE" : ""
        let value = try await single(PostgresQuery(unsafeSQL: "SELECT value FROM patkit.meta WHERE key = 'publish_sequence'\(lock)"),
                                     Int64.self) ?? 0
        guard value >= 0 else { throw RegistryError(.database, "the stored publish_sequence \(value) is negative") }
        return UInt64(value)
    }

    func setPublishSequence(_ sequence: UInt64) async throws {
        guard sequence <= UInt64(Int64.max) else { throw RegistryError(.invalid, "publish_sequence \(sequence) is too large") }
        try await query("UPDATE patkit.meta SET value = \(Int64(sequence)) WHERE key = 'publish_sequence'")
    }

    func stampListChanges(_ sequence: UInt64, forgettingThrough: UInt64) async throws {
        guard sequence <= UInt64(Int64.max), forgettingThrough <= UInt64(Int64.max) else {
            throw RegistryError(.invalid, "list change stamp \(sequence) is too large")
        }
        try await query("UPDATE patkit.list_changes SET stamp = \(Int64(sequence)) WHERE stamp IS NULL")
        try await query("DELETE FROM patkit.list_changes WHERE stamp <= \(Int64(forgettingThrough))")
    }

    func listChanges(after sequence: UInt64) async throws -> ListChanges {
        guard sequence <= UInt64(Int64.max) else { throw RegistryError(.invalid, "list change stamp \(sequence) is too large") }
        let after = Int64(sequence)
        var changes = ListChanges()
        for try await (kind, key) in try await query("SELECT DISTINCT kind, key FROM patkit.list_changes WHERE stamp > \(after)")
            .decode((Int16, String).self) {
            if kind == 0 { changes.ids.append(key) } else { changes.owners.append(key) }
        }
        changes.superseded = try await supersededEntries(query("""
            SELECT array_agg(id), array_agg(floor), array_agg(max_expires_at),
                   array_agg(COALESCE(overlap_generation, 0)), array_agg(COALESCE(overlap_until, 0))
            FROM patkit.pats
            WHERE floor > 1 AND id IN (SELECT key FROM patkit.list_changes WHERE kind = 0 AND stamp > \(after))
            """))
        changes.tombstones = try await tombstones("""
            SELECT jti, owner, horizon, deleted_at FROM patkit.tombstones
            WHERE jti IN (SELECT key FROM patkit.list_changes WHERE kind = 0 AND stamp > \(after))
            """)
        changes.ownerRevocations = try await ownerRevocations("""
            SELECT owner, issued_before, horizon, revoked_at FROM patkit.owner_revocations
            WHERE owner IN (SELECT key FROM patkit.list_changes WHERE kind = 1 AND stamp > \(after))
            """)
        return changes
    }

    // MARK: outbox

    func recordChange(_ event: ChangeEvent) async throws -> ChangeEvent {
        // One round trip: the event, the outbox bound, the counter, and (once per transaction)
        // the notification other nodes receive when this transaction commits.
        let notify = notified.set() ? origin : nil
        let rows = try await query("""
            WITH added AS (
                INSERT INTO patkit.outbox (delivery, name, payload, created_at)
                VALUES (\(event.delivery), \(event.name), \(ByteBuffer(bytes: event.payload)), \(event.createdAt.seconds)) RETURNING id),
            trimmed AS (DELETE FROM patkit.outbox WHERE id <= (SELECT id FROM added) - \(Int64(ChangeEvent.outboxCapacity)))
            SELECT (SELECT id FROM added), nextval('patkit.change_counter'),
                   CASE WHEN \(notify)::text IS NULL THEN NULL ELSE pg_notify(\(PostgresRegistry.channel), \(notify)::text)::text END
            """).collect()
        guard let row = rows.first else { throw RegistryError(.database, "recording the change returned nothing") }
        let (id, _, _) = try row.decode((Int64, Int64, String?).self)
        var stored = event
        stored.id = id
        return stored
    }

    func changeCounter() async throws -> UInt64 {
        guard let row = try await query("SELECT last_value, is_called FROM patkit.change_counter").collect().first else { return 0 }
        let (value, called) = try row.decode((Int64, Bool).self)
        return called ? UInt64(max(0, value)) : 0
    }

    func events(after id: Int64, limit: Int) async throws -> [ChangeEvent] {
        try await events("""
            SELECT id, delivery, name, payload, created_at FROM patkit.outbox WHERE id > \(id) ORDER BY id LIMIT \(Int64(max(0, limit)))
            """)
    }

    private func events(_ query: PostgresQuery) async throws -> [ChangeEvent] {
        var out: [ChangeEvent] = []
        for try await (id, delivery, name, payload, createdAt) in try await self.query(query)
            .decode((Int64, String, String, ByteBuffer, Int64).self) {
            out.append(ChangeEvent(id: id, delivery: delivery, name: name, payload: Array(payload.readableBytesView),
                                   createdAt: Timestamp(seconds: createdAt)))
        }
        return out.sorted { $0.id < $1.id }
    }

    func removeEvents(_ ids: [Int64]) async throws {
        guard !ids.isEmpty else { return }
        try await query("DELETE FROM patkit.outbox WHERE id = ANY(\(ids))")
    }

    /// Milliseconds since 1970 by the database's clock: every node's leases use one clock.
    private static let now = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"

    func claimEvents(claimant: String, lease: Duration, limit: Int) async throws -> [ChangeEvent] {
        try await events(PostgresQuery(unsafeSQL: """
            UPDATE patkit.outbox SET claimed_by = $1, claimed_until = \(Self.now) + $2
            WHERE id IN (SELECT id FROM patkit.outbox WHERE claimed_until IS NULL OR claimed_until <= \(Self.now)
                         ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED)
            RETURNING id, delivery, name, payload, created_at
            """, binds: binds(claimant, lease.milliseconds, Int64(max(0, limit)))))
    }

    func renewClaims(_ ids: [Int64], claimant: String, lease: Duration) async throws -> [Int64] {
        guard !ids.isEmpty else { return [] }
        var kept: [Int64] = []
        let rows = try await query(PostgresQuery(unsafeSQL: """
            UPDATE patkit.outbox SET claimed_until = \(Self.now) + $1 WHERE claimed_by = $2 AND id = ANY($3) RETURNING id
            """, binds: binds(lease.milliseconds, claimant, ids)))
        for try await id in rows.decode(Int64.self) { kept.append(id) }
        return kept.sorted()
    }

    func releaseClaims(_ ids: [Int64], claimant: String) async throws {
        guard !ids.isEmpty else { return }
        try await query("UPDATE patkit.outbox SET claimed_by = NULL, claimed_until = NULL WHERE claimed_by = \(claimant) AND id = ANY(\(ids))")
    }

    // MARK: leaks

    func recordLeak(_ leak: LeakRecord) async throws -> Bool {
        let rows = try await query("""
            INSERT INTO patkit.leaks (id, generation, reported_at, url, source)
            VALUES (\(leak.id), \(Int64(clamping: leak.generation)), \(leak.reportedAt.seconds), \(leak.url), \(leak.source))
            ON CONFLICT (id, generation) DO NOTHING RETURNING id
            """).collect()
        return !rows.isEmpty
    }

    func leak(id: String, generation: UInt64) async throws -> LeakRecord? {
        let rows = try await query("""
            SELECT reported_at, url, source FROM patkit.leaks WHERE id = \(id) AND generation = \(Int64(clamping: generation))
            """).collect()
        guard let row = rows.first else { return nil }
        let (reportedAt, url, source) = try row.decode((Int64, String, String).self)
        return LeakRecord(id: id, generation: generation, reportedAt: Timestamp(seconds: reportedAt), url: url, source: source)
    }

    // MARK: usage

    /// A few statements and no lock on the PAT: two nodes adding reports of one PAT at once both
    /// count (the upserts add), and only one of them finds a new address new.
    func recordUsage(_ update: UsageUpdate, addressLimit: Int) async throws -> UsageRecorded {
        let stored = try await query("""
            INSERT INTO patkit.pat_usage (id, first_used_at, last_used_at, last_used_from, last_outcome, uses)
            SELECT id, \(update.firstUsedAt.seconds), \(update.lastUsedAt.seconds), \(update.lastUsedFrom), \(update.lastOutcome),
                   \(Int64(clamping: update.uses))
            FROM patkit.pats WHERE id = \(update.id)
            ON CONFLICT (id) DO UPDATE SET
                first_used_at = LEAST(patkit.pat_usage.first_used_at, EXCLUDED.first_used_at),
                last_used_from = CASE WHEN EXCLUDED.last_used_at >= patkit.pat_usage.last_used_at
                                      THEN COALESCE(EXCLUDED.last_used_from, patkit.pat_usage.last_used_from)
                                      ELSE patkit.pat_usage.last_used_from END,
                last_outcome = CASE WHEN EXCLUDED.last_used_at >= patkit.pat_usage.last_used_at
                                    THEN EXCLUDED.last_outcome ELSE patkit.pat_usage.last_outcome END,
                last_used_at = GREATEST(patkit.pat_usage.last_used_at, EXCLUDED.last_used_at),
                uses = LEAST(patkit.pat_usage.uses::numeric + EXCLUDED.uses, 9223372036854775807)::bigint
            RETURNING id
            """).collect()
        guard !stored.isEmpty else { return .unknownPAT }
        if !update.days.isEmpty {
            let days = update.days.map(\.day), uses = update.days.map { Int64(clamping: $0.uses) }
            try await query("""
                INSERT INTO patkit.pat_usage_days (id, day, uses)
                SELECT \(update.id), day, uses FROM unnest(\(days)::bigint[], \(uses)::bigint[]) AS t(day, uses)
                ON CONFLICT (id, day) DO UPDATE SET
                    uses = LEAST(patkit.pat_usage_days.uses::numeric + EXCLUDED.uses, 9223372036854775807)::bigint
                """)
            let oldest = (days.max() ?? 0) - UsageDay.retention
            try await query("DELETE FROM patkit.pat_usage_days WHERE id = \(update.id) AND day < \(oldest)")
        }
        guard let address = update.lastUsedFrom else { return .recorded(newAddress: false) }
        let seen = update.lastUsedAt.seconds
        let inserted = try await single("""
            INSERT INTO patkit.pat_addresses (id, address, first_seen, last_seen) VALUES (\(update.id), \(address), \(seen), \(seen))
            ON CONFLICT (id, address) DO UPDATE SET last_seen = GREATEST(patkit.pat_addresses.last_seen, EXCLUDED.last_seen)
            RETURNING (xmax = 0)
            """, Bool.self) ?? false
        let known = try await count("SELECT count(*) FROM patkit.pat_addresses WHERE id = \(update.id)")
        if known > addressLimit {
            try await query("""
                DELETE FROM patkit.pat_addresses WHERE id = \(update.id) AND address IN (
                    SELECT address FROM patkit.pat_addresses WHERE id = \(update.id) AND address <> \(address)
                    ORDER BY last_seen, address LIMIT \(Int64(known - addressLimit)))
                """)
        }
        return .recorded(newAddress: inserted && known > 1)
    }

    func usageDays(id: String) async throws -> [UsageDay] {
        var out: [UsageDay] = []
        let rows = try await query("SELECT day, uses FROM patkit.pat_usage_days WHERE id = \(id) ORDER BY day")
        for try await (day, uses) in rows.decode((Int64, Int64).self) { out.append(UsageDay(day: day, uses: UInt64(max(0, uses)))) }
        return out
    }

    // MARK: expiry

    func expiringRecords(after: Timestamp, through: Timestamp) async throws -> [(record: PATRecord, noticed: Set<Int64>)] {
        let found = try await records(PostgresQuery(unsafeSQL: """
            SELECT \(Self.recordColumns) FROM patkit.pats
            WHERE floor <= generation AND expires_at > $1 AND expires_at <= $2 ORDER BY expires_at, id
            """, binds: binds(after.seconds, through.seconds)))
        var noticed: [String: Set<Int64>] = [:]
        let rows = try await query("""
            SELECT n.id, n.lead_seconds FROM patkit.expiry_notices n JOIN patkit.pats p ON p.id = n.id AND p.expires_at = n.expires_at
            WHERE p.expires_at > \(after.seconds) AND p.expires_at <= \(through.seconds)
            """)
        for try await (id, lead) in rows.decode((String, Int64).self) { noticed[id, default: []].insert(lead) }
        return found.map { (record: $0, noticed: noticed[$0.id] ?? []) }
    }

    func claimExpiryNotice(id: String, expiresAt: Timestamp, leadSeconds: Int64, at time: Timestamp) async throws -> Bool {
        let rows = try await query("""
            INSERT INTO patkit.expiry_notices (id, expires_at, lead_seconds, sent_at)
            VALUES (\(id), \(expiresAt.seconds), \(leadSeconds), \(time.seconds))
            ON CONFLICT (id, expires_at, lead_seconds) DO NOTHING RETURNING id
            """).collect()
        return !rows.isEmpty
    }

    func removeExpiryNotices(expiresBefore cutoff: Timestamp) async throws -> Int {
        try await count("""
            WITH gone AS (DELETE FROM patkit.expiry_notices WHERE expires_at < \(cutoff.seconds) RETURNING 1) SELECT count(*) FROM gone
            """)
    }

    // MARK: lifetime policies

    func lifetimePolicy(domain: String) async throws -> LifetimePolicy? {
        try await lifetimePolicies("SELECT domain, max_lifetime, updated_at FROM patkit.lifetime_policies WHERE domain = \(domain)").first
    }

    func lifetimePolicies() async throws -> [LifetimePolicy] {
        try await lifetimePolicies("SELECT domain, max_lifetime, updated_at FROM patkit.lifetime_policies ORDER BY domain")
    }

    private func lifetimePolicies(_ query: PostgresQuery) async throws -> [LifetimePolicy] {
        var out: [LifetimePolicy] = []
        for try await (domain, max, updated) in try await self.query(query).decode((String, Int64, Int64).self) {
            out.append(LifetimePolicy(domain: domain, maxLifetime: TimeSpan(seconds: max), updatedAt: Timestamp(seconds: updated)))
        }
        return out
    }

    func saveLifetimePolicy(_ policy: LifetimePolicy) async throws {
        try await query("""
            INSERT INTO patkit.lifetime_policies (domain, max_lifetime, updated_at)
            VALUES (\(policy.domain), \(policy.maxLifetime.seconds), \(policy.updatedAt.seconds))
            ON CONFLICT (domain) DO UPDATE SET max_lifetime = EXCLUDED.max_lifetime, updated_at = EXCLUDED.updated_at
            """)
    }

    func removeLifetimePolicy(domain: String) async throws -> Bool {
        !(try await query("DELETE FROM patkit.lifetime_policies WHERE domain = \(domain) RETURNING domain").collect()).isEmpty
    }

    // MARK: helpers

    private func single<V: PostgresDecodable>(_ query: PostgresQuery, _ type: V.Type) async throws -> V? {
        guard let row = try await self.query(query).collect().first else { return nil }
        return try row.decode(V.self)
    }

    private func count(_ query: PostgresQuery) async throws -> Int {
        Int(try await single(query, Int64.self) ?? 0)
    }

    private func binds(_ values: any PostgresDynamicTypeEncodable...) -> PostgresBindings {
        var bindings = PostgresBindings()
        for value in values { bindings.append(value) }
        return bindings
    }

    private func rowBindings(_ row: PATRow) throws -> PostgresBindings {
        var b = PostgresBindings()
        b.append(row.id)
        b.append(row.owner)
        b.append(row.domain)
        b.append(row.name)
        b.append(row.description)
        b.append(row.scopes)
        b.append(Int64(row.generation))
        b.append(Int64(row.floor))
        b.append(row.createdAt)
        b.append(row.updatedAt)
        b.append(row.expiresAt)
        b.append(row.maxExpiresAt)
        b.append(row.lastRotatedAt)
        b.append(row.revokedAt)
        b.append(try row.revokedBy.map { String(decoding: try JSONEncoder().encode($0), as: UTF8.self) })
        b.append(row.lineage)
        b.append(row.overlapGeneration)
        b.append(row.overlapUntil)
        return b
    }
}
