import Logging
import PATKit
import ServiceLifecycle
import Synchronization

/// What a refresher holds and why a service may be refusing tokens. A snapshot; cheap to copy.
public struct PATRefresherStatus: Sendable, CustomStringConvertible {
    /// Where the documents come from.
    public var location: String
    /// When the last round started, and when a round last ended with both documents current.
    public var lastAttempt: Timestamp?
    public var lastSuccess: Timestamp?
    /// The last failure (transport, size, parse, signature, rollback…) and when it happened.
    /// Cleared by the next fully successful round.
    public var lastError: String?
    public var lastErrorAt: Timestamp?
    public var consecutiveFailures = 0
    /// Active keys the validator trusts now.
    public var activeKeyCount = 0
    /// The held revocation list: its sequence, issue time and next-update.
    public var sequence: UInt64?
    public var issuedAt: Timestamp?
    public var nextUpdate: Timestamp?
    /// True when the held list is past next-update plus the policy's grace.
    public var isStale = false
    /// What the validator does with a stale list.
    public var staleListPolicy: Validator.StaleListPolicy = .reject
    /// Whether documents were loaded from the cache directory at start.
    public var loadedFromCache = false
    /// A failure to write the cache directory (the live validator is unaffected).
    public var cacheError: String?
    /// Why every token is refused right now, or nil when tokens can pass.
    public var refusal: String?

    /// True when tokens can pass (each is still checked on its own).
    public var acceptingTokens: Bool { refusal == nil }

    public var description: String {
        var parts = ["source: \(location)"]
        parts.append("keys: \(activeKeyCount) active")
        if let sequence, let nextUpdate {
            parts.append("revocation list: sequence \(sequence), next update \(nextUpdate)\(isStale ? " (stale)" : "")")
        } else {
            parts.append("revocation list: none")
        }
        if let lastSuccess { parts.append("last success: \(lastSuccess)") }
        if let lastError { parts.append("last error: \(lastError)") }
        if let refusal { parts.append("refusing every token: \(refusal)") }
        return parts.joined(separator: "; ")
    }

    /// The status as a JSON object (for a status endpoint).
    public var json: JSONObject {
        var o = JSONObject()
        o.set("source", .string(location))
        o.set("acceptingTokens", .bool(acceptingTokens))
        if let refusal { o.set("refusal", .string(refusal)) }
        o.set("activeKeys", .number(String(activeKeyCount)))
        if let sequence { o.set("sequence", .number(String(sequence))) }
        if let issuedAt { o.set("issuedAt", .string(issuedAt.rfc3339)) }
        if let nextUpdate { o.set("nextUpdate", .string(nextUpdate.rfc3339)) }
        o.set("stale", .bool(isStale))
        o.set("staleListPolicy", .string(staleListPolicy.rawValue))
        if let lastAttempt { o.set("lastAttempt", .string(lastAttempt.rfc3339)) }
        if let lastSuccess { o.set("lastSuccess", .string(lastSuccess.rfc3339)) }
        if let lastError { o.set("lastError", .string(lastError)) }
        if let lastErrorAt { o.set("lastErrorAt", .string(lastErrorAt.rfc3339)) }
        o.set("consecutiveFailures", .number(String(consecutiveFailures)))
        o.set("loadedFromCache", .bool(loadedFromCache))
        if let cacheError { o.set("cacheError", .string(cacheError)) }
        return o
    }
}

/// Keeps a live `Validator` current: polls the key set and the revocation list from a
/// `PATDocumentSource` (conditional GET), verifies them, and swaps them in atomically.
///
/// - A key set must parse and hold at least one active key; a list must verify with the
///   validator's keys, and the validator refuses a lower sequence (rollback), a different list
///   under the held sequence, and a list signed by a key it does not trust. Anything refused
///   leaves the last good copy in place; `status` says why.
/// - With a cache directory, every accepted document is written there (atomically) and read
///   back at start, so a restart without the network serves with the last good copy.
/// - A stale list (past next-update plus the grace) is the validator's policy to decide
///   (reject by default); `status.refusal` says so.
///
/// Run it as a `Service` (it stops on graceful shutdown or cancellation), or call `refresh()`.
public final class PATRefresher: Service, Sendable {
    public let validator: Validator
    public let source: any PATDocumentSource
    public let interval: Duration
    public let cacheDirectory: String?
    public let maxKeySetBytes: Int
    public let maxRevocationListBytes: Int
    private let logger: Logger
    private let clock: @Sendable () -> Timestamp

    private struct State {
        var keysETag: String?
        var listETag: String?
        var status: PATRefresherStatus
        var refreshing = false
        /// Callers that asked for a round while one was running; resumed when it ends.
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state: Mutex<State>
    /// The highest list sequence this refresher installed, and the rounds it finished.
    private let installedSequence = AwaitableCounter()
    private let finishedRounds = AwaitableCounter()

    /// Default bound on a fetched revocation list: 32 MiB, about a million entries.
    public static let defaultMaxRevocationListBytes = 32 * 1024 * 1024

