import Foundation
import PATManagement
import PATRegistry
import PATRegistryPostgres
import PATRegistryTestSupport
import PATTestSupport
import Synchronization
import Testing

/// Several issuers on one registry: two stores on one database, as two `pat serve` nodes on one
/// PostgreSQL (or two processes on one SQLite file) have, writing and publishing at once. Each
/// test provokes the race its lock exists for, many times over.
@Suite("two issuer nodes on one registry, SQLite and PostgreSQL", .timeLimit(.minutes(10)))
struct MultiNodeTests {
    static let day = Expiry.after(TimeSpan(seconds: 86_400))

    /// Two nodes: each its own store (connection pool) on the database of `t`, pausing after
    /// every read so that the nodes' transactions overlap where a missing lock would let them race.
    static func nodes(_ t: TestHome, clock: TestClock) async throws -> [PATManagement] {
        let second = try await t.reopen()
        return [t.registry, second].map {
            PATManagement(store: StallingStore($0), keyStore: t.keyStore, clock: { clock.now })
        }
    }

    /// A validator holding one published list, at the clock's time.
    static func validator(_ t: TestHome, _ result: PublishResult, clock: TestClock) throws -> Validator {
        let keys = try t.keyStore.keySet()
        return Validator(keys: keys, revocations: try RevocationList(verifying: result.bytes, keys: keys), clock: { clock.now })
    }

    @Test("publishes racing on two nodes: sequences never repeat, each list holds every change committed before it began",
          arguments: RegistryBackend.allCases)
    func publishesAreOrdered(_ backend: RegistryBackend) async throws {
        let t = try await TestHome.make(backend)
        let clock = TestClock()
        let nodes = try await Self.nodes(t, clock: clock)
        var tokens: [(id: String, token: String)] = []
        for index in 0..<80 {
            let issued = try await OperatorOps(service: nodes[index % 2]).create(owner: "o\(index % 7)", name: "p\(index)",
                                                                               scopes: try scopes("clients:view"), expiry: Self.day)
            tokens.append((issued.record.id, issued.bearer))
        }
        let revokedSoFar = Committed()
        struct Observed: Sendable {
            let node: Int
            let result: PublishResult
            let required: Set<String>
        }
        let published = try await withThrowingTaskGroup(of: [Observed].self) { group in
            let work = tokens
            group.addTask {
                // Revokes through both nodes; a revoke counts as committed once its call returned.
                for (index, pat) in work.enumerated() {
                    _ = try await nodes[index % 2].revoke(id: pat.id, by: .localOperator)
                    revokedSoFar.insert(pat.id)
                }
                return []
            }
            for node in 0..<2 {
                for publisherIndex in 0..<2 {
                    group.addTask {
                        let publisher = Publisher(store: nodes[node].store, keyStore: t.keyStore,
                                                  outputDirectory: t.home.path + "/published-\(node)-\(publisherIndex)",
                                                  clock: { clock.now })
                        var seen: [Observed] = []
                        for _ in 0..<15 {
                            let required = revokedSoFar.ids
                            seen.append(Observed(node: node, result: try await publisher.publish(), required: required))
                        }
                        return seen
                    }
                }
            }
            var all: [Observed] = []
            for try await observed in group { all += observed }
            return all
        }
        #expect(published.count == 60)
        let sequences = published.map(\.result.sequence)
        #expect(Set(sequences).count == sequences.count, "no sequence published twice: \(sequences.sorted())")
        var previous: Set<String> = []
        for observed in published.sorted(by: { $0.result.sequence < $1.result.sequence }) {
            let validator = try Self.validator(t, observed.result, clock: clock)
            let refused = Set(tokens.filter { rejection(validator, $0.token) == .revoked }.map(\.id))
            let missing = observed.required.subtracting(refused)
            #expect(missing.isEmpty, "list \(observed.result.sequence) (node \(observed.node)) lacks \(missing.count) revokes committed before it began")
            #expect(refused.isSuperset(of: previous), "list \(observed.result.sequence) un-revokes what an earlier list revoked")
            previous = refused
        }
        let last = try Self.validator(t, try await Publisher(store: nodes[1].store, keyStore: t.keyStore,
                                                             outputDirectory: t.home.path + "/published-last",
                                                             clock: { clock.now }).publish(), clock: clock)
        #expect(tokens.allSatisfy { rejection(last, $0.token) == .revoked }, "a list published after every revoke holds them all")
    }

