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
    /// `long-poll` while the issuer holds long polls for this refresher, else `polling`.
    public var transport = "polling"
    /// Body bytes of every document fetched so far (lists, deltas, key sets).
    public var bytesReceived: UInt64 = 0
    /// Deltas applied, and whole lists installed, so far.
    public var deltasApplied: UInt64 = 0
    public var fullListsReceived: UInt64 = 0

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
        o.set("transport", .string(transport))
        o.set("bytesReceived", .number(String(bytesReceived)))
        o.set("deltasApplied", .number(String(deltasApplied)))
        o.set("fullListsReceived", .number(String(fullListsReceived)))
        if let cacheError { o.set("cacheError", .string(cacheError)) }
        return o
    }
}

/// What a round installed, for `PATRefresher`'s `onUpdate`: a new key set, a new list, and the
/// deltas (verified, in order) that made the list from the one held before — empty when the
/// list came whole.
public struct PATRefresherUpdate: Sendable {
    public var keySet: SignedKeySet?
    public var list: RevocationList?
    public var deltas: [[UInt8]] = []
}

/// Keeps a live `Validator` current: long-polls (or polls) the revocation list and fetches the
/// signed key set from a `PATDocumentSource`, verifies them, and swaps them in atomically.
/// Deltas (`RevocationDelta`) are verified and applied to the held list, and the result goes
/// through the same checks as a list fetched whole: signed by an active key of the trusted key
/// set, never a lower sequence, never a different list under the held sequence.
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
    /// How long one long poll may be held by the issuer (nil: always poll every `interval`).
    public let longPollWait: Duration?
    public let cacheDirectory: String?
    public let maxKeySetBytes: Int
    public let maxRevocationListBytes: Int
    private let logger: Logger
    private let clock: @Sendable () -> Timestamp
    /// Told of every key set and list installed (e.g. a relay serving what it verified).
    private let onUpdate: (@Sendable (PATRefresherUpdate) -> Void)?

    /// The default long poll: 55 s, under the 60 s an issuer holds a request at most.
    public static let defaultLongPollWait: Duration = .seconds(55)

    private struct State {
        var keysETag: String?
        var listETag: String?
        var status: PATRefresherStatus
        var refreshing = false
        /// Whether the source answered with `X-PAT-Sequence` last time (it holds long polls).
        var waitSupported = true
        /// Set when deltas did not apply and the whole list could not be fetched either.
        var needFullList = false
        var deltasApplied: UInt64 = 0
        var fullLists: UInt64 = 0
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
    ///   - interval: time between rounds in `run()` when polling, and after a failed round.
    ///   - longPollWait: how long the issuer may hold each long poll (nil: poll every `interval`).
    ///   - cacheDirectory: where to keep the last good documents across restarts (created if missing).
    ///   - clock: the time used for status (staleness); the validator keeps its own clock.
    ///   - onUpdate: called after every round that installed a new key set or list.
    public init(validator: Validator, source: any PATDocumentSource, trustAnchors: TrustAnchors, interval: Duration = .seconds(5),
                longPollWait: Duration? = PATRefresher.defaultLongPollWait,
                cacheDirectory: String? = nil, maxRevocationListBytes: Int = PATRefresher.defaultMaxRevocationListBytes,
                logger: Logger = Logger(label: "patkit.edge"),
                clock: @escaping @Sendable () -> Timestamp = { Timestamp.now() },
                onUpdate: (@Sendable (PATRefresherUpdate) -> Void)? = nil) {
        self.validator = validator
        self.source = source
        self.trustAnchors = trustAnchors
        self.interval = interval
        self.longPollWait = longPollWait.flatMap { $0 > .zero ? $0 : nil }
        self.onUpdate = onUpdate
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
                            interval: Duration = .seconds(5), longPollWait: Duration? = PATRefresher.defaultLongPollWait,
                            cacheDirectory: String? = nil, logger: Logger = Logger(label: "patkit.edge")) {
        self.init(validator: Validator(keys: KeySet(), policy: policy),
                  source: HTTPDocumentSource(keysURL: keysURL, revocationsURL: revocationsURL),
                  trustAnchors: trustAnchors, interval: interval, longPollWait: longPollWait, cacheDirectory: cacheDirectory,
                  logger: logger)
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

    /// Keeps the documents current until cancelled or, inside a ServiceGroup, until graceful
    /// shutdown. With an issuer that understands it (`X-PAT-Sequence`), it holds a long poll
    /// (`longPollWait`) for the next list and applies the deltas that come back, so a revocation
    /// arrives within moments of its publication; the key set is fetched (conditionally) after
    /// each answer, and at the latest every `longPollWait`. Otherwise — an older issuer, files,
    /// a plain web server, `longPollWait` nil — it polls every `interval`. After a failure it
    /// waits `interval` before trying again; an issuer that answers long polls without waiting
    /// is polled instead for ten minutes.
    public func run() async throws {
        await cancelWhenGracefulShutdown { [self] in
            var quickAnswers = 0
            var pollOnlyUntil: ContinuousClock.Instant? = nil
            while !Task.isCancelled {
                let now = ContinuousClock.now
                if let until = pollOnlyUntil, now >= until { pollOnlyUntil = nil }
                let wait = pollOnlyUntil == nil && waitSupported && validator.revocations != nil ? longPollWait : nil
                let outcome = await round(wait: wait)
                guard let wait else {
                    // The first list just came from an issuer that holds long polls: start one at
                    // once rather than after a polling interval.
                    if !outcome.failed, pollOnlyUntil == nil, longPollWait != nil, waitSupported, validator.revocations != nil {
                        continue
                    }
                    do { try await Task.sleep(for: interval) } catch { return }
                    continue
                }
                if outcome.failed {
                    do { try await Task.sleep(for: interval) } catch { return }
                } else if !outcome.listChanged, ContinuousClock.now - now < wait / 2 {
                    // An answer without news well before `wait`: the issuer (or a proxy) does not hold long polls.
                    quickAnswers += 1
                    if quickAnswers >= 3 {
                        logger.warning("the issuer answers long polls at once; polling every \(interval) for ten minutes",
                                       metadata: ["source": "\(source.location)"])
                        pollOnlyUntil = ContinuousClock.now + .seconds(600)
                        quickAnswers = 0
                    }
                } else {
                    quickAnswers = 0
                }
            }
        }
    }

    /// One round: the list (deltas from the list held when the source offers them), then the key
    /// set, verified and installed together. Returns the status after the round. While a round
    /// is running, a call waits for it to end instead of starting another.
    @discardableResult
    public func refresh() async -> PATRefresherStatus { await round(wait: nil).status }

    private struct RoundOutcome {
        var status: PATRefresherStatus
        var failed: Bool
        var listChanged: Bool
    }

    /// A list that came in a round, with what made it: the whole document, or deltas applied to
    /// the list held.
    private struct OfferedList {
        let list: RevocationList
        /// The document as fetched; nil when it was assembled from deltas (built when needed).
        let bytes: [UInt8]?
        let etag: String?
        let deltas: [[UInt8]]
    }

    private func round(wait: Duration?) async -> RoundOutcome {
        let started = clock()
        enum Start { case run(String?, String?, Bool), wait }
        let start: Start = state.withLock { s in
            if s.refreshing { return .wait }
            s.refreshing = true
            s.status.lastAttempt = started
            return .run(s.keysETag, s.listETag, s.needFullList)
        }
        guard case .run(let keysETag, let listETag, let needFullList) = start else {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { s -> Bool in
                    if !s.refreshing { return true }
                    s.waiters.append(continuation)
                    return false
                }
                if resumeNow { continuation.resume() }
            }
            return RoundOutcome(status: status, failed: false, listChanged: false)
        }

        var errors: [String] = []
        var cacheErrors: [String] = []
        var cacheWritten = false
        var received = 0
        // The list first (a long poll returns when there is a new one), then the key set: a new
        // list may be signed by a key only the new set holds, and both are verified below.
        let held = validator.revocations
        var fetchedList: PATRevocationsFetch? = nil
        do {
            let since = needFullList ? nil : held?.sequence
            let fetched = try await source.fetchRevocations(since: since, wait: since == nil ? nil : wait, ifNoneMatch: listETag,
                                                            maxBytes: maxRevocationListBytes)
            fetchedList = fetched
            if case .modified(let bytes, _) = fetched.result { received += bytes.count }
        } catch {
            errors.append("revocation list: \(error)")
        }
        var offeredKeys: (set: SignedKeySet, etag: String?)? = nil
        do {
            switch try await source.fetch(.keys, ifNoneMatch: keysETag, maxBytes: maxKeySetBytes) {
            case .notModified:
                break
            case .modified(let bytes, let etag):
                received += bytes.count
                offeredKeys = (try SignedKeySet(verifying: bytes, anchors: trustAnchors), etag)
            }
        } catch {
            errors.append("key set: \(error)")
        }
        let keys = offeredKeys?.set.keys ?? validator.keys
        var offeredList: OfferedList? = nil
        var deltaFailed = false
        if let fetchedList, case .modified(let bytes, let etag) = fetchedList.result {
            if RevocationDelta.looksLikeDelta(bytes) {
                do {
                    guard var list = held else { throw PATKitError.invalidDocument("deltas came, but no list is held to apply them to") }
                    let deltas = try RevocationDelta.chain(verifying: bytes, keys: keys, maxBytes: maxRevocationListBytes)
                    for delta in deltas { list = try list.applying(delta) }
                    offeredList = OfferedList(list: list, bytes: nil, etag: nil, deltas: deltas.map(\.bytes))
                } catch {
                    errors.append("revocation list delta: \(error)")
                    deltaFailed = true
                }
            } else {
                do {
                    offeredList = OfferedList(list: try RevocationList(verifying: bytes, keys: keys), bytes: bytes, etag: etag, deltas: [])
                } catch {
                    errors.append("revocation list: \(error)")
                }
            }
        }
        if deltaFailed {
            // Deltas that do not apply (another base, a broken chain): fetch the whole list now.
            do {
                let fetched = try await source.fetchRevocations(since: nil, wait: nil, ifNoneMatch: nil, maxBytes: maxRevocationListBytes)
                if case .modified(let bytes, let etag) = fetched.result {
                    received += bytes.count
                    offeredList = OfferedList(list: try RevocationList(verifying: bytes, keys: keys), bytes: bytes, etag: etag, deltas: [])
                }
            } catch {
                errors.append("revocation list: \(error)")
                state.withLock { $0.needFullList = true }
            }
        }
        let heldKeys = validator.signedKeySet?.sequence
        let heldList = held?.sequence
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
        var update = PATRefresherUpdate()
        if keysInstalled, let offeredKeys {
            state.withLock { $0.keysETag = offeredKeys.etag }
            if heldKeys != offeredKeys.set.sequence {
                logger.info("installed key set", metadata: [
                    "sequence": "\(offeredKeys.set.sequence)", "anchor": "\(offeredKeys.set.signer)",
                    "active_keys": "\(offeredKeys.set.keys.activeKeys.map(\.id.rawValue))",
                ])
                if let problem = persist(.keys, offeredKeys.set.bytes) { cacheErrors.append(problem) } else { cacheWritten = true }
                update.keySet = offeredKeys.set
            }
            if let dropped = validator.droppedList, !listInstalled {
                logger.warning("dropped the held revocation list", metadata: ["reason": "\(dropped)"])
            }
        }
        var listChanged = false
        if listInstalled, let offeredList {
            state.withLock { s in
                // Deltas carry no entity tag: a later whole-list request must not match an older one.
                s.listETag = offeredList.bytes == nil ? nil : offeredList.etag
                s.needFullList = false
                if offeredList.deltas.isEmpty { s.fullLists += 1 } else { s.deltasApplied += UInt64(offeredList.deltas.count) }
            }
            installedSequence.advance(to: offeredList.list.sequence)
            if heldList != offeredList.list.sequence {
                listChanged = true
                logger.info("installed revocation list", metadata: [
                    "sequence": "\(offeredList.list.sequence)", "next_update": "\(offeredList.list.nextUpdate)",
                    "signer": "\(offeredList.list.signer)", "deltas": "\(offeredList.deltas.count)",
                ])
                if cacheDirectory != nil {
                    if let problem = persist(.revocations, offeredList.bytes ?? offeredList.list.bytes) {
                        cacheErrors.append(problem)
                    } else {
                        cacheWritten = true
                    }
                }
                update.list = offeredList.list
                update.deltas = offeredList.deltas
            }
        }
        if validator.revocations == nil {
            // A dropped list's entity tag must not hide the next copy of the same file.
            state.withLock { $0.listETag = nil }
        }
        if update.keySet != nil || update.list != nil { onUpdate?(update) }

        let now = clock()
        let supportsWait = fetchedList.map { $0.sequence != nil }
        let (status, previousError, waiters, watchers) = state.withLock { s -> (PATRefresherStatus, String?, [CheckedContinuation<Void, Never>], [Watcher]) in
            let previous = s.status.lastError
            if let supportsWait { s.waitSupported = supportsWait }
            s.status.bytesReceived += UInt64(received)
            s.status.deltasApplied = s.deltasApplied
            s.status.fullListsReceived = s.fullLists
            s.status.transport = (longPollWait != nil && s.waitSupported) ? "long-poll" : "polling"
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
        return RoundOutcome(status: filled, failed: !errors.isEmpty, listChanged: listChanged)
    }

    /// True while the source says it answers `since` and `wait` (until a round shows otherwise).
    private var waitSupported: Bool { state.withLock { $0.waitSupported } }

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
