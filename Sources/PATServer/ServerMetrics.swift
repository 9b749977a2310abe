import CoreMetrics
import Hummingbird
import PATEdge
import PATHummingbird
import PATKit
import Prometheus
import Synchronization

/// The metrics of one `pat serve` process, exported at `GET /metrics` in Prometheus text format.
///
/// Each server has a registry of its own (not swift-metrics' process-wide bootstrap), so several
/// servers in one process — the tests, an application embedding two — never mix their figures.
/// Counters on request paths are atomic increments on handles made once; everything that is
/// state (cache, list, key set, refresher, publishing, webhook queues) is read when scraped.
///
/// Names (all prefixed `patkit_`): `validations_total{result}`, `validation_duration_seconds`,
/// `validation_cache_{entries,bytes,hits}`, `revocation_list_{sequence,age_seconds,entries}`,
/// `key_set_sequence`, `refresh_consecutive_failures`, `refresh_last_success_age_seconds`,
/// `http_requests_total{route,method,status}`, `http_request_duration_seconds{route}`,
/// `rate_limited_total`, `webhook_deliveries_total{outcome}`, `webhook_pending`,
/// `publishes_total`, `publish_errors_total`, `publish_consecutive_failures`, `unpublished_changes`.
public final class PATServerMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    public let factory: PrometheusMetricsFactory
    /// Validations of the gate and of the management API's authenticator.
    public let validation: PATValidationMetrics
    private let hooks = Mutex<[@Sendable (PATServerMetrics) -> Void]>([])
    /// One export at a time: totals kept elsewhere are reset and set by the hooks.
    private let exporting = Mutex(())

    /// Latency buckets for a validation (about 50 µs fresh, under 1 µs cached) and for a request.
    static let validationBuckets: [Duration] = [.microseconds(5), .microseconds(25), .microseconds(50), .microseconds(100),
                                                .microseconds(250), .milliseconds(1), .milliseconds(5), .milliseconds(25)]
    static let requestBuckets: [Duration] = [.microseconds(250), .milliseconds(1), .milliseconds(5), .milliseconds(25),
                                             .milliseconds(100), .milliseconds(500), .seconds(2), .seconds(10)]

    /// The refresher's state as gauges: consecutive failures and the age of its last success.
    func record(_ status: PATRefresherStatus, now: Timestamp) {
        gauge("patkit_refresh_consecutive_failures").set(to: Double(status.consecutiveFailures))
        if let success = status.lastSuccess {
            gauge("patkit_refresh_last_success_age_seconds").set(to: Double(max(0, now.seconds - success.seconds)))
        }
        gauge("patkit_accepting_tokens").set(to: status.acceptingTokens ? 1 : 0)
    }

    public init() {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets[PATValidationMetrics.durationName] = Self.validationBuckets
        factory.durationHistogramBuckets["patkit_http_request_duration_seconds"] = Self.requestBuckets
        self.registry = registry
        self.factory = factory
        self.validation = PATValidationMetrics(factory: factory)
    }

    /// Runs `hook` before every export, to set gauges from the state it reads.
    public func onScrape(_ hook: @escaping @Sendable (PATServerMetrics) -> Void) {
        hooks.withLock { $0.append(hook) }
    }

    /// A gauge of this server's registry (made once, then the same handle).
    public func gauge(_ name: String, _ labels: [(String, String)] = []) -> Prometheus.Gauge {
        registry.makeGauge(name: name, labels: labels)
    }

    /// A counter of this server's registry (made once, then the same handle).
    public func counter(_ name: String, _ labels: [(String, String)] = []) -> Prometheus.Counter {
        registry.makeCounter(name: name, labels: labels)
    }

    /// Sets a counter that is kept elsewhere (a monotonic total read at scrape time) to `total`.
    public func setTotal(_ name: String, _ labels: [(String, String)] = [], to total: Int) {
        let counter = counter(name, labels)
        counter.reset()
        counter.increment(by: Int64(max(0, total)))
    }

    /// The Prometheus text exposition (format 0.0.4) after running the scrape hooks.
    public func export() -> [UInt8] {
        let hooks = self.hooks.withLock { $0 }
        return exporting.withLock { _ in
            for hook in hooks { hook(self) }
            var buffer: [UInt8] = []
            buffer.reserveCapacity(16 * 1024)
            registry.emit(into: &buffer)
            return buffer
        }
    }
}

/// Counts and times every request by route template (never the raw path: bounded cardinality),
/// method and status. Hand-written rather than Hummingbird's `MetricsMiddleware`, which records
/// through the process-wide `MetricsSystem`: each server here exports its own registry.
struct RequestMetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    let handles: RequestMetricHandles

    init(factory: any MetricsFactory) { self.handles = RequestMetricHandles(factory: factory) }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        do {
            let response = try await next(request, context)
            record(request, context, status: response.status.code, start: start)
            return response
        } catch {
            let status = (error as? any HTTPResponseError)?.status.code ?? 500
            record(request, context, status: status, start: start)
            throw error
        }
    }

    private func record(_ request: Request, _ context: Context, status: Int, start: ContinuousClock.Instant) {
        let (seconds, attoseconds) = (ContinuousClock.now - start).components
        handles.record(route: context.endpointPath ?? "unmatched", method: request.method.rawValue, status: status,
                       nanoseconds: seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}

/// The request counters and timers, made once per route, method and status and then reused.
/// Making a swift-metrics handle asks the Prometheus registry (name and label checks, hashing,
/// its lock) every time: twice a request, that was a measurable part of a cached `/verify`
/// (issue 15). The cache is bounded; past it, handles are made per request as before.
final class RequestMetricHandles: Sendable {
    private struct Key: Hashable, Sendable {
        let route: String
        let method: String
        let status: Int
    }

    private struct Handles: Sendable {
        let requests: CoreMetrics.Counter
        let duration: CoreMetrics.Timer
    }

    /// Routes × methods × statuses a server answers are few; this only bounds the unexpected.
    static let capacity = 1_024
    private let factory: any MetricsFactory
    private let cache = Mutex<[Key: Handles]>([:])

    init(factory: any MetricsFactory) { self.factory = factory }

    func record(route: String, method: String, status: Int, nanoseconds: Int64) {
        let key = Key(route: route, method: method, status: status)
        let handles = cache.withLock { $0[key] } ?? make(key)
        handles.requests.increment()
        handles.duration.recordNanoseconds(nanoseconds)
    }

    private func make(_ key: Key) -> Handles {
        let handles = Handles(
            requests: CoreMetrics.Counter(label: "patkit_http_requests_total",
                                          dimensions: [("route", key.route), ("method", key.method), ("status", String(key.status))],
                                          factory: factory),
            duration: CoreMetrics.Timer(label: "patkit_http_request_duration_seconds", dimensions: [("route", key.route)], factory: factory))
        cache.withLock { cache in
            if cache.count < RequestMetricHandles.capacity { cache[key] = handles }
        }
        return handles
    }
}

/// `GET /metrics`.
struct MetricsRoutes: PATRouteGroup {
    let metrics: PATServerMetrics

    func addRoutes(to router: Router<PATServer.Context>) {
        let metrics = self.metrics
        router.get("/metrics") { _, _ in
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            headers[.cacheControl] = "no-store"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: metrics.export())))
        }
    }
}
