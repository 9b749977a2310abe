internal import CSodium

/// A PASERK key id, `k4.pid.` + base64url(BLAKE2b-264("k4.pid." ‖ the k4.public PASERK)).
public struct KeyID: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let rawValue: String

    static let prefix = "k4.pid."
    static let prefixBytes: [UInt8] = Array(prefix.utf8)

    /// Accepts only a well-formed `k4.pid.` string (33 bytes of strict base64url).
    public init(_ text: String) throws(PATKitError) {
        guard text.utf8.count == 51, text.hasPrefix(KeyID.prefix),
              let decoded = Sodium.base64URLDecode(text.dropFirst(KeyID.prefix.count)), decoded.count == 33 else {
            throw .invalidKey("\"\(text.prefix(64))\" is not a k4.pid key id (expected k4.pid. followed by 44 base64url characters)")
        }
        rawValue = text
    }

    init(unchecked rawValue: String) { self.rawValue = rawValue }

    public var description: String { rawValue }
    public static func < (a: KeyID, b: KeyID) -> Bool { a.rawValue < b.rawValue }
}

/// An Ed25519 public key for PASETO v4.public, serialised as PASERK `k4.public`.
public struct PublicKey: Sendable, Hashable, CustomStringConvertible {
    /// The 32 raw key bytes.
    public let bytes: [UInt8]
    /// This key's PASERK id (`k4.pid.…`).
    public let id: KeyID

    static let prefix = "k4.public."

    public init(rawBytes: [UInt8]) throws(PATKitError) {
        try Sodium.requireReady()
        guard rawBytes.count == Int(crypto_sign_PUBLICKEYBYTES) else {
            throw .invalidKey("an Ed25519 public key has 32 bytes, not \(rawBytes.count)")
        }
        bytes = rawBytes
        let paserk = PublicKey.prefix + Sodium.base64URLEncode(rawBytes)
        let digest = Sodium.blake2b(Array((KeyID.prefix + paserk).utf8), length: 33)
        id = KeyID(unchecked: KeyID.prefix + Sodium.base64URLEncode(digest))
    }

    /// Parses a PASERK `k4.public.…` string.
    public init(paserk text: String) throws(PATKitError) {
        let trimmed = text.trimmingASCIIWhitespace()
        guard trimmed.hasPrefix(PublicKey.prefix) else {
            throw .invalidKey("expected a PASERK starting with \"k4.public.\" (found \"\(PASERKType.describe(trimmed))\")")
        }
        guard trimmed.utf8.count == PublicKey.prefix.utf8.count + 43,
              let raw = Sodium.base64URLDecode(trimmed.dropFirst(PublicKey.prefix.count)) else {
            throw .invalidKey("k4.public key is not 43 characters of strict base64url")
        }
        try self.init(rawBytes: raw)
    }

    /// PASERK `k4.public.…`.
    public var paserk: String { PublicKey.prefix + Sodium.base64URLEncode(bytes) }
    public var description: String { paserk }
}

/// An Ed25519 secret key (64 bytes: seed ‖ public key) held in libsodium's guarded memory
/// and wiped when released. It never prints itself; `exportPASERK()` is the only way out.
public final class SecretKey: @unchecked Sendable {
    // Immutable after init; libsodium's guarded allocation, zeroed and freed in deinit.
    private let storage: UnsafeMutableRawPointer
    public let publicKey: PublicKey

    static let prefix = "k4.secret."
    static let length = Int(crypto_sign_SECRETKEYBYTES)

    /// Creates a fresh random key.
    public static func generate() throws(PATKitError) -> SecretKey {
        try Sodium.requireReady()
        guard let memory = sodium_malloc(length) else { throw .crypto("sodium_malloc failed") }
        var pk = [UInt8](repeating: 0, count: 32)
        guard crypto_sign_keypair(&pk, memory.assumingMemoryBound(to: UInt8.self)) == 0 else {
            sodium_free(memory)
            throw .crypto("crypto_sign_keypair failed")
        }
        do {
            return SecretKey(storage: memory, publicKey: try PublicKey(rawBytes: pk))
        } catch {
            sodium_free(memory)
            throw error
        }
    }

