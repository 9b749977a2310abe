import Foundation
import PATRegistry
import Synchronization
import Testing
import PATTestSupport

/// A fresh PATKit home in a temporary folder, with one signing key, removed afterwards.
final class TestHome {
    let home: PATHome
    let registry: SQLiteRegistry
    let keyStore: KeyStore

    init() throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("patregistry-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: base, withIntermediateDirectories: true)
        home = PATHome(path: base.path)
        keyStore = home.keyStore
        try keyStore.generate(now: TestClock.start)
        registry = try SQLiteRegistry(home: home)
    }

    deinit { try? FileManager.default.removeItem(atPath: home.path) }

    func lifecycle(at clock: TestClock, maxLifetime: TimeSpan = Lifecycle.defaultMaxLifetime) -> Lifecycle {
        Lifecycle(store: registry, keyStore: keyStore, catalog: .magistrala, maxLifetime: maxLifetime,
                  clock: { clock.now })
    }

    func publisher(at clock: TestClock, directory: String? = nil) -> Publisher {
        Publisher(store: registry, keyStore: keyStore, outputDirectory: directory ?? home.publishedDirectory,
                  clock: { clock.now })
    }

    /// A validator holding the published key set and list, at the clock's time.
    func validator(at clock: TestClock, directory: String? = nil) throws -> Validator {
        let dir = directory ?? home.publishedDirectory
        let anchors = try #require(try keyStore.trustAnchors(), "publishing creates the home's trust anchor")
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
final class TestClock: Sendable {
    static let start = Timestamp(seconds: 1_800_000_000) // 2027-01-15T08:00:00Z
    private let value: Mutex<Timestamp>

    init(_ start: Timestamp = TestClock.start) { value = Mutex(start) }

    var now: Timestamp { value.withLock { $0 } }
    func advance(_ seconds: Int64) { value.withLock { $0 = $0.adding(seconds: seconds) } }
}

func scopes(_ items: String...) throws -> ScopeSet { try ScopeSet(parsing: items) }

/// The rejection code of `token`, or nil when it validates.
func rejection(_ validator: Validator, _ token: String) -> PATValidationError.Code? {
    do {
        _ = try validator.validate(token)
        return nil
    } catch {
        return error.code
    }
}

/// The `pat` binary built with the tests.
