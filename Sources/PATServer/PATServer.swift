import Hummingbird
import HummingbirdCore
import NIOCore
import Logging
import PATEdge
import PATHummingbird
import PATKit
import PATStore
import ServiceLifecycle
#if canImport(Glibc)
import Glibc
#endif

/// A group of routes `pat serve` mounts: distribution, the gate, the management API (behind
/// `PATAuthenticator`, see `ManagementServer`) and whatever else the server grows.
public protocol PATRouteGroup: Sendable {
    func addRoutes(to router: Router<PATServer.Context>)
}

/// What `pat serve` runs.
public struct PATServerConfiguration: Sendable {
    public enum Mode: Sendable {
        /// The distribution endpoints (`/.well-known/pat/keys`, `/.well-known/pat/revocations`)
        /// over the home's published files.
        case distribution
        /// The subrequest gate (`/verify`, `/status`) only.
        case gate(GateConfiguration)
    }

    public var host: String
    public var port: Int
    public var home: PATHome
    public var mode: Mode
    /// More route groups, mounted after the mode's own (e.g. the management API).
    public var routeGroups: [any PATRouteGroup]
    /// More services run with the server and shut down with it (e.g. webhook delivery).
    public var services: [any Service]
    /// Work done before the server accepts requests (e.g. the management API's first publish).
    public var startupTasks: [@Sendable () async throws -> Void] = []
    /// Connection cap and timeouts.
    public var limits = ServerLimits()
    /// This server's metrics, served at `GET /metrics` (nil: no metrics, no route).
    public var metrics: PATServerMetrics? = PATServerMetrics()
    /// What the distribution routes serve of the revocation list, and their long polls (made
    /// here so that the management API's republisher can offer it every list it publishes).
    public var revocationFeed = RevocationFeed()

    public init(host: String = "127.0.0.1", port: Int = 8080, home: PATHome, mode: Mode = .distribution,
                routeGroups: [any PATRouteGroup] = [], services: [any Service] = []) {
        self.host = host
        self.port = port
        self.home = home
        self.mode = mode
        self.routeGroups = routeGroups
        self.services = services
    }
}

/// Where the gate's validator gets its keys and revocation list, and how it judges tokens.
public struct GateConfiguration: Sendable {
    public enum Source: Sendable {
        /// The home's `published/keys.json` and `published/revocations.bin`.
        case published
        /// The distribution endpoints of an issuer (or any URLs serving the same documents).
        case urls(keys: String, revocations: String)
    }

    public var source: Source
    /// The keys the published key set must be signed by (`--trust-anchor FILE`).
    public var trustAnchors: TrustAnchors
    /// Polling interval (files, an issuer without long polls), and the pause after a failure.
    public var refreshInterval: Duration
    /// How long the issuer may hold each long poll for the next list (nil: poll every
    /// `refreshInterval`).
    public var longPollWait: Duration? = PATRefresher.defaultLongPollWait
    /// Also serve `/.well-known/pat/keys` and `/.well-known/pat/revocations` (deltas and long polls
    /// included) from what the gate verified: a relay between an issuer and more edges.
    public var relay = false
    /// Where the refresher keeps the last good documents across restarts (URL source).
    public var cacheDirectory: String?
    public var policy: Validator.Policy
    /// The domain tokens must act in when the request names none (`X-PAT-Domain`).
    public var domain: String?
    /// Where to report usage; nil: uses are not counted.
    public var usageReport: UsageReportConfiguration?

    public init(source: Source = .published, trustAnchors: TrustAnchors, refreshInterval: Duration = .seconds(5),
                cacheDirectory: String? = nil, policy: Validator.Policy = Validator.Policy(), domain: String? = nil,
                usageReport: UsageReportConfiguration? = nil) {
        self.source = source
        self.trustAnchors = trustAnchors
        self.refreshInterval = refreshInterval
        self.cacheDirectory = cacheDirectory
        self.policy = policy
        self.domain = domain
        self.usageReport = usageReport
    }
}

