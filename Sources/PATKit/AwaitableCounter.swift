import Synchronization

/// A number that only rises ("refreshed to sequence N", "published N", "N deliveries settled"),
/// with a way to await a value. Services advance it when something happened; callers (tests,
/// start-up code) wait for the event itself instead of sleeping and hoping.
///
/// `wait(atLeast:)` returns as soon as the value reaches the target and throws
/// `CancellationError` when the waiting task is cancelled, so a caller can always bound it.
package final class AwaitableCounter: Sendable {
    private struct Waiter {
        let target: UInt64
        let continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var value: UInt64 = 0
        var nextID = 0
        var waiters: [Int: Waiter] = [:]
        /// Waits begun and not yet ended (their continuation may not be stored yet).
        var pending: Set<Int> = []
        /// Pending ids cancelled before their continuation was stored.
        var cancelled: Set<Int> = []
    }

    private let state = Mutex(State())

    package init() {}

    /// The current value.
    package var value: UInt64 { state.withLock { $0.value } }

    /// Raises the value to `value` (a lower value changes nothing) and wakes whoever waited for it.
    package func advance(to value: UInt64) { raise { _ in value } }

    /// Adds `amount` and wakes whoever waited for the new value.
    package func advance(by amount: UInt64) { raise { $0 &+ amount } }

    private func raise(_ next: (UInt64) -> UInt64) {
        let ready: [Waiter] = state.withLock { s in
            let value = next(s.value)
            guard value > s.value else { return [] }
            s.value = value
            let due = s.waiters.filter { $0.value.target <= value }
            for id in due.keys {
                s.waiters[id] = nil
                s.pending.remove(id)
            }
            return Array(due.values)
        }
        for waiter in ready { waiter.continuation.resume() }
    }

    /// Adds one.
    package func increment() { advance(by: 1) }

    /// Returns once the value is at least `target`; throws `CancellationError` if the task is
    /// cancelled first.
    package func wait(atLeast target: UInt64) async throws {
        let id: Int? = state.withLock { s in
            if s.value >= target { return nil }
            s.nextID += 1
            s.pending.insert(s.nextID)
            return s.nextID
        }
        guard let id else { return }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                enum Now { case wait, resume, cancel }
                let now: Now = state.withLock { s in
                    if s.cancelled.remove(id) != nil {
                        s.pending.remove(id)
                        return .cancel
                    }
                    if s.value >= target {
                        s.pending.remove(id)
                        return .resume
                    }
                    s.waiters[id] = Waiter(target: target, continuation: continuation)
                    return .wait
                }
                switch now {
                case .wait: break
                case .resume: continuation.resume()
                case .cancel: continuation.resume(throwing: CancellationError())
                }
            }
        } onCancel: {
            let waiter: Waiter? = state.withLock { s in
                if let waiter = s.waiters.removeValue(forKey: id) {
                    s.pending.remove(id)
                    return waiter
                }
                if s.pending.contains(id) { s.cancelled.insert(id) }
                return nil
            }
            waiter?.continuation.resume(throwing: CancellationError())
        }
    }
}
