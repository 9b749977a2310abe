import AsyncHTTPClient
import Logging
import NIOCore
import PATKit
import PATRegistry
import ServiceLifecycle
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where and how webhook events are delivered.
public struct WebhookConfiguration: Sendable {
    /// Each receives every event, signed with its own secret.
    public var endpoints: [WebhookEndpoint]
    /// Attempts per delivery, the first included.
    public var maxAttempts: Int
    /// The wait before the first retry; doubled for each later one, up to `maxBackoff`.
    public var initialBackoff: Duration
    public var maxBackoff: Duration
    /// Deadline of one attempt's response head (connect, request, status); the whole attempt,
    /// response body included, is bounded by twice this.
    public var timeout: Duration
    /// Deliveries waiting per endpoint; when full, the oldest is dropped (and logged).
    public var queueCapacity: Int
    /// How long an event claimed from the outbox stays this dispatcher's without a renewal (it
    /// renews every third of it while delivering). When the node dies, another node's dispatcher
    /// takes the event over once the lease runs out.
    public var claimLease: Duration

    /// Throws when two endpoints share a secret: each receiver could then forge events to the
    /// other (and the endpoints are named by their redacted URLs, never the secret).
    public init(endpoints: [WebhookEndpoint], maxAttempts: Int = 6, initialBackoff: Duration = .seconds(1),
                maxBackoff: Duration = .seconds(300), timeout: Duration = .seconds(10), queueCapacity: Int = 1000,
                claimLease: Duration = .seconds(60)) throws(PATKitError) {
        for (index, endpoint) in endpoints.enumerated() {
            for other in endpoints[..<index] where Digest.constantTimeEqual(endpoint.secret, other.secret) {
                throw .invalidArgument("webhook endpoints \(other.redacted) and \(endpoint.redacted) share a secret, so each could "
                                       + "forge events to the other: give every endpoint its own (`openssl rand -hex 32 > FILE`)")
            }
        }
        self.endpoints = endpoints
        self.maxAttempts = max(1, maxAttempts)
        self.initialBackoff = initialBackoff
        self.maxBackoff = maxBackoff
        self.timeout = timeout
        self.queueCapacity = max(1, queueCapacity)
        self.claimLease = max(claimLease, .seconds(1))
    }

    /// Reads a key from `path`: the file must be private (mode 0600 or stricter, like a
    /// secret key file); its content, without trailing whitespace, is the key (16 bytes to 4 KiB;
    /// e.g. `openssl rand -hex 32 > FILE`).
    public static func readSecret(_ path: String) throws(PATKitError) -> [UInt8] {
        var bytes = try SecureFile.read(path, maxBytes: 4096, requirePrivate: true)
        while let last = bytes.last, last == 0x0A || last == 0x0D || last == 0x20 || last == 0x09 { bytes.removeLast() }
        guard bytes.count >= WebhookEndpoint.minimumSecretBytes else {
            throw .invalidArgument("the webhook secret in \(path) is \(bytes.count) bytes; use at least \(WebhookEndpoint.minimumSecretBytes) "
                                   + "(e.g. `openssl rand -hex 32 > \(path) && chmod 600 \(path)`)")
        }
        return bytes
    }
}

/// The headers of a webhook delivery.
public enum WebhookHeader {
    /// `t=<unix seconds>,v1=<hex HMAC-SHA-256 of "t." + body under the endpoint's secret>`
    /// (`WebhookSignature`).
    public static let signature = "X-PAT-Signature"
    /// The event name, e.g. `personalAccessToken.created`.
    public static let event = "X-PAT-Event"
    /// A random id, the same for every attempt of one delivery (receivers de-duplicate with it).
    public static let delivery = "X-PAT-Delivery"
}

