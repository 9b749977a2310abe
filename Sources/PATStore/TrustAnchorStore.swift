/// The issuer's trust anchors: the keys that sign the published key set, which edges pin.
///
/// - `HOME/keys/anchors`: every anchor's `k4.public` line, in order of creation — the file
///   `pat keys export --anchors` prints and edges pin (`--trust-anchor FILE`);
/// - `HOME/keys/anchor/k4.pid.<id>.secret` (0600, folder 0700): an *online* anchor, which lets
///   `pat publish` sign the key set itself. An *offline* anchor's secret lives elsewhere (a
///   file `pat keys anchor generate --out FILE` wrote); `pat keys sign-set --anchor-key FILE`
///   signs with it.
///
/// The first `pat keys generate` (or `pat publish`) of a home without anchors creates an online
/// one, so a fresh home publishes a signed key set without extra steps.
extension KeyStore {
    public var anchorsPath: String { directory + "/anchors" }
    public var onlineAnchorDirectory: String { directory + "/anchor" }

    func onlineAnchorPath(_ id: KeyID) -> String { "\(onlineAnchorDirectory)/\(id.rawValue).secret" }

    /// The anchors recorded for this home; nil when there are none yet.
    public func trustAnchors() throws(PATKitError) -> TrustAnchors? {
        guard SecureFile.exists(anchorsPath) else { return nil }
        return try TrustAnchors(contentsOfFile: anchorsPath)
    }

    /// The newest recorded anchor whose secret is kept online in this home, if any.
    public func onlineAnchor() throws(PATKitError) -> SecretKey? {
        guard let anchors = try trustAnchors() else { return nil }
        for key in anchors.keys.reversed() where SecureFile.exists(onlineAnchorPath(key.id)) {
            return try loadSecret(onlineAnchorPath(key.id), expected: key.id)
        }
        return nil
    }

    /// Creates a new anchor and records its public key in `anchors`. With `offlinePath`, the
    /// secret is written there (a new file, 0600) and not kept in the home: move it offline.
    @discardableResult
    public func generateAnchor(offlinePath: String? = nil) throws(PATKitError) -> SecretKey {
        let key = try SecretKey.generate()
        var secret = Array(key.exportPASERK().utf8) + [0x0A]
        defer { SecureMemory.wipe(&secret) }
        if let offlinePath {
            guard !SecureFile.exists(offlinePath) else {
                throw .io(path: offlinePath, reason: "already exists; choose a new file for the anchor's secret key")
            }
            try SecureFile.writeAtomically(offlinePath, secret, mode: 0o600)
        }
        try lockedAnchors { () throws(PATKitError) in
            if offlinePath == nil {
                try SecureFile.createDirectory(onlineAnchorDirectory, mode: 0o700)
                try SecureFile.writeAtomically(onlineAnchorPath(key.id), secret, mode: 0o600)
            }
            let held = try trustAnchors()?.keys ?? []
            let anchors = try TrustAnchors(held + [key.publicKey])
            try SecureFile.writeAtomically(anchorsPath, Array(anchors.text.utf8), mode: 0o644)
        }
        return key
    }

    /// Creates an online anchor when the home has none at all. Returns the new anchor's id.
    @discardableResult
    public func ensureAnchor() throws(PATKitError) -> KeyID? {
        guard !SecureFile.exists(anchorsPath) else { return nil }
        return try generateAnchor().id
    }

    /// Loads an anchor's secret key from a file (mode 0600 required) and checks that it is one
    /// of the home's recorded anchors: a key set signed by anything else would be refused.
    public func anchorSecret(file path: String) throws(PATKitError) -> SecretKey {
        let key = try loadSecret(path, expected: nil)
        guard let anchors = try trustAnchors(), anchors.key(for: key.id) != nil else {
            throw .invalidArgument("\(path) holds key \(key.id), which is not a trust anchor of this home (\(anchorsPath)); "
                                   + "edges would refuse what it signs. `pat keys export --anchors` lists the anchors")
        }
        return key
    }

    private func loadSecret(_ path: String, expected: KeyID?) throws(PATKitError) -> SecretKey {
        var bytes = try SecureFile.read(path, maxBytes: 4096, requirePrivate: true)
        defer { SecureMemory.wipe(&bytes) }
        let key = try SecretKey.fromPASERK(String(decoding: bytes, as: UTF8.self))
        if let expected, key.id != expected { throw .invalidKey("\(path) holds key \(key.id), not \(expected)") }
        return key
    }

