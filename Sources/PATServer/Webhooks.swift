import AsyncHTTPClient
import Logging
import NIOCore
import PATKit
import ServiceLifecycle
import Synchronization

/// The events the management API sends to webhook endpoints.
public enum WebhookEvent: String, Sendable, CaseIterable {
    case created = "personalAccessToken.created"
    case revoked = "personalAccessToken.revoked"
    case regenerated = "personalAccessToken.regenerated"
    case scopesChanged = "personalAccessToken.scopesChanged"
    case deleted = "personalAccessToken.deleted"
}

/// Where and how webhook events are delivered.
public struct WebhookConfiguration: Sendable {
    /// `http://` or `https://` URLs; each receives every event.
    public var endpoints: [String]
    /// The HMAC-SHA-256 key the bodies are signed with.
    public var secret: [UInt8]
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

    public init(endpoints: [String], secret: [UInt8], maxAttempts: Int = 6, initialBackoff: Duration = .seconds(1),
                maxBackoff: Duration = .seconds(300), timeout: Duration = .seconds(10), queueCapacity: Int = 1000) {
        self.endpoints = endpoints
        self.secret = secret
        self.maxAttempts = max(1, maxAttempts)
        self.initialBackoff = initialBackoff
        self.maxBackoff = maxBackoff
        self.timeout = timeout
        self.queueCapacity = max(1, queueCapacity)
    }

    /// The smallest key accepted, in bytes.
    public static let minimumSecretBytes = 16

    /// Reads the key from `path`: the file must be private (mode 0600 or stricter, like a
    /// secret key file); its content, without trailing whitespace, is the key (16 bytes to 4 KiB;
    /// e.g. `openssl rand -hex 32 > FILE`).
    public static func readSecret(_ path: String) throws(PATKitError) -> [UInt8] {
        var bytes = try SecureFile.read(path, maxBytes: 4096, requirePrivate: true)
        while let last = bytes.last, last == 0x0A || last == 0x0D || last == 0x20 || last == 0x09 { bytes.removeLast() }
        guard bytes.count >= minimumSecretBytes else {
            throw .invalidArgument("the webhook secret in \(path) is \(bytes.count) bytes; use at least \(minimumSecretBytes) "
                                   + "(e.g. `openssl rand -hex 32 > \(path) && chmod 600 \(path)`)")
        }
        return bytes
    }

    /// Throws unless `url` is an absolute http(s) URL.
    public static func checkEndpoint(_ url: String) throws(PATKitError) {
        let lower = url.lowercased()
        guard lower.hasPrefix("http://") || lower.hasPrefix("https://"), url.count > 8, url.count <= 2048,
              !url.contains(where: { $0.isWhitespace }) else {
            throw .invalidArgument("webhook endpoint \"\(url.prefix(100))\" must be an absolute http:// or https:// URL")
        }
    }
}

/// The headers of a webhook delivery.
public enum WebhookHeader {
    /// `sha256=<hex HMAC-SHA-256 of the exact body under the shared key>`.
    public static let signature = "X-PAT-Signature"
    /// The event name, e.g. `personalAccessToken.created`.
    public static let event = "X-PAT-Event"
    /// A random id, the same for every attempt of one delivery (receivers de-duplicate with it).
    public static let delivery = "X-PAT-Delivery"
}

/// One event on its way to one endpoint.
public struct WebhookDelivery: Sendable {
    public let id: String
    public let endpoint: String
    public let event: WebhookEvent
    public let body: [UInt8]
    public let signature: String
}

/// Delivers management events to the configured endpoints in the background: `send` only
/// queues (never blocks, never fails), and one worker per endpoint posts the deliveries in
/// order, each attempt bounded by a timeout, retrying with exponential backoff. A slow or
/// dead endpoint therefore delays only its own queue; when a queue is full the oldest
/// delivery is dropped with a log line.
///
/// Bodies are `{"event": "…", "data": {…the PAT record, never the token…}, "triggeredAt": "…"}`,
/// signed with HMAC-SHA-256 over the exact bytes sent (`X-PAT-Signature: sha256=<hex>`).
///
/// Run it as a `Service`; it stops on graceful shutdown (undelivered events are logged).
public final class WebhookDispatcher: Service, Sendable {
    public let configuration: WebhookConfiguration
    private let queues: [EndpointQueue]
    /// Deliveries taken from a queue and not finished yet.
    private let inFlight = Mutex(0)
    /// Deliveries settled: delivered, refused by the endpoint, or given up after the last attempt.
    private let settled = AwaitableCounter()
    private let logger: Logger
    private let clock: @Sendable () -> Timestamp

