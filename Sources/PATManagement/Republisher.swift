import Logging
import PATKit
import PATRegistry
import ServiceLifecycle
import Synchronization

/// Keeps what a server publishes current: the management service calls `publishChange(reason:)`
/// after every change it commits; changes committed elsewhere — by the CLI, or by another
/// `pat serve` node on the same PostgreSQL database — are published as soon as the store
/// announces them (`PATRegistryStore.externalChanges()`: PostgreSQL `NOTIFY` at once, SQLite
/// within its poll interval); and a timer republishes well before the list's next-update passes
/// (by default at half the next-update interval), so a served list is never stale.
///
/// **Publishing never silently stops.** A failed publish (a full or read-only disk, the
/// database down) is retried with capped exponential backoff (`RetrySchedule`: 1 s, 2 s, 4 s …
/// up to 60 s) until one succeeds; the changes it held count as unpublished until then
/// (`status`), the caller of the change learns it (`Publication.failed`), and the log says so
/// once when it starts failing, as the backoff grows, and when it works again.
///
/// Concurrent requests coalesce: a caller gets a list published by a run that began after it
/// asked (so it holds the caller's change), and everyone who asks while a publish is under way
/// shares the next one — a burst of changes costs two publishes, not one each.
///
/// Each publish also installs the new list (and key set) into the management API's own
/// `Validator`, so a token the change killed is refused by the API at once. Lists reach the
/// validator in sequence order: an older one finishing later is refused as a rollback.
public final class Republisher: Service, Sendable {
    public let publisher: Publisher
    /// The validator that learns every list this republisher writes (the management API's).
    public let validator: Validator?
    /// Time between timer rounds when the last publish succeeded.
    public let interval: Duration
    /// The wait before the first retry after a failed publish; doubled for every failed retry.
    public let retryInterval: Duration
    /// The longest wait between retries.
    public let maxRetryInterval: Duration
    /// While publishes fail: how often the published folder is probed, to retry as soon as it is
    /// writable again (`runTimer`).
    public let probeInterval: Duration
    private let logger: Logger

    private struct State {
        var last: PublishResult?
        var lastError: String?
        var lastErrorAt: Timestamp?
        var failingSince: Timestamp?
        var consecutiveFailures = 0
        var retry: RetrySchedule
        /// When the timer should publish next while publishing works (monotonic).
        var due: ContinuousClock.Instant
        /// Changes this republisher was told of (`publishChange`, announcements).
        var knownChanges: UInt64 = 0
        /// `knownChanges` when the last successful publish began: those are all published.
        var publishedChanges: UInt64 = 0
        var publishes: UInt64 = 0
        var failures: UInt64 = 0
        /// While failing: what the last probe of the published folder found (nil before one).
        var outputWritable: Bool?

        /// The next moment the timer acts: a retry while failing, else the regular round.
        var nextAttempt: ContinuousClock.Instant { retry.nextRetry ?? due }
    }

    private let state: Mutex<State>
    /// Wakes the timer when its next moment moves (a failure schedules a retry sooner).
    private let reschedule = WakeSignal()
    /// Told of every list this republisher writes (e.g. a distribution feed waking long polls).
    private let observers = Mutex<[@Sendable (PublishResult) -> Void]>([])
    /// The sequence of the last list written and installed.
    private let publishedSequence = AwaitableCounter()
    /// `State.publishedChanges`, awaitable.
    private let publishedChangeCount = AwaitableCounter()
    private let runs = CoalescedRuns<PublishResult>()
    /// Publishes started because the store announced changes made elsewhere.
    private let externalRounds = AwaitableCounter()
    /// Probes that found the published folder unwritable while publishes failed.
    private let blockedProbes = AwaitableCounter()

