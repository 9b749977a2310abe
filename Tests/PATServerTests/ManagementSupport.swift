import AsyncHTTPClient
import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import PATHummingbird
import PATKit
import PATManagement
import PATRegistry
import PATRegistryPostgres
import PATRegistryTestSupport
import PATServer
import PATStore
import ServiceLifecycle
import Synchronization
import PATTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Sends a request with a body (or none) with `rawClient`.
func request(_ url: String, method: HTTPMethod, token: String? = nil, body: String? = nil,
             headers: [(String, String)] = []) async throws -> HTTPResult {
    var request = HTTPClientRequest(url: url)
    request.method = method
    if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
    for (name, value) in headers { request.headers.add(name: name, value: value) }
    if let body {
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(string: body))
    }
    let response = try await rawClient.execute(request, timeout: requestTimeLimit)
    let bytes = try await response.body.collect(upTo: 16 * 1024 * 1024)
    return HTTPResult(status: Int(response.status.code), headers: response.headers, body: Array(bytes.readableBytesView))
}

extension HTTPResult {
    /// The body as a JSON object.
    func object() throws -> [String: Any] {
        guard let object = try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else {
            throw TestFailure("not a JSON object: \(text.prefix(300))")
        }
        return object
    }

    func string(_ key: String) throws -> String {
        guard let value = try object()[key] as? String else { throw TestFailure("no string \"\(key)\" in \(text.prefix(300))") }
        return value
    }

    var errorMessage: String? {
        guard let object = try? object(), let error = object["error"] as? [String: Any] else { return nil }
        return error["message"] as? String
    }
}

/// Collects log lines (message and metadata) for assertions.
final class LogSink: Sendable {
    private let lines = Mutex<[String]>([])

    var all: [String] { lines.withLock { $0 } }
    func append(_ line: String) { lines.withLock { $0.append(line) } }

    /// A logger writing here (every level).
    func logger(_ label: String = "test") -> Logger {
        var logger = Logger(label: label) { _ in SinkHandler(sink: self) }
        logger.logLevel = .trace
        return logger
    }

    struct SinkHandler: LogHandler {
        let sink: LogSink
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        var metadataProvider: Logger.MetadataProvider?

        func log(event: LogEvent) {
            var all = metadata
            for (key, value) in event.metadata ?? [:] { all[key] = value }
            sink.append("\(event.level) \(event.message) \(all)")
        }

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
    }
}

/// A registry whose writes can be made to fail, as a full disk or a broken database would.
final class FlakyStore: PATRegistryStore {
    let inner: any PATRegistryStore
    let failWrites = Atomic<Bool>(false)

    init(_ inner: any PATRegistryStore) { self.inner = inner }

    func externalChanges() -> AsyncStream<Void> { inner.externalChanges() }
    func close() async { await inner.close() }

    static let internalDetail = "/srv/secret-volume/pat.db: disk I/O error (SQLITE_IOERR)"

    func read<T: Sendable>(_ body: @Sendable (any RegistryTransaction) async throws -> T) async throws -> T {
        try await inner.read(body)
    }

    func write<T: Sendable>(_ body: @Sendable (any RegistryTransaction) async throws -> T) async throws -> T {
        if failWrites.load(ordering: .relaxed) { throw RegistryError(.database, FlakyStore.internalDetail) }
        return try await inner.write(body)
    }
}

/// A PATKit home with a signing key, a registry and an admin PAT issued as `pat create
/// --owner admin --name bootstrap --scope pats:admin --catalog management` would.
struct ManagementHome {
    let dir: TempDir
    let store: FlakyStore
    /// Where the registry is: HOME/pat.db, or a fresh PostgreSQL database.
    let database: RegistryDatabase
    /// The management service as the CLI uses it (no publishing: the server publishes).
    let service: PATManagement
    let adminToken: String