/// One event on its way to one endpoint.
public struct WebhookDelivery: Sendable {
    /// The event's delivery id (`X-PAT-Delivery`), the same on every attempt and after restarts.
    public let id: String
    /// The event's id in the registry's outbox.
    public let eventID: Int64
    public let endpoint: WebhookEndpoint
    /// The event name, e.g. `personalAccessToken.created`.
    public let event: String
    public let body: [UInt8]
}

/// Delivers the registry's change events (its outbox) to the configured endpoints in the
/// background. The management service records each event in the same transaction as its
/// change — whichever process or node made it, the CLI included — and wakes the dispatcher;
/// the store announces changes made elsewhere (`externalChanges()`), and the dispatcher also
/// looks at the outbox every `pollInterval`.
///
/// Several nodes: the dispatcher *claims* events (`RegistryTransaction.claimEvents`, `FOR
/// UPDATE SKIP LOCKED` on PostgreSQL) for a lease it renews while delivering, so every event is
/// delivered by one node; when a node dies (even by SIGKILL), its events go to another node's
/// dispatcher once their lease runs out — a delivery the dead node had made but not yet recorded
/// is then made again, under the same `X-PAT-Delivery` id. On a graceful stop the claims are
/// given back at once. Every node should have the same endpoints, each with the same secret.
///
/// One worker per endpoint posts the deliveries in order, each attempt bounded
/// by a timeout, retrying with exponential backoff. A slow or dead endpoint therefore delays
/// only its own queue; when a queue is full the oldest delivery is dropped with a log line.
/// An event leaves the outbox once every endpoint had it (delivered, refused or given up);
/// events still in it when the server stops are delivered after the next start.
///
/// Bodies are `{"event": "…", "data": {…the PAT record, never the token…}, "actor": {…},
/// "triggeredAt": "…"}`. Each attempt is signed for its endpoint with the endpoint's own secret,
/// over the attempt's time and the exact bytes sent (`X-PAT-Signature: t=…,v1=…`,
/// `WebhookSignature`). Endpoints are logged by their redacted URLs only.
///
/// Run it as a `Service`; it stops on graceful shutdown.
public final class WebhookDispatcher: Service, Sendable {
    public let configuration: WebhookConfiguration
    public let store: any PATRegistryStore
    /// How often the outbox is read without a wake-up (changes made by other processes).
    public let pollInterval: Duration
    private let queues: [EndpointQueue]
    /// Deliveries taken from a queue and not finished yet.
    private let inFlight = Mutex(0)
    /// Per outbox event: endpoints that have not finished with it yet.
    private let outstanding = Mutex<[Int64: Int]>([:])
    private let signal = WakeSignal()
    /// Deliveries settled: delivered, refused by the endpoint, or given up after the last attempt.
    private let settled = AwaitableCounter()
    /// The id of the last outbox event moved into the endpoint queues.
    private let read = AwaitableCounter()
    private let logger: Logger
    /// This dispatcher in the outbox's claims: host, process and a random part.
    public let claimant: String

    public init(configuration: WebhookConfiguration, store: any PATRegistryStore, pollInterval: Duration = .seconds(1),
                logger: Logger = Logger(label: "patkit.webhooks")) {
        self.configuration = configuration
        self.store = store
        self.pollInterval = pollInterval
        self.queues = configuration.endpoints.map { EndpointQueue(endpoint: $0, capacity: configuration.queueCapacity) }
        self.logger = logger
        self.claimant = WebhookDispatcher.makeClaimant()
    }

    private static func makeClaimant() -> String {
        var name = [CChar](repeating: 0, count: 256)
        let host = gethostname(&name, name.count) == 0
            ? String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : "host"
        let random = Digest.randomBytes(6).map { String($0, radix: 16) }.joined()
        return "\(host.prefix(64))/\(getpid())/\(random)"
    }

    /// Tells the dispatcher that the outbox has new events. Never blocks.
    public func wake() { signal.signal() }

    /// Deliveries waiting, per endpoint (in configuration order).
    public var pending: [Int] { queues.map(\.count) }

