import CompressNIO
import Hummingbird
import NIOCore
import PATKit
import ServiceLifecycle
import Synchronization

/// One version of the revocation list as a distribution endpoint serves it. The bytes of a
/// list assembled from deltas (a relay's) are built on first use; the gzip form on the first
/// request that accepts gzip — a million-entry list is neither rebuilt nor compressed unless
/// someone asks for it whole.
public final class ServedList: Sendable {
    public let sequence: UInt64
    /// Names this exact version (its entity tag is derived from it).
    public let signature: [UInt8]
    /// nil when the list could not be verified (it is then served with `no-cache`).
    public let nextUpdate: Timestamp?
    /// The document's length, known without building it.
    public let byteCount: Int
    let etag: String
    let gzipETag: String
    private let body: Mutex<ByteBuffer?>
    private let gzipped: Mutex<ByteBuffer??>
    private let build: @Sendable () -> [UInt8]

    /// A list read from a file (`nextUpdate` nil when it does not verify).
    init(bytes: [UInt8], sequence: UInt64, nextUpdate: Timestamp?) {
        self.sequence = sequence
        self.signature = Array(bytes.suffix(64))
        self.nextUpdate = nextUpdate
        self.byteCount = bytes.count
        let buffer = ByteBuffer(bytes: bytes)
        self.body = Mutex(buffer)
        self.gzipped = Mutex(nil)
        self.build = { bytes }
        (etag, gzipETag) = ServedList.tags(signature)
    }

    /// A verified list held in memory (a relay's, possibly assembled from deltas).
    public init(list: RevocationList) {
        sequence = list.sequence
        signature = list.signature
        nextUpdate = list.nextUpdate
        byteCount = RevocationList.maxHeaderBytes - 255 + list.signer.rawValue.utf8.count
            + (list.tokenEntryCount + list.ownerEntryCount + list.overlapEntryCount) * 32 + 64
        body = Mutex(nil)
        gzipped = Mutex(nil)
        build = { list.bytes }
        (etag, gzipETag) = ServedList.tags(list.signature)
    }

    /// Strong entity tags from the signature: it names the document, so a list of a million
    /// entries is never hashed for its tag.
    private static func tags(_ signature: [UInt8]) -> (String, String) {
        let digest = ContentDigest.etag(signature)
        return ("\"l-\(digest)\"", "\"l-\(digest)-gzip\"")
    }

    var bytes: ByteBuffer {
        body.withLock { held in
            if let held { return held }
            let made = ByteBuffer(bytes: build())
            held = made
            return made
        }
    }

    /// The gzip form when smaller, made once.
    var gzip: ByteBuffer? {
        let plain = bytes
        return gzipped.withLock { held in
            if let held { return held }
            var input = plain
            var made: ByteBuffer? = nil
            if let compressed = try? input.compress(with: .gzip()), compressed.readableBytes < plain.readableBytes { made = compressed }
            held = .some(made)
            return made
        }
    }
}

/// What `GET /.well-known/pat/revocations` serves, version by version: the current list, the
/// chain of signed deltas that leads to it from earlier sequences (the last 1,000 at most, 16 MiB
/// and 24 hours), and the long-poll waiters, woken the moment a newer list is offered.
///
/// Versions are offered by whoever learns of them: the republisher of `pat serve` the moment it
/// publishes, a watcher of `HOME/published` (lists `pat publish` or another process wrote), or a
/// relay's refresher when it installs a list it verified. An offer older than what is held is
/// ignored. As a `Service` it also runs the watcher every 100 ms while edges wait, and wakes
/// every waiter when the server shuts down.
public final class RevocationFeed: Service, Sendable {
    /// The longest a long-poll may wait; a longer `wait` is cut to it.
    public let maxWait: Duration
    let maxSteps: Int
    let maxStepBytes: Int
    let maxStepAge: Duration

    struct Step: Sendable {
        let header: RevocationDelta.UnverifiedHeader
        let bytes: ByteBuffer
        let added: ContinuousClock.Instant
    }

    private struct State {
        var current: ServedList?
        /// Deltas, oldest first, each from the one before's list, the last one to `current`.
        var steps: [Step] = []
        var stepBytes = 0
        var waiters: [UInt64: (since: UInt64, continuation: CheckedContinuation<Void, Never>)] = [:]
        var nextWaiter: UInt64 = 0
        var closed = false
    }

    private let state = Mutex(State())
    /// Looks for versions written by other processes (the `HOME/published` watcher), if any.
    private let poller = Mutex<(@Sendable () -> Void)?>(nil)
    /// Long-polls answered because a newer list arrived (for tests and metrics).
    private let wakeUps = AwaitableCounter()

    public init(maxWait: Duration = .seconds(60), maxSteps: Int = 1000, maxStepBytes: Int = 16 * 1024 * 1024,
                maxStepAge: Duration = .seconds(86_400)) {
        self.maxWait = maxWait
        self.maxSteps = maxSteps
        self.maxStepBytes = maxStepBytes
        self.maxStepAge = maxStepAge
    }

    /// What `run()` calls every 100 ms while edges wait: a look for versions that other processes
    /// wrote (e.g. `PublishedListWatcher.check`).
    func setPoll(_ poll: @escaping @Sendable () -> Void) { poller.withLock { $0 = poll } }

    /// The sequence of the list served now.
    public var sequence: UInt64? { state.withLock { $0.current?.sequence } }
    var current: ServedList? { state.withLock { $0.current } }
    /// Long-polls waiting now.
    public var waiterCount: Int { state.withLock { $0.waiters.count } }
    /// Sequences from which a delta chain leads to the current list.
    public var chainBases: [UInt64] { state.withLock { $0.steps.map(\.header.baseSequence) } }

