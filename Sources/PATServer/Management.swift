import Hummingbird
import Logging
import NIOCore
import PATEdge
import PATHummingbird
import PATKit
import PATRegistry
import ServiceLifecycle

/// The management API's permissions: scopes of the entity `pats`. `pats:admin` grants every
/// operation on every owner's PATs; the others act on the caller's own PATs (`sub`), and an
/// id in the scope (`pats:read:<PAT id>`) narrows it to that PAT.
public enum ManagementPermission: String, Sendable, CaseIterable {
    case create, list, read, update, revoke, regenerate, delete, admin

    public static let entity = "pats"
    public var scope: String { "\(ManagementPermission.entity):\(rawValue)" }
}

/// Settings of the management API of `pat serve`.
public struct ManagementConfiguration: Sendable {
    /// The next-update of every list the server publishes (default 1 hour).
    public var nextUpdateInterval: TimeSpan = Publisher.defaultNextUpdateInterval
    /// How often the server republishes on its own; nil: half of `nextUpdateInterval`.
    public var republishInterval: Duration?
    /// The wait before retrying a failed publish.
    public var retryInterval: Duration = .seconds(5)
    /// How often the API's validator re-reads `HOME/published` (to learn lists that
    /// `pat publish` wrote while the server runs).
    public var refreshInterval: Duration = .seconds(5)
    /// The longest lifetime a PAT may be issued with (as `pat create --max-lifetime`).
    public var maxLifetime: TimeSpan = Lifecycle.defaultMaxLifetime
    /// The lifetime of a PAT created or regenerated without `expiresAt` or `duration`.
    public var defaultLifetime = TimeSpan(seconds: 30 * 86_400)
    /// Per-caller rate limit (by `sub`); nil turns it off.
    public var rateLimit: RateLimiter.Policy? = .perMinute(120, burst: 30)
    public var webhooks: WebhookConfiguration?
    /// The catalog scopes issued through the API are checked against; nil: the home's
    /// issuing catalog plus the entity `pats` (`PATHome.managementCatalog()`).
    public var issuingCatalog: ScopeCatalog?
    /// The clock-skew leeway of the API's validator, in seconds.
    public var leeway: Int64 = 60

    public init() {}
}

/// The management API and what runs beside it: the registry lifecycle, the republisher, a
/// refresher keeping the API's validator in step with `HOME/published`, and webhook delivery.
///
/// ```swift
/// var configuration = PATServerConfiguration(home: home)
/// let management = try PATManagement(home: home)
/// management.install(into: &configuration)
/// try await PATServer.run(configuration)
/// ```
public final class PATManagement: Sendable {
    public let home: PATHome
    public let lifecycle: Lifecycle
    /// Checks the bearer PATs of management requests; fed by the republisher and the refresher.
    public let validator: Validator
    public let republisher: Republisher
    public let refresher: PATRefresher
    public let webhooks: WebhookDispatcher?
    public let rateLimiter: RateLimiter?
    public let routes: ManagementRoutes

    /// - Parameters:
    ///   - store: the registry (default: `HOME/pat.db`).
    public init(home: PATHome, configuration: ManagementConfiguration = ManagementConfiguration(),
                store: (any PATRegistryStore)? = nil, logger: Logger = Logger(label: "patkit.serve"),
                clock: @escaping @Sendable () -> Timestamp = { Timestamp.now() }) throws {
        let store = try store ?? SQLiteRegistry(home: home)
        let catalog = try configuration.issuingCatalog ?? home.managementCatalog()
        self.home = home
        self.lifecycle = Lifecycle(store: store, keyStore: home.keyStore, catalog: catalog,
                                   maxLifetime: configuration.maxLifetime, clock: clock)
        var policy = Validator.Policy()
        policy.leeway = configuration.leeway
        let validator = Validator(keys: KeySet(), policy: policy, clock: clock)
        self.validator = validator
        let publisher = Publisher(store: store, keyStore: home.keyStore, outputDirectory: home.publishedDirectory,
                                  nextUpdateInterval: configuration.nextUpdateInterval, leeway: configuration.leeway, clock: clock)
        self.republisher = Republisher(publisher: publisher, validator: validator, interval: configuration.republishInterval,
                                       retryInterval: configuration.retryInterval, logger: logger)
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
        self.webhooks = configuration.webhooks.map { WebhookDispatcher(configuration: $0, logger: logger, clock: clock) }
        self.rateLimiter = configuration.rateLimit.map { RateLimiter(policy: $0) }
        self.routes = ManagementRoutes(lifecycle: lifecycle, validator: validator, republisher: republisher,
                                       webhooks: webhooks, rateLimiter: rateLimiter,
                                       defaultLifetime: configuration.defaultLifetime, logger: logger, clock: clock)
    }

