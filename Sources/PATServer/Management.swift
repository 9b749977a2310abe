import Hummingbird
import Logging
import NIOCore
import PATEdge
import PATHummingbird
import PATKit
import PATManagement
import PATRegistry
import ServiceLifecycle

/// Settings of the management API of `pat serve`.
public struct ManagementConfiguration: Sendable {
    /// The next-update of every list the server publishes (default 1 hour).
    public var nextUpdateInterval: TimeSpan = Publisher.defaultNextUpdateInterval
    /// How often the server republishes on its own; nil: half of `nextUpdateInterval`.
    public var republishInterval: Duration?
    /// The wait before the first retry of a failed publish; doubled for every failed retry.
    public var retryInterval: Duration = .seconds(1)
    /// The longest wait between retries of a failed publish.
    public var maxRetryInterval: Duration = .seconds(60)
    /// How often the API's validator re-reads `HOME/published` (to learn lists that
    /// `pat publish` wrote while the server runs).
    public var refreshInterval: Duration = .seconds(5)
    /// The longest lifetime a PAT may be issued with (as `pat create --max-lifetime`).
    public var maxLifetime: TimeSpan = ManagementPolicy.defaultMaxLifetime
    /// The lifetime of a PAT created or regenerated without `expiresAt` or `duration` (cut to
    /// the caller's own expiry when the delegation rules bound the caller).
    public var defaultLifetime = ManagementPolicy.defaultDefaultLifetime
    /// Per-caller rate limit (by `sub`); nil turns it off.
    public var rateLimit: RateLimiter.Policy? = .perMinute(120, burst: 30)
    public var webhooks: WebhookConfiguration?
    /// The catalog scopes issued through the API are checked against; nil: the home's
    /// issuing catalog plus the entity `pats` (`PATHome.managementCatalog()`).
    public var issuingCatalog: ScopeCatalog?
    /// The clock-skew leeway of the API's validator, in seconds.
    public var leeway: Int64 = 60
    /// The secret-scanning partner endpoint (`POST /v3/personal-access-tokens/leaks`); nil: off.
    public var secretScanning: SecretScanningConfiguration?
    /// Record `personalAccessToken.usedFromNewAddress` events (default off).
    public var notifyNewAddresses = false
    /// Lead times of `personalAccessToken.expiring` (sent only when webhooks are configured).
    public var expiryLeadTimes: [TimeSpan] = PATManagement.defaultExpiryLeadTimes
    /// How often the expiry notifier looks for PATs expiring within a lead time.
    public var expiryCheckInterval: Duration = .seconds(60)

    public init() {}
}

/// The management API of `pat serve` and what runs beside it: the management service (every
/// rule lives there), the republisher, a refresher keeping the API's validator in step with
/// `HOME/published`, the webhook dispatcher draining the registry's outbox, and `GET /status`
/// (`IssuerStatusRoutes`: what is published, what is not yet, the last publish error).
///
/// ```swift
/// var configuration = PATServerConfiguration(home: home)
/// let management = try ManagementServer(home: home)
/// management.install(into: &configuration)
/// try await PATServer.run(configuration)
/// ```
public final class ManagementServer: Sendable {
    public let home: PATHome
    public let service: PATManagement
    /// Checks the bearer PATs of management requests; fed by the republisher and the refresher.
    public let validator: Validator
    public let republisher: Republisher
    public let refresher: PATRefresher
    public let webhooks: WebhookDispatcher?
    public let rateLimiter: RateLimiter?
    public let routes: ManagementRoutes
    /// The secret-scanning partner endpoint, when scanner keys are configured.
    public let secretScanning: SecretScanningRoutes?
    /// Sends `personalAccessToken.expiring` events; runs when webhooks are configured.
    public let expiryNotifier: ExpiryNotifier?