    public init(configuration: WebhookConfiguration, logger: Logger = Logger(label: "patkit.webhooks"),
                clock: @escaping @Sendable () -> Timestamp = { Timestamp.now() }) {
        self.configuration = configuration
        self.queues = configuration.endpoints.map { EndpointQueue(endpoint: $0, capacity: configuration.queueCapacity) }
        self.logger = logger
        self.clock = clock
    }

    /// The signature header value for `body` under `secret`: `sha256=<lowercase hex>`.
    public static func signature(of body: [UInt8], secret: [UInt8]) -> String {
        "sha256=" + hex(Digest.hmacSHA256(key: secret, message: body))
    }

    /// The JSON body of an event.
    public static func body(event: WebhookEvent, data: JSONValue, triggeredAt: Timestamp) -> [UInt8] {
        var o = JSONObject()
        o.set("event", .string(event.rawValue))
        o.set("data", data)
        o.set("triggeredAt", .string(triggeredAt.rfc3339))
        return JSONWriter.encode(.object(o))
    }

    /// Queues `event` for every endpoint. Never blocks.
    public func send(_ event: WebhookEvent, data: JSONValue) {
        guard !queues.isEmpty else { return }
        let body = WebhookDispatcher.body(event: event, data: data, triggeredAt: clock())
        let signature = WebhookDispatcher.signature(of: body, secret: configuration.secret)
        for queue in queues {
            let delivery = WebhookDelivery(id: Base64URL.encode(Digest.randomBytes(16)), endpoint: queue.endpoint,
                                           event: event, body: body, signature: signature)
            if let dropped = queue.push(delivery) {
                logger.warning("webhook queue full; dropped the oldest delivery", metadata: [
                    "endpoint": "\(queue.endpoint)", "event": "\(dropped.event.rawValue)", "delivery": "\(dropped.id)",
                    "capacity": "\(configuration.queueCapacity)",
                ])
            }
        }
    }

    /// Deliveries waiting, per endpoint (in configuration order).
    public var pending: [Int] { queues.map(\.count) }

    /// Deliveries settled so far, over every endpoint: delivered, refused by the endpoint
    /// (a final 4xx), or given up after the last attempt. Dropped ones are not counted.
    public var settledCount: Int { Int(settled.value) }

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
            }
        }
        let left = queues.reduce(0) { $0 + $1.count } + inFlight.withLock { $0 }
        if left > 0 { logger.warning("stopping with undelivered webhook events", metadata: ["count": "\(left)"]) }
        do { try await client.shutdown() } catch {
            logger.debug("webhook client shutdown", metadata: ["error": "\(error)"])
        }
    }

    private func work(_ queue: EndpointQueue, client: HTTPClient) async {
        for await _ in queue.signals {
            while !Task.isCancelled, let delivery = queue.pop() {
                inFlight.withLock { $0 += 1 }
                let finished = await deliver(delivery, client: client)
                if finished {
                    inFlight.withLock { $0 -= 1 }
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
                logger.debug("webhook delivered", metadata: ["endpoint": "\(delivery.endpoint)", "delivery": "\(delivery.id)",
                                                            "attempt": "\(attempt)"])
                return true
            case .rejected(let status):
                logger.warning("webhook refused by the endpoint; not retrying", metadata: [
                    "endpoint": "\(delivery.endpoint)", "delivery": "\(delivery.id)", "status": "\(status)",
                ])
                return true
            case .failed(let reason):
                guard attempt < configuration.maxAttempts else {
                    logger.error("webhook delivery failed; giving up", metadata: [
                        "endpoint": "\(delivery.endpoint)", "event": "\(delivery.event.rawValue)", "delivery": "\(delivery.id)",
                        "attempts": "\(attempt)", "error": "\(reason)",
                    ])
                    return true
                }
                logger.info("webhook delivery failed; retrying", metadata: [
                    "endpoint": "\(delivery.endpoint)", "delivery": "\(delivery.id)", "attempt": "\(attempt)",
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
        var request = HTTPClientRequest(url: delivery.endpoint)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "PATKit-Webhooks/1")
        request.headers.add(name: WebhookHeader.event, value: delivery.event.rawValue)
        request.headers.add(name: WebhookHeader.delivery, value: delivery.id)
        request.headers.add(name: WebhookHeader.signature, value: delivery.signature)
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
            return .failed("\(error)")
        }
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

private struct WebhookTimeout: Error {}

/// One endpoint's bounded queue and the signal that wakes its worker.
final class EndpointQueue: Sendable {
    let endpoint: String
    let capacity: Int
    private let items: Mutex<[WebhookDelivery]>
    let signals: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation

    init(endpoint: String, capacity: Int) {
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
