import Foundation
import PATRegistry
import PATRegistryTestSupport
import Testing

/// Files and sequence numbers on the issuer (security review L5 and the file-mode note).
@Suite("publishing: files and sequences")
struct PublishHardeningTests {
    @Test("a lock file planted as a symbolic link is refused, and nothing is created through it (L5)")
    func lockSymlinks() async throws {
        let t = try TestHome()
        let target = t.home.path + "/created-by-lock"
        try FileManager.default.createDirectory(atPath: t.home.publishedDirectory, withIntermediateDirectories: true)
        #expect(symlink(target, t.home.publishedDirectory + "/.lock") == 0)
        await #expect { try await t.publisher(at: TestClock()).publish() } throws: { "\($0)".contains("symbolic link") }
        #expect(!FileManager.default.fileExists(atPath: target), "the lock did not create the link's target")

        // The keystore's lock too.
        let keysTarget = t.home.path + "/created-by-keys-lock"
        try? FileManager.default.removeItem(atPath: t.home.keysDirectory + "/.lock") // left by the key generated at set-up
        #expect(symlink(keysTarget, t.home.keysDirectory + "/.lock") == 0)
        #expect(throws: PATKitError.self) { try t.keyStore.generate() }
        #expect(!FileManager.default.fileExists(atPath: keysTarget))

        // A lock path that is a directory (not a regular file) is refused as well.
        try FileManager.default.removeItem(atPath: t.home.publishedDirectory + "/.lock")
        try FileManager.default.createDirectory(atPath: t.home.publishedDirectory + "/.lock", withIntermediateDirectories: false)
        await #expect(throws: (any Error).self) { try await t.publisher(at: TestClock()).publish() }
    }

    @Test("the next list sequence errs clearly at 2^53 − 1 instead of overflowing (L5)")
    func sequenceBound() async throws {
        let t = try TestHome()
        let clock = TestClock()
        try await t.registry.write { tx in try await tx.setPublishSequence(SignedDocument.maxSequence - 1) }
        let last = try await t.publisher(at: clock).publish()
        #expect(last.sequence == SignedDocument.maxSequence)
        await #expect { try await t.publisher(at: clock).publish() } throws: { "\($0)".contains("2^53 − 1") }
        let stillThere = try SecureFile.read(t.home.publishedRevocationsPath, maxBytes: RevocationList.defaultMaxBytes)
        #expect(stillThere == last.bytes, "the last good list stays published")
    }

    @Test("a planted list header is never trusted: no crash, no wedge (L5)", arguments: [UInt64.max, UInt64(1) << 63, SignedDocument.maxSequence + 1])
    func plantedHeader(sequence: UInt64) async throws {
        let t = try TestHome()
        let clock = TestClock()
        let real = try await t.publisher(at: clock).publish()
        #expect(real.sequence == 1)
        // An attacker with write access to published/ plants a list header with a huge sequence
        // (signature garbage: they cannot sign).
        var planted = Array(real.bytes)
        let offset = 8 + 1 + Int(planted[8])
        withUnsafeBytes(of: sequence.littleEndian) { for i in 0..<8 { planted[offset + i] = $0[i] } }
        try SecureFile.writeAtomically(t.home.publishedRevocationsPath, planted)
        #expect(RevocationList.UnverifiedHeader(planted)?.sequence == sequence)

        for expected in UInt64(2)...3 {
            let next = try await t.publisher(at: clock).publish()
            #expect(next.sequence == expected, "the registry's sequence continues; the planted one is ignored")
        }
    }

    @Test("pat.db is 0600 and published/ 0700 even when the home already exists")
    func modes() async throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("patmodes-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: base) }
        #expect(mkdir(base, 0o755) == 0)
        let home = PATHome(path: base)
        try home.keyStore.generate()
        let registry = try SQLiteRegistry(home: home)
        _ = try await Publisher(store: registry, keyStore: home.keyStore, outputDirectory: home.publishedDirectory).publish()
        func mode(_ path: String) throws -> Int {
            try #require(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int) & 0o777
        }
        #expect(try mode(SQLiteRegistry.defaultPath(in: home)) == 0o600)
        #expect(try mode(home.publishedDirectory) == 0o700)
        for suffix in ["-wal", "-shm"] where FileManager.default.fileExists(atPath: SQLiteRegistry.defaultPath(in: home) + suffix) {
            #expect(try mode(SQLiteRegistry.defaultPath(in: home) + suffix) & 0o077 == 0, "\(suffix) follows the database's mode")
        }
    }
}
