import PATManagement
import Testing

/// When the republisher retries a failed publish (the M2 finding: a failed publish was never
/// retried). The schedule is pure arithmetic on instants: no clock is waited for here.
@Suite("retry schedule of failed publishes")
struct RetryScheduleTests {
    typealias Instant = ContinuousClock.Instant

    @Test("1 s, doubling for every failed retry, capped at 60 s")
    func delaysDoubleUpToTheCap() {
        let schedule = RetrySchedule(initial: .seconds(1), maximum: .seconds(60))
        let delays = (0..<9).map { schedule.delay(afterFailedRetries: $0) }
        #expect(delays == [1, 2, 4, 8, 16, 32, 60, 60, 60].map { Duration.seconds($0) })
        #expect(schedule.delay(afterFailedRetries: 10_000) == .seconds(60), "never overflows")
    }

    @Test("the first failure schedules a retry; each failed retry backs off; a success ends it")
    func retriesBackOffAndASuccessResets() {
        var schedule = RetrySchedule(initial: .seconds(1), maximum: .seconds(60))
        #expect(schedule.nextRetry == nil)
        let t0 = ContinuousClock.now
        schedule.failed(startedAt: t0, now: t0)
        #expect(schedule.nextRetry == t0 + .seconds(1))
        // The retry, made when due, fails: 2 s later, then 4 s.
        let t1 = t0 + .seconds(1)
        schedule.failed(startedAt: t1, now: t1 + .milliseconds(10))
        #expect(schedule.nextRetry == t1 + .milliseconds(10) + .seconds(2))
        let t2 = t1 + .seconds(2) + .milliseconds(10)
        schedule.failed(startedAt: t2, now: t2)
        #expect(schedule.nextRetry == t2 + .seconds(4))
        schedule.succeeded()
        #expect(schedule.nextRetry == nil)
        #expect(schedule.failedRetries == 0)
        let t3 = t2 + .seconds(30)
        schedule.failed(startedAt: t3, now: t3)
        #expect(schedule.nextRetry == t3 + .seconds(1), "after a success, the next failure starts from 1 s again")
    }

    @Test("failures of publishes that changes asked for do not push the retry back")
    func aBurstOfFailingChangesKeepsTheRetryNear() {
        var schedule = RetrySchedule(initial: .seconds(1), maximum: .seconds(60))
        let t0 = ContinuousClock.now
        schedule.failed(startedAt: t0, now: t0)
        // 500 API changes within the next 900 ms, each publish failing: the retry stays at t0 + 1 s.
        for index in 1...500 {
            let at = t0 + .microseconds(index * 1800)
            schedule.failed(startedAt: at, now: at)
        }
        #expect(schedule.nextRetry == t0 + .seconds(1))
        #expect(schedule.failedRetries == 0)
    }
}
