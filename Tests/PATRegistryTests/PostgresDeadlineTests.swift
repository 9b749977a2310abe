import Foundation
import PATRegistry
import PATRegistryPostgres
import PATRegistryTestSupport
import PATTestSupport
import Testing

/// The PostgreSQL registry's own time bounds: a transaction that outlives `transactionTimeout`
/// ends as `unavailable` — it neither hangs its caller nor poisons the pool.
@Suite("PostgreSQL registry deadlines", .timeLimit(.minutes(2)))
struct PostgresDeadlineTests {
    @Test("a transaction stuck on a lock past its deadline fails as unavailable, promptly, and the registry still works")
    func transactionDeadline() async throws {
        let database = try await PostgresTestDatabase.create()
        // The holder keeps alice's lock until released; the hurried registry waits on it with a
        // lock bound far beyond its transaction deadline, so only the deadline can end the wait.
        let holder = try await PostgresRegistry.open(database, logger: quietRegistryLogger)
        var hurried = database
        // A wide acquire bound (a starved machine may take seconds to connect), a transaction
        // bound just past it: only a transaction that has its connection can reach the deadline.
        hurried.acquireTimeout = .seconds(30)
        hurried.transactionTimeout = .seconds(32)
        hurried.lockTimeout = .seconds(600)
        let registry = try await PostgresRegistry.open(hurried, logger: quietRegistryLogger)
        // A connection in the pool already: at load 24, connecting alone took past 20 s.
        _ = try await registry.read { tx in try await tx.recordCount() }

        let (locked, lockedSignal) = AsyncStream<Void>.makeStream()
        let (release, releaseSignal) = AsyncStream<Void>.makeStream()
        let holding = Task {
            try await holder.write { tx in
                try await tx.lockOwner("alice")
                lockedSignal.yield()
                for await _ in release { break }
            }
        }
        try await awaitEvent("the holder has alice's lock") { for await _ in locked { return }; throw CancellationError() }
        let error = await #expect(throws: RegistryError.self) {
            try await registry.write { tx in try await tx.lockOwner("alice") }
        }
        #expect(error?.kind == .unavailable)
        #expect(error?.message.contains("took longer than") == true, "\(String(describing: error))")

        releaseSignal.yield()
        try await holding.value
        try await registry.write { tx in try await tx.lockOwner("alice") }
        #expect(try await registry.read { tx in try await tx.recordCount() } == 0, "the pool recovered")
        await registry.close()
        await holder.close()
    }
}