    /// Events read from the outbox and not yet finished by every endpoint.
    public var outstandingEvents: Int { outstanding.withLock { $0.count } }
    /// Deliveries settled so far, over every endpoint: delivered, refused by the endpoint
    /// (a final 4xx), or given up after the last attempt. Dropped ones are not counted.
    public var settledCount: Int { Int(settled.value) }

    /// Returns once every outbox event up to `eventID` has been moved into the endpoint queues
    /// (or dropped from a full one). Throws `CancellationError` when the task is cancelled: bound
    /// the wait.
    public func waitUntilRead(through eventID: Int64) async throws {
        try await read.wait(atLeast: UInt64(max(0, eventID)))
    }

    /// Returns once `count` deliveries have settled. Throws `CancellationError` when the task
    /// is cancelled: bound the wait.
    public func waitUntilSettled(_ count: Int) async throws {
        try await settled.wait(atLeast: UInt64(max(0, count)))
    }

    public func run() async throws {
        var clientConfiguration = HTTPClient.Configuration()
        clientConfiguration.redirectConfiguration = .disallow
        let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: clientConfiguration)
        await cancelWhenGracefulShutdown { [self] in
            await withDiscardingTaskGroup { group in
                for queue in queues {
                    group.addTask { await self.work(queue, client: client) }
                }
                group.addTask { await self.drain() }
                group.addTask { await self.renewClaims() }
                group.addTask { await self.followExternalChanges() }
            }
        }
        let left = queues.reduce(0) { $0 + $1.count } + inFlight.withLock { $0 }
        if left > 0 {
            logger.notice("stopping with undelivered webhook events; they stay in the outbox for the next start or another node",
                          metadata: ["count": "\(left)"])
        }
        let held = outstanding.withLock { Array($0.keys) }
        if !held.isEmpty {
            // Cleanup the stop must not cancel: a task of its own, outside this (cancelled) one.
            let claimant = self.claimant, store = self.store
            let released = await Task { try await store.write { tx in try await tx.releaseClaims(held, claimant: claimant) } }.result
            if case .failure(let error) = released {
                logger.warning("cannot give back the claimed webhook events; another node takes them when the lease runs out",
                               metadata: ["error": "\(error)"])
            }
        }
        do { try await client.shutdown() } catch {
            logger.debug("webhook client shutdown", metadata: ["error": "\(error)"])
        }
    }

    /// Claims outbox events no one holds and moves them into the endpoint queues: at start, on
    /// every wake-up, and every `pollInterval`.
    private func drain() async {
        var failing = false
        let claimant = self.claimant, lease = configuration.claimLease
        while !Task.isCancelled {
            do {
                let events = try await store.write { tx in try await tx.claimEvents(claimant: claimant, lease: lease, limit: 100) }
                for event in events where outstanding.withLock({ $0[event.id] == nil }) {
                    await enqueue(event)
                }
                if let last = events.last { read.advance(to: UInt64(max(0, last.id))) }
                failing = false
                if events.count == 100 { continue }
            } catch {
                if !failing { logger.warning("cannot claim events from the outbox of webhook events; retrying", metadata: ["error": "\(error)"]) }
                failing = true
            }
            await signal.wait(upTo: pollInterval)
        }
    }

    /// Renews the leases of the events being delivered, every third of the lease.
    private func renewClaims() async {
        let claimant = self.claimant, lease = configuration.claimLease
        while !Task.isCancelled {
            do { try await Task.sleep(for: lease / 3) } catch { return }
            let held = outstanding.withLock { Array($0.keys) }
            guard !held.isEmpty else { continue }
            do {
                let kept = Set(try await store.write { tx in try await tx.renewClaims(held, claimant: claimant, lease: lease) })
                let lost = held.filter { !kept.contains($0) }
                if !lost.isEmpty {
                    logger.warning("""
                        webhook events this node was delivering were taken over by another node (the lease ran out); \
                        they may be delivered twice, under the same delivery id
                        """, metadata: ["count": "\(lost.count)"])
                }
            } catch {
                logger.warning("cannot renew the claims on webhook events; if the lease runs out another node may deliver them too",
                               metadata: ["error": "\(error)"])
            }
        }
    }

    /// Wakes the drain when another process or node records a change.
    private func followExternalChanges() async {
        for await _ in store.externalChanges() { signal.signal() }
    }

    private func enqueue(_ event: ChangeEvent) async {
        guard !queues.isEmpty else { return }
        outstanding.withLock { $0[event.id] = queues.count }
        for queue in queues {
            let delivery = WebhookDelivery(id: event.delivery, eventID: event.id, endpoint: queue.endpoint, event: event.name,
                                           body: event.payload)
            if let dropped = queue.push(delivery) {
                logger.warning("webhook queue full; dropped the oldest delivery", metadata: [
                    "endpoint": "\(queue.endpoint.redacted)", "event": "\(dropped.event)", "delivery": "\(dropped.id)",
                    "capacity": "\(configuration.queueCapacity)",
                ])
                await finished(dropped)
            }
        }
    }

    /// One endpoint is done with `delivery`; the event leaves the outbox when every one is.
    private func finished(_ delivery: WebhookDelivery) async {
        let done = outstanding.withLock { counts -> Bool in
            guard let left = counts[delivery.eventID] else { return false }
            if left > 1 {
                counts[delivery.eventID] = left - 1
                return false
            }
            counts[delivery.eventID] = nil
            return true
        }
        guard done else { return }
        let id = delivery.eventID
        do { try await store.write { tx in try await tx.removeEvents([id]) } } catch {
            logger.warning("cannot remove a delivered event from the outbox; it may be sent again after a restart",
                           metadata: ["delivery": "\(delivery.id)", "error": "\(error)"])
        }
    }

    private func work(_ queue: EndpointQueue, client: HTTPClient) async {
        for await _ in queue.signals {
            while !Task.isCancelled, let delivery = queue.pop() {
                inFlight.withLock { $0 += 1 }
                let finished = await deliver(delivery, client: client)
                inFlight.withLock { $0 -= 1 }
                if finished {
                    await self.finished(delivery) // out of the outbox first: a settled delivery is gone from it
                    settled.increment()
                }
            }
            if Task.isCancelled { return }
        }
    }

    /// Attempts `delivery` until it succeeds, fails for good, or attempts run out: true.
    /// False when the dispatcher stopped first (the delivery is counted as undelivered).
    private func deliver(_ delivery: WebhookDelivery, client: HTTPClient) async -> Bool {
        var backoff = configuration.initialBackoff
        for attempt in 1...configuration.maxAttempts {
            let outcome = await attemptOnce(delivery, client: client)
            if Task.isCancelled { return false }
            switch outcome {
            case .delivered:
                logger.debug("webhook delivered", metadata: ["endpoint": "\(delivery.endpoint.redacted)", "delivery": "\(delivery.id)",
                                                            "attempt": "\(attempt)"])
                return true
            case .rejected(let status):
                logger.warning("webhook refused by the endpoint; not retrying", metadata: [
                    "endpoint": "\(delivery.endpoint.redacted)", "delivery": "\(delivery.id)", "status": "\(status)",
                ])
                return true
            case .failed(let reason):
                guard attempt < configuration.maxAttempts else {
                    logger.error("webhook delivery failed; giving up", metadata: [
                        "endpoint": "\(delivery.endpoint.redacted)", "event": "\(delivery.event)", "delivery": "\(delivery.id)",
                        "attempts": "\(attempt)", "error": "\(reason)",
                    ])
                    return true
                }
                logger.info("webhook delivery failed; retrying", metadata: [
                    "endpoint": "\(delivery.endpoint.redacted)", "delivery": "\(delivery.id)", "attempt": "\(attempt)",
                    "error": "\(reason)", "retry_in": "\(backoff)",
                ])
                // Up to 10% jitter, so that endpoints recovering together are not hit at once.
                let jitter = backoff * (Double(Digest.randomBytes(1)[0]) / 2550)
                do { try await Task.sleep(for: backoff + jitter) } catch { return false }
                backoff = min(backoff * 2, configuration.maxBackoff)
            }
        }
        return true
    }

    private enum Outcome {
        case delivered(Int)
        /// A 4xx other than 408 and 429: the endpoint will not accept it later either.
        case rejected(Int)
        case failed(String)
    }

    private func attemptOnce(_ delivery: WebhookDelivery, client: HTTPClient) async -> Outcome {
        var request = HTTPClientRequest(url: delivery.endpoint.requestURL)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "PATKit-Webhooks/1")
        request.headers.add(name: WebhookHeader.event, value: delivery.event)
        request.headers.add(name: WebhookHeader.delivery, value: delivery.id)
        // Signed now, for this attempt: a receiver refusing old timestamps accepts a late retry.
        let now = Timestamp.now().seconds
        request.headers.add(name: WebhookHeader.signature,
                            value: WebhookSignature.header(for: delivery.body, secret: delivery.endpoint.secret, timestamp: now))
        if let authorization = delivery.endpoint.authorization { request.headers.add(name: "Authorization", value: authorization) }
        request.body = .bytes(ByteBuffer(bytes: delivery.body))
        let prepared = request
        let timeout = configuration.timeout
        let nanoseconds = Int64(timeout.components.seconds) * 1_000_000_000 + Int64(timeout.components.attoseconds / 1_000_000_000)
        do {
            // The deadline covers the response head; the body (drained, bounded) gets the same deadline again.
            let status: Int = try await withThrowingTaskGroup(of: Int?.self) { group in
                group.addTask {
                    let response = try await client.execute(prepared, timeout: .nanoseconds(nanoseconds))
                    _ = try? await response.body.collect(upTo: 64 * 1024)
                    return Int(response.status.code)
                }
                group.addTask {
                    try await Task.sleep(for: timeout * 2)
                    return nil
                }
                defer { group.cancelAll() }
                guard let first = try await group.next(), let status = first else {
                    throw WebhookTimeout()
                }
                return status
            }
            switch status {
            case 200..<300: return .delivered(status)
            case 408, 429: return .failed("HTTP \(status)")
            case 400..<500: return .rejected(status)
            default: return .failed("HTTP \(status)")
            }
        } catch is WebhookTimeout {
            return .failed("no response within \(timeout)")
        } catch {
            // An error's text may quote the URL it was about: never its query.
            let text = "\(error)".replacing(delivery.endpoint.requestURL, with: delivery.endpoint.redacted)
            return .failed(text)
        }
    }

}

private struct WebhookTimeout: Error {}

/// One endpoint's bounded queue and the signal that wakes its worker.
final class EndpointQueue: Sendable {
    let endpoint: WebhookEndpoint
    let capacity: Int
    private let items: Mutex<[WebhookDelivery]>
    let signals: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation

    init(endpoint: WebhookEndpoint, capacity: Int) {
        self.endpoint = endpoint
        self.capacity = capacity
        self.items = Mutex([])
        (signals, wake) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// Appends; returns the delivery dropped to make room, if any.
    func push(_ delivery: WebhookDelivery) -> WebhookDelivery? {
        let dropped = items.withLock { items -> WebhookDelivery? in
            var dropped: WebhookDelivery? = nil
            if items.count >= capacity { dropped = items.removeFirst() }
            items.append(delivery)
            return dropped
        }
        wake.yield()
        return dropped
    }

    func pop() -> WebhookDelivery? {
        items.withLock { $0.isEmpty ? nil : $0.removeFirst() }
    }

    var count: Int { items.withLock { $0.count } }
}