    /// - Parameters:
    ///   - validator: the live validator to keep current (share it with the request handlers).
    ///   - interval: time between rounds in `run()`.
    ///   - cacheDirectory: where to keep the last good documents across restarts (created if missing).
    ///   - clock: the time used for status (staleness); the validator keeps its own clock.
    public init(validator: Validator, source: any PATDocumentSource, interval: Duration = .seconds(5),
                cacheDirectory: String? = nil, maxRevocationListBytes: Int = PATRefresher.defaultMaxRevocationListBytes,
                logger: Logger = Logger(label: "patkit.edge"),
                clock: @escaping @Sendable () -> Timestamp = { Timestamp.now() }) {
        self.validator = validator
        self.source = source
        self.interval = interval
        self.cacheDirectory = cacheDirectory.map { $0.hasSuffix("/") && $0.count > 1 ? String($0.dropLast()) : $0 }
        self.maxKeySetBytes = KeySet.maxDocumentBytes
        self.maxRevocationListBytes = min(maxRevocationListBytes, RevocationList.defaultMaxBytes)
        self.logger = logger
        self.clock = clock
        self.state = Mutex(State(status: PATRefresherStatus(location: source.location)))
        loadCache()
    }

    /// A refresher with its own validator, fed over HTTP(S) from the two URLs.
    public convenience init(keysURL: String, revocationsURL: String, policy: Validator.Policy = Validator.Policy(),
                            interval: Duration = .seconds(5), cacheDirectory: String? = nil,
                            logger: Logger = Logger(label: "patkit.edge")) {
        self.init(validator: Validator(keys: KeySet(), policy: policy),
                  source: HTTPDocumentSource(keysURL: keysURL, revocationsURL: revocationsURL),
                  interval: interval, cacheDirectory: cacheDirectory, logger: logger)
    }

    /// The current status, with staleness computed now.
    public var status: PATRefresherStatus {
        var status = state.withLock { $0.status }
        fill(&status)
        return status
    }

    // MARK: events

    /// Returns once this refresher has installed a revocation list with sequence `sequence` or
    /// higher (at once when it already has). Throws `CancellationError` when the task is
    /// cancelled: bound the wait, e.g. in a task group with a timeout.
    public func waitUntilRefreshed(toSequence sequence: UInt64) async throws {
        try await installedSequence.wait(atLeast: sequence)
    }

    /// Rounds of `refresh()` finished so far, successful or not.
    public var completedRounds: Int { Int(finishedRounds.value) }

    /// Returns once `count` rounds have finished since the refresher was made. Throws
    /// `CancellationError` when the task is cancelled.
    public func waitUntilRounds(_ count: Int) async throws {
        try await finishedRounds.wait(atLeast: UInt64(max(0, count)))
    }

    // MARK: running

    /// Refreshes every `interval` until cancelled or, inside a ServiceGroup, until graceful shutdown.
    public func run() async throws {
        await cancelWhenGracefulShutdown { [self] in
            while !Task.isCancelled {
                await refresh()
                do { try await Task.sleep(for: interval) } catch { return }
            }
        }
    }

    /// One round: the key set first (a new list may be signed by a new key), then the list.
    /// Returns the status after the round. While a round is running, a call waits for it to
    /// end instead of starting another.
    @discardableResult
    public func refresh() async -> PATRefresherStatus {
        let started = clock()
        enum Start { case run(String?, String?), wait }
        let start: Start = state.withLock { s in
            if s.refreshing { return .wait }
            s.refreshing = true
            s.status.lastAttempt = started
            return .run(s.keysETag, s.listETag)
        }
        guard case .run(let keysETag, let listETag) = start else {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { s -> Bool in
                    if !s.refreshing { return true }
                    s.waiters.append(continuation)
                    return false
                }
                if resumeNow { continuation.resume() }
            }
            return status
        }

        var errors: [String] = []
        var cacheErrors: [String] = []
        var cacheWritten = false
        do {
            switch try await source.fetch(.keys, ifNoneMatch: keysETag, maxBytes: maxKeySetBytes) {
            case .notModified:
                break
            case .modified(let bytes, let etag):
                try acceptKeys(bytes)
                state.withLock { $0.keysETag = etag }
                if let problem = persist(.keys, bytes) { cacheErrors.append(problem) } else { cacheWritten = true }
            }
        } catch {
            errors.append("key set: \(error)")
        }
        do {
            switch try await source.fetch(.revocations, ifNoneMatch: listETag, maxBytes: maxRevocationListBytes) {
            case .notModified:
                break
            case .modified(let bytes, let etag):
                let held = validator.revocations?.sequence
                let list = try validator.installRevocations(bytes)
                state.withLock { $0.listETag = etag }
                if held != list.sequence {
                    logger.info("installed revocation list", metadata: [
                        "sequence": "\(list.sequence)", "next_update": "\(list.nextUpdate)", "signer": "\(list.signer)",
                    ])
                    if let problem = persist(.revocations, bytes) { cacheErrors.append(problem) } else { cacheWritten = true }
                }
                installedSequence.advance(to: list.sequence)
            }
        } catch {
            errors.append("revocation list: \(error)")
        }

