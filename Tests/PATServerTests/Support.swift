import AsyncHTTPClient
import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import PATEdge
import PATHummingbird
import PATKit
import PATServer
import PATStore
import ServiceLifecycle
import Synchronization
import PATTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Keys, tokens, signed key sets and signed lists made in-process with PATKit.
struct Issuing {
    let key: SecretKey
    let issuer: Issuer
    /// The trust anchor that signs this issuer's key sets.
    let anchor: SecretKey
    /// Pins `anchor`.
    let anchors: TrustAnchors
    /// Fixed, so that re-signing the same set under the same sequence gives the same bytes.
    let created: Timestamp

    init() throws {
        key = try SecretKey.generate()
        issuer = Issuer(key: key)
        anchor = try SecretKey.generate()
        anchors = try TrustAnchors([anchor.publicKey])
        created = Timestamp.now().adding(seconds: -5)
    }

    var keySet: KeySet { KeySet(keys: [key.publicKey]) }

    /// The key set (default: this issuer's key) signed by the anchor, valid for a day.
    func signedKeys(_ keys: KeySet? = nil, sequence: UInt64 = 1, issuedAt: Timestamp? = nil,
                    nextUpdate: Timestamp? = nil, by signer: SecretKey? = nil) throws -> [UInt8] {
        let issued = issuedAt ?? created
        return try SignedKeySet.sign(keys ?? keySet, with: signer ?? anchor, sequence: sequence, issuedAt: issued,
                                     nextUpdate: nextUpdate ?? issued.adding(seconds: 86_400))
    }

    /// A token valid now for an hour.
    func token(id: String = PATClaims.newID(), subject: String = "alice", generation: UInt64 = 1,
               scopes: [String] = ["channels:publish:ch-1"], domain: String? = nil) throws -> String {
        let now = Timestamp.now()
        let claims = PATClaims(id: id, subject: subject, generation: generation, issuedAt: now.adding(seconds: -60),
                               expiresAt: now.adding(seconds: 3600), domain: domain, scopes: try ScopeSet(parsing: scopes))
        return try issuer.issue(claims)
    }

    /// A signed list: `revoked` ids have generation 1 (and below) dead.
    func list(sequence: UInt64, revoked: [String] = [], issuedAt: Timestamp = Timestamp.now().adding(seconds: -1),
              nextUpdate: Timestamp = Timestamp.now().adding(seconds: 3600)) throws -> [UInt8] {
        var builder = RevocationList.Builder()
        for id in revoked { builder.revoke(id: id, below: 2, horizon: Timestamp.now().adding(seconds: 7200)) }
        return try builder.sign(with: key, sequence: sequence, issuedAt: issuedAt, nextUpdate: nextUpdate)
    }
}

/// A temporary folder, removed when released.
final class TempDir: @unchecked Sendable {
    let path: String

    init(_ prefix: String = "patserver") throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        path = url.path
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    var home: PATHome { PATHome(path: path) }

    /// Copies the keys of `other` into this home (another node of the same issuer).
    /// Copies the keys of `other` into this home (another node of the same issuer): signing
    /// keys, the anchors file and the online anchor's folder.
    func copyKeys(from other: PATHome) throws {
        func copy(_ from: String, _ to: String) throws {
            try SecureFile.createDirectory(to, mode: 0o700)
            for name in try FileManager.default.contentsOfDirectory(atPath: from) {
                var isDirectory: ObjCBool = false
                _ = FileManager.default.fileExists(atPath: from + "/" + name, isDirectory: &isDirectory)
                if isDirectory.boolValue {
                    try copy(from + "/" + name, to + "/" + name)
                } else {
                    try SecureFile.writeAtomically(to + "/" + name, try SecureFile.read(from + "/" + name, maxBytes: 1 << 20),
                                                   mode: name.hasSuffix(".secret") ? 0o600 : 0o644)
                }
            }
        }
        // The nodes must share the anchor too, or each would create its own on first publish
        // and a gate pinning one would refuse the other's key set.
        _ = try other.keyStore.ensureAnchor()
        try copy(other.keysDirectory, home.keysDirectory)
    }

    /// Publishes a (signed) key set document and a list into HOME/published as `pat publish`
    /// does (atomic writes).
    func publish(keys: [UInt8]? = nil, list: [UInt8]? = nil) throws {
        try SecureFile.createDirectory(home.publishedDirectory)
        if let keys { try SecureFile.writeAtomically(home.publishedKeysPath, keys) }
        if let list { try SecureFile.writeAtomically(home.publishedRevocationsPath, list) }
    }

    /// Writes HOME/keys/anchors, as the issuer's keystore would: the gate's default anchors.
    func pin(_ anchors: TrustAnchors) throws {
        try SecureFile.createDirectory(home.keysDirectory, mode: 0o700)
        try SecureFile.writeAtomically(home.keyStore.anchorsPath, Array(anchors.text.utf8))
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// One HTTP exchange's result.
struct HTTPResult {
    let status: Int
    let headers: HTTPHeaders
    let body: [UInt8]

    var text: String { String(decoding: body, as: UTF8.self) }
    func header(_ name: String) -> String? { headers.first(name: name) }

    /// `{"error": {"code": …}}`'s code.
    var errorCode: String? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any],
              let error = object["error"] as? [String: Any] else { return nil }
        return error["code"] as? String
    }
}

