import Foundation
import GRDB
import PATRegistry
import PATRegistryTestSupport
import Testing

@Suite("Registry records and status")
struct RecordTests {
    @Test("status is derived from floor, expiry and now; revoked wins over expired")
    func statusDerivation() throws {
        let t0 = TestClock.start
        var record = PATRecord(id: PATClaims.newID(), owner: "alice", name: "ci", scopes: try scopes("clients:view"),
                               createdAt: t0, expiresAt: t0.adding(seconds: 100))
        #expect(record.status(at: t0) == .active)
        #expect(record.status(at: t0.adding(seconds: 99)) == .active)
        #expect(record.status(at: t0.adding(seconds: 100)) == .expired)
        record.floor = record.generation + 1
        #expect(record.status(at: t0) == .revoked)
        #expect(record.status(at: t0.adding(seconds: 1000)) == .revoked)
        record.generation += 1
        #expect(record.status(at: t0) == .active, "a regenerate brings the current generation back above the floor")
    }
}

@Suite("the registry store, SQLite and PostgreSQL", .timeLimit(.minutes(5)))
struct StoreTests {
    static func record(owner: String, name: String, at t0: Timestamp = TestClock.start) throws -> PATRecord {
        PATRecord(id: PATClaims.newID(), owner: owner, name: name, scopes: try scopes("clients:view"),
                  createdAt: t0, expiresAt: t0.adding(seconds: 3600))
    }

