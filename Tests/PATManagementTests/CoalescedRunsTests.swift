import PATManagement
import PATTestSupport
import Synchronization
import Testing

/// How the republisher shares publishes: a caller's publish began after its call (so it holds the
/// caller's change), and a burst costs a handful of runs, not one each.
@Suite("coalesced runs", .timeLimit(.minutes(1)))
struct CoalescedRunsTests {
    final class Runs: Sendable {
        private let started = Mutex(0)
        /// Numbers the run and returns its number.
        func start() -> Int { started.withLock { $0 += 1; return $0 } }
        var count: Int { started.withLock { $0 } }
    }

    @Test("every caller gets a run that started after it called; a burst of 60 shares a few runs")
    func callersShareFreshRuns() async throws {
        let runs = Runs()
        let coalesced = CoalescedRuns<Int>()
        let outcomes = try await withThrowingTaskGroup(of: (calledAfter: Int, served: Int).self) { group in
            for _ in 0..<60 {
                group.addTask {
                    let startedBefore = runs.count // runs started before this call
                    let served = try await coalesced.run {
                        let number = runs.start()
                        try await Task.sleep(for: .milliseconds(5))
                        return number
                    }
                    return (startedBefore, served)
                }
            }
            var all: [(calledAfter: Int, served: Int)] = []
            for try await outcome in group { all.append(outcome) }
            return all
        }
        #expect(outcomes.allSatisfy { $0.served > $0.calledAfter }, "a caller was served by a run that had begun before its call")
        #expect(runs.count < 60, "\(runs.count) runs for 60 callers")
    }

    @Test("a failed run fails every caller it served; the next call runs again")
    func failuresAreShared() async throws {
        struct Boom: Error {}
        let coalesced = CoalescedRuns<Int>()
        await #expect(throws: Boom.self) { try await coalesced.run { throw Boom() } }
        #expect(try await coalesced.run { 7 } == 7)
    }
}
