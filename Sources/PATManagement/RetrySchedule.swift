/// When the republisher tries again after failed publishes: capped exponential backoff.
///
/// The first failure schedules a retry `initial` later (1 s in `pat serve`); every failed
/// *retry* — an attempt made once the retry was due — doubles the wait, up to `maximum` (60 s).
/// An attempt that a change asked for (the API, the CLI, another node) and that fails before
/// the retry is due leaves the schedule alone: a burst of changes while the disk is full must
/// not push the next retry to the cap, or a restored disk would wait a minute for it. A
/// success ends the schedule.
package struct RetrySchedule: Sendable, Equatable {
    package typealias Instant = ContinuousClock.Instant

    package let initial: Duration
    package let maximum: Duration
    /// Failed retries since the first failure (0 after the first failure).
    package private(set) var failedRetries = 0
    /// When to try again; nil while publishing works.
    package private(set) var nextRetry: Instant?

    package init(initial: Duration, maximum: Duration) {
        self.initial = max(initial, .milliseconds(1))
        self.maximum = max(maximum, self.initial)
    }

    /// The wait after `failedRetries` failed retries: `initial · 2^failedRetries`, at most `maximum`.
    package func delay(afterFailedRetries failedRetries: Int) -> Duration {
        var delay = initial
        for _ in 0..<max(0, failedRetries) {
            guard delay < maximum else { break }
            delay = delay * 2
        }
        return min(delay, maximum)
    }

    /// An attempt that began at `startedAt` failed; `now` is when it ended.
    package mutating func failed(startedAt: Instant, now: Instant) {
        guard let due = nextRetry else {
            failedRetries = 0
            nextRetry = now + delay(afterFailedRetries: 0)
            return
        }
        guard startedAt >= due else { return } // a change's attempt, before the retry was due
        failedRetries += 1
        nextRetry = now + delay(afterFailedRetries: failedRetries)
    }

    /// A publish succeeded: no retry pending.
    package mutating func succeeded() {
        failedRetries = 0
        nextRetry = nil
    }
}