/// How an edge reports the use it counts to the issuer (`PATUsageReporter`).
public struct UsageReportConfiguration: Sendable {
    /// The issuer's `…/v3/personal-access-tokens/usage`.
    public var endpoint: String
    /// A PAT holding `pats:report_usage`.
    public var token: String
    /// How often to flush (default 5 s).
    public var interval: Duration
    /// Distinct PATs held between flushes; beyond, uses are dropped and counted.
    public var capacity: Int

    public init(endpoint: String, token: String, interval: Duration = .seconds(5), capacity: Int = UsageCounter.defaultCapacity) {
        self.endpoint = endpoint
        self.token = token
        self.interval = interval
        self.capacity = capacity
    }

    /// Reads the reporting PAT from `path` (private: mode 0600 or stricter; whitespace around it dropped).
    public static func readToken(_ path: String) throws(PATKitError) -> String {
        let bytes = try SecureFile.read(path, maxBytes: PASETOv4Public.defaultMaxTokenBytes + 64, requirePrivate: true)
        let space: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }
        let trimmed = bytes.drop(while: space).reversed().drop(while: space).reversed()
        let text = String(decoding: trimmed, as: UTF8.self)
        guard !trimmed.isEmpty, !trimmed.contains(where: space) else {
            throw .invalidArgument("\(path) must hold one PAT (with the scope pats:report_usage)")
        }
        return text
    }
}

/// Builds the `pat serve` application. Route groups are independent: the management API is one
/// more group on the same router, behind `PATAuthenticator` (`ManagementServer.install(into:)`).
public enum PATServer {
    public typealias Context = BasicPATRequestContext
    public typealias App = Application<RouterResponder<Context>>