    private func lockedAnchors(_ body: () throws(PATKitError) -> Void) throws(PATKitError) {
        try SecureFile.createDirectory(directory, mode: 0o700)
        do {
            try FileLock(path: directory + "/.anchors.lock").withLock { try body() }
        } catch let error as PATKitError {
            throw error
        } catch {
            throw .io(path: directory, reason: "\(error)")
        }
    }

    // MARK: the published key set

    /// Signs this keystore's key set with `anchor`. The sequence is above that of `previous`
    /// (the key set published so far, when it verifies with the home's anchors) and at least
    /// the issue time in Unix seconds, so it keeps increasing even if the published file is lost.
    public func signKeySet(with anchor: SecretKey, previous: [UInt8]?, now: Timestamp,
                           validity: TimeSpan) throws(PATKitError) -> SignedKeySet {
        guard validity.seconds > 0 else { throw .invalidArgument("the key set's validity must be positive") }
        let keys = try keySet()
        guard !keys.activeKeys.isEmpty else {
            throw .invalidArgument("no active key in \(directory) to publish: run `pat keys generate` first")
        }
        guard let anchors = try trustAnchors(), anchors.key(for: anchor.id) != nil else {
            throw .invalidArgument("\(anchor.id) is not a trust anchor of this home (\(anchorsPath))")
        }
        var sequence = UInt64(max(1, now.seconds))
        if let previous, let held = try? SignedKeySet(verifying: previous, anchors: anchors) {
            sequence = max(sequence, try SignedDocument.nextSequence(after: held.sequence, "key set"))
        }
        let bytes = try SignedKeySet.sign(keys, with: anchor, sequence: sequence, issuedAt: now,
                                          nextUpdate: now.adding(seconds: validity.seconds))
        return try SignedKeySet(verifying: bytes, anchors: anchors)
    }

    /// The key set `pat publish` writes beside a list signed by `listSigner`:
    /// - with an online anchor (created now if the home has no anchor at all), freshly signed;
    /// - with only offline anchors, the signed set already published at `publishedPath`, which
    ///   must verify and hold `listSigner` as active (else: run `pat keys sign-set`).
    public func publishableKeySet(publishedPath: String, listSigner: KeyID, now: Timestamp,
                                  validity: TimeSpan) throws(PATKitError) -> KeySetPublication {
        let created = try ensureAnchor()
        let previous = SecureFile.exists(publishedPath) ? try? SecureFile.read(publishedPath, maxBytes: SignedKeySet.maxDocumentBytes) : nil
        if let anchor = try onlineAnchor() {
            let signed = try signKeySet(with: anchor, previous: previous, now: now, validity: validity)
            return KeySetPublication(keySet: signed, signedNow: true, createdAnchor: created, warning: nil)
        }
        guard let anchors = try trustAnchors() else { throw .invalidArgument("no trust anchor in \(anchorsPath)") }
        let signNote = "sign the key set with the offline anchor: `pat keys sign-set --anchor-key FILE`"
        guard let previous else {
            throw .invalidArgument("no signed key set at \(publishedPath) and no online trust anchor in \(onlineAnchorDirectory): \(signNote)")
        }
        let held: SignedKeySet
        do { held = try SignedKeySet(verifying: previous, anchors: anchors) } catch {
            throw .invalidArgument("the key set at \(publishedPath) does not verify with the anchors in \(anchorsPath) (\(error)): \(signNote)")
        }
        guard held.keys.verificationKey(for: listSigner) != nil else {
            throw .invalidArgument("the signed key set \(held.sequence) at \(publishedPath) does not hold the signing key \(listSigner) as active, "
                                   + "so edges would refuse the list: \(signNote)")
        }
        var warning: String? = nil
        if try held.keys != keySet() {
            warning = "the signed key set \(held.sequence) differs from \(manifestPath) (a key was added or retired since it was signed): \(signNote)"
        } else if held.nextUpdate < now.adding(seconds: 7 * 86_400) {
            warning = "the signed key set \(held.sequence) is due for update at \(held.nextUpdate); edges refuse every token after that: \(signNote)"
        }
        return KeySetPublication(keySet: held, signedNow: false, createdAnchor: created, warning: warning)
    }
}

/// What `KeyStore.publishableKeySet` decided.
public struct KeySetPublication: Sendable {
    /// The signed key set to publish (its `bytes` are the document).
    public let keySet: SignedKeySet
    /// True when it was signed now with an online anchor (write it); false when it is the
    /// offline-signed set already published (leave it).
    public let signedNow: Bool
    /// The online anchor created for a home that had none.
    public let createdAnchor: KeyID?
    /// Something the operator should act on (an offline-signed set that is out of date or due soon).
    public let warning: String?
}
