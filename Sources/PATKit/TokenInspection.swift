/// What `TokenInspector` found a token to be. It never holds the token itself: only its
/// `fingerprint`, and the claims when (and only when) a key of the set signed them.
public struct TokenInspection: Sendable, Equatable {
    public enum Status: String, Sendable, Equatable, CaseIterable {
        /// Signed by an active key of the set, not revoked, not expired: a verifier would accept
        /// it now (or once its `nbf`/`iat` arrives). A leak to act on.
        case live
        /// Genuine, but past its `exp` (plus the leeway).
        case expired
        /// Genuine, but refused by the revocation list (revoked, regenerated, re-scoped, deleted,
        /// revoke-all) or signed by a key the set lists as retired.
        case revoked
        /// Not a token of these keys: the signature does not verify with the key its footer
        /// names, or it is malformed past the pattern. Never a leak of ours.
        case forged
        /// Names a key the set does not hold: another issuer's token, or a forgery; it cannot be
        /// told apart without that key. Never a leak of ours.
        case foreign
    }

    public let status: Status
    /// A stable code saying why: `valid` or `not_yet_valid` (live); `expired`; `superseded`,
    /// `deleted`, `owner_revoked`, `key_retired` or another refusal code of `Validator`
    /// (revoked); `malformed`, `bad_signature` or `invalid_claims` (forged); `unknown_key` (foreign).
    public let reason: String
    /// The verified claims: set for live, expired and revoked tokens, nil for forged and foreign
    /// ones (whose claims nobody vouches for).
    public let claims: PATClaims?
    /// The key id the footer names, when it is a well-formed `k4.pid`.
    public let keyID: KeyID?
    /// `TokenInspection.fingerprint(of:)` of the token.
    public let fingerprint: String

    public init(status: Status, reason: String, claims: PATClaims?, keyID: KeyID?, fingerprint: String) {
        self.status = status
        self.reason = reason
        self.claims = claims
        self.keyID = keyID
        self.fingerprint = fingerprint
    }

    /// The token's fingerprint, safe to print and log: the first 12 hexadecimal digits (48 bits)
    /// of the unkeyed BLAKE2b-256 of the token's bytes (Python:
    /// `hashlib.blake2b(token.encode(), digest_size=32).hexdigest()[:12]`). Enough to tell
    /// tokens apart in a report and to match one a person holds; far too little to recover it.
    public static func fingerprint(of token: String) -> String {
        let digest = Array(token.utf8).withUnsafeBytes { Sodium.blake2b($0, length: 32) }
        let hex: [UInt8] = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for byte in digest.prefix(6) {
            out.append(hex[Int(byte >> 4)])
            out.append(hex[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