        let now = clock()
        let (status, previousError, waiters) = state.withLock { s -> (PATRefresherStatus, String?, [CheckedContinuation<Void, Never>]) in
            let previous = s.status.lastError
            if errors.isEmpty {
                s.status.lastSuccess = now
                s.status.lastError = nil
                s.status.lastErrorAt = nil
                s.status.consecutiveFailures = 0
            } else {
                s.status.lastError = errors.joined(separator: "; ")
                s.status.lastErrorAt = now
                s.status.consecutiveFailures += 1
            }
            if !cacheErrors.isEmpty {
                s.status.cacheError = cacheErrors.joined(separator: "; ")
            } else if cacheWritten {
                s.status.cacheError = nil
            }
            s.refreshing = false
            let waiters = s.waiters
            s.waiters = []
            return (s.status, previous, waiters)
        }
        for waiter in waiters { waiter.resume() }
        finishedRounds.increment()
        if let error = status.lastError {
            // Repeated identical failures are logged once at warning, then at debug.
            let level: Logger.Level = error == previousError ? .debug : .warning
            logger.log(level: level, "refresh failed; keeping the last good copy", metadata: ["error": "\(error)"])
        } else if previousError != nil {
            logger.info("refresh recovered")
        }
        var filled = status
        fill(&filled)
        return filled
    }

    /// Parses a key set and swaps it in when it differs from the one held.
    @discardableResult
    private func acceptKeys(_ bytes: [UInt8]) throws -> KeySet {
        let keys = try KeySet(json: bytes)
        guard !keys.activeKeys.isEmpty else {
            throw PATEdgeError("the key set has no active key; keeping the last good one")
        }
        if keys != validator.keys {
            validator.replaceKeys(keys)
            logger.info("installed key set", metadata: ["active_keys": "\(keys.activeKeys.map(\.id.rawValue))"])
        }
        return keys
    }

    // MARK: status

    private func fill(_ status: inout PATRefresherStatus) {
        let now = clock()
        let policy = validator.policy
        let keys = validator.keys
        status.activeKeyCount = keys.activeKeys.count
        status.staleListPolicy = policy.staleListPolicy
        let list = validator.revocations
        status.sequence = list?.sequence
        status.issuedAt = list?.issuedAt
        status.nextUpdate = list?.nextUpdate
        status.isStale = list?.isStale(at: now, grace: policy.staleGrace) ?? false
        let cause = status.lastError.map { " (last refresh error: \($0))" } ?? ""
        if status.activeKeyCount == 0 {
            status.refusal = "no trusted key is loaded\(cause)"
        } else if let list, status.isStale, policy.staleListPolicy == .reject {
            status.refusal = "revocation list \(list.sequence) was due for update at \(list.nextUpdate) "
                + "(grace \(policy.staleGrace) s); the policy refuses tokens until a fresh list arrives\(cause)"
        } else if list == nil, policy.requireRevocationList {
            status.refusal = "no revocation list is loaded\(cause)"
        } else {
            status.refusal = nil
        }
    }

    // MARK: cache

    private func cachePath(_ document: PATDocument) -> String? {
        cacheDirectory.map { $0 + (document == .keys ? "/keys.json" : "/revocations.bin") }
    }

    /// Writes an accepted document to the cache directory; returns the problem, if any.
    private func persist(_ document: PATDocument, _ bytes: [UInt8]) -> String? {
        guard let cacheDirectory, let path = cachePath(document) else { return nil }
        do {
            try SecureFile.createDirectory(cacheDirectory)
            try SecureFile.writeAtomically(path, bytes, mode: 0o644)
            return nil
        } catch {
            logger.warning("cannot write the cache", metadata: ["path": "\(path)", "error": "\(error)"])
            return "\(error)"
        }
    }

    /// Installs the cached documents, if any: the last good copies from an earlier run.
    private func loadCache() {
        guard let keysPath = cachePath(.keys), let listPath = cachePath(.revocations) else { return }
        var loaded = false
        var problems: [String] = []
        if SecureFile.exists(keysPath) {
            do {
                try acceptKeys(SecureFile.read(keysPath, maxBytes: maxKeySetBytes))
                loaded = true
            } catch {
                problems.append("cached key set \(keysPath): \(error)")
            }
        }
        if SecureFile.exists(listPath) {
            do {
                let list = try validator.installRevocations(SecureFile.read(listPath, maxBytes: maxRevocationListBytes))
                installedSequence.advance(to: list.sequence)
                loaded = true
                logger.info("loaded the cached revocation list", metadata: ["sequence": "\(list.sequence)", "next_update": "\(list.nextUpdate)"])
            } catch {
                problems.append("cached revocation list \(listPath): \(error)")
            }
        }
        let now = clock()
        state.withLock { s in
            s.status.loadedFromCache = loaded
            if !problems.isEmpty {
                s.status.lastError = problems.joined(separator: "; ")
                s.status.lastErrorAt = now
            }
        }
        for problem in problems { logger.warning("ignoring the cache", metadata: ["error": "\(problem)"]) }
    }
}
