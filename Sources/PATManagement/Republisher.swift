import Logging
import PATKit
import PATRegistry
import ServiceLifecycle
import Synchronization

/// Keeps what a server publishes current: the management service calls `publish(reason:)`
/// after every change it commits, and a timer republishes well before the list's next-update
/// passes (by default at half the next-update interval), so a served list is never stale.
/// Changes made by the CLI while the server runs reach the published files on the next timer
/// round.
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
    /// The sequence of the last list written and installed.
    private let publishedSequence = AwaitableCounter()

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
    /// The last failure, cleared by the next successful publish.
    public var lastError: String? { state.withLock { $0.lastError } }

    /// Returns once a list with sequence `sequence` or higher has been published (and
    /// installed into the validator), at once when one has. Throws `CancellationError` when the
    /// task is cancelled: bound the wait.
    public func waitUntilPublished(sequence: UInt64) async throws {
        try await publishedSequence.wait(atLeast: sequence)
    }

    /// Publishes now and installs the list into the validator; throws when publishing fails.
    @discardableResult
    public func publishNow() async throws -> PublishResult {
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

    /// Republishes whenever the timer is due, until graceful shutdown or cancellation.
    public func run() async throws {
        await cancelWhenGracefulShutdown { [self] in
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
