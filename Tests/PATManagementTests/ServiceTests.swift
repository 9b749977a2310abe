import Foundation
import PATManagement
import PATRegistry
import PATRegistryTestSupport
import PATTestSupport
import Testing

@Suite("the management service, as the operator", .timeLimit(.minutes(5)))
struct OperatorTests {
    @Test("create issues a verifiable token of generation 1 and stores everything but the token", arguments: RegistryBackend.allCases)
    func createIssuesToken(_ backend: RegistryBackend) async throws {
        let t = try await TestHome.make(backend)
        let clock = TestClock()
        let issued = try await t.lifecycle(at: clock).create(owner: "alice", name: "ci", description: "CI deploys",
                                                       scopes: try scopes("clients:view", "channels:view:ch-1"),
                                                       expiry: .after(TimeSpan(seconds: 86_400)), domain: "d1")
        let record = try #require(try await t.registry.get(id: issued.record.id))
        #expect(record == issued.record)
        #expect(record.generation == 1 && record.floor == 1)
        #expect(record.expiresAt == clock.now.adding(seconds: 86_400))
        #expect(record.maxExpiresAt == record.expiresAt)
        #expect(record.lastRotatedAt == nil && record.revokedAt == nil)
        #expect(record.status(at: clock.now) == .active)

        var policy = Validator.Policy()
        policy.requireRevocationList = false
        let validator = Validator(keys: try t.keyStore.keySet(), policy: policy, clock: { clock.now })
        let pat = try validator.validate(issued.bearer, domain: "d1")
        #expect(pat.id == record.id && pat.subject == "alice" && pat.generation == 1)
        #expect(pat.allows(entity: "channels", operation: "view", id: "ch-1"))
        #expect(!pat.allows(entity: "channels", operation: "view", id: "ch-2"))

        // The token (its signed payload) appears nowhere in the database (files or tables).
        let payload = try #require(issued.bearer.split(separator: ".").dropFirst(2).first)
        let stored = String(decoding: try await t.storedBytes(), as: UTF8.self)
        #expect(stored.contains(issued.record.id), "the check reads what the registry holds")
        #expect(!stored.contains(payload.suffix(40)))
    }

    /// PostgreSQL text cannot hold U+0000: refused by the service, on every back end alike,
    /// instead of stored by one and an internal error on the other.
    @Test("a description holding U+0000 is refused naming the field, on both back ends", arguments: RegistryBackend.allCases)
    func nulInDescription(_ backend: RegistryBackend) async throws {
        let t = try await TestHome.make(backend)
        let clock = TestClock()
        let error = await managementError {
            _ = try await t.lifecycle(at: clock).create(owner: "alice", name: "ci", description: "before\u{0}after",
                                                        scopes: try scopes("clients:view"), expiry: .after(TimeSpan(seconds: 60)))
        }
        #expect(error?.kind == .invalidInput && error?.field == "description")
        #expect(try await t.registry.read { tx in try await tx.recordCount() } == 0)
        let stored = try await t.lifecycle(at: clock).create(owner: "alice", name: "ci", description: "tab\tand\u{1b}[31m kept",
                                                             scopes: try scopes("clients:view"), expiry: .after(TimeSpan(seconds: 60)))
        #expect(try await t.registry.get(id: stored.record.id)?.description == "tab\tand\u{1b}[31m kept", "other controls are stored as given")
    }