    /// - Parameters:
    ///   - interval: the timer; default half the publisher's next-update interval (at least 1 s).
    ///   - retryInterval: the first retry's wait after a failure (default 1 s), doubled for each
    ///     failed retry up to `maxRetryInterval` (default 60 s).
    public init(publisher: Publisher, validator: Validator? = nil, interval: Duration? = nil,
                retryInterval: Duration = .seconds(1), maxRetryInterval: Duration = .seconds(60),
                probeInterval: Duration = .milliseconds(250),
                logger: Logger = Logger(label: "patkit.serve")) {
        self.publisher = publisher
        self.validator = validator
        let half = Duration.seconds(max(1, publisher.nextUpdateInterval.seconds / 2))
        self.interval = interval ?? half
        let retry = RetrySchedule(initial: retryInterval, maximum: maxRetryInterval)
        self.retryInterval = retry.initial
        self.maxRetryInterval = retry.maximum
        self.probeInterval = max(probeInterval, .milliseconds(10))
        self.logger = logger
        self.state = Mutex(State(retry: retry, due: ContinuousClock.now + (interval ?? half)))
    }

    /// The last list written, if any.
    public var lastResult: PublishResult? { state.withLock { $0.last } }

    /// Calls `observer` with every list written from now on, right after it is written (before
    /// `publishNow` returns): e.g. to answer edges' long polls at once.
    public func onPublish(_ observer: @escaping @Sendable (PublishResult) -> Void) {
        observers.withLock { $0.append(observer) }
    }
    /// The last failure, cleared by the next successful publish.
    public var lastError: String? { state.withLock { $0.lastError } }

    /// What was published, what is not yet, and whether publishing works.
    public var status: PublishStatus {
        let now = ContinuousClock.now
        return state.withLock { s in
            PublishStatus(lastSequence: s.last?.sequence, lastPublishedAt: s.last?.issuedAt, nextUpdate: s.last?.nextUpdate,
                          unpublishedChanges: s.knownChanges - s.publishedChanges, lastError: s.lastError,
                          lastErrorAt: s.lastErrorAt, failingSince: s.failingSince, consecutiveFailures: s.consecutiveFailures,
                          nextRetryIn: s.retry.nextRetry.map { max(.zero, $0 - now) }, publishes: s.publishes, failures: s.failures,
                          publishedFolderWritable: s.outputWritable)
        }
    }

    /// Whether every change known here is published: for a change that changed nothing (e.g.
    /// revoking a revoked PAT), whose state is whatever the earlier changes' is.
    public var publication: Publication {
        state.withLock { s in
            if let error = s.lastError { return .failed(reason: error) }
            if let last = s.last, s.knownChanges == s.publishedChanges { return .published(sequence: last.sequence) }
            return .failed(reason: "not published yet")
        }
    }

    /// Returns once a list with sequence `sequence` or higher has been published (and
    /// installed into the validator), at once when one has. Throws `CancellationError` when the
    /// task is cancelled: bound the wait.
    public func waitUntilPublished(sequence: UInt64) async throws {
        try await publishedSequence.wait(atLeast: sequence)
    }

    /// Returns once every change this republisher knows of at the call is in a published list
    /// (after failures: once a retry succeeded). Throws `CancellationError` when the task is
    /// cancelled: bound the wait.
    public func waitUntilChangesPublished() async throws {
        let known = state.withLock { $0.knownChanges }
        try await publishedChangeCount.wait(atLeast: known)
    }

    /// Returns once `count` probes made while publishes failed found the published folder
    /// unwritable (`runTimer`). Throws `CancellationError` when the task is cancelled: bound the wait.
    package func waitUntilOutputProbedUnwritable(_ count: UInt64 = 1) async throws {
        try await blockedProbes.wait(atLeast: count)
    }

    /// Returns once `count` publishes have completed because the store announced changes made
    /// elsewhere (another node, the CLI). Throws `CancellationError` when the task is cancelled:
    /// bound the wait.
    public func waitUntilExternalPublishes(_ count: Int) async throws {
        try await externalRounds.wait(atLeast: UInt64(max(0, count)))
    }