    /// Mounts the routes, runs the services with the server, and publishes once before the
    /// server accepts requests.
    public func install(into configuration: inout PATServerConfiguration) {
        configuration.routeGroups.append(routes)
        configuration.services.append(republisher)
        // The startup publish installs the first list itself; re-reading starts one interval later.
        configuration.services.append(DelayedService(refresher, delay: refresher.interval))
        if let webhooks { configuration.services.append(webhooks) }
        configuration.startupTasks.append { [self] in await self.start() }
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
    static func read(_ request: Request, optional: Bool) async throws(PATHTTPError) -> ManagementBody {
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
            value = try JSONParser.parse(bytes, limits: JSONLimits(maxBytes: maxBytes, maxDepth: 4, maxMembers: 512, maxStringBytes: 8 * 1024))
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

    /// `expiresAt` (RFC 3339 UTC) or `duration` (`30d`), at most one; `fallback` when neither.
    /// Checked against `now` and `maxLifetime`.
    func expiry(now: Timestamp, fallback: TimeSpan, maxLifetime: TimeSpan) throws(PATHTTPError) -> Timestamp {
        let at = try string("expiresAt"), duration = try string("duration")
        let expiresAt: Timestamp
        let field: String
        switch (at, duration) {
        case (.some, .some):
            throw ManagementBody.invalid("duration", "give either expiresAt or duration, not both")
        case (.some(let text), nil):
            field = "expiresAt"
            guard let instant = Timestamp(rfc3339: text) else {
                throw ManagementBody.invalid(field, "must be an RFC 3339 UTC time such as 2027-01-31T12:00:00Z")
            }
            expiresAt = instant
        case (nil, .some(let text)):
            field = "duration"
            do { expiresAt = now.adding(seconds: try TimeSpan(parsing: text).seconds) } catch {
                throw ManagementBody.invalid(field, "\(error)")
            }
        case (nil, nil):
            field = "duration"
            expiresAt = now.adding(seconds: fallback.seconds)
        }
        guard expiresAt > now else {
            throw ManagementBody.invalid(field, "the expiry \(expiresAt) is not in the future (now \(now))")
        }
        guard expiresAt.seconds - now.seconds <= maxLifetime.seconds else {
            throw ManagementBody.invalid(field, "a lifetime until \(expiresAt) exceeds the maximum lifetime of "
                                         + "\(formatDuration(maxLifetime.seconds))")
        }
        return expiresAt
    }
}

// MARK: JSON forms

enum ManagementJSON {
    /// A record as the API shows it (never the token, which is not stored).
    static func record(_ r: PATRecord, now: Timestamp) -> JSONObject { r.json(at: now) }

    /// A record with a freshly issued token: `accessToken` first, then the record.
    static func issued(_ issued: IssuedPAT, now: Timestamp) -> JSONObject {
        var o = JSONObject()
        o.set("accessToken", .string(issued.token))
        for member in record(issued.record, now: now).members { o.set(member.key, member.value) }
        o.set("issuedAt", .string(issued.issuedAt.rfc3339))
        return o
    }

    /// The webhook data of a deleted PAT: its last record, status `deleted`.
    static func deleted(_ r: PATRecord, at: Timestamp) -> JSONObject {
        var o = record(r, now: at)
        o.set("status", .string("deleted"))
        o.set("deletedAt", .string(at.rfc3339))
        return o
    }

    static func response(_ status: HTTPResponse.Status, _ object: JSONObject, headers: HTTPFields = [:]) -> Response {
        var fields = headers
        fields[.contentType] = "application/json; charset=utf-8"
        fields[.cacheControl] = "no-store"
        return Response(status: status, headers: fields,
                        body: .init(byteBuffer: ByteBuffer(bytes: JSONWriter.encode(.object(object)) + [0x0A])))
    }
}
