// Bounded waits for tests: every wait fails (records an issue, throws) instead of hanging.
//
//   // An event with a hook ("refreshed to sequence 2", "published 5", "3 deliveries settled"):
//   try await awaitEvent("the refresher installs list 2") { try await refresher.waitUntilRefreshed(toSequence: 2) }
//
//   // A state without a hook (e.g. a server answering on its port), polled every 50 ms:
//   try await awaitCondition("pat serve answers on \(port)") { (try? await http(url))?.status == 200 }
//
//   // Any async work, bounded: past the limit its task is cancelled (a child process run with
//   // `ChildProcess` is killed) and `TimeLimitExceeded` is thrown after an issue is recorded.
//   let value = try await withTimeLimit(.seconds(30), "the refresher to stop") { try await task.value }
//
// The limits are failure bounds, generous on purpose (a loaded 2-core machine must never hit
// them); they are never assertions about speed. Speed lives in Benchmarks/ and scripts/.
import Synchronization
import Testing

/// The default bound of a wait: far above what any event takes on a loaded machine.
public let defaultWaitLimit: Duration = .seconds(90)

/// Thrown (after an issue was recorded) when a bounded wait or child process ran out of time.
public struct TimeLimitExceeded: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Runs `body` for at most `limit`. Past it, the task running `body` is cancelled, an issue
/// "`what` did not happen within `limit`" is recorded at the caller and `TimeLimitExceeded` is
/// thrown. Never waits for a `body` that ignores cancellation: such a body is abandoned.
public func withTimeLimit<T: Sendable>(_ limit: Duration, _ what: String,
                                       sourceLocation: SourceLocation = #_sourceLocation,
                                       _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    let race = Race<T>()
    let work = Task { race.finish(await Race<T>.outcome(of: body)) }
    let timer = Task {
        do { try await Task.sleep(for: limit) } catch { return }
        race.finish(.timedOut)
    }
    let outcome = await withTaskCancellationHandler {
        await race.wait()
    } onCancel: {
        race.finish(.cancelled)
    }
    timer.cancel()
    switch outcome {
    case .value(let value):
        return value
    case .failure(let error):
        throw error
    case .timedOut:
        work.cancel()
        Issue.record("\(what) did not happen within \(limit)", sourceLocation: sourceLocation)
        // Give a cancelled child process a moment to be killed and reaped; never wait for good.
        _ = await Race<Void>.first(of: { _ = await work.result }, orAfter: .seconds(10))
        throw TimeLimitExceeded("\(what): no result within \(limit)")
    case .cancelled:
        work.cancel()
        throw CancellationError()
    }
}

/// Awaits `event` (typically a `waitUntil…` of the code under test) for at most `limit`;
/// records an issue naming it and throws `TimeLimitExceeded` when it does not come.
@discardableResult
public func awaitEvent<T: Sendable>(_ what: String, within limit: Duration = defaultWaitLimit,
                                    sourceLocation: SourceLocation = #_sourceLocation,
                                    _ event: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withTimeLimit(limit, what, sourceLocation: sourceLocation, event)
}

/// Checks `condition` every `interval` until it holds; records an issue naming it and throws
/// `TimeLimitExceeded` when it still does not hold after `limit`. For states the code under
/// test offers no event for (a server answering on its port).
public func awaitCondition(_ what: String, within limit: Duration = defaultWaitLimit, every interval: Duration = .milliseconds(50),
                           sourceLocation: SourceLocation = #_sourceLocation,
                           _ condition: @escaping @Sendable () async throws -> Bool) async throws {
    try await withTimeLimit(limit, what, sourceLocation: sourceLocation) {
        while try await !condition() {
            try await Task.sleep(for: interval)
        }
    }
}

/// The first of several finishers wins; the waiter is resumed once.
final class Race<T: Sendable>: Sendable {
    enum Outcome: Sendable {
        case value(T)
        case failure(any Error)
        case timedOut
        case cancelled
    }

    private struct State {
        var outcome: Outcome?
        var waiter: CheckedContinuation<Outcome, Never>?
    }

    private let state = Mutex(State())

    static func outcome(of body: @Sendable () async throws -> T) async -> Outcome {
        do { return .value(try await body()) } catch { return .failure(error) }
    }

    func finish(_ outcome: Outcome) {
        let waiter: CheckedContinuation<Outcome, Never>? = state.withLock { s in
            guard s.outcome == nil else { return nil }
            s.outcome = outcome
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume(returning: outcome)
    }

    func wait() async -> Outcome {
        await withCheckedContinuation { continuation in
            let ready: Outcome? = state.withLock { s in
                if let outcome = s.outcome { return outcome }
                s.waiter = continuation
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    /// Runs `body` and a timer; true when `body` finished first.
    static func first(of body: @escaping @Sendable () async -> Void, orAfter limit: Duration) async -> Bool {
        let race = Race<Void>()
        let work = Task { await body(); race.finish(.value(())) }
        let timer = Task {
            do { try await Task.sleep(for: limit) } catch { return }
            race.finish(.timedOut)
        }
        let outcome = await race.wait()
        timer.cancel()
        if case .value = outcome { return true }
        work.cancel()
        return false
    }
}
