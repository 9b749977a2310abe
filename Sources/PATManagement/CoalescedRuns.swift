import Synchronization

/// Runs one operation on behalf of many concurrent callers: each caller gets the outcome of a run
/// that *began after it called*, and callers arriving while a run is under way share the next
/// one. So a burst of N requests costs at most two runs, not N, and nobody gets a stale outcome.
///
/// The Republisher publishes through it: every committed change asks for a list holding it, and
/// one publish that starts after the change holds every change committed before it.
package final class CoalescedRuns<Value: Sendable>: Sendable {
    private enum Turn: Sendable {
        case done(Result<Value, any Error>)
        case run
    }

    private struct State {
        var running = false
        /// The last ticket handed out; tickets increase with every call.
        var lastTicket: UInt64 = 0
        /// Tickets up to this one are served by the run under way.
        var servedThrough: UInt64 = 0
        var waiting: [(ticket: UInt64, continuation: CheckedContinuation<Turn, Never>)] = []
    }

    private let state = Mutex(State())

    /// The outcome of one run of `operation` that began after this call.
    package init() {}

    package func run(_ operation: () async throws -> Value) async throws -> Value {
        let turn = await withCheckedContinuation { (continuation: CheckedContinuation<Turn, Never>) in
            let runNow = state.withLock { s -> Bool in
                s.lastTicket += 1
                if !s.running {
                    s.running = true
                    s.servedThrough = s.lastTicket
                    return true
                }
                s.waiting.append((s.lastTicket, continuation))
                return false
            }
            if runNow { continuation.resume(returning: .run) }
        }
        if case .done(let result) = turn { return try result.get() }

        let result: Result<Value, any Error>
        do { result = .success(try await operation()) } catch { result = .failure(error) }
        let (served, next) = state.withLock { s -> ([CheckedContinuation<Turn, Never>], CheckedContinuation<Turn, Never>?) in
            let through = s.servedThrough
            let served = s.waiting.filter { $0.ticket <= through }.map(\.continuation)
            s.waiting.removeAll { $0.ticket <= through }
            guard !s.waiting.isEmpty else {
                s.running = false
                return (served, nil)
            }
            // The next run starts now, after every waiting call: it serves them all.
            let next = s.waiting.removeFirst().continuation
            s.servedThrough = s.lastTicket
            return (served, next)
        }
        for waiter in served { waiter.resume(returning: .done(result)) }
        next?.resume(returning: .run)
        return try result.get()
    }
}
