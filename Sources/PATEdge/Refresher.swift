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
    /// How many trust anchors are pinned.
    public var trustAnchorCount = 0
    /// The held signed key set: its sequence, signing anchor and next-update.
    public var keySetSequence: UInt64?
    public var keySetSigner: KeyID?
    public var keySetNextUpdate: Timestamp?
    /// True when the held key set is past next-update plus the policy's grace.
    public var isKeySetStale = false
    /// Why the last held list was dropped (a new key set no longer trusts its signer), until a
    /// list is installed.
    public var droppedList: String?
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
        if let keySetSequence, let keySetNextUpdate {
            parts.append("key set: sequence \(keySetSequence), next update \(keySetNextUpdate)\(isKeySetStale ? " (stale)" : "")")
        }
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
        o.set("trustAnchors", .number(String(trustAnchorCount)))
        if let keySetSequence { o.set("keySetSequence", .number(String(keySetSequence))) }
        if let keySetSigner { o.set("keySetSigner", .string(keySetSigner.rawValue)) }
        if let keySetNextUpdate { o.set("keySetNextUpdate", .string(keySetNextUpdate.rfc3339)) }
        o.set("keySetStale", .bool(isKeySetStale))
        if let droppedList { o.set("droppedList", .string(droppedList)) }
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