/// A client that shows responses as sent: no decompression (the shared client inflates gzip
/// and asks for it on every request), no redirects, no cache. Lives for the whole test run.
/// Shared by every server test in the process. Its bounds are for hangs, not speed: under a
/// CPU-burning load (stress-ng plus the parallel suite) requests queued behind the default 8
/// connections per host waited past 30 s for one (`getConnectionFromPoolTimeout`, ServeNodesTests).
let rawClient: HTTPClient = {
    var configuration = HTTPClient.Configuration()
    // Idle connections are dropped well before a server's header timeout (10 s by default)
    // would close them: reusing one the server is closing fails with remoteConnectionClosed.
    configuration.connectionPool = .init(idleTimeout: .seconds(4), concurrentHTTP1ConnectionsPerHostSoftLimit: 64)
    configuration.timeout = .init(connect: .seconds(60))
    return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
}()

/// How long one test request may take, queueing for a connection included: a bound for hangs.
let requestTimeLimit: TimeAmount = .seconds(120)

/// Sends a request with `rawClient`.
func http(_ url: String, method: HTTPMethod = .GET, headers: [(String, String)] = []) async throws -> HTTPResult {
    var request = HTTPClientRequest(url: url)
    request.method = method
    for (name, value) in headers { request.headers.add(name: name, value: value) }
    let response = try await rawClient.execute(request, timeout: requestTimeLimit)
    let body = try await response.body.collect(upTo: 64 * 1024 * 1024)
    return HTTPResult(status: Int(response.status.code), headers: response.headers, body: Array(body.readableBytesView))
}

/// A logger that prints only errors: refusals the tests provoke are logged as warnings.
func quietLogger(_ label: String = "test") -> Logger {
    var logger = Logger(label: label)
    logger.logLevel = .error
    return logger
}

/// Runs `app` on a loopback port (port 0 → the kernel picks one) for the duration of `body`,
/// then shuts it down gracefully, also when `body` throws.
func withRunningServer<App: ApplicationProtocol, T: Sendable>(
    _ makeApp: (@escaping @Sendable (Int) async -> Void) throws -> App,
    _ body: (Int) async throws -> T
) async throws -> T {
    let (ports, continuation) = AsyncStream<Int>.makeStream()
    let app = try makeApp { port in continuation.yield(port) }
    let group = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: [], logger: quietLogger()))
    return try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask {
            defer { continuation.finish() } // a server that fails to start ends the wait for its port
            try await group.run()
        }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else { throw TestFailure("the server did not start") }
        do {
            let result = try await body(port)
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
            return result
        } catch {
            await group.triggerGracefulShutdown()
            try? await tasks.waitForAll()
            throw error
        }
    }
}

/// Runs `pat serve`'s application for `configuration` on a free loopback port.
func withPATServer<T: Sendable>(_ configuration: PATServerConfiguration,
                                _ body: (Int, PATRefresher?) async throws -> T) async throws -> T {
    var configuration = configuration
    configuration.port = 0
    let refresherBox = Mutex<PATRefresher?>(nil)
    return try await withRunningServer({ onRunning in
        let (app, refresher) = PATServer.makeApplication(configuration, logger: quietLogger("patkit.serve"), onServerRunning: onRunning)
        refresherBox.withLock { $0 = refresher }
        return app
    }) { port in
        try await body(port, refresherBox.withLock { $0 })
    }
}

/// Runs `pat ARGS --listen 127.0.0.1:0` for `body` with the port it bound (read from its own
/// log line, so no port race), then sends it `signal` (default SIGTERM; nil when `body` stopped it). The child must exit
/// within the `ChildProcess` bounds, else it is killed and the test fails.
func withPatServe<T: Sendable>(_ arguments: [String], environment: [String: String]? = nil, stopWith signal: Int32? = SIGTERM,
                               timeLimit: Duration = ChildProcess.defaultTimeLimit,
                               sourceLocation: SourceLocation = #_sourceLocation,
                               _ body: @escaping @Sendable (Int, RunningChild) async throws -> T) async throws -> (T, ProcessResult) {
    let binary = try await Prerequisite.patBinary.require(sourceLocation: sourceLocation)
    let environment = environment.map { ProcessInfo.processInfo.environment.merging($0) { $1 } }
    return try await ChildProcess.withRunning(binary, arguments + ["--listen", "127.0.0.1:0"], environment: environment,
                                              timeLimit: timeLimit, sourceLocation: sourceLocation) { child in
        let marker = "started and listening on 127.0.0.1:"
        let line = try await awaitEvent("pat serve logs the port it listens on", sourceLocation: sourceLocation) {
            await child.stderrLine(containing: marker)
        }
        guard let line, let range = line.range(of: marker), let port = Int(line[range.upperBound...].prefix { $0.isNumber }) else {
            throw TestFailure("pat serve ended before listening:\n\(child.stderr.suffix(3000))")
        }
        let value = try await body(port, child)
        if let signal { try child.signal(signal) } // nil: the body stopped it (e.g. SIGKILL)
        return value
    }
}

/// The validation code `body` failed with; nil when it succeeded or threw something else.
func validationCode(_ body: () throws -> Any) -> PATValidationError.Code? {
    do {
        _ = try body()
        return nil
    } catch let error as PATValidationError {
        return error.code
    } catch {
        return nil
    }
}
