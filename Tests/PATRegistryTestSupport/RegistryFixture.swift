import Foundation
import Logging
import PATRegistry
import PATRegistryPostgres
import PATTestSupport
import Synchronization
import Testing

// Fixtures shared by the registry and management-service tests.

/// The registry back ends every store and service test runs against: `@Test(arguments:
/// RegistryBackend.allCases)`. PostgreSQL needs `$PATKIT_POSTGRES_URL` (`Prerequisite.postgresServer`:
/// a failure in CI, a skip elsewhere).
package enum RegistryBackend: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite, postgres

    package var testDescription: String { rawValue }
}

/// A fresh PATKit home in a temporary folder, with one signing key and a registry (SQLite in
/// the home, or a fresh PostgreSQL database), removed afterwards.
package final class TestHome: @unchecked Sendable {
    package let home: PATHome
    package let registry: any PATRegistryStore
    package let keyStore: KeyStore
    package let backend: RegistryBackend
    /// Where the registry is (`--database` for the CLI).
    package let database: RegistryDatabase

    /// An SQLite home.
    package convenience init() throws {
        let home = try TestHome.makeHome()
        try self.init(home: home, backend: .sqlite, database: .sqlite(path: SQLiteRegistry.defaultPath(in: home)),
                      registry: SQLiteRegistry(home: home))
    }

    private init(home: PATHome, backend: RegistryBackend, database: RegistryDatabase, registry: any PATRegistryStore) throws {
        self.home = home
        self.keyStore = home.keyStore
        self.backend = backend
        self.database = database
        self.registry = registry
    }

    /// A home whose registry is `backend`.
    package static func make(_ backend: RegistryBackend, sourceLocation: SourceLocation = #_sourceLocation) async throws -> TestHome {
        switch backend {
        case .sqlite:
            return try TestHome()
        case .postgres:
            let configuration = try await PostgresTestDatabase.create(sourceLocation: sourceLocation)
            let home = try makeHome()
            return try TestHome(home: home, backend: .postgres, database: .postgres(configuration),
                                registry: try await PostgresRegistry.open(configuration, logger: quietRegistryLogger))
        }
    }

    private static func makeHome() throws -> PATHome {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("patregistry-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: base, withIntermediateDirectories: true)
        let home = PATHome(path: base.path)
        try home.keyStore.generate(now: TestClock.start)
        return home
    }

    /// `--database URL` for `pat` (nothing for the home's SQLite file).
    package var databaseArguments: [String] {
        switch database {
        case .sqlite: return []
        case .postgres(let configuration): return ["--database", configuration.testURL]
        }
    }

    /// Another store on the same database: another connection, as another process or another
    /// issuer node would have.
    package func reopen() async throws -> any PATRegistryStore {
        switch database {
        case .sqlite(let path): return try SQLiteRegistry(path: path)
        case .postgres(let configuration): return try await PostgresRegistry.open(configuration, logger: quietRegistryLogger)
        }
    }

    /// Every byte the registry holds, for "never stored" checks: SQLite's files, or PostgreSQL's
    /// tables as text.
    package func storedBytes() async throws -> [UInt8] {
        switch database {
        case .sqlite(let path):
            var bytes: [UInt8] = []
            for suffix in ["", "-wal", "-shm"] {
                if let data = FileManager.default.contents(atPath: path + suffix) { bytes += data }
            }
            return bytes
        case .postgres(let configuration):
            var bytes: [UInt8] = []
            for table in ["pats", "tombstones", "owner_revocations", "meta", "outbox"] {
                for row in try await PostgresTestDatabase.query(configuration, "SELECT t::text FROM patkit.\(table) t") {
                    bytes += Array((row ?? "").utf8)
                }
            }
            for row in try await PostgresTestDatabase.query(configuration, "SELECT convert_from(payload, 'UTF8') FROM patkit.outbox") {
                bytes += Array((row ?? "").utf8)
            }
            return bytes
        }
    }

    deinit { try? FileManager.default.removeItem(atPath: home.path) }

    package func publisher(at clock: TestClock, directory: String? = nil) -> Publisher {
        Publisher(store: registry, keyStore: keyStore, outputDirectory: directory ?? home.publishedDirectory,
                  clock: { clock.now })
    }

    /// A validator holding the published key set and list, at the clock's time.
    package func validator(at clock: TestClock, directory: String? = nil) throws -> Validator {
        let dir = directory ?? home.publishedDirectory
        guard let anchors = try keyStore.trustAnchors() else {
            throw PATKitError.invalidArgument("no trust anchor in \(keyStore.anchorsPath): publishing creates it")
        }
        let keySet = try SignedKeySet(verifying: SecureFile.read(dir + "/keys.json", maxBytes: SignedKeySet.maxDocumentBytes),
                                      anchors: anchors)
        let list = try RevocationList(verifying: SecureFile.read(dir + "/revocations.bin", maxBytes: RevocationList.defaultMaxBytes),
                                      keys: keySet.keys)
        let validator = Validator(keys: KeySet(), clock: { clock.now })
        try validator.install(keySet, revocations: list)
        return validator
    }
}

/// A settable clock shared with the code under test.
package final class TestClock: Sendable {
    package static let start = Timestamp(seconds: 1_800_000_000) // 2027-01-15T08:00:00Z
    private let value: Mutex<Timestamp>

    package init(_ start: Timestamp = TestClock.start) { value = Mutex(start) }

    package var now: Timestamp { value.withLock { $0 } }
    package func advance(_ seconds: Int64) { value.withLock { $0 = $0.adding(seconds: seconds) } }
}

package func scopes(_ items: String...) throws -> ScopeSet { try ScopeSet(parsing: items) }

/// The rejection code of `token`, or nil when it validates.
package func rejection(_ validator: Validator, _ token: String) -> PATValidationError.Code? {
    do {
        _ = try validator.validate(token)
        return nil
    } catch {
        return error.code
    }
}


/// The PostgreSQL store's own log lines (migrations, re-connections) stay out of test output.
package let quietRegistryLogger: Logger = {
    var logger = Logger(label: "patkit.registry")
    logger.logLevel = .error
    return logger
}()

extension PostgresConfiguration {
    /// The URL with its password (tests only: never print it elsewhere).
    package var testURL: String {
        let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-._~"))
        let user = username.addingPercentEncoding(withAllowedCharacters: allowed) ?? username
        let secret = password.map { ":" + ($0.addingPercentEncoding(withAllowedCharacters: allowed) ?? $0) } ?? ""
        return "postgres://\(user)\(secret)@\(host):\(port)/\(database)?sslmode=disable"
    }
}
