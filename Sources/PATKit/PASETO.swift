/// PASETO v4.public: Ed25519 signatures over Pre-Authentication Encoding (PAE).
///
/// `v4.public.` + base64url(message ‖ signature) [+ `.` + base64url(footer)], where
/// signature = Ed25519(PAE("v4.public.", message, footer, implicit assertion)).
public enum PASETOv4Public {
    public static let header = "v4.public."
    static let headerBytes: [UInt8] = Array(header.utf8)
    /// Tokens longer than this are refused before any decoding.
    public static let defaultMaxTokenBytes = 8 * 1024

    /// The parts of a token, before its signature is checked.
    public struct Parts: Sendable {
        /// message ‖ signature, as decoded (at least 64 bytes).
        let payload: [UInt8]
        public let footer: [UInt8]

        var messageBytes: ArraySlice<UInt8> { payload[..<(payload.count - 64)] }
        var signatureBytes: ArraySlice<UInt8> { payload[(payload.count - 64)...] }
        public var message: [UInt8] { Array(messageBytes) }
        public var signature: [UInt8] { Array(signatureBytes) }
    }

    /// Pre-Authentication Encoding: LE64(count) then LE64(len) ‖ bytes for each piece.
    public static func pae(_ pieces: [[UInt8]]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(8 + pieces.reduce(0) { $0 + 8 + $1.count })
        appendLE64(UInt64(pieces.count), to: &out)
        for piece in pieces {
            appendLE64(UInt64(piece.count), to: &out)
            out.append(contentsOf: piece)
        }
        return out
    }

    /// PAE("v4.public.", message, footer, implicit assertion) in one allocation.
    static func signedMessage(_ message: ArraySlice<UInt8>, _ footer: [UInt8], _ implicit: [UInt8]) -> [UInt8] {
        let total = 40 + headerBytes.count + message.count + footer.count + implicit.count
        return [UInt8](unsafeUninitializedCapacity: total) { out, count in
            var at = 0
            func put(_ v: UInt64) {
                let le = v & 0x7FFF_FFFF_FFFF_FFFF
                for i in 0..<8 { out[at + i] = UInt8(truncatingIfNeeded: le >> (8 * UInt64(i))) }
                at += 8
            }
            func put(_ bytes: some Collection<UInt8>) {
                for b in bytes { out[at] = b; at += 1 }
            }
            put(4)
            put(UInt64(headerBytes.count)); put(headerBytes)
            put(UInt64(message.count)); put(message)
            put(UInt64(footer.count)); put(footer)
            put(UInt64(implicit.count)); put(implicit)
            count = at
        }
    }

    static func appendLE64(_ value: UInt64, to out: inout [UInt8]) {
        // PASETO clears the top bit of every length (interoperability with languages lacking unsigned ints).
        let v = value & 0x7FFF_FFFF_FFFF_FFFF
        for i in 0..<8 { out.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))) }
    }

    /// Signs `message` with `key`; `footer` is authenticated and travels in clear,
    /// `implicitAssertion` is authenticated but not transmitted.
    public static func sign(message: [UInt8], footer: [UInt8] = [], implicitAssertion: [UInt8] = [],
                            with key: SecretKey) -> String {
        let m2 = pae([headerBytes, message, footer, implicitAssertion])
        let signature = m2.withUnsafeBytes { key.sign($0) }
        var token = header + Sodium.base64URLEncode(message + signature)
        if !footer.isEmpty { token += "." + Sodium.base64URLEncode(footer) }
        return token
    }

    /// Splits and decodes a token without checking its signature. Only v4.public is accepted.
    public static func parse(_ token: String, maxBytes: Int = defaultMaxTokenBytes) throws(PATValidationError) -> Parts {
        var token = token
        let result = token.withUTF8 { bytes in
            Result { () throws(PATValidationError) -> Parts in try parse(bytes, maxBytes: maxBytes) }
        }
        return try result.get()
    }

    static func parse(_ bytes: UnsafeBufferPointer<UInt8>, maxBytes: Int) throws(PATValidationError) -> Parts {
        guard bytes.count <= maxBytes else {
            throw PATValidationError(.tooLarge, "token of \(bytes.count) bytes exceeds the limit of \(maxBytes) bytes")
        }
        let h = headerBytes
        guard bytes.count >= h.count, bytes.prefix(h.count).elementsEqual(h) else {
            throw .malformed(describeHeader(bytes))
        }
        let body = UnsafeBufferPointer(rebasing: bytes[h.count...])
        let dot = body.firstIndex(of: UInt8(ascii: "."))
        let payloadText = UnsafeBufferPointer(rebasing: body[..<(dot ?? body.count)])
        var footer: [UInt8] = []
        if let dot {
            let footerText = UnsafeBufferPointer(rebasing: body[(dot + 1)...])
            guard !footerText.isEmpty else { throw .malformed("empty footer after the final '.'") }
            guard !footerText.contains(UInt8(ascii: ".")) else { throw .malformed("too many '.'-separated parts") }
            guard let decoded = PublicBase64URL.decode(footerText) else {
                throw .malformed("footer is not canonical unpadded base64url")
            }
            footer = decoded
        }
        guard let payload = PublicBase64URL.decode(payloadText) else {
            throw .malformed("payload is not canonical unpadded base64url")
        }
        guard payload.count >= 64 else { throw .malformed("payload too short to hold a signature") }
        return Parts(payload: payload, footer: footer)
    }

    private static func describeHeader(_ bytes: UnsafeBufferPointer<UInt8>) -> String {
        let parts = bytes.prefix(24).split(separator: UInt8(ascii: "."), maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count >= 3 else { return "not a PASETO token (expected \"v4.public.…\")" }
        let version = String(decoding: parts[0].prefix(8), as: UTF8.self)
        let purpose = String(decoding: parts[1].prefix(8), as: UTF8.self)
        if version != "v4" { return "unsupported PASETO version \"\(version)\" (only v4.public is accepted)" }
        return "unsupported PASETO purpose \"\(purpose)\" (only v4.public is accepted)"
    }

    /// Checks the signature of `parts` with `key`.
    public static func verify(_ parts: Parts, key: PublicKey, implicitAssertion: [UInt8] = []) throws(PATValidationError) {
        let m2 = signedMessage(parts.messageBytes, parts.footer, implicitAssertion)
        let ok = m2.withUnsafeBytes { msg in
            parts.signatureBytes.withUnsafeBytes { sig in
                key.bytes.withUnsafeBytes { pk in Sodium.verifyDetached(signature: sig, message: msg, publicKey: pk) }
            }
        }
        guard ok else { throw PATValidationError(.badSignature, "signature does not verify with key \(key.id)") }
    }

    /// Parses and verifies `token` with one key; returns the message and footer.
    public static func verify(_ token: String, key: PublicKey, implicitAssertion: [UInt8] = [],
                              maxBytes: Int = defaultMaxTokenBytes) throws(PATValidationError) -> (message: [UInt8], footer: [UInt8]) {
        let parts = try parse(token, maxBytes: maxBytes)
        try verify(parts, key: key, implicitAssertion: implicitAssertion)
        return (parts.message, parts.footer)
    }
}
