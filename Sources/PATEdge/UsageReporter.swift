import AsyncHTTPClient
import Logging
import NIOCore
import PATKit
import ServiceLifecycle
import Synchronization

/// Sends what a `UsageCounter` counted to the issuer, in the background: every `interval`, and
/// once more when the service stops, `POST`s batches to the issuer's
/// `/v3/personal-access-tokens/usage`, authenticated by a PAT holding `pats:report_usage`.
///
/// Validation never waits for it (the counter is filled on the request path; this only drains
/// it). When the issuer is down or slow, the batch goes back into the counter and the next round
/// tries again (backing off up to `maxBackoff`): reports are delayed, never lost while they fit,
/// and memory stays bounded by the counter's capacity (what does not fit is dropped and counted,
/// `UsageCounter.dropped`). A batch the issuer refuses as malformed (400) is dropped, not retried.
///
/// The body (`application/json`):
/// `{"entries": [{"id", "firstUsedAt", "lastUsedAt" (RFC 3339), "lastUsedFrom" (address or null),
/// "lastOutcome" ("accepted" or a refusal code), "days": [{"date": "YYYY-MM-DD", "uses": N}]}]}`.
public final class PATUsageReporter: Service, Sendable {
    public let counter: UsageCounter
    /// The issuer's usage endpoint, e.g. `https://issuer.example/v3/personal-access-tokens/usage`.
    public let endpoint: String
    public let interval: Duration
    /// Entries per request (the issuer takes at most 5,000).
    public let batchSize: Int
    public let maxBackoff: Duration
    public let timeout: TimeAmount
    private let token: String
    private let client: HTTPClient
    private let logger: Logger
    private let clock: @Sendable () -> Timestamp

    private struct Stats {
        var delivered = 0
        var failures = 0
        var refused = 0
        var lastError: String?
    }

    private let stats = Mutex(Stats())
    /// Rounds finished (successful or not).
    private let rounds = AwaitableCounter()
    /// Entries the issuer acknowledged.
    private let deliveredEntries = AwaitableCounter()

    /// - Parameters:
    ///   - token: the reporting PAT (`pats:report_usage`); never logged.
    ///   - client: defaults to the shared client.
    public init(counter: UsageCounter, endpoint: String, token: String, interval: Duration = .seconds(5), batchSize: Int = 1000,
                maxBackoff: Duration = .seconds(60), timeout: TimeAmount = .seconds(10), client: HTTPClient = .shared,
                logger: Logger = Logger(label: "patkit.usage"), clock: @escaping @Sendable () -> Timestamp = { Timestamp.now() }) {
        self.counter = counter
        self.endpoint = endpoint
        self.token = token
        self.interval = interval
        self.batchSize = min(max(1, batchSize), 5000)
        self.maxBackoff = maxBackoff
        self.timeout = timeout
        self.client = client
        self.logger = logger
        self.clock = clock
    }

    /// Entries delivered so far; failed flushes; batches the issuer refused as malformed; the last error.
    public var deliveredCount: Int { stats.withLock { $0.delivered } }
    public var failureCount: Int { stats.withLock { $0.failures } }
    public var refusedBatches: Int { stats.withLock { $0.refused } }
    public var lastError: String? { stats.withLock { $0.lastError } }

    /// Returns once `count` flush rounds have finished. Throws `CancellationError` when the task is
    /// cancelled: bound the wait.
    public func waitUntilRounds(_ count: Int) async throws { try await rounds.wait(atLeast: UInt64(max(0, count))) }

    /// Returns once the issuer has acknowledged `count` entries in all.
    public func waitUntilDelivered(_ count: Int) async throws { try await deliveredEntries.wait(atLeast: UInt64(max(0, count))) }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            var wait = self.interval
            while !Task.isCancelled {
                do { try await Task.sleep(for: wait) } catch { return }
                wait = await self.flush() ? self.interval : min(wait * 2, self.maxBackoff)
            }
        }
        // Stopping: one last flush, in a task of its own (this one is cancelled), bounded by the timeout.
        _ = await Task { await self.flush() }.value
    }

    /// Sends everything counted so far; true when the issuer took it all (or there was nothing).
    /// On failure what was not delivered goes back into the counter.
    @discardableResult
    public func flush() async -> Bool {
        defer { rounds.increment() }
        var pending = counter.drain()
        guard !pending.isEmpty else { return true }
        while !pending.isEmpty {
            let batch = Array(pending.prefix(batchSize))
            switch await post(batch) {
            case .delivered:
                pending.removeFirst(batch.count)
                stats.withLock { $0.delivered += batch.count }
                deliveredEntries.advance(to: deliveredEntries.value + UInt64(batch.count))
            case .refused(let reason):
                pending.removeFirst(batch.count)
                stats.withLock {
                    $0.refused += 1
                    $0.lastError = reason
                }
                logger.error("the issuer refused a usage report; its entries are dropped", metadata: ["reason": "\(reason)"])
            case .failed(let reason):
                let lost = counter.restore(pending)
                stats.withLock {
                    $0.failures += 1
                    $0.lastError = reason
                }
                logger.warning("cannot deliver usage reports; retrying later", metadata: [
                    "error": "\(reason)", "entries": "\(pending.count)", "dropped_uses": "\(lost)",
                ])
                return false
            }
        }
        return true
    }

    private enum Outcome {
        case delivered
        case refused(String)
        case failed(String)
    }

    private func post(_ batch: [UsageCounter.Entry]) async -> Outcome {
        var request = HTTPClientRequest(url: endpoint)
        request.method = .POST
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(bytes: PATUsageReporter.body(batch)))
        do {
            let response = try await client.execute(request, deadline: .now() + timeout)
            let text = try await response.body.collect(upTo: 64 * 1024)
            switch response.status.code {
            case 200..<300: return .delivered
            case 400, 413: return .refused("HTTP \(response.status.code): \(String(buffer: text).prefix(300))")
            default: return .failed("HTTP \(response.status.code): \(String(buffer: text).prefix(300))")
            }
        } catch {
            return .failed("POST \(endpoint): \(error)")
        }
    }

    /// The request body for `entries`.
    public static func body(_ entries: [UsageCounter.Entry]) -> [UInt8] {
        var list: [JSONValue] = []
        list.reserveCapacity(entries.count)
        for entry in entries {
            var o = JSONObject()
            o.set("id", .string(entry.id))
            o.set("firstUsedAt", .string(entry.firstUsedAt.rfc3339))
            o.set("lastUsedAt", .string(entry.lastUsedAt.rfc3339))
            o.set("lastUsedFrom", entry.lastAddress.map { .string($0) } ?? .null)
            o.set("lastOutcome", .string(entry.lastOutcome))
            o.set("days", .array(entry.days.map { day in
                var d = JSONObject()
                d.set("date", .string(String(Timestamp(seconds: day.day * 86_400).rfc3339.prefix(10))))
                d.set("uses", .number(String(day.uses)))
                return .object(d)
            }))
            list.append(.object(o))
        }
        var root = JSONObject()
        root.set("entries", .array(list))
        return JSONWriter.encode(.object(root))
    }
}