    @Test("names are unique per owner among non-deleted PATs", arguments: RegistryBackend.allCases)
    func nameUniquePerOwner(_ backend: RegistryBackend) async throws {
        let t = try await TestHome.make(backend)
        let clock = TestClock()
        let lifecycle = t.lifecycle(at: clock)
        let expiry = Expiry.after(TimeSpan(seconds: 3600))
        let first = try await lifecycle.create(owner: "alice", name: "ci", scopes: try scopes("clients:view"), expiry: expiry)
        let error = await managementError {
            _ = try await lifecycle.create(owner: "alice", name: "ci", scopes: try scopes("clients:view"), expiry: expiry)
        }
        #expect(error?.kind == .nameTaken)
        #expect(error?.field == "name")
        #expect(error?.reason.contains("already has a PAT named \"ci\"") == true)
        _ = try await lifecycle.create(owner: "bob", name: "ci", scopes: try scopes("clients:view"), expiry: expiry)
        _ = try await lifecycle.create(owner: "alice", name: "CI", scopes: try scopes("clients:view"), expiry: expiry)
        try await lifecycle.delete(id: first.record.id)
        let again = try await lifecycle.create(owner: "alice", name: "ci", scopes: try scopes("clients:view"), expiry: expiry)
        #expect(again.record.id != first.record.id)
        #expect(try await t.registry.read { tx in try await tx.recordCount() } == 3)
    }

    @Test("revoke, scope changes, regenerate (also of revoked and expired PATs), delete", arguments: RegistryBackend.allCases)
    func lifecycleSemantics(_ backend: RegistryBackend) async throws {
        let t = try await TestHome.make(backend)
        let clock = TestClock()
        let lifecycle = t.lifecycle(at: clock)
        let created = try await lifecycle.create(owner: "alice", name: "ci", scopes: try scopes("clients:view"),
                                           expiry: .after(TimeSpan(seconds: 3600)))
        let id = created.record.id
        let exp1 = created.record.expiresAt

        clock.advance(10)
        let rescoped = try await lifecycle.addScopes(id: id, [try Scope(parsing: "groups:view")])
        #expect(rescoped.record.generation == 2 && rescoped.record.floor == 2)
        #expect(rescoped.record.expiresAt == exp1, "a scope change keeps the expiry")
        #expect(rescoped.record.lastRotatedAt == clock.now)
        #expect(rescoped.record.scopes == (try scopes("clients:view", "groups:view")))
        #expect(await managementError { _ = try await lifecycle.addScopes(id: id, [try Scope(parsing: "groups:view")]) }?.kind == .conflict)
        let unknown = await managementError { _ = try await lifecycle.addScopes(id: id, [try Scope(parsing: "nosuch:view")]) }
        #expect(unknown?.kind == .invalidInput && unknown?.field == "scopes[0]")
        let absent = await managementError { _ = try await lifecycle.removeScopes(id: id, [try Scope(parsing: "channels:view")]) }
        #expect(absent?.kind == .invalidInput && absent?.field == "scopes")

        let revoked = try await lifecycle.revoke(id: id)
        #expect(!revoked.wasAlreadyRevoked)
        #expect(revoked.record.floor == 3 && revoked.record.generation == 2)
        #expect(revoked.record.revokedAt == clock.now)
        #expect(revoked.record.status(at: clock.now) == .revoked)
        #expect(try await lifecycle.revoke(id: id).wasAlreadyRevoked)
        #expect(revoked.record.revokedBy == .localOperator)
        let notActive = await managementError { _ = try await lifecycle.clearScopes(id: id) }
        #expect(notActive?.kind == .conflict)
        #expect(notActive?.reason.contains("it is revoked") == true)

        clock.advance(10)
        let regenerated = try await lifecycle.regenerate(id: id, expiry: .after(TimeSpan(seconds: 7200)))
        #expect(regenerated.record.generation == 3 && regenerated.record.floor == 3)
        #expect(regenerated.record.revokedAt == nil)
        #expect(regenerated.record.expiresAt == clock.now.adding(seconds: 7200))
        #expect(regenerated.record.maxExpiresAt == regenerated.record.expiresAt)
        #expect(regenerated.record.scopes == rescoped.record.scopes)
        #expect(regenerated.record.name == "ci")

        clock.advance(7200)
        #expect(try await t.registry.get(id: id)?.status(at: clock.now) == .expired)
        #expect(try await t.registry.list(status: .expired, now: clock.now).map(\.id) == [id])
        #expect(try await t.registry.list(status: .active, now: clock.now).isEmpty)
        let renewed = try await lifecycle.regenerate(id: id, expiry: .after(TimeSpan(seconds: 60)))
        #expect(renewed.record.generation == 4 && renewed.record.status(at: clock.now) == .active)

        let cleared = try await lifecycle.clearScopes(id: id)
        #expect(cleared.record.scopes.isEmpty && cleared.record.generation == 5)
        #expect(await managementError { _ = try await lifecycle.clearScopes(id: id) }?.kind == .conflict)

        let gone = try await lifecycle.delete(id: id)
        #expect(gone.tombstone.horizon == cleared.record.maxExpiresAt)
        #expect(try await t.registry.get(id: id) == nil)
        let deleted = await managementError { _ = try await lifecycle.revoke(id: id) }
        #expect(deleted?.kind == .deleted)
        let missing = await managementError { _ = try await lifecycle.revoke(id: "no-such-pat-id-aaaaaaaaaa") }
        #expect(missing?.kind == .notFound)
        #expect(missing?.reason.contains("no PAT with id no-such-pat-id-aaaaaaaaaa") == true)
    }

