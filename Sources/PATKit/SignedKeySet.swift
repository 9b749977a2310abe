/// The published key set as a signed, versioned document: the keys that sign tokens and
/// lists, vouched for by a trust anchor (`TrustAnchors`) that edges pin out of band.
///
/// Document (JSON, `keys.json`; byte-level description in FORMATS.md):
/// ```
/// {"payload":"<base64url(P)>","signer":"k4.pid.<anchor>","signature":"<base64url(64 bytes)>"}
/// P = {"sequence":N,"issuedAt":"…Z","nextUpdate":"…Z","keys":[{"kid":…,"key":"k4.public…","status":"active"|"retired","created":"…Z"}]}
/// signature = Ed25519(anchor, PAE("patkit.key-set.v1", signer kid, P))
/// ```
/// The signature is checked before the payload is parsed. Rules: `sequence` is 1 … 2^53 − 1
/// and a verifier refuses one lower than it holds (rollback) or a different document under the
/// sequence it holds; `issuedAt` < `nextUpdate`; at least one key is active.
public struct SignedKeySet: Sendable, Equatable {
    public let keys: KeySet
    public let sequence: UInt64
    public let issuedAt: Timestamp
    public let nextUpdate: Timestamp
    /// The trust anchor that signed it.
    public let signer: KeyID
    /// The document exactly as verified (what to cache or serve).
    public let bytes: [UInt8]

    /// Payload bound: a key set of `KeySet.maxKeys` keys fits with room to spare.
    public static let maxPayloadBytes = KeySet.maxDocumentBytes
    /// Document bound: the payload in base64url plus the envelope.
    public static let maxDocumentBytes = KeySet.maxDocumentBytes * 4 / 3 + 1024

    public static func == (a: SignedKeySet, b: SignedKeySet) -> Bool { a.bytes == b.bytes }

    /// True when `now` is past next-update plus `grace` seconds.
    public func isStale(at now: Timestamp, grace: Int64) -> Bool { now > nextUpdate.adding(seconds: grace) }

    /// The signed message: PAE of the domain string, the signer's kid and the payload.
    static func signedMessage(signer: KeyID, payload: [UInt8]) -> [UInt8] {
        PASETOv4Public.pae([SignedDocument.keySetDomain, Array(signer.rawValue.utf8), payload])
    }

    // MARK: verifying

    /// Parses and verifies a signed key set: it must be signed by one of `anchors`.
    public init(verifying bytes: [UInt8], anchors: TrustAnchors) throws(PATKitError) {
        guard bytes.count <= SignedKeySet.maxDocumentBytes else {
            throw .invalidDocument("signed key set of \(bytes.count) bytes exceeds \(SignedKeySet.maxDocumentBytes) bytes")
        }
        let envelope: JSONValue
        do {
            envelope = try JSONParser.parse(bytes, limits: JSONLimits(maxBytes: SignedKeySet.maxDocumentBytes, maxDepth: 4, maxMembers: 1024,
                                                                      maxStringBytes: SignedKeySet.maxDocumentBytes))
        } catch {
            throw .invalidDocument("key set is not valid JSON: \(error)")
        }
        guard case .object(let o) = envelope, o.count == 3, let payloadText = o["payload"]?.stringValue,
              let signerText = o["signer"]?.stringValue, let signatureText = o["signature"]?.stringValue else {
            if case .object(let o) = envelope, o["keys"] != nil, o["payload"] == nil {
                throw .invalidDocument("the key set is not signed (a plain {\"keys\": …} set): edges accept only a key set signed by a "
                                       + "trust anchor; publish with `pat publish` or sign it with `pat keys sign-set`")
            }
            throw .invalidDocument("a signed key set is {\"payload\": …, \"signer\": …, \"signature\": …} and nothing else")
        }
        let signer: KeyID
        do { signer = try KeyID(signerText) } catch { throw .invalidDocument("key set: the signer is not a k4.pid key id") }
        guard let anchor = anchors.key(for: signer) else {
            throw .invalidDocument("the key set is signed by \(signer), which is not a pinned trust anchor")
        }
        guard let payload = Base64URL.decode(payloadText), let signature = Base64URL.decode(signatureText), signature.count == 64 else {
            throw .invalidDocument("key set: payload and signature must be strict base64url (a 64-byte signature)")
        }
        guard payload.count <= SignedKeySet.maxPayloadBytes else {
            throw .invalidDocument("key set payload of \(payload.count) bytes exceeds \(SignedKeySet.maxPayloadBytes) bytes")
        }
        let message = SignedKeySet.signedMessage(signer: signer, payload: payload)
        let verified = message.withUnsafeBytes { m in
            signature.withUnsafeBytes { s in anchor.bytes.withUnsafeBytes { pk in Sodium.verifyDetached(signature: s, message: m, publicKey: pk) } }
        }
        guard verified else { throw .invalidDocument("key set signature does not verify with trust anchor \(signer)") }

        // Signed: now parse the payload, still strictly.
        let value: JSONValue
        do { value = try JSONParser.parse(payload, limits: JSONLimits(maxBytes: SignedKeySet.maxPayloadBytes, maxDepth: 4)) } catch {
            throw .invalidDocument("key set payload is not valid JSON: \(error)")
        }
        guard case .object(let p) = value, p.count == 4, case .array(let items)? = p["keys"],
              let sequenceValue = p["sequence"], let issuedText = p["issuedAt"]?.stringValue,
              let nextText = p["nextUpdate"]?.stringValue else {
            throw .invalidDocument("key set payload must be {\"sequence\", \"issuedAt\", \"nextUpdate\", \"keys\"} and nothing else")
        }
        guard let number = sequenceValue.integer, number >= 1, UInt64(number) <= SignedDocument.maxSequence else {
            throw .invalidDocument("key set sequence must be an integer from 1 to 2^53 − 1")
        }
        guard let issuedAt = Timestamp(rfc3339: issuedText), let nextUpdate = Timestamp(rfc3339: nextText) else {
            throw .invalidDocument("key set issuedAt and nextUpdate must be RFC 3339 UTC times")
        }
        guard issuedAt < nextUpdate else { throw .invalidDocument("key set next-update is not after its issue time") }
        let keys = KeySet(try KeySet.parseEntries(items))
        guard !keys.activeKeys.isEmpty else { throw .invalidDocument("the signed key set has no active key") }
        self.keys = keys
        self.sequence = UInt64(number)
        self.issuedAt = issuedAt
        self.nextUpdate = nextUpdate
        self.signer = signer
        self.bytes = bytes
    }