/// Keeps a live `Validator` current: polls the signed key set and the revocation list from a
/// `PATDocumentSource` (conditional GET), verifies them, and swaps them in atomically.
///
/// - A key set is accepted only when signed by one of the pinned `trustAnchors` (anchor-only:
///   no key set vouches for the next), with a sequence not below the one held (rollback) and
///   at least one active key. A list must verify with the keys of the key set it is installed
///   with, and the validator refuses a lower sequence, a different list under the held
///   sequence, and a list signed by a key it does not trust. Anything refused leaves the last
///   good copy in place; `status` says why.
/// - When a new key set no longer trusts the held list's signer and no newer list came with
///   it, the list is dropped: tokens are refused (503) until a list from a trusted key arrives,
///   and `status.droppedList` says why.
/// - With a cache directory, every accepted document is written there (atomically) and read
///   back at start, so a restart without the network serves with the last good copy.
/// - A stale list (past next-update plus the grace) is the validator's policy to decide
///   (reject by default); `status.refusal` says so.
///
/// Run it as a `Service` (it stops on graceful shutdown or cancellation), or call `refresh()`.
public final class PATRefresher: Service, Sendable {
    public let validator: Validator
    public let source: any PATDocumentSource
    /// The keys a key set must be signed by.
    public let trustAnchors: TrustAnchors
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
        /// Callers of `waitForStatus`, resumed after the first round whose status satisfies them.
        var watchers: [UInt64: Watcher] = [:]
        var nextWatcher: UInt64 = 0
    }

    private struct Watcher {
        let predicate: @Sendable (PATRefresherStatus) -> Bool
        let continuation: CheckedContinuation<PATRefresherStatus, Never>
    }

    private let state: Mutex<State>
    /// The highest list sequence this refresher installed, and the rounds it finished.
    private let installedSequence = AwaitableCounter()
    private let finishedRounds = AwaitableCounter()

    /// Default bound on a fetched revocation list: 32 MiB, about a million entries.
    public static let defaultMaxRevocationListBytes = 32 * 1024 * 1024

    /// - Parameters:
    ///   - validator: the live validator to keep current (share it with the request handlers).
    ///   - trustAnchors: the anchors key sets must be signed by (e.g. `TrustAnchors(contentsOfFile:)`
    ///     on the output of `pat keys export --anchors`).
    ///   - interval: time between rounds in `run()`.
    ///   - cacheDirectory: where to keep the last good documents across restarts (created if missing).
    ///   - clock: the time used for status (staleness); the validator keeps its own clock.
    public init(validator: Validator, source: any PATDocumentSource, trustAnchors: TrustAnchors, interval: Duration = .seconds(5),
                cacheDirectory: String? = nil, maxRevocationListBytes: Int = PATRefresher.defaultMaxRevocationListBytes,
                logger: Logger = Logger(label: "patkit.edge"),
                clock: @escaping @Sendable () -> Timestamp = { Timestamp.now() }) {
        self.validator = validator
        self.source = source
        self.trustAnchors = trustAnchors
        self.interval = interval
        self.cacheDirectory = cacheDirectory.map { $0.hasSuffix("/") && $0.count > 1 ? String($0.dropLast()) : $0 }
        self.maxKeySetBytes = SignedKeySet.maxDocumentBytes
        self.maxRevocationListBytes = min(maxRevocationListBytes, RevocationList.defaultMaxBytes)
        self.logger = logger
        self.clock = clock
        self.state = Mutex(State(status: PATRefresherStatus(location: source.location)))
        loadCache()
    }

    /// A refresher with its own validator, fed over HTTP(S) from the two URLs.
    public convenience init(keysURL: String, revocationsURL: String, trustAnchors: TrustAnchors,
                            policy: Validator.Policy = Validator.Policy(),
                            interval: Duration = .seconds(5), cacheDirectory: String? = nil,
                            logger: Logger = Logger(label: "patkit.edge")) {
        self.init(validator: Validator(keys: KeySet(), policy: policy),
                  source: HTTPDocumentSource(keysURL: keysURL, revocationsURL: revocationsURL),
                  trustAnchors: trustAnchors, interval: interval, cacheDirectory: cacheDirectory, logger: logger)
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
        // The key set first: a new list may be signed by a key only the new set holds.
        var offeredKeys: (set: SignedKeySet, etag: String?)? = nil
        do {
            switch try await source.fetch(.keys, ifNoneMatch: keysETag, maxBytes: maxKeySetBytes) {
            case .notModified:
                break
            case .modified(let bytes, let etag):
                offeredKeys = (try SignedKeySet(verifying: bytes, anchors: trustAnchors), etag)
            }
        } catch {
            errors.append("key set: \(error)")
        }
        var offeredList: (list: RevocationList, bytes: [UInt8], etag: String?)? = nil
        do {
            switch try await source.fetch(.revocations, ifNoneMatch: listETag, maxBytes: maxRevocationListBytes) {
            case .notModified:
                break
            case .modified(let bytes, let etag):
                let list = try RevocationList(verifying: bytes, keys: offeredKeys?.set.keys ?? validator.keys)
                offeredList = (list, bytes, etag)
            }
        } catch {
            errors.append("revocation list: \(error)")
        }
        let heldKeys = validator.signedKeySet?.sequence
        let heldList = validator.revocations?.sequence
        var keysInstalled = false, listInstalled = false
        if let offeredKeys {
            do {
                // Together when both came, so the swap is atomic; the key set alone when the
                // list is refused (its error is reported below).
                if let offeredList {
                    do {
                        try validator.install(offeredKeys.set, revocations: offeredList.list)
                        listInstalled = true
                    } catch {
                        errors.append("revocation list: \(error)")
                        try validator.install(offeredKeys.set)
                    }
                } else {
                    try validator.install(offeredKeys.set)
                }
                keysInstalled = true
            } catch {
                errors.append("key set: \(error)")
            }
        } else if let offeredList {
            do {
                try validator.install(offeredList.list)
                listInstalled = true
            } catch {
                errors.append("revocation list: \(error)")
            }
        }
        if keysInstalled, let offeredKeys {
            state.withLock { $0.keysETag = offeredKeys.etag }
            if heldKeys != offeredKeys.set.sequence {
                logger.info("installed key set", metadata: [
                    "sequence": "\(offeredKeys.set.sequence)", "anchor": "\(offeredKeys.set.signer)",
                    "active_keys": "\(offeredKeys.set.keys.activeKeys.map(\.id.rawValue))",
                ])
                if let problem = persist(.keys, offeredKeys.set.bytes) { cacheErrors.append(problem) } else { cacheWritten = true }
            }
            if let dropped = validator.droppedList, !listInstalled {
                logger.warning("dropped the held revocation list", metadata: ["reason": "\(dropped)"])
            }
        }
        if listInstalled, let offeredList {
            state.withLock { $0.listETag = offeredList.etag }
            installedSequence.advance(to: offeredList.list.sequence)
            if heldList != offeredList.list.sequence {
                logger.info("installed revocation list", metadata: [
                    "sequence": "\(offeredList.list.sequence)", "next_update": "\(offeredList.list.nextUpdate)",
                    "signer": "\(offeredList.list.signer)",
                ])
                if let problem = persist(.revocations, offeredList.bytes) { cacheErrors.append(problem) } else { cacheWritten = true }
            }
        }
        if validator.revocations == nil {
            // A dropped list's entity tag must not hide the next copy of the same file.
            state.withLock { $0.listETag = nil }
        }

        let now = clock()
        let (status, previousError, waiters, watchers) = state.withLock { s -> (PATRefresherStatus, String?, [CheckedContinuation<Void, Never>], [Watcher]) in
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
            let watchers = Array(s.watchers.values)
            return (s.status, previous, waiters, watchers)
        }
        for waiter in waiters { waiter.resume() }
        finishedRounds.increment()
        if !watchers.isEmpty {
            var filled = status
            fill(&filled)
            notify(filled)
        }
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

    /// Waits until the status after a round (or right now) satisfies `predicate`, e.g.
    /// `{ $0.sequence == 7 }`: for tests and start-up code that need an event, not a delay.
    /// Returns the current status early when the calling task is cancelled.
    @discardableResult
    public func waitForStatus(_ predicate: @escaping @Sendable (PATRefresherStatus) -> Bool) async -> PATRefresherStatus {
        let now = status
        if predicate(now) { return now }
        let id = state.withLock { s -> UInt64 in s.nextWatcher += 1; return s.nextWatcher }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<PATRefresherStatus, Never>) in
                let current = status
                let resumeNow = Task.isCancelled || predicate(current) || state.withLock { s -> Bool in
                    s.watchers[id] = Watcher(predicate: predicate, continuation: continuation)
                    return false
                }
                if resumeNow { continuation.resume(returning: current) }
            }
        } onCancel: {
            let watcher = state.withLock { $0.watchers.removeValue(forKey: id) }
            watcher?.continuation.resume(returning: status)
        }
    }

    private func notify(_ status: PATRefresherStatus) {
        let ready = state.withLock { s -> [Watcher] in
            let ids = s.watchers.filter { $0.value.predicate(status) }.map(\.key)
            return ids.compactMap { s.watchers.removeValue(forKey: $0) }
        }
        for watcher in ready { watcher.continuation.resume(returning: status) }
    }

    // MARK: status

    private func fill(_ status: inout PATRefresherStatus) {
        let now = clock()
        let policy = validator.policy
        let keys = validator.keys
        status.activeKeyCount = keys.activeKeys.count
        status.trustAnchorCount = trustAnchors.keys.count
        let keySet = validator.signedKeySet
        status.keySetSequence = keySet?.sequence
        status.keySetSigner = keySet?.signer
        status.keySetNextUpdate = keySet?.nextUpdate
        status.isKeySetStale = keySet?.isStale(at: now, grace: policy.staleGrace) ?? false
        let dropped = validator.droppedList
        status.droppedList = dropped?.description
        status.staleListPolicy = policy.staleListPolicy
        let list = validator.revocations
        status.sequence = list?.sequence
        status.issuedAt = list?.issuedAt
        status.nextUpdate = list?.nextUpdate
        status.isStale = list?.isStale(at: now, grace: policy.staleGrace) ?? false
        let cause = status.lastError.map { " (last refresh error: \($0))" } ?? ""
        if status.activeKeyCount == 0 {
            status.refusal = "no trusted key set is loaded (it must be signed by one of the \(trustAnchors.keys.count) pinned trust anchors)\(cause)"
        } else if let keySet, status.isKeySetStale, policy.staleListPolicy == .reject {
            status.refusal = "key set \(keySet.sequence) was due for update at \(keySet.nextUpdate) "
                + "(grace \(policy.staleGrace) s); the policy refuses tokens until a fresh key set arrives\(cause)"
        } else if list == nil, let dropped, policy.requireRevocationList {
            status.refusal = "no revocation list is loaded: \(dropped)\(cause)"
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
                try validator.install(SignedKeySet(verifying: SecureFile.read(keysPath, maxBytes: maxKeySetBytes), anchors: trustAnchors))
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
