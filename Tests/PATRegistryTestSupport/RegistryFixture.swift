import Foundation
import PATRegistry
import PATTestSupport
import Synchronization

// Fixtures shared by the registry and management-service tests.

/// A fresh PATKit home in a temporary folder, with one signing key and an SQLite registry,
/// removed afterwards.
package final class TestHome {
    package let home: PATHome
    package let registry: SQLiteRegistry
    package let keyStore: KeyStore

    package init() throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("patregistry-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: base, withIntermediateDirectories: true)
        home = PATHome(path: base.path)
        keyStore = home.keyStore
        try keyStore.generate(now: TestClock.start)
        registry = try SQLiteRegistry(home: home)
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

