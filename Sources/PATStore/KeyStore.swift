/// The issuer's keystore: a folder of PASERK files and a manifest.
///
/// - `k4.pid.<id>.secret`: the `k4.secret` PASERK, mode 0600 (loading refuses anything looser);
/// - `k4.pid.<id>.public`: the `k4.public` PASERK;
/// - `keyset.json`: every key's id, public key, status (active/retired) and creation time,
///   oldest first. Its newest active key signs new tokens.
///
/// Changes take an exclusive lock on `.lock`, so concurrent CLI runs never lose a key.
public struct KeyStore: Sendable {
    public let directory: String

    public init(directory: String) { self.directory = directory }

    public var manifestPath: String { directory + "/keyset.json" }
    var lock: FileLock { FileLock(path: directory + "/.lock") }

    public func secretKeyPath(_ id: KeyID) -> String { "\(directory)/\(id.rawValue).secret" }
    public func publicKeyPath(_ id: KeyID) -> String { "\(directory)/\(id.rawValue).public" }

    /// The key set as recorded in the manifest (empty when there is none yet).
    public func keySet() throws(PATKitError) -> KeySet {
        guard SecureFile.exists(manifestPath) else { return KeySet() }
        return try KeySet(json: SecureFile.read(manifestPath, maxBytes: KeySet.maxDocumentBytes))
    }

    /// Creates a new key, makes it the newest active key, and returns it.
    @discardableResult
    public func generate(now: Timestamp = .now()) throws(PATKitError) -> SecretKey {
        try SecureFile.createDirectory(directory, mode: 0o700)
        let key = try SecretKey.generate()
        try locked { () throws(PATKitError) in
            var set = try keySet()
            var secret = Array(key.exportPASERK().utf8) + [0x0A]
            defer { SecureMemory.wipe(&secret) }
            try SecureFile.writeAtomically(secretKeyPath(key.id), secret, mode: 0o600)
            try SecureFile.writeAtomically(publicKeyPath(key.id), Array((key.publicKey.paserk + "\n").utf8), mode: 0o644)
            set.add(key.publicKey, created: now)
            try SecureFile.writeAtomically(manifestPath, set.encoded(), mode: 0o644)
        }
        return key
    }

    /// Loads the secret key `id` (refusing a file group or others can read).
    public func secretKey(_ id: KeyID) throws(PATKitError) -> SecretKey {
        let path = secretKeyPath(id)
        guard SecureFile.exists(path) else {
            throw .io(path: path, reason: "no secret key for \(id) in this keystore")
        }
        var bytes = try SecureFile.read(path, maxBytes: 4096, requirePrivate: true)
        defer { SecureMemory.wipe(&bytes) }
        let key = try SecretKey.fromPASERK(String(decoding: bytes, as: UTF8.self))
        guard key.id == id else { throw .invalidKey("\(path) holds key \(key.id), not \(id)") }
        return key
    }

    /// The key new tokens are signed with: the newest active key.
    public func signingKey() throws(PATKitError) -> SecretKey {
        guard let newest = try keySet().newest else {
            throw .invalidArgument("no active signing key in \(directory): run `pat keys generate` first")
        }
        return try secretKey(newest.id)
    }

    /// Retires `id`: it stays listed as retired and verifies nothing once published.
    public func retire(_ id: KeyID) throws(PATKitError) {
        try locked { () throws(PATKitError) in
            var set = try keySet()
            if set.verificationKey(for: id) != nil, set.activeKeys.count == 1 {
                throw PATKitError.invalidArgument("refusing to retire \(id): it is the only active key, so nothing could sign or verify; run `pat keys rotate` first")
            }
            try set.retire(id)
            try SecureFile.writeAtomically(manifestPath, set.encoded(), mode: 0o644)
        }
    }

    /// Whether a secret key file for `id` exists here.
    public func hasSecret(_ id: KeyID) -> Bool { SecureFile.exists(secretKeyPath(id)) }

    private func locked(_ body: () throws(PATKitError) -> Void) throws(PATKitError) {
        try SecureFile.createDirectory(directory, mode: 0o700)
        do {
            try lock.withLock { try body() }
        } catch let error as PATKitError {
            throw error
        } catch {
            throw .io(path: directory, reason: "\(error)")
        }
    }
}