    /// The application, and the refresher feeding the gate (nil in distribution mode).
    /// `onServerRunning` gets the bound port (useful with port 0).
    public static func makeApplication(_ configuration: PATServerConfiguration, logger: Logger = Logger(label: "patkit.serve"),
                                       clock: @escaping @Sendable () -> Timestamp = { Timestamp.now() },
                                       onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }) -> (App, PATRefresher?) {
        let (router, refresher, services) = makeRouter(configuration, logger: logger, clock: clock)
        let limits = configuration.limits
        let counter = ConnectionCounter(maximum: limits.effectiveMaxConnections)
        let (idleSeconds, idleAttoseconds) = limits.idleTimeout.components
        let http1 = HTTP1Channel.Configuration(
            additionalChannelHandlers: [ConnectionGuard(counter: counter, headerTimeout: limits.headerTimeout)],
            idleTimeout: .nanoseconds(idleSeconds * 1_000_000_000 + idleAttoseconds / 1_000_000_000))
        var app = Application(
            router: router,
            server: .http1(configuration: http1),
            configuration: ApplicationConfiguration(address: .hostname(configuration.host, port: configuration.port),
                                                    serverName: "PATKit"),
            onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? configuration.port) },
            logger: logger
        )
        app.addServices(configuration.services)
        app.addServices(services)
        for task in configuration.startupTasks { app.beforeServerStarts(perform: task) }
        if let refresher {
            // The first round runs before the server accepts requests.
            app.beforeServerStarts { await refresher.refresh() }
            app.addServices(refresher)
        }
        return (app, refresher)
    }

    /// The router of the application `makeApplication` builds — every route `configuration`
    /// mounts (`router.routes` lists them; the OpenAPI document must name each) — with the
    /// refresher feeding the gate and the services the routes need.
    public static func makeRouter(_ configuration: PATServerConfiguration, logger: Logger = Logger(label: "patkit.serve"),
                                  clock: @escaping @Sendable () -> Timestamp = { Timestamp.now() })
        -> (router: Router<Context>, refresher: PATRefresher?, services: [any Service]) {
        let router = Router(context: Context.self)
        let metrics = configuration.metrics
        if let metrics { router.add(middleware: RequestMetricsMiddleware<Context>(factory: metrics.factory)) }
        router.add(middleware: PATErrorMiddleware<Context>())
        let table = RouteTable()
        router.add(middleware: MethodNotAllowedMiddleware<Context>(table: table))
        var refresher: PATRefresher? = nil
        var services: [any Service] = []
        switch configuration.mode {
        case .distribution:
            DistributionRoutes(home: configuration.home, feed: configuration.revocationFeed, clock: clock, logger: logger)
                .addRoutes(to: router)
            services.append(configuration.revocationFeed)
        case .gate(let gate):
            let source: any PATDocumentSource
            switch gate.source {
            case .published:
                source = FileDocumentSource(keysPath: configuration.home.publishedKeysPath,
                                            revocationsPath: configuration.home.publishedRevocationsPath)
            case .urls(let keys, let revocations):
                source = HTTPDocumentSource(keysURL: keys, revocationsURL: revocations)
            }
            let validator = Validator(keys: KeySet(), policy: gate.policy, clock: clock)
            let feed = configuration.revocationFeed
            let relay = gate.relay
            var offer: (@Sendable (PATRefresherUpdate) -> Void)? = nil
            if relay {
                offer = { @Sendable (update: PATRefresherUpdate) in
                    if let list = update.list { feed.offer(ServedList(list: list), deltas: update.deltas) }
                }
            }
            let feeder = PATRefresher(validator: validator, source: source, trustAnchors: gate.trustAnchors, interval: gate.refreshInterval,
                                      longPollWait: gate.longPollWait, cacheDirectory: gate.cacheDirectory, logger: logger, clock: clock,
                                      onUpdate: offer)
            refresher = feeder
            var usage: UsageCounter? = nil
            if let report = gate.usageReport {
                let counter = UsageCounter(capacity: report.capacity)
                usage = counter
                services.append(PATUsageReporter(counter: counter, endpoint: report.endpoint, token: report.token,
                                                 interval: report.interval, logger: logger, clock: clock))
            }
            GateRoutes(validator: validator, refresher: feeder, domain: gate.domain, usage: usage, metrics: metrics?.validation)
                .addRoutes(to: router)
            metrics?.onScrape { metrics in
                metrics.validation.record(validator)
                metrics.record(feeder.status, now: validator.now())
            }
            if relay {
                // What it verified from the start (e.g. its cache directory), then every update.
                if let list = validator.revocations { feed.offer(ServedList(list: list)) }
                DistributionRoutes(relaying: validator, feed: feed, clock: clock).addRoutes(to: router)
                services.append(feed)
            }
        }
        for group in configuration.routeGroups { group.addRoutes(to: router) }
        if let metrics { MetricsRoutes(metrics: metrics).addRoutes(to: router) }
        OpenAPIRoutes().addRoutes(to: router)
        table.load(router.routes)
        return (router, refresher, services)
    }

    /// Runs until SIGINT or SIGTERM, then shuts down gracefully.
    /// A port that is taken is ``PATServerError/addressInUse(host:port:)``.
    public static func run(_ configuration: PATServerConfiguration, logger: Logger = Logger(label: "patkit.serve")) async throws {
        let (app, _) = makeApplication(configuration, logger: logger)
        do {
            try await app.runService()
        } catch let error as IOError where error.errnoCode == EADDRINUSE {
            throw PATServerError.addressInUse(host: configuration.host, port: configuration.port)
        }
    }
}

/// Why `pat serve` could not run.
public enum PATServerError: Error, Equatable, CustomStringConvertible {
    /// Another process listens on this address.
    case addressInUse(host: String, port: Int)

    public var description: String {
        switch self {
        case .addressInUse(let host, let port):
            let address = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
            return "cannot listen on \(address): address already in use"
        }
    }
}