    /// The `sequence` of a signed key set, read WITHOUT checking the signature (for a server's
    /// `X-PAT-Sequence` header on a file it serves). Never a basis for accepting anything.
    public static func unverifiedSequence(_ bytes: [UInt8]) -> UInt64? {
        let limits = JSONLimits(maxBytes: maxDocumentBytes, maxDepth: 4, maxStringBytes: maxDocumentBytes)
        guard bytes.count <= maxDocumentBytes, case .object(let o)? = try? JSONParser.parse(bytes, limits: limits),
              let text = o["payload"]?.stringValue, let payload = Base64URL.decode(text),
              case .object(let p)? = try? JSONParser.parse(payload, limits: JSONLimits(maxBytes: maxPayloadBytes, maxDepth: 4)),
              let number = p["sequence"]?.integer, number >= 1 else { return nil }
        return UInt64(number)
    }

    /// True when `bytes` look like a signed key set (an object with a `"payload"` member), as
    /// opposed to a plain `{"keys": …}` set. Says nothing about validity.
    public static func looksSigned(_ bytes: [UInt8]) -> Bool {
        guard bytes.count <= maxDocumentBytes,
              case .object(let o)? = try? JSONParser.parse(bytes, limits: JSONLimits(maxBytes: maxDocumentBytes, maxDepth: 4,
                                                                                      maxStringBytes: maxDocumentBytes)) else { return false }
        return o["payload"] != nil
    }

    // MARK: signing

    /// Signs `keys` with the trust anchor `anchor`.
    public static func sign(_ keys: KeySet, with anchor: SecretKey, sequence: UInt64, issuedAt: Timestamp,
                            nextUpdate: Timestamp) throws(PATKitError) -> [UInt8] {
        try SignedDocument.checkSequence(sequence, "key set")
        guard issuedAt < nextUpdate else { throw .invalidArgument("next-update must be after the issue time") }
        guard !keys.activeKeys.isEmpty else { throw .invalidArgument("a key set to sign needs at least one active key") }
        var p = JSONObject()
        p.set("sequence", .number(String(sequence)))
        p.set("issuedAt", .string(issuedAt.rfc3339))
        p.set("nextUpdate", .string(nextUpdate.rfc3339))
        p.set("keys", keys.json["keys"] ?? .array([]))
        let payload = JSONWriter.encode(.object(p))
        let signature = SignedKeySet.signedMessage(signer: anchor.id, payload: payload).withUnsafeBytes { anchor.sign($0) }
        var envelope = JSONObject()
        envelope.set("payload", .string(Base64URL.encode(payload)))
        envelope.set("signer", .string(anchor.id.rawValue))
        envelope.set("signature", .string(Base64URL.encode(signature)))
        return JSONWriter.encode(.object(envelope)) + [0x0A]
    }
}