    @Test("the maximum lifetime policy is enforced with a clear error", arguments: RegistryBackend.allCases)
    func maxLifetime(_ backend: RegistryBackend) async throws {
        let t = try await TestHome.make(backend)
        let clock = TestClock()
        let lifecycle = t.lifecycle(at: clock)
        let year = ManagementPolicy.defaultMaxLifetime.seconds
        _ = try await lifecycle.create(owner: "a", name: "one-year", scopes: try scopes("clients:view"), expiry: .after(TimeSpan(seconds: year)))
        let error = await managementError {
            _ = try await lifecycle.create(owner: "a", name: "too-long", scopes: try scopes("clients:view"),
                                           expiry: .at(clock.now.adding(seconds: year + 1)))
        }
        #expect(error?.kind == .invalidInput && error?.field == "expiresAt")
        #expect(error?.reason.contains("exceeds the maximum lifetime of 1y") == true)
        let past = await managementError {
            _ = try await lifecycle.create(owner: "a", name: "past", scopes: try scopes("clients:view"), expiry: .at(clock.now))
        }
        #expect(past?.kind == .invalidInput)
        let relaxed = t.lifecycle(at: clock, maxLifetime: TimeSpan(seconds: 3 * year))
        _ = try await relaxed.create(owner: "a", name: "two-years", scopes: try scopes("clients:view"), expiry: .after(TimeSpan(seconds: 2 * year)))
    }

    @Test("reopening the database keeps records and does not migrate twice", arguments: RegistryBackend.allCases)
    func reopen(_ backend: RegistryBackend) async throws {
        let t = try await TestHome.make(backend)
        let clock = TestClock()
        let issued = try await t.lifecycle(at: clock).create(owner: "a", name: "n", scopes: try scopes("clients:view"),
                                                       expiry: .after(TimeSpan(seconds: 60)))
        let reopened = try await t.reopen()
        #expect(try await reopened.get(id: issued.record.id) == issued.record)
    }

    @Test("concurrent writers on separate connections lose nothing", arguments: RegistryBackend.allCases)
    func concurrentWriters(_ backend: RegistryBackend) async throws {
        let t = try await TestHome.make(backend)
        let keyStore = t.keyStore
        let clock = TestClock()
        let lifecycle = t.lifecycle(at: clock)
        var victims: [String] = []
        for i in 0..<20 {
            victims.append(try await lifecycle.create(owner: "victim", name: "v\(i)", scopes: try scopes("clients:view"),
                                                expiry: .after(TimeSpan(seconds: 3600))).record.id)
        }
        let ids = victims
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<4 {
                group.addTask {
                    let own = OperatorOps(service: PATManagement(store: try await t.reopen(), keyStore: keyStore,
                                                                 clock: { clock.now }))
                    for i in 0..<25 {
                        _ = try await own.create(owner: "worker\(worker)", name: "pat\(i)", scopes: try scopes("clients:view"),
                                           expiry: .after(TimeSpan(seconds: 3600)))
                    }
                }
            }
            group.addTask {
                let own = OperatorOps(service: PATManagement(store: try await t.reopen(), keyStore: keyStore,
                                                             clock: { clock.now }))
                for id in ids { _ = try await own.revoke(id: id) }
            }
            try await group.waitForAll()
        }
        #expect(try await t.registry.read { tx in try await tx.recordCount() } == 120)
        #expect(try await t.registry.list(status: .revoked, now: clock.now).count == 20)
        for worker in 0..<4 {
            #expect(try await t.registry.list(owner: "worker\(worker)", now: clock.now).count == 25)
        }
    }
}