    /// - Parameters:
    ///   - store: the registry (default: `HOME/pat.db`).
    public init(home: PATHome, configuration: ManagementConfiguration = ManagementConfiguration(),
                store: (any PATRegistryStore)? = nil, logger: Logger = Logger(label: "patkit.serve"),
                clock: @escaping @Sendable () -> Timestamp = { Timestamp.now() }) throws {
        let store = try store ?? SQLiteRegistry(home: home)
        let catalog = try configuration.issuingCatalog ?? home.managementCatalog()
        self.home = home
        var policy = Validator.Policy()
        policy.leeway = configuration.leeway
        let validator = Validator(keys: KeySet(), policy: policy, clock: clock)
        self.validator = validator
        var publisher = Publisher(store: store, keyStore: home.keyStore, outputDirectory: home.publishedDirectory,
                                  nextUpdateInterval: configuration.nextUpdateInterval, leeway: configuration.leeway, clock: clock)
        // Each publish after the first signs an update of the last list (only changed rows read).
        publisher.cache = PublisherCache()
        let republisher = Republisher(publisher: publisher, validator: validator, interval: configuration.republishInterval,
                                      retryInterval: configuration.retryInterval, maxRetryInterval: configuration.maxRetryInterval,
                                      logger: logger)
        self.republisher = republisher
        // The published key set is signed by the home's trust anchor (an online one is created
        // for a home that has none, as `pat publish` would).
        try home.keyStore.ensureAnchor()
        guard let anchors = try home.keyStore.trustAnchors() else {
            throw PATKitError.invalidArgument("no trust anchor in \(home.keyStore.anchorsPath)")
        }
        self.refresher = PATRefresher(validator: validator,
                                      source: FileDocumentSource(keysPath: home.publishedKeysPath,
                                                                 revocationsPath: home.publishedRevocationsPath),
                                      trustAnchors: anchors, interval: configuration.refreshInterval, logger: logger, clock: clock)
        let webhooks = configuration.webhooks.map { WebhookDispatcher(configuration: $0, store: store, logger: logger) }
        self.webhooks = webhooks
        self.rateLimiter = configuration.rateLimit.map { RateLimiter(policy: $0) }
        self.service = PATManagement(store: store, keyStore: home.keyStore,
                                     policy: ManagementPolicy(catalog: catalog, maxLifetime: configuration.maxLifetime,
                                                              defaultLifetime: configuration.defaultLifetime,
                                                              notifyNewAddresses: configuration.notifyNewAddresses),
                                     clock: clock, republisher: republisher, onChange: { webhooks?.wake() })
        self.routes = ManagementRoutes(service: service, validator: validator, rateLimiter: rateLimiter, logger: logger, clock: clock)
        let service = self.service
        if let scanning = configuration.secretScanning {
            self.secretScanning = SecretScanningRoutes(configuration: scanning, service: service, validator: validator, logger: logger)
        } else {
            self.secretScanning = nil
        }
        if webhooks == nil || configuration.expiryLeadTimes.isEmpty {
            self.expiryNotifier = nil
        } else {
            self.expiryNotifier = ExpiryNotifier(service: service, leadTimes: configuration.expiryLeadTimes,
                                                 interval: configuration.expiryCheckInterval, logger: logger)
        }
    }

    /// Mounts the routes, runs the services with the server, and publishes once before the
    /// server accepts requests.
    public func install(into configuration: inout PATServerConfiguration) {
        var routes = self.routes
        if let metrics = configuration.metrics {
            routes.metrics = metrics.validation
            metrics.onScrape { [self] metrics in self.record(into: metrics) }
        }
        configuration.routeGroups.append(routes)
        if let secretScanning { configuration.routeGroups.append(secretScanning) }
        configuration.routeGroups.append(IssuerStatusRoutes(republisher: republisher, webhooks: webhooks))
        // Every list published is served — and wakes the edges' long polls — the moment it is written.
        let feed = configuration.revocationFeed
        republisher.onPublish { result in
            feed.offer(ServedList(bytes: result.bytes, sequence: result.sequence, nextUpdate: result.nextUpdate),
                       deltas: result.delta.map { [$0] } ?? [])
        }
        configuration.services.append(republisher)
        if let expiryNotifier { configuration.services.append(expiryNotifier) }
        // The startup publish installs the first list itself; re-reading starts one interval later.
        configuration.services.append(DelayedService(refresher, delay: refresher.interval))
        if let webhooks { configuration.services.append(webhooks) }
        configuration.startupTasks.append { [self] in await self.start() }
    }

    /// The management side's state, read when metrics are scraped.
    func record(into metrics: PATServerMetrics) {
        metrics.validation.record(validator)
        metrics.record(refresher.status, now: validator.now())
        if let rateLimiter { metrics.setTotal("patkit_rate_limited_total", to: rateLimiter.refusedCount) }
        let publishing = republisher.status
        metrics.setTotal("patkit_publishes_total", to: Int(clamping: publishing.publishes))
        metrics.setTotal("patkit_publish_errors_total", to: Int(clamping: publishing.failures))
        metrics.gauge("patkit_unpublished_changes").set(to: Double(publishing.unpublishedChanges))
        metrics.gauge("patkit_publish_consecutive_failures").set(to: Double(publishing.consecutiveFailures))
        if let webhooks {
            metrics.setTotal("patkit_webhook_deliveries_total", [("outcome", "settled")], to: webhooks.settledCount)
            metrics.gauge("patkit_webhook_pending").set(to: Double(webhooks.pending.reduce(0, +)))
        }
    }

    /// The first publish: the API's validator needs a current list before it accepts tokens.
    /// When it fails (e.g. no signing key), whatever is already published is loaded instead.
    public func start() async {
        if await republisher.publish(reason: "startup") == nil { await refresher.refresh() }
    }
}

/// Runs a service after a delay (skipped when the server stops first).
struct DelayedService: Service {
    let service: any Service
    let delay: Duration

    init(_ service: any Service, delay: Duration) {
        self.service = service
        self.delay = delay
    }

    func run() async throws {
        let delay = self.delay
        do { try await cancelWhenGracefulShutdown { try await Task.sleep(for: delay) } } catch { return }
        try await service.run()
    }
}

// MARK: request bodies

/// A JSON request body: one object, read member by member; members the route does not know
/// are refused. Bounded (64 KiB), strict (PATKit's parser: unique keys, valid UTF-8).
struct ManagementBody {
    private(set) var object: JSONObject

    static let maxBytes = 64 * 1024