    /// The schedule that breaks a publisher reading before it takes its sequence: publish A reads,
    /// a revoke commits, publish B (later, on the other node) completes — if B could run ahead,
    /// it would take sequence N with the revoke and A sequence N + 1 without it, and edges would
    /// accept the revoked token again from list N + 1. Taking the sequence (and its row lock)
    /// first makes B wait for A, and A's later reads see the revoke.
    @Test("a publish that read first but finishes last never drops a change (PostgreSQL)")
    func publishTakesItsSequenceFirst() async throws {
        let t = try await TestHome.make(.postgres)
        guard case .postgres(let database) = t.database else { return }
        let clock = TestClock()
        let lifecycle = t.lifecycle(at: clock)
        let victim = try await lifecycle.create(owner: "alice", name: "victim", scopes: try scopes("clients:view"), expiry: Self.day)
        let gate = FirstArrivalGate()
        let slow = Publisher(store: StallingStore(t.registry, pause: .zero, afterRead: { await gate.pass() }), keyStore: t.keyStore,
                             outputDirectory: t.home.path + "/published-a", clock: { clock.now })
        let fast = Publisher(store: try await t.reopen(), keyStore: t.keyStore, outputDirectory: t.home.path + "/published-b",
                             clock: { clock.now })
        let slowRun = Task { try await slow.publish() }
        try await awaitEvent("publish A makes its first read") { try await gate.waitForArrival() }
        _ = try await lifecycle.revoke(id: victim.record.id)
        let fastDone = Committed()
        let fastRun = Task {
            defer { fastDone.insert("done") }
            return try await fast.publish()
        }
        try await awaitCondition("publish B finishes, or waits for publish A's lock") {
            if !fastDone.ids.isEmpty { return true }
            let waiting = try await PostgresTestDatabase.query(database, """
                SELECT count(*)::text FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'
                """)
            return waiting.first.flatMap { $0 }.flatMap(Int.init) ?? 0 > 0
        }
        gate.open()
        let a = try await slowRun.value, b = try await fastRun.value
        #expect(a.sequence != b.sequence)
        let later = a.sequence > b.sequence ? a : b
        #expect(rejection(try Self.validator(t, later, clock: clock), victim.bearer) == .revoked,
                "list \(later.sequence), the newer, must hold the revoke committed before it was published")
    }

    @Test("re-issues of one PAT racing on two nodes: every generation issued once, none lost", arguments: RegistryBackend.allCases)
    func generationsAreNeverLost(_ backend: RegistryBackend) async throws {
        let t = try await TestHome.make(backend)
        let clock = TestClock()
        let nodes = try await Self.nodes(t, clock: clock)
        let pat = try await OperatorOps(service: nodes[0]).create(owner: "alice", name: "contended", scopes: try scopes("clients:view"),
                                                                  expiry: Self.day)
        let rounds = 24
        let issued = try await withThrowingTaskGroup(of: IssuedPAT.self) { group in
            for index in 0..<rounds {
                group.addTask {
                    try await nodes[index % 2].regenerate(id: pat.record.id, expiry: Self.day, by: .localOperator)
                }
            }
            var all: [IssuedPAT] = []
            for try await one in group { all.append(one) }
            return all
        }
        let generations = issued.map(\.record.generation).sorted()
        #expect(generations == Array(2...UInt64(rounds + 1)), "each re-issue read the one before it: \(generations)")
        let stored = try #require(try await t.registry.get(id: pat.record.id))
        #expect(stored.generation == UInt64(rounds + 1) && stored.floor == stored.generation)
        let validator = try Self.validator(t, try await t.publisher(at: clock).publish(), clock: clock)
        let live = issued.filter { rejection(validator, $0.bearer) == nil }
        #expect(live.map(\.record.generation) == [UInt64(rounds + 1)], "only the last token lives")
    }

    @Test("revoke-all racing creates and re-issues on the other node: the registry and the list agree on every token",
          arguments: RegistryBackend.allCases)
    func revokeAllIsNeverOvertaken(_ backend: RegistryBackend) async throws {
        let t = try await TestHome.make(backend)
        let clock = TestClock()
        let nodes = try await Self.nodes(t, clock: clock)
        var issued: [IssuedPAT] = []
        for round in 0..<6 {
            let owner = "owner-\(round)"
            let existing = try await OperatorOps(service: nodes[0]).create(owner: owner, name: "existing", scopes: try scopes("clients:view"),
                                                                            expiry: Self.day)
            issued += try await withThrowingTaskGroup(of: [IssuedPAT].self) { group in
                for index in 0..<16 {
                    group.addTask {
                        [try await OperatorOps(service: nodes[1]).create(owner: owner, name: "new-\(index)", scopes: try scopes("clients:view"),
                                                                         expiry: Self.day)]
                    }
                }
                group.addTask {
                    [try await nodes[1].regenerate(id: existing.record.id, expiry: Self.day, by: .localOperator)]
                }
                group.addTask {
                    _ = try await nodes[0].revokeAll(owner: owner, by: .localOperator)
                    return []
                }
                var all: [IssuedPAT] = []
                for try await some in group { all += some }
                return all
            }
        }
        let validator = try Self.validator(t, try await t.publisher(at: clock).publish(), clock: clock)
        var disagreements: [String] = []
        for pat in issued {
            let record = try #require(try await t.registry.get(id: pat.record.id))
            let current = record.generation == pat.record.generation
            let registrySaysLive = current && record.status(at: clock.now) == .active
            let listSaysLive = rejection(validator, pat.bearer) == nil
            if registrySaysLive != listSaysLive {
                disagreements.append("\(record.owner)/\(record.name): registry \(registrySaysLive ? "active" : "dead"), list \(listSaysLive ? "accepts" : "refuses")")
            }
        }
        #expect(disagreements.isEmpty, "a create or re-issue overtaken by revoke-all: \(disagreements)")
    }

    @Test("the same name created on two nodes at once: one wins, the others are told the name is taken",
          arguments: RegistryBackend.allCases)
    func namesStayUnique(_ backend: RegistryBackend) async throws {
        let t = try await TestHome.make(backend)
        let clock = TestClock()
        let nodes = try await Self.nodes(t, clock: clock)
        let outcomes = try await withThrowingTaskGroup(of: ManagementError.Kind?.self) { group in
            for index in 0..<30 {
                group.addTask {
                    do {
                        _ = try await OperatorOps(service: nodes[index % 2]).create(owner: "alice", name: "deploy-\(index % 3)",
                                                                                   scopes: try scopes("clients:view"), expiry: Self.day)
                        return nil
                    } catch let error as ManagementError {
                        return error.kind
                    }
                }
            }
            var all: [ManagementError.Kind?] = []
            for try await outcome in group { all.append(outcome) }
            return all
        }
        #expect(outcomes.filter { $0 == nil }.count == 3, "one PAT per name")
        #expect(outcomes.compactMap { $0 }.allSatisfy { $0 == .nameTaken }, "\(outcomes)")
        #expect(try await t.registry.list(owner: "alice", now: clock.now).count == 3)
    }
}

/// Ids whose change has committed (its call returned).
final class Committed: Sendable {
    private let value = Mutex<Set<String>>([])
    var ids: Set<String> { value.withLock { $0 } }
    func insert(_ id: String) { value.withLock { _ = $0.insert(id) } }
}