    /// Publishes (a run that begins after this call, shared with concurrent callers) and
    /// installs the list into the validator; throws when publishing fails (and schedules a retry).
    @discardableResult
    public func publishNow() async throws -> PublishResult {
        try await runs.run { try await publishOnce() }
    }

    /// After a committed change: counts it as unpublished, publishes, and says whether verifiers
    /// can see it now. Never throws: a failure is logged and retried with backoff.
    public func publishChange(reason: String) async -> Publication {
        state.withLock { $0.knownChanges += 1 }
        if let result = await publish(reason: reason) { return .published(sequence: result.sequence) }
        return .failed(reason: lastError ?? "publishing failed")
    }

    /// Publishes now. Never throws: a failure is logged and retried with backoff.
    /// Returns the result, or nil when it failed.
    @discardableResult
    public func publish(reason: String) async -> PublishResult? {
        do {
            let result = try await publishNow()
            logger.debug("published the revocation list", metadata: [
                "reason": "\(reason)", "sequence": "\(result.sequence)", "next_update": "\(result.nextUpdate)",
            ])
            return result
        } catch {
            return nil // logged by the run that failed
        }
    }

    private func publishOnce() async throws -> PublishResult {
        let started = ContinuousClock.now
        let covered = state.withLock { $0.knownChanges }
        let result: PublishResult
        do {
            result = try await publisher.publish()
        } catch {
            failed(error, startedAt: started)
            throw error
        }
        completed(result, covering: covered)
        return result
    }

    /// The one place a publish completes: the state, the validator, and everything waiting for
    /// lists (`waitUntilPublished`, `waitUntilChangesPublished`, `status`) learn of it here, in
    /// that order. Whatever else must follow every publish belongs here too.
    private func completed(_ result: PublishResult, covering changes: UInt64) {
        let next = interval
        let recovered = state.withLock { s -> (failures: Int, since: Timestamp?)? in
            if (s.last?.sequence ?? 0) < result.sequence { s.last = result }
            let recovered = s.lastError == nil ? nil : (s.consecutiveFailures, s.failingSince)
            s.lastError = nil
            s.lastErrorAt = nil
            s.failingSince = nil
            s.consecutiveFailures = 0
            s.retry.succeeded()
            s.outputWritable = nil
            s.due = ContinuousClock.now + next
            s.publishedChanges = max(s.publishedChanges, changes)
            s.publishes += 1
            return recovered
        }
        reschedule.signal()
        if let recovered {
            logger.notice("publishing works again: every change made meanwhile is in the published list", metadata: [
                "sequence": "\(result.sequence)", "failed_attempts": "\(recovered.failures)",
                "failing_since": "\(recovered.since.map(\.rfc3339) ?? "-")",
            ])
        }
        install(result)
        if result.supersededBy == nil { for observer in observers.withLock({ $0 }) { observer(result) } }
        publishedSequence.advance(to: result.sequence)
        publishedChangeCount.advance(to: changes)
    }

    /// Records a failed attempt, schedules the retry and logs: at error level when publishing
    /// starts failing, at warning level on each failed retry, at debug level for attempts that
    /// changes asked for meanwhile (a burst of failing changes must not flood the log).
    private func failed(_ error: any Error, startedAt: ContinuousClock.Instant) {
        let now = publisher.clock()
        let text = "\(error)"
        let (first, stepped, retryIn, unpublished, failures) = state.withLock { s in
            let first = s.lastError == nil
            let before = s.retry.failedRetries
            s.retry.failed(startedAt: startedAt, now: ContinuousClock.now)
            s.lastError = text
            s.lastErrorAt = now
            if first { s.failingSince = now }
            s.consecutiveFailures += 1
            s.failures += 1
            return (first, s.retry.failedRetries != before, s.retry.nextRetry.map { $0 - ContinuousClock.now } ?? .zero,
                    s.knownChanges - s.publishedChanges, s.consecutiveFailures)
        }
        reschedule.signal()
        let metadata: Logger.Metadata = [
            "error": "\(text)", "unpublished_changes": "\(unpublished)", "failed_attempts": "\(failures)",
            "retry_in": "\(retryIn)",
        ]
        if first {
            logger.error("""
                publishing the revocation list failed: changes are recorded but verifiers do not see them until a \
                publish succeeds; retrying with backoff (\(retryInterval) doubling up to \(maxRetryInterval))
                """, metadata: metadata)
        } else if stepped {
            logger.warning("publishing the revocation list still fails; retrying", metadata: metadata)
        } else {
            logger.debug("publishing the revocation list failed again", metadata: metadata)
        }
    }