    /// Builds a key from its 32-byte seed.
    public static func fromSeed(_ seed: [UInt8]) throws(PATKitError) -> SecretKey {
        try Sodium.requireReady()
        guard seed.count == Int(crypto_sign_SEEDBYTES) else { throw .invalidKey("an Ed25519 seed has 32 bytes, not \(seed.count)") }
        guard let memory = sodium_malloc(length) else { throw .crypto("sodium_malloc failed") }
        var pk = [UInt8](repeating: 0, count: 32)
        guard crypto_sign_seed_keypair(&pk, memory.assumingMemoryBound(to: UInt8.self), seed) == 0 else {
            sodium_free(memory)
            throw .crypto("crypto_sign_seed_keypair failed")
        }
        do {
            return SecretKey(storage: memory, publicKey: try PublicKey(rawBytes: pk))
        } catch {
            sodium_free(memory)
            throw error
        }
    }

    /// Builds a key from 64 raw bytes (seed ‖ public key). The public half must match the seed.
    public static func fromRawBytes(_ raw: UnsafeRawBufferPointer) throws(PATKitError) -> SecretKey {
        guard raw.count == length else {
            throw .invalidKey("an Ed25519 secret key has 64 bytes (seed ‖ public key), not \(raw.count)")
        }
        var seed = [UInt8](raw[0..<32])
        defer { seed.withUnsafeMutableBytes { Sodium.zero($0) } }
        let key = try fromSeed(seed)
        let matches = key.publicKey.bytes.withUnsafeBytes { pk in
            Sodium.constantTimeEqual(UnsafeRawBufferPointer(rebasing: raw[32..<64]), pk)
        }
        guard matches else {
            throw .invalidKey("the public half of the k4.secret key does not match its seed")
        }
        return key
    }

    /// Parses a PASERK `k4.secret.…` string.
    public static func fromPASERK(_ text: String) throws(PATKitError) -> SecretKey {
        let trimmed = text.trimmingASCIIWhitespace()
        guard trimmed.hasPrefix(prefix) else {
            throw .invalidKey("expected a PASERK starting with \"k4.secret.\" (found \"\(PASERKType.describe(trimmed))\")")
        }
        guard trimmed.utf8.count == prefix.utf8.count + 86,
              var raw = Sodium.base64URLDecode(trimmed.dropFirst(prefix.count)) else {
            throw .invalidKey("k4.secret key is not 86 characters of strict base64url")
        }
        defer { raw.withUnsafeMutableBytes { Sodium.zero($0) } }
        let result = raw.withUnsafeBytes { buffer in
            Result { () throws(PATKitError) -> SecretKey in try fromRawBytes(buffer) }
        }
        return try result.get()
    }

    private init(storage: UnsafeMutableRawPointer, publicKey: PublicKey) {
        self.storage = storage
        self.publicKey = publicKey
        sodium_mprotect_readonly(storage)
    }

    deinit { sodium_free(storage) } // sodium_free zeroes before releasing

    public var id: KeyID { publicKey.id }

    /// The PASERK `k4.secret.…` string. Callers must treat it as a secret: write it only
    /// to a 0600 file or to a user who asked to export it.
    public func exportPASERK() -> String {
        SecretKey.prefix + Sodium.base64URLEncode(UnsafeRawBufferPointer(start: storage, count: SecretKey.length))
    }

    /// Ed25519 detached signature of `message`.
    func sign(_ message: UnsafeRawBufferPointer) -> [UInt8] {
        Sodium.signDetached(message, secretKey: UnsafePointer(storage.assumingMemoryBound(to: UInt8.self)))
    }
}

extension SecretKey: CustomStringConvertible {
    /// Never the key material.
    public var description: String { "SecretKey(\(id))" }
}

enum PASERKType {
    /// PASERK's versions and types: the only words `describe` ever echoes.
    static let versions: Set<Substring> = ["k1", "k2", "k3", "k4"]
    static let types: Set<Substring> = ["local", "public", "secret", "lid", "pid", "sid", "local-wrap", "secret-wrap",
                                        "local-pw", "secret-pw", "seal"]

    /// The PASERK header of `text` (e.g. `k3.public`), for error messages that must not echo key
    /// material: only a known version and type are named, never anything else the text holds (a
    /// line such as `x.SECRETSTUFF` used to be echoed up to its second dot; the fuzz target
    /// `signedkeyset` found it).
    static func describe(_ text: String) -> String {
        let parts = text.split(separator: ".", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count >= 2, versions.contains(parts[0]) else { return "not a PASERK" }
        return types.contains(parts[1]) ? "\(parts[0]).\(parts[1])" : "\(parts[0]) with an unknown type"
    }
}

extension String {
    func trimmingASCIIWhitespace() -> String {
        // By byte, not Character: "\r\n" is one Character, equal to neither "\r" nor "\n".
        let isSpace: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }
        guard let start = utf8.firstIndex(where: { !isSpace($0) }), let end = utf8.lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(decoding: utf8[start...end], as: UTF8.self)
    }
}