    /// - Parameter database: for PostgreSQL, the database to use (default: a new one).
    init(_ backend: RegistryBackend = .sqlite, database given: PostgresConfiguration? = nil) async throws {
        dir = try TempDir("patmgmt")
        try dir.home.keyStore.generate()
        switch backend {
        case .sqlite:
            store = FlakyStore(try SQLiteRegistry(home: dir.home))
            database = .sqlite(path: SQLiteRegistry.defaultPath(in: dir.home))
        case .postgres:
            let configuration: PostgresConfiguration
            if let given { configuration = given } else { configuration = try await PostgresTestDatabase.create() }
            store = FlakyStore(try await PostgresRegistry.open(configuration, logger: quietRegistryLogger))
            database = .postgres(configuration)
        }
        service = PATManagement(store: store, keyStore: dir.home.keyStore,
                                policy: ManagementPolicy(catalog: try dir.home.catalog(named: "management")))
        adminToken = try await service.create(CreateRequest(owner: "admin", name: "bootstrap", scopes: [try Scope(parsing: "pats:admin")],
                                                            expiry: .after(TimeSpan(seconds: 86_400))), by: .localOperator).token ?? ""
        // The bootstrap's own event is not what the tests are about: start with an empty outbox.
        try await store.write { tx in try await tx.removeEvents(try await tx.events(after: 0, limit: 100).map(\.id)) }
    }

    var home: PATHome { dir.home }

    /// Another store on the same database (another process, another issuer node).
    func reopen() async throws -> any PATRegistryStore {
        try await database.open(home: home, logger: quietRegistryLogger)
    }

    /// `--database URL` for `pat` (nothing for HOME/pat.db).
    var databaseArguments: [String] {
        if case .postgres(let configuration) = database { return ["--database", configuration.testURL] }
        return []
    }

    /// A PAT of `owner` made directly in the registry (as the CLI would), returned with its token.
    func issue(owner: String, name: String, scopes: [String], seconds: Int64 = 86_400, domain: String? = nil) async throws -> IssuedPAT {
        try await service.create(CreateRequest(owner: owner, name: name, scopes: try scopes.map { try Scope(parsing: $0) },
                                               expiry: .after(TimeSpan(seconds: seconds)), domain: domain), by: .localOperator)
    }

    /// A server configuration with the management API on this home (distribution mode).
    func configuration(logger: Logger = quietLogger("patkit.management"),
                       _ configure: (inout ManagementConfiguration) -> Void = { _ in }) throws -> (PATServerConfiguration, ManagementServer) {
        var settings = ManagementConfiguration()
        settings.refreshInterval = .seconds(1)
        settings.rateLimit = nil
        // The bootstrap PAT expires within a day: tests about change events turn the expiry
        // notices off; the expiry tests turn them on.
        settings.expiryLeadTimes = []
        configure(&settings)
        let management = try ManagementServer(home: home, configuration: settings, store: store, logger: logger)
        var configuration = PATServerConfiguration(home: home)
        management.install(into: &configuration)
        return (configuration, management)
    }
}

/// Runs a management server for `body` with the base URL of the API.
func withManagementServer<T: Sendable>(_ home: ManagementHome, logger: Logger = quietLogger("patkit.management"),
                                       _ configure: (inout ManagementConfiguration) -> Void = { _ in },
                                       _ body: (String, ManagementServer) async throws -> T) async throws -> T {
    let (configuration, management) = try home.configuration(logger: logger, configure)
    return try await withPATServer(configuration) { port, _ in
        try await body("http://127.0.0.1:\(port)", management)
    }
}

/// A validator fed from what `HOME/published` holds right now (as a gate or an edge would be).
func publishedValidator(_ home: PATHome) throws -> Validator {
    let anchors = try #require(try home.keyStore.trustAnchors(), "the first publish creates the home's trust anchor")
    let keySet = try SignedKeySet(verifying: try SecureFile.read(home.publishedKeysPath, maxBytes: SignedKeySet.maxDocumentBytes),
                                  anchors: anchors)
    let list = try RevocationList(verifying: try SecureFile.read(home.publishedRevocationsPath, maxBytes: RevocationList.defaultMaxBytes),
                                  keys: keySet.keys)
    let validator = Validator(keys: KeySet())
    try validator.install(keySet, revocations: list)
    return validator
}

