import Testing
@testable import PATKit

/// `SecureMemory.wipe` zeroes secret bytes where they are, through libsodium's sodium_memzero.
@Suite("SecureMemory")
struct SecureMemoryTests {
    @Test("wiping zeroes every byte in place and keeps the length", arguments: [1, 32, 64, 4097])
    func wipesInPlace(_ count: Int) {
        var secret = (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) | 1 }
        let storage = secret.withUnsafeBufferPointer { $0.baseAddress }
        SecureMemory.wipe(&secret)
        #expect(secret.count == count)
        #expect(secret.allSatisfy { $0 == 0 })
        #expect(secret.withUnsafeBufferPointer { $0.baseAddress } == storage, "the same storage was wiped, not a copy")
    }

    @Test("an empty buffer is fine")
    func empty() {
        var nothing: [UInt8] = []
        SecureMemory.wipe(&nothing)
        #expect(nothing.isEmpty)
    }

    @Test("a secret key's raw bytes, once exported and wiped, are gone from that buffer")
    func exportedKeyBytes() throws {
        let key = try SecretKey.fromSeed([UInt8](repeating: 9, count: 32))
        var paserk = Array(key.exportPASERK().utf8)
        #expect(paserk.starts(with: Array("k4.secret.".utf8)))
        SecureMemory.wipe(&paserk)
        #expect(paserk.allSatisfy { $0 == 0 })
        #expect(try SecretKey.fromSeed([UInt8](repeating: 9, count: 32)).publicKey == key.publicKey, "the key itself is untouched")
    }
}