    /// H1 at the store: two owners that Swift's `==` calls equal are two owners here.
    @Test("owners and names compare as bytes: \\u00e9ve and e\\u0301ve are two owners", arguments: RegistryBackend.allCases)
    func identitiesAreBytes(_ backend: RegistryBackend) async throws {
        let t = try await TestHome.make(backend)
        let nfc = "\u{e9}ve", nfd = "e\u{301}ve"
        #expect(nfc == nfd, "Swift's String == is canonical equivalence: the premise of the attack")
        let victim = try Self.record(owner: nfc, name: "deploy")
        let attacker = try Self.record(owner: nfd, name: "deploy")
        try await t.registry.write { tx in
            try await tx.insert(victim)
            try await tx.insert(attacker) // same name, "same" owner for Swift: a different owner for the store
        }
        let now = TestClock.start
        #expect(try await t.registry.list(owner: nfc, now: now).map(\.id) == [victim.id])
        #expect(try await t.registry.list(owner: nfd, now: now).map(\.id) == [attacker.id])
        let byName = try await t.registry.read { tx in try await tx.record(owner: nfd, name: "deploy") }
        #expect(byName?.id == attacker.id)
        #expect(try await t.registry.get(id: victim.id).map { Array($0.owner.utf8) } == Array(nfc.utf8))

        // The name rule is per owner, by bytes: é-named and e+´-named PATs of one owner are two names.
        try await t.registry.write { tx in
            try await tx.insert(try Self.record(owner: "carol", name: nfc))
            try await tx.insert(try Self.record(owner: "carol", name: nfd))
        }
        #expect(try await t.registry.list(owner: "carol", now: now).count == 2)
        await #expect(throws: RegistryError.self) {
            try await t.registry.write { tx in try await tx.insert(try Self.record(owner: "carol", name: nfc)) }
        }
    }

    @Test("a transaction that throws leaves nothing behind; a later one works", arguments: RegistryBackend.allCases)
    func rollback(_ backend: RegistryBackend) async throws {
        let t = try await TestHome.make(backend)
        struct Boom: Error {}
        let doomed = try Self.record(owner: "a", name: "doomed")
        await #expect(throws: Boom.self) {
            try await t.registry.write { tx in
                try await tx.insert(doomed)
                throw Boom()
            }
        }
        #expect(try await t.registry.get(id: doomed.id) == nil)
        let kept = try Self.record(owner: "a", name: "kept")
        try await t.registry.write { tx in try await tx.insert(kept) }
        #expect(try await t.registry.get(id: kept.id) == kept)
    }

    @Test("records keep their lineage and who revoked them", arguments: RegistryBackend.allCases)
    func lineageAndRevoker(_ backend: RegistryBackend) async throws {
        let t = try await TestHome.make(backend)
        var record = try Self.record(owner: "alice", name: "ci")
        record.lineage = [PATRecord.Ancestor(id: PATClaims.newID(), generation: 3), PATRecord.Ancestor(id: PATClaims.newID(), generation: 1)]
        record.floor = 2
        record.revokedAt = TestClock.start
        record.revokedBy = .token(id: PATClaims.newID(), generation: 2, subject: "admin", admin: true)
        let stored = record
        try await t.registry.write { tx in try await tx.insert(stored) }
        #expect(try await t.registry.get(id: record.id) == record)
        let reopened = try await t.reopen()
        #expect(try await reopened.get(id: record.id) == record)
    }

    @Test("every recorded change raises the counter and lands in the outbox, bounded", arguments: RegistryBackend.allCases)
    func outboxAndChangeCounter(_ backend: RegistryBackend) async throws {
        let t = try await TestHome.make(backend)
        #expect(try await t.registry.changeCounter() == 0)
        @Sendable func event(_ n: Int) -> ChangeEvent {
            ChangeEvent(delivery: "d\(n)", name: "personalAccessToken.created", payload: Array("{\"n\":\(n)}".utf8),
                        createdAt: TestClock.start)
        }
        let first = try await t.registry.write { tx in try await tx.recordChange(event(1)) }
        let second = try await t.registry.write { tx in try await tx.recordChange(event(2)) }
        #expect(first.id > 0 && second.id > first.id)
        #expect(try await t.registry.changeCounter() == 2)
        // Another connection (another process) sees the counter move.
        let other = try await t.reopen()
        #expect(try await other.changeCounter() == 2)
        let pending = try await other.read { tx in try await tx.events(after: 0, limit: 10) }
        #expect(pending.map(\.delivery) == ["d1", "d2"])
        #expect(pending.first?.payload == Array("{\"n\":1}".utf8))
        try await t.registry.write { tx in try await tx.removeEvents([first.id]) }
        #expect(try await t.registry.read { tx in try await tx.events(after: 0, limit: 10) }.map(\.id) == [second.id])
        #expect(try await t.registry.changeCounter() == 2, "removing delivered events is no change")

        // Nobody drains it: the oldest events go beyond the capacity.
        // In transactions of 500 (one of them all would take most of PostgreSQL's transaction deadline
        // on a loaded machine); the bound is kept by each recordChange, not at commit.
        for start in stride(from: 3, through: ChangeEvent.outboxCapacity + 5, by: 500) {
            try await t.registry.write { tx in
                for n in start...min(ChangeEvent.outboxCapacity + 5, start + 499) { _ = try await tx.recordChange(event(n)) }
            }
        }
        let kept = try await t.registry.read { tx in try await tx.events(after: 0, limit: ChangeEvent.outboxCapacity + 10) }
        #expect(kept.count == ChangeEvent.outboxCapacity)
        #expect(kept.last?.delivery == "d\(ChangeEvent.outboxCapacity + 5)")
        #expect(try await t.registry.changeCounter() == UInt64(ChangeEvent.outboxCapacity + 5))
    }

    @Test("a registry written by the previous schema (v1) migrates and keeps its records")
    func migratesFromV1() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("patv1-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("pat.db").path
        let id = PATClaims.newID()
        let queue = try DatabaseQueue(path: path)
        try await queue.write { db in
            // The v1 schema exactly as released, with GRDB's migration bookkeeping.
            try db.execute(sql: """
                CREATE TABLE grdb_migrations (identifier TEXT NOT NULL PRIMARY KEY);
                INSERT INTO grdb_migrations VALUES ('v1');
                CREATE TABLE pats (id TEXT NOT NULL PRIMARY KEY, owner TEXT NOT NULL, domain TEXT, name TEXT NOT NULL,
                    description TEXT, scopes TEXT NOT NULL, generation INTEGER NOT NULL CHECK (generation >= 1),
                    floor INTEGER NOT NULL CHECK (floor >= 1 AND floor <= generation + 1), created_at INTEGER NOT NULL,
                    updated_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,
                    max_expires_at INTEGER NOT NULL CHECK (max_expires_at >= expires_at), last_rotated_at INTEGER,
                    revoked_at INTEGER, UNIQUE (owner, name));
                CREATE TABLE tombstones (jti TEXT NOT NULL PRIMARY KEY, owner TEXT NOT NULL, horizon INTEGER NOT NULL,
                    deleted_at INTEGER NOT NULL);
                CREATE TABLE owner_revocations (owner TEXT NOT NULL PRIMARY KEY, issued_before INTEGER NOT NULL,
                    horizon INTEGER NOT NULL, revoked_at INTEGER NOT NULL);
                CREATE TABLE meta (key TEXT NOT NULL PRIMARY KEY, value INTEGER NOT NULL);
                INSERT INTO meta (key, value) VALUES ('publish_sequence', 7);
                """)
            try db.execute(sql: "INSERT INTO pats VALUES (?, 'alice', 'd1', 'ci', NULL, 'clients:view:*', 2, 3, 10, 20, 30, 30, 20, 25)",
                           arguments: [id])
        }
        try queue.close()
        let registry = try SQLiteRegistry(path: path)
        let record = try #require(try await registry.get(id: id))
        #expect(record.owner == "alice" && record.generation == 2 && record.floor == 3 && record.domain == "d1")
        #expect(record.lineage.isEmpty)
        #expect(record.revokedBy == nil, "unknown revoker: only an admin may undo it")
        #expect(try await registry.publishSequence() == 7)
        #expect(try await registry.changeCounter() == 0)
    }
}