/// One request a webhook receiver got.
struct ReceivedHook: Sendable {
    let headers: [String: String]
    let body: [UInt8]
    let at: ContinuousClock.Instant
    /// The request's path and query.
    let uri: String

    var event: String? { headers["x-pat-event"] }
    var actor: [String: Any]? { (try? object())?["actor"] as? [String: Any] }
    var delivery: String? { headers["x-pat-delivery"] }
    var signature: String? { headers["x-pat-signature"] }

    func object() throws -> [String: Any] {
        guard let object = try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else {
            throw TestFailure("webhook body is not a JSON object")
        }
        return object
    }
}

/// A local webhook endpoint: records every POST /hook and answers with the next scripted
/// status (200 once the script is used up).
final class HookReceiver: Sendable {
    private let received = Mutex<[ReceivedHook]>([])
    private let script: Mutex<[Int]>
    private let arrivals = AwaitableCounter()

    init(failing statuses: [Int] = []) { script = Mutex(statuses) }

    var hooks: [ReceivedHook] { received.withLock { $0 } }

    /// Waits (bounded; the test fails if they never come) until `count` requests have arrived.
    func waitForHooks(_ count: Int, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        try await awaitEvent("\(count) webhook requests arrive (got \(hooks.count))", sourceLocation: sourceLocation) { [arrivals] in
            try await arrivals.wait(atLeast: UInt64(count))
        }
    }

    func makeApp(onRunning: @escaping @Sendable (Int) async -> Void) -> some ApplicationProtocol {
        let router = Router()
        router.post("/hook") { [self] request, _ -> Response in
            let body = try await request.body.collect(upTo: 1024 * 1024)
            var headers: [String: String] = [:]
            for field in request.headers { headers[field.name.canonicalName] = field.value }
            received.withLock { $0.append(ReceivedHook(headers: headers, body: Array(body.readableBytesView), at: .now,
                                                       uri: request.uri.description)) }
            arrivals.increment()
            let status = script.withLock { $0.isEmpty ? 200 : $0.removeFirst() }
            return Response(status: HTTPResponse.Status(code: status))
        }
        return Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                           onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? 0) },
                           logger: quietLogger("receiver"))
    }
}

/// A TCP endpoint that accepts connections (the kernel completes the handshake) and never
/// answers: a hanging webhook receiver.
final class SilentListener: @unchecked Sendable {
    let fd: Int32
    let port: Int

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket() failed") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 64) == 0 else {
            close(fd)
            throw TestFailure("bind() or listen() failed")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else {
            close(fd)
            throw TestFailure("getsockname() failed")
        }
        self.fd = fd
        self.port = Int(UInt16(bigEndian: address.sin_port))
    }

    deinit { close(fd) }
}

/// A webhook configuration for tests: every URL with its own secret (default: random ones).
func webhookConfiguration(_ urls: [String], secrets: [[UInt8]]? = nil, maxAttempts: Int = 6, initialBackoff: Duration = .seconds(1),
                          maxBackoff: Duration = .seconds(300), timeout: Duration = .seconds(10), queueCapacity: Int = 1000,
                          claimLease: Duration = .seconds(60)) throws -> WebhookConfiguration {
    let secrets = secrets ?? urls.map { _ in Digest.randomBytes(32) }
    return try WebhookConfiguration(endpoints: zip(urls, secrets).map { try WebhookEndpoint(url: $0, secret: $1) },
                                    maxAttempts: maxAttempts, initialBackoff: initialBackoff, maxBackoff: maxBackoff, timeout: timeout,
                                    queueCapacity: queueCapacity, claimLease: claimLease)
}

/// Lowercase hex.
func hexString(_ bytes: [UInt8]) -> String {
    bytes.map { String(format: "%02x", $0) }.joined()
}

extension IssuedPAT {
    /// The token (tests only create PATs that get one).
    var bearer: String { token ?? "(no token)" }
}