    /// Reads the body; an empty body is `{}` when `optional`.
    static func read(_ request: Request, optional: Bool, maxBytes: Int = ManagementBody.maxBytes,
                     maxMembers: Int = 512, maxDepth: Int = 4) async throws(PATHTTPError) -> ManagementBody {
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: maxBytes)
        } catch is NIOTooManyBytesError {
            throw PATHTTPError(.contentTooLarge, code: "too_large", message: "the request body exceeds \(maxBytes / 1024) KiB")
        } catch {
            throw ManagementBody.invalid("body", "could not be read")
        }
        let bytes = Array(buffer.readableBytesView)
        if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) {
            guard optional else { throw ManagementBody.invalid("body", "a JSON object is required") }
            return ManagementBody(object: JSONObject())
        }
        let value: JSONValue
        do {
            value = try JSONParser.parse(bytes, limits: JSONLimits(maxBytes: maxBytes, maxDepth: maxDepth, maxMembers: maxMembers, maxStringBytes: 8 * 1024))
        } catch {
            throw ManagementBody.invalid("body", "not valid JSON: \(error)")
        }
        guard case .object(let object) = value else { throw ManagementBody.invalid("body", "must be a JSON object") }
        return ManagementBody(object: object)
    }

    /// 400 naming the field and the reason.
    static func invalid(_ field: String, _ reason: String) -> PATHTTPError {
        PATHTTPError(.badRequest, code: "invalid_request", message: "\(field): \(reason)")
    }

    /// Refuses members outside `known`, naming the first.
    func allow(_ known: Set<String>) throws(PATHTTPError) {
        for key in object.keys where !known.contains(key) {
            let expected = known.sorted().joined(separator: ", ")
            throw ManagementBody.invalid(String(key.prefix(64)),
                                         "unknown field" + (expected.isEmpty ? "; this request takes no fields" : "; expected \(expected)"))
        }
    }

    /// A string member; `null` counts as absent when `nullable`.
    func string(_ key: String, nullable: Bool = false) throws(PATHTTPError) -> String? {
        switch object[key] {
        case nil: return nil
        case .null? where nullable: return nil
        case .string(let value)?: return value
        default: throw ManagementBody.invalid(key, "must be a string")
        }
    }

    func requiredString(_ key: String) throws(PATHTTPError) -> String {
        guard let value = try string(key) else { throw ManagementBody.invalid(key, "is required") }
        return value
    }

    func bool(_ key: String) throws(PATHTTPError) -> Bool? {
        switch object[key] {
        case nil: return nil
        case .bool(let value)?: return value
        default: throw ManagementBody.invalid(key, "must be true or false")
        }
    }

    /// `scopes`: a non-empty array of `ENTITY:OPERATION[:ID]` strings.
    func scopes(_ key: String = "scopes") throws(PATHTTPError) -> [Scope] {
        guard let value = object[key] else { throw ManagementBody.invalid(key, "is required: a non-empty array of scopes such as \"clients:view\"") }
        guard case .array(let items) = value else { throw ManagementBody.invalid(key, "must be an array of strings") }
        guard !items.isEmpty else { throw ManagementBody.invalid(key, "must hold at least one scope") }
        guard items.count <= ScopeSet.maxCount else { throw ManagementBody.invalid(key, "holds more than \(ScopeSet.maxCount) scopes") }
        var scopes: [Scope] = []
        for (index, item) in items.enumerated() {
            guard let text = item.stringValue else { throw ManagementBody.invalid("\(key)[\(index)]", "must be a string") }
            do { scopes.append(try Scope(parsing: text)) } catch {
                throw ManagementBody.invalid("\(key)[\(index)]", "\(error); write ENTITY:OPERATION[:ID], e.g. clients:view")
            }
        }
        return scopes
    }

    /// `expiresAt` (RFC 3339 UTC) or `duration` (`30d`), at most one; nil when neither.
    /// Only the form is checked here; the service checks the instant.
    func expiry() throws(PATHTTPError) -> Expiry? {
        switch (try string("expiresAt"), try string("duration")) {
        case (.some, .some):
            throw ManagementBody.invalid("duration", "give either expiresAt or duration, not both")
        case (.some(let text), nil):
            guard let instant = Timestamp(rfc3339: text) else {
                throw ManagementBody.invalid("expiresAt", "must be an RFC 3339 UTC time such as 2027-01-31T12:00:00Z")
            }
            return .at(instant)
        case (nil, .some(let text)):
            do { return .after(try TimeSpan(parsing: text)) } catch { throw ManagementBody.invalid("duration", "\(error)") }
        case (nil, nil):
            return nil
        }
    }
}

// MARK: JSON forms

enum ManagementJSON {
    static func response(_ status: HTTPResponse.Status, _ object: JSONObject, headers: HTTPFields = [:]) -> Response {
        var fields = headers
        fields[.contentType] = "application/json; charset=utf-8"
        fields[.cacheControl] = "no-store"
        return Response(status: status, headers: fields,
                        body: .init(byteBuffer: ByteBuffer(bytes: JSONWriter.encode(.object(object)) + [0x0A])))
    }
}
