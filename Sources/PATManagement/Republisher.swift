import Logging
import PATKit
import PATRegistry
import ServiceLifecycle
import Synchronization

/// Keeps what a server publishes current: the management service calls `publish(reason:)`
/// after every change it commits; changes committed elsewhere — by the CLI, or by another
/// `pat serve` node on the same PostgreSQL database — are published as soon as the store
/// announces them (`PATRegistryStore.externalChanges()`: PostgreSQL `NOTIFY` at once, SQLite
/// within its poll interval); and a timer republishes well before the list's next-update passes
/// (by default at half the next-update interval), so a served list is never stale.
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
    /// Time before the next attempt after a failed publish.
    public let retryInterval: Duration
    private let logger: Logger

    private struct State {
        var last: PublishResult?
        var lastError: String?
        /// When the timer should publish next (monotonic).
        var due: ContinuousClock.Instant
        var failures = 0
    }

    private let state: Mutex<State>
    /// Told of every list this republisher writes (e.g. a distribution feed waking long polls).
    private let observers = Mutex<[@Sendable (PublishResult) -> Void]>([])
    /// The sequence of the last list written and installed.
    private let publishedSequence = AwaitableCounter()
    private let runs = CoalescedRuns<PublishResult>()
    /// Publishes started because the store announced changes made elsewhere.
    private let externalRounds = AwaitableCounter()

    /// - Parameters:
    ///   - interval: the timer; default half the publisher's next-update interval (at least 1 s).
    public init(publisher: Publisher, validator: Validator? = nil, interval: Duration? = nil,
                retryInterval: Duration = .seconds(5), logger: Logger = Logger(label: "patkit.serve")) {
        self.publisher = publisher
        self.validator = validator
        let half = Duration.seconds(max(1, publisher.nextUpdateInterval.seconds / 2))
        self.interval = interval ?? half
        self.retryInterval = retryInterval
        self.logger = logger
        self.state = Mutex(State(due: ContinuousClock.now + (interval ?? half)))
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

    /// Returns once a list with sequence `sequence` or higher has been published (and
    /// installed into the validator), at once when one has. Throws `CancellationError` when the
    /// task is cancelled: bound the wait.
    public func waitUntilPublished(sequence: UInt64) async throws {
        try await publishedSequence.wait(atLeast: sequence)
    }

    /// Returns once `count` publishes have completed because the store announced changes made
    /// elsewhere (another node, the CLI). Throws `CancellationError` when the task is cancelled:
    /// bound the wait.
    public func waitUntilExternalPublishes(_ count: Int) async throws {
        try await externalRounds.wait(atLeast: UInt64(max(0, count)))
    }

    /// Publishes (a run that begins after this call, shared with concurrent callers) and
    /// installs the list into the validator; throws when publishing fails.
    @discardableResult
    public func publishNow() async throws -> PublishResult {
        try await runs.run { try await publishOnce() }
    }

    private func publishOnce() async throws -> PublishResult {
        let result: PublishResult
        do {
            result = try await publisher.publish()
        } catch {
            let retry = retryInterval
            state.withLock { s in
                s.lastError = "\(error)"
                s.failures += 1
                s.due = ContinuousClock.now + retry
            }
            throw error
        }
        let next = interval
        state.withLock { s in
            if (s.last?.sequence ?? 0) < result.sequence { s.last = result }
            s.lastError = nil
            s.failures = 0
            s.due = ContinuousClock.now + next
        }
        install(result)
        if result.supersededBy == nil { for observer in observers.withLock({ $0 }) { observer(result) } }
        publishedSequence.advance(to: result.sequence)
        return result
    }

    /// Publishes now. Never throws: a failure is logged and retried after `retryInterval`.
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
            logger.error("publishing the revocation list failed; retrying soon", metadata: [
                "reason": "\(reason)", "error": "\(error)", "retry_in": "\(retryInterval)",
            ])
            return nil
        }
    }

    /// Republishes whenever the timer is due and whenever the store announces changes made
    /// elsewhere, until graceful shutdown or cancellation.
    public func run() async throws {
        await cancelWhenGracefulShutdown { [self] in
            await withDiscardingTaskGroup { group in
                group.addTask { await self.followExternalChanges() }
                group.addTask { await self.runTimer() }
            }
        }
    }

    private func runTimer() async {
        while !Task.isCancelled {
            let due = state.withLock { $0.due }
            if ContinuousClock.now < due {
                // A publish made meanwhile (by an API change) moves `due`: look again after sleeping.
                do { try await Task.sleep(until: due, clock: .continuous) } catch { return }
                continue
            }
            await publish(reason: "timer")
        }
    }

    /// Publishes after changes committed by other processes or nodes (each announcement covers
    /// every change before it; announcements arriving during a publish coalesce into one more).
    private func followExternalChanges() async {
        for await _ in publisher.store.externalChanges() {
            if Task.isCancelled { return }
            if await publish(reason: "changes made by another process or node") != nil { externalRounds.increment() }
        }
    }

    /// Hands the new list (and the key set, when it changed) to the validator. A newer list
    /// installed meanwhile (e.g. by a refresher reading `pat publish`'s output) wins.
    private func install(_ result: PublishResult) {
        guard let validator else { return }
        do {
            let keys = try publisher.keyStore.keySet()
            let list = try RevocationList(verifying: result.bytes, keys: keys)
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
