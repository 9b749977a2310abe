import Foundation
import PATRegistry
import PATRegistryPostgres
import PATRegistryTestSupport
import PATTestSupport
import Synchronization
import Testing

/// What several processes or issuer nodes share through the store: the announcement of changes
/// made elsewhere, and the outbox's claims. Every test runs on SQLite and on PostgreSQL.
@Suite("change announcements and outbox claims, SQLite and PostgreSQL", .timeLimit(.minutes(5)))
struct ChangeAndClaimTests {
    static func event(_ n: Int) -> ChangeEvent {
        ChangeEvent(delivery: "d\(n)-\(UUID().uuidString)", name: "personalAccessToken.created", payload: Array("{\"n\":\(n)}".utf8),
                    createdAt: TestClock.start)
    }

    @Test("a change committed through another store (process, node) is announced", arguments: RegistryBackend.allCases)
    func changesElsewhereAreAnnounced(_ backend: RegistryBackend) async throws {
        let t = try await TestHome.make(backend)
        let node = try await t.reopen()
        let announcements = AnnouncementCounter()
        let listening = Task { for await _ in node.externalChanges() { announcements.increment() } }
        defer { listening.cancel() }
        try await awaitEvent("the store starts watching (first announcement)") { try await announcements.wait(atLeast: 1) }
        let seen = announcements.value
        _ = try await t.registry.write { tx in try await tx.recordChange(Self.event(1)) }
        try await awaitEvent("the other store's change is announced") { try await announcements.wait(atLeast: seen + 1) }
        listening.cancel()
        _ = try await withTimeLimit(.seconds(30), "the listener to end once cancelled") { await listening.value }
    }

    @Test("claims: disjoint between claimants, released, renewed only by their holder, taken over when the lease ran out",
          arguments: RegistryBackend.allCases)
    func claims(_ backend: RegistryBackend) async throws {
        let t = try await TestHome.make(backend)
        let nodeB = try await t.reopen()
        let ids = try await t.registry.write { tx in
            var ids: [Int64] = []
            for n in 1...5 { ids.append(try await tx.recordChange(Self.event(n)).id) }
            return ids
        }
        let minute = Duration.seconds(60)
        let a = try await t.registry.write { tx in try await tx.claimEvents(claimant: "a", lease: minute, limit: 3) }
        #expect(a.map(\.id) == Array(ids.prefix(3)), "oldest first")
        let b = try await nodeB.write { tx in try await tx.claimEvents(claimant: "b", lease: minute, limit: 10) }
        #expect(b.map(\.id) == Array(ids.suffix(2)), "what a holds is not b's to take")
        #expect(try await t.registry.write { tx in try await tx.claimEvents(claimant: "a", lease: minute, limit: 10) }.isEmpty)
        #expect(b.first?.payload == Array("{\"n\":4}".utf8) && b.first?.name == "personalAccessToken.created")

        try await t.registry.write { tx in try await tx.releaseClaims([ids[0]], claimant: "a") }
        try await t.registry.write { tx in try await tx.releaseClaims([ids[1]], claimant: "b") } // not b's: no effect
        #expect(try await nodeB.write { tx in try await tx.claimEvents(claimant: "b", lease: minute, limit: 10) }.map(\.id) == [ids[0]])
        let renewed = try await t.registry.write { tx in try await tx.renewClaims(Array(ids.prefix(3)), claimant: "a", lease: minute) }
        #expect(renewed == [ids[1], ids[2]], "the released event went to b")

        // A holder that died: its lease has run out (here: a lease of zero — a negative one is clamped to
        // zero — that ends at once, even within the same millisecond of the database's clock), so another takes over.
        _ = try await t.registry.write { tx in try await tx.renewClaims([ids[1]], claimant: "a", lease: .seconds(-5)) }
        let takenOver = try await nodeB.write { tx in try await tx.claimEvents(claimant: "b", lease: minute, limit: 10) }
        #expect(takenOver.map(\.id) == [ids[1]])
        #expect(try await t.registry.write { tx in try await tx.renewClaims([ids[1]], claimant: "a", lease: minute) }.isEmpty,
                "the old holder learns it lost the event")
        try await nodeB.write { tx in try await tx.removeEvents([ids[0], ids[1]]) }
        #expect(try await t.registry.read { tx in try await tx.events(after: 0, limit: 10) }.map(\.id) == Array(ids.suffix(3)))
    }

    @Test("claimants racing on two stores get every event exactly once", arguments: RegistryBackend.allCases)
    func racingClaimants(_ backend: RegistryBackend) async throws {
        let t = try await TestHome.make(backend)
        let stores = [t.registry, try await t.reopen(), try await t.reopen()]
        let count = 300
        try await t.registry.write { tx in for n in 1...count { _ = try await tx.recordChange(Self.event(n)) } }
        let claimed = try await withThrowingTaskGroup(of: [Int64].self) { group in
            for (index, store) in stores.enumerated() {
                for worker in 0..<4 {
                    group.addTask {
                        var mine: [Int64] = []
                        while true {
                            let batch = try await store.write { tx in
                                try await tx.claimEvents(claimant: "node\(index)-\(worker)", lease: .seconds(60), limit: 7)
                            }
                            if batch.isEmpty { return mine }
                            mine += batch.map(\.id)
                        }
                    }
                }
            }
            var all: [Int64] = []
            for try await ids in group { all += ids }
            return all
        }
        #expect(claimed.count == count, "no event claimed twice")
        #expect(Set(claimed).count == count, "and none lost")
    }
}

/// Counts announcements, with a bounded wait for a count.
final class AnnouncementCounter: Sendable {
    private let counter = AwaitableCounter()
    var value: UInt64 { counter.value }
    func increment() { counter.increment() }
    func wait(atLeast value: UInt64) async throws { try await counter.wait(atLeast: value) }
}