@Suite("Publisher", .timeLimit(.minutes(5)))
struct PublisherTests {
    @Test("published list refuses superseded, revoked and deleted PATs and accepts current ones", arguments: RegistryBackend.allCases)
    func publishReflectsLifecycle(_ backend: RegistryBackend) async throws {
        let t = try await TestHome.make(backend)
        let clock = TestClock()
        let lifecycle = t.lifecycle(at: clock)
        let day = Expiry.after(TimeSpan(seconds: 86_400))
        let a = try await lifecycle.create(owner: "alice", name: "a", scopes: try scopes("clients:view"), expiry: day)
        let b = try await lifecycle.create(owner: "alice", name: "b", scopes: try scopes("clients:view"), expiry: day)
        let c = try await lifecycle.create(owner: "bob", name: "c", scopes: try scopes("clients:view"), expiry: day)
        let a2 = try await lifecycle.addScopes(id: a.record.id, [try Scope(parsing: "groups:view")])
        _ = try await lifecycle.revoke(id: b.record.id)
        try await lifecycle.delete(id: c.record.id)
        let result = try await t.publisher(at: clock).publish()
        #expect(result.sequence == 1 && result.tokenEntries == 3 && result.ownerEntries == 0)
        #expect(result.nextUpdate == clock.now.adding(seconds: 3600))

        let validator = try t.validator(at: clock)
        #expect(rejection(validator, a.bearer) == .revoked)
        #expect(rejection(validator, a2.bearer) == nil)
        #expect(try validator.validate(a2.bearer).allows(entity: "groups", operation: "view"))
        #expect(rejection(validator, b.bearer) == .revoked)
        #expect(rejection(validator, c.bearer) == .revoked)
        #expect(validator.revocations?.check(try PATClaims(json: Array(#"{"jti":"\#(c.record.id)","sub":"bob","gen":9,"iat":"2027-01-15T08:00:00Z","exp":"2027-01-16T08:00:00Z"}"#.utf8))) == .deleted)
    }