    /// Republishes whenever the timer is due, retries failed publishes, and publishes whenever
    /// the store announces changes made elsewhere, until graceful shutdown or cancellation.
    public func run() async throws {
        await cancelWhenGracefulShutdown { [self] in
            await withDiscardingTaskGroup { group in
                group.addTask { await self.followExternalChanges() }
                group.addTask { await self.runTimer() }
            }
        }
    }

    /// Waits for the next moment — the regular round, or the retry while failing — and looks
    /// again whenever it moves (a failure schedules a retry sooner than the round was due).
    ///
    /// While failing it also probes the published folder every `probeInterval`
    /// (`Publisher.outputLooksWritable`): once a probe has seen it unwritable, the first probe
    /// that sees it writable again retries at once. A restored folder is so published within a
    /// probe interval, however far the backoff has grown; such an early retry that fails anyway
    /// does not grow the backoff (`RetrySchedule`).
    private func runTimer() async {
        var sawOutputBlocked = false
        while !Task.isCancelled {
            let (next, retrying) = state.withLock { ($0.nextAttempt, $0.retry.nextRetry != nil) }
            let now = ContinuousClock.now
            if !retrying { sawOutputBlocked = false }
            if now < next {
                guard retrying else {
                    await reschedule.wait(upTo: next - now)
                    continue
                }
                await reschedule.wait(upTo: min(next - now, probeInterval))
                guard state.withLock({ $0.retry.nextRetry != nil }), ContinuousClock.now < next else { continue }
                let writable = await publisher.outputLooksWritable()
                state.withLock { $0.outputWritable = $0.retry.nextRetry == nil ? nil : writable }
                if writable {
                    guard sawOutputBlocked else { continue }
                    sawOutputBlocked = false
                    logger.info("the published folder is writable again; retrying the publish now")
                    await publish(reason: "the published folder is writable again")
                } else {
                    sawOutputBlocked = true
                    blockedProbes.increment()
                }
                continue
            }
            // The regular round rebuilds the list whole, so that a change never waits for that
            // (at 1,000,000 entries: 1.5 s instead of an update's 0.2 s).
            if !retrying { publisher.cache?.reset() }
            await publish(reason: retrying ? "retry after a failed publish" : "timer")
        }
    }

    /// Publishes after changes committed by other processes or nodes (each announcement covers
    /// every change before it; announcements arriving during a publish coalesce into one more).
    private func followExternalChanges() async {
        for await _ in publisher.store.externalChanges() {
            if Task.isCancelled { return }
            state.withLock { $0.knownChanges += 1 }
            if await publish(reason: "changes made by another process or node") != nil { externalRounds.increment() }
        }
    }

    /// Hands the new list (and the key set, when it changed) to the validator. A newer list
    /// installed meanwhile (e.g. by a refresher reading `pat publish`'s output) wins.
    private func install(_ result: PublishResult) {
        guard let validator else { return }
        do {
            let keys = try publisher.keyStore.keySet()
            let list = result.list
            if keys != validator.keys {
                try validator.install(keys: keys, revocations: list)
            } else {
                try validator.install(list)
            }
        } catch PATKitError.rollback {
            logger.debug("a newer revocation list is already installed", metadata: ["sequence": "\(result.sequence)"])
        } catch {
            logger.warning("cannot install the published list into the management API's validator",
                           metadata: ["error": "\(error)"])
        }
    }
}