    /// Returns once `count` long-polls are waiting (at once when they are). For tests.
    public func waitUntilWaiting(_ count: Int) async throws {
        while waiterCount < count {
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    // MARK: offering versions

    /// Offers a newer list and the deltas (in order, unverified bytes) that lead to it from
    /// earlier lists. Ignored unless newer than the list held. The deltas extend the chain when
    /// the first starts at the list held; otherwise they start a new chain; a list offered
    /// without deltas ends every chain (no delta leads to it).
    public func offer(_ list: ServedList, deltas: [[UInt8]] = []) {
        var steps: [Step] = []
        let now = ContinuousClock.now
        for bytes in deltas {
            guard let header = RevocationDelta.UnverifiedHeader(bytes) else { steps = []; continue }
            if let last = steps.last, last.header.sequence != header.baseSequence || last.header.listSignature != header.baseSignature {
                steps = []
            }
            steps.append(Step(header: header, bytes: ByteBuffer(bytes: bytes), added: now))
        }
        if let last = steps.last, last.header.sequence != list.sequence || last.header.listSignature != list.signature { steps = [] }
        let woken: [CheckedContinuation<Void, Never>] = state.withLock { s in
            if let current = s.current, current.sequence >= list.sequence { return [] }
            if let first = steps.first, let current = s.current,
               first.header.baseSequence == current.sequence, first.header.baseSignature == current.signature {
                s.steps += steps
            } else {
                s.steps = steps
            }
            s.current = list
            s.stepBytes = s.steps.reduce(0) { $0 + $1.bytes.readableBytes }
            trim(&s, now: now)
            var ready: [CheckedContinuation<Void, Never>] = []
            for (id, waiter) in s.waiters where waiter.since < list.sequence {
                ready.append(waiter.continuation)
                s.waiters.removeValue(forKey: id)
            }
            return ready
        }
        for continuation in woken { continuation.resume() }
        if !woken.isEmpty { wakeUps.advance(by: UInt64(woken.count)) }
    }

    private func trim(_ s: inout State, now: ContinuousClock.Instant) {
        while let first = s.steps.first,
              s.steps.count > maxSteps || s.stepBytes > maxStepBytes || now - first.added > maxStepAge {
            s.stepBytes -= first.bytes.readableBytes
            s.steps.removeFirst()
        }
    }

    // MARK: answering

    enum Answer {
        /// Nothing is published yet.
        case none
        /// Nothing newer than the sequence asked about (`current` is what is served).
        case notModified(ServedList)
        /// The whole list.
        case list(ServedList)
        /// Deltas from the sequence asked about to `current`, concatenated.
        case deltas(ByteBuffer, ServedList)
    }

    /// The answer for an edge holding `since` (nil: it holds nothing, or asks for the list).
    func answer(since: UInt64?) -> Answer {
        state.withLock { s in
            guard let current = s.current else { return .none }
            guard let since else { return .list(current) }
            if since >= current.sequence { return .notModified(current) }
            guard let start = s.steps.firstIndex(where: { $0.header.baseSequence == since }) else { return .list(current) }
            let chain = s.steps[start...]
            let total = chain.reduce(0) { $0 + $1.bytes.readableBytes }
            // A long chain can cost more than the list itself: then send the list.
            guard total < current.byteCount else { return .list(current) }
            if chain.count == 1, let only = chain.first { return .deltas(only.bytes, current) }
            var joined = ByteBuffer()
            joined.reserveCapacity(total)
            for step in chain { joined.writeImmutableBuffer(step.bytes) }
            return .deltas(joined, current)
        }
    }

    /// Waits until a list newer than `since` is offered, `timeout` passes (cut to `maxWait`),
    /// the task is cancelled or the feed closes. True when a newer list is held.
    func waitForNewer(than since: UInt64, timeout: Duration) async -> Bool {
        let timeout = min(timeout, maxWait)
        let id: UInt64? = state.withLock { s in
            if let current = s.current, current.sequence > since { return nil }
            if s.closed { return nil }
            s.nextWaiter += 1
            return s.nextWaiter
        }
        guard let id else { return (sequence ?? 0) > since }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await withTaskCancellationHandler {
                    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                        let resumeNow = self.state.withLock { s -> Bool in
                            if s.closed || Task.isCancelled { return true }
                            if let current = s.current, current.sequence > since { return true }
                            s.waiters[id] = (since, continuation)
                            return false
                        }
                        if resumeNow { continuation.resume() }
                    }
                } onCancel: {
                    let waiter = self.state.withLock { $0.waiters.removeValue(forKey: id) }
                    waiter?.continuation.resume()
                }
            }
            group.addTask { try? await Task.sleep(for: timeout) }
            _ = await group.next()
            group.cancelAll()
        }
        return (sequence ?? 0) > since
    }

    /// Long-polls answered because a newer list arrived, so far.
    public var wakeUpCount: UInt64 { wakeUps.value }

    // MARK: running

    /// Runs the watcher every 100 ms while edges wait, until graceful shutdown; then wakes every
    /// waiter (they answer at once) and answers later long-polls without waiting.
    public func run() async throws {
        if let poll = poller.withLock({ $0 }) {
            await cancelWhenGracefulShutdown { [self] in
                while !Task.isCancelled {
                    if waiterCount > 0 { poll() }
                    do { try await Task.sleep(for: .milliseconds(100)) } catch { break }
                }
            }
        } else {
            try? await gracefulShutdown()
        }
        close()
    }

    /// Wakes every waiter; later waits return at once.
    public func close() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.closed = true
            defer { s.waiters = [:] }
            return s.waiters.values.map(\.continuation)
        }
        for continuation in waiters { continuation.resume() }
    }
}