    @Test("revoke-all refuses every earlier token of the owner, also unrecorded ones; new tokens in the same second work", arguments: RegistryBackend.allCases)
    func revokeAll(_ backend: RegistryBackend) async throws {
        let t = try await TestHome.make(backend)
        let clock = TestClock()
        let lifecycle = t.lifecycle(at: clock)
        let day = Expiry.after(TimeSpan(seconds: 86_400))
        let a1 = try await lifecycle.create(owner: "alice", name: "a1", scopes: try scopes("clients:view"), expiry: day)
        let a2 = try await lifecycle.create(owner: "alice", name: "a2", scopes: try scopes("clients:view"), expiry: day)
        let b1 = try await lifecycle.create(owner: "bob", name: "b1", scopes: try scopes("clients:view"), expiry: day)
        _ = try await lifecycle.revoke(id: a2.record.id)
        let unrecorded = try Issuer(key: t.keyStore.signingKey()).issue(
            PATClaims(id: PATClaims.newID(), subject: "alice", issuedAt: clock.now, expiresAt: clock.now.adding(seconds: 600)))

        clock.advance(5)
        let result = try await lifecycle.revokeAll(owner: "alice")
        #expect(result.revoked.map(\.id) == [a1.record.id])
        #expect(result.alreadyRevoked == 1)
        #expect(result.ownerRevocation.issuedBefore == clock.now.adding(seconds: 1))
        #expect(result.ownerRevocation.horizon >= a1.record.maxExpiresAt)
        #expect(try await t.registry.list(owner: "alice", status: .revoked, now: clock.now).count == 2)

        // Issued in the very same second as the revoke-all: iat moves to the revoke-all instant.
        let a3 = try await lifecycle.create(owner: "alice", name: "a3", scopes: try scopes("clients:view"), expiry: day)
        #expect(a3.issuedAt == result.ownerRevocation.issuedBefore)
        let a1b = try await lifecycle.regenerate(id: a1.record.id, expiry: day)

        let published = try await t.publisher(at: clock).publish()
        #expect(published.ownerEntries == 1)
        let validator = try t.validator(at: clock)
        #expect(rejection(validator, a1.bearer) == .revoked)
        #expect(rejection(validator, a2.bearer) == .revoked)
        #expect(rejection(validator, unrecorded) == .revoked)
        #expect(rejection(validator, b1.bearer) == nil)
        #expect(rejection(validator, a3.bearer) == nil)
        #expect(rejection(validator, a1b.bearer) == nil)
    }

    @Test("10,000 revoked PATs whose expiry passed are all pruned", arguments: RegistryBackend.allCases)
    func tenThousandPruned(_ backend: RegistryBackend) async throws {
        let t = try await TestHome.make(backend)
        let clock = TestClock()
        let count = 10_000
        let expires = clock.now.adding(seconds: 86_400)
        // In transactions of 500: one of 10,000 inserts would take most of PostgreSQL's 60 s
        // transaction deadline on a loaded 2-core machine (debug build, one round trip each).
        for start in stride(from: 0, to: count, by: 500) {
            try await t.registry.write { tx in
                for i in start..<min(count, start + 500) {
                    try await tx.insert(PATRecord(id: PATClaims.newID(), owner: "user\(i % 100)", name: "pat\(i)",
                                            scopes: try scopes("clients:view"), generation: 1, floor: 2, createdAt: clock.now,
                                            expiresAt: expires, revokedAt: clock.now))
                }
            }
        }
        // Some deleted ones and a revoke-all too, whose rows must leave the database once pruned.
        let lifecycle = t.lifecycle(at: clock)
        for i in 0..<10 {
            let issued = try await lifecycle.create(owner: "gone", name: "g\(i)", scopes: try scopes("clients:view"),
                                              expiry: .at(expires))
            try await lifecycle.delete(id: issued.record.id)
        }
        _ = try await lifecycle.revokeAll(owner: "gone")

        let before = try await t.publisher(at: clock).publish()
        #expect(before.tokenEntries == count + 10)
        #expect(before.ownerEntries == 1)
        #expect(try t.validator(at: clock).revocations?.tokenEntryCount == count + 10)

        clock.advance(ManagementPolicy.defaultMaxLifetime.seconds + 86_400 + 61)
        let after = try await t.publisher(at: clock).publish()
        #expect(after.tokenEntries == 0)
        #expect(after.ownerEntries == 0)
        #expect(after.pruned == count + 10 + 1)
        #expect(after.sequence == before.sequence + 1)
        let list = try #require(try t.validator(at: clock).revocations)
        #expect(list.tokenEntryCount == 0 && list.ownerEntryCount == 0)
        #expect(try await t.registry.read { tx in try await tx.tombstones() }.isEmpty)
        #expect(try await t.registry.read { tx in try await tx.ownerRevocations() }.isEmpty)
        #expect(try await t.registry.read { tx in try await tx.recordCount() } == count,
                "revoked records stay listed; only their list entries go")
    }

    @Test("an entry stays while a verifier's leeway could still accept its tokens", arguments: RegistryBackend.allCases)
    func pruneRespectsLeeway(_ backend: RegistryBackend) async throws {
        let t = try await TestHome.make(backend)
        let clock = TestClock()
        let lifecycle = t.lifecycle(at: clock)
        let issued = try await lifecycle.create(owner: "a", name: "n", scopes: try scopes("clients:view"), expiry: .after(TimeSpan(seconds: 100)))
        _ = try await lifecycle.revoke(id: issued.record.id)
        clock.advance(100 + 60)
        #expect(try await t.publisher(at: clock).publish().tokenEntries == 1)
        clock.advance(1)
        #expect(try await t.publisher(at: clock).publish().tokenEntries == 0)
    }

    @Test("the sequence strictly increases and publishing twice without changes is harmless", arguments: RegistryBackend.allCases)
    func sequenceAndRepublish(_ backend: RegistryBackend) async throws {
        let t = try await TestHome.make(backend)
        let clock = TestClock()
        let lifecycle = t.lifecycle(at: clock)
        let kept = try await lifecycle.create(owner: "a", name: "kept", scopes: try scopes("clients:view"), expiry: .after(TimeSpan(seconds: 3600)))
        let dead = try await lifecycle.create(owner: "a", name: "dead", scopes: try scopes("clients:view"), expiry: .after(TimeSpan(seconds: 3600)))
        _ = try await lifecycle.revoke(id: dead.record.id)

        let publisher = t.publisher(at: clock)
        let first = try await publisher.publish()
        let validator = try t.validator(at: clock)
        var sequences = [first.sequence]
        for _ in 0..<3 {
            clock.advance(1)
            let next = try await publisher.publish()
            #expect(next.tokenEntries == first.tokenEntries && next.ownerEntries == first.ownerEntries)
            try validator.installRevocations(next.bytes)
            sequences.append(next.sequence)
        }
        #expect(sequences == [1, 2, 3, 4])
        #expect(try await t.registry.publishSequence() == 4)
        #expect(rejection(validator, kept.bearer) == nil)
        #expect(rejection(validator, dead.bearer) == .revoked)
        #expect(throws: PATKitError.self) { try validator.installRevocations(first.bytes) } // rollback refused
        #expect(Publisher.verifiedSequence(ofListAt: t.home.publishedRevocationsPath, keys: try t.keyStore.keySet()) == 4)
        let keys = try SignedKeySet(verifying: SecureFile.read(t.home.publishedKeysPath, maxBytes: SignedKeySet.maxDocumentBytes),
                                    anchors: try #require(try t.keyStore.trustAnchors()))
        #expect(keys.keys == (try t.keyStore.keySet()))
    }

    @Test("the sequence also stays above a list of ours already in the output folder (e.g. a registry restored from an old backup)",
          arguments: RegistryBackend.allCases)
    func sequenceAboveExistingFile(_ backend: RegistryBackend) async throws {
        let t = try await TestHome.make(backend)
        let clock = TestClock()
        for _ in 0..<3 { try await t.publisher(at: clock).publish() }
        let restored = try await TestHome.make(backend) // an empty registry: knows no publish yet
        let result = try await Publisher(store: restored.registry, keyStore: t.keyStore, outputDirectory: t.home.publishedDirectory,
                                         clock: { clock.now }).publish()
        #expect(result.sequence == 4)

        // A list another issuer signed is not ours: its sequence is not followed.
        let other = try TestHome()
        let foreign = try await other.publisher(at: clock, directory: t.home.path + "/foreign").publish()
        #expect(Publisher.verifiedSequence(ofListAt: foreign.revocationsPath, keys: try t.keyStore.keySet()) == nil)
        #expect(Publisher.verifiedSequence(ofListAt: foreign.revocationsPath, keys: try other.keyStore.keySet()) == 1)
    }

    @Test("published keys list retired keys as retired; the list is signed by the newest active key", arguments: RegistryBackend.allCases)
    func keysPublished(_ backend: RegistryBackend) async throws {
        let t = try await TestHome.make(backend)
        let clock = TestClock()
        let old = try t.keyStore.signingKey()
        let issuedOld = try await t.lifecycle(at: clock).create(owner: "a", name: "old", scopes: try scopes("clients:view"),
                                                         expiry: .after(TimeSpan(seconds: 3600)))
        let new = try t.keyStore.generate(now: clock.now)
        let issuedNew = try await t.lifecycle(at: clock).create(owner: "a", name: "new", scopes: try scopes("clients:view"),
                                                         expiry: .after(TimeSpan(seconds: 3600)))
        var result = try await t.publisher(at: clock).publish()
        #expect(result.signer == new.id)
        var validator = try t.validator(at: clock)
        #expect(rejection(validator, issuedOld.bearer) == nil, "after a rotation old keys keep verifying")
        #expect(rejection(validator, issuedNew.bearer) == nil)

        try t.keyStore.retire(old.id)
        result = try await t.publisher(at: clock).publish()
        validator = try t.validator(at: clock)
        #expect(validator.keys.entries.first { $0.id == old.id }?.status == .retired)
        #expect(rejection(validator, issuedOld.bearer) == .unknownKey)
        #expect(rejection(validator, issuedNew.bearer) == nil)
    }

    @Test("a crash between writing the new list and renaming it leaves the previous list intact", arguments: RegistryBackend.allCases)
    func crashBeforeRename(_ backend: RegistryBackend) async throws {
        let t = try await TestHome.make(backend)
        let pat = try await Prerequisite.patBinary.require()
        let clock = TestClock()
        let lifecycle = t.lifecycle(at: clock)
        let victim = try await lifecycle.create(owner: "a", name: "victim", scopes: try scopes("clients:view"),
                                          expiry: .after(TimeSpan(seconds: 3600)))
        let previous = try await t.publisher(at: clock).publish()
        _ = try await lifecycle.revoke(id: victim.record.id)

        let crashed = try await run(pat, ["publish", "--home", t.home.path] + t.databaseArguments,
                              environment: ["PAT_NOW": clock.now.rfc3339, "PAT_TEST_CRASH_BEFORE_RENAME": "1"])
        #expect(crashed == 99)
        let bytes = try SecureFile.read(t.home.publishedRevocationsPath, maxBytes: RevocationList.defaultMaxBytes)
        #expect(bytes == previous.bytes, "the previous list must be untouched")
        let list = try RevocationList(verifying: bytes, keys: try t.keyStore.keySet())
        #expect(list.sequence == previous.sequence)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: t.home.publishedDirectory)
            .filter { $0.hasPrefix("revocations.bin.tmp-") }
        #expect(leftovers.count == 1, "the crash happened after the temporary file was written")
        #expect(rejection(try t.validator(at: clock), victim.bearer) == nil, "the old list does not know the revoke yet")

        let recovered = try await run(pat, ["publish", "--home", t.home.path] + t.databaseArguments, environment: ["PAT_NOW": clock.now.rfc3339])
        #expect(recovered == 0)
        let after = try t.validator(at: clock)
        #expect(try #require(after.revocations).sequence == previous.sequence + 2, "the crashed run's sequence is not reused")
        #expect(rejection(after, victim.bearer) == .revoked)
        #expect(try FileManager.default.contentsOfDirectory(atPath: t.home.publishedDirectory)
            .filter { $0.contains(".tmp-") }.isEmpty, "a later publish removes the stale temporary file")
    }

    /// Runs a program (awaited off the cooperative pool, bounded in time) and returns its exit status.
    func run(_ program: String, _ arguments: [String], environment: [String: String]) async throws -> Int32 {
        try await ChildProcess.run(program, arguments,
                                   environment: ProcessInfo.processInfo.environment.merging(environment) { $1 }).status
    }
}

@Test("durations in messages")
func durations() {
    #expect(formatDuration(31_536_000) == "1y")
    #expect(formatDuration(31_536_001) == "1y 1s")
    #expect(formatDuration(90) == "1m 30s")
    #expect(formatDuration(0) == "0s")
}
