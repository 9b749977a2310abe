/// Says what a token found in the wild is (`TokenInspection.Status`): live, expired, revoked,
/// forged or foreign, by the given keys and revocation list, offline. The verifying half of a
/// leak scanner (`pat scan`, a secret-scanning endpoint): a string that merely looks like a PAT
/// is never reported as a leak of ours; only one whose signature verifies with a key of the set.
///
/// "Live" means what a `Validator` holding the same keys and list decides: the inspector asks
/// one (without a domain, accepting a stale list), so every rule a validator applies also
/// decides here. Revocation is reported before expiry (a revoked token that has also expired
/// is `revoked`).
public struct TokenInspector: Sendable {
    public let keys: KeySet
    public let revocations: RevocationList?
    private let validator: Validator

    /// - Parameters:
    ///   - keys: the keys whose tokens count as ours; retired keys make their tokens `revoked`.
    ///   - revocations: the list (already verified against `keys`); nil when none is at hand,
    ///     and then no token is found revoked by it.
    ///   - leeway: clock-skew allowance for `iat`, `nbf` and `exp`, in seconds, as a validator's.
    ///   - implicitAssertion: what the issuer signs tokens with but does not send (default none).
    public init(keys: KeySet, revocations: RevocationList?, leeway: Int64 = 60, implicitAssertion: [UInt8] = [],
                clock: @escaping @Sendable () -> Timestamp = { Timestamp.now() }) {
        self.keys = keys
        self.revocations = revocations
        var policy = Validator.Policy()
        policy.leeway = leeway
        policy.requireRevocationList = false
        policy.staleListPolicy = .accept // a stale list still says what was revoked
        policy.implicitAssertion = implicitAssertion
        policy.cacheCapacity = 0
        validator = Validator(keys: keys, revocations: revocations, policy: policy, clock: clock)
    }

    /// The inspection of `token` (typically a `TokenScanner.Match.token`). Never throws: every
    /// defect is a status.
    public func inspect(_ token: String) -> TokenInspection {
        let fingerprint = TokenInspection.fingerprint(of: token)
        func result(_ status: TokenInspection.Status, _ reason: String, _ claims: PATClaims? = nil, _ kid: KeyID? = nil) -> TokenInspection {
            TokenInspection(status: status, reason: reason, claims: claims, keyID: kid, fingerprint: fingerprint)
        }
        let parts: PASETOv4Public.Parts
        let kidBytes: ArraySlice<UInt8>
        do {
            parts = try PASETOv4Public.parse(token, maxBytes: validator.policy.maxTokenBytes)
            kidBytes = try Footer.keyID(from: parts.footer)
        } catch {
            return result(.forged, "malformed")
        }
        let kid = try? KeyID(String(decoding: kidBytes, as: UTF8.self))
        // Every key of the set, retired ones too: a token of a retired key is ours, and dead.
        guard let kid, let entry = keys.entries.first(where: { $0.id == kid }) else {
            return result(.foreign, "unknown_key", nil, kid)
        }
        do {
            try PASETOv4Public.verify(parts, key: entry.key, implicitAssertion: validator.policy.implicitAssertion)
        } catch {
            return result(.forged, "bad_signature", nil, kid)
        }
        let claims: PATClaims
        do { claims = try PATClaims(jsonBytes: parts.messageBytes) } catch {
            // Signed by our key, yet no verifier would read it: never issued by PATKit's `Issuer`.
            return result(.forged, "invalid_claims", nil, kid)
        }
        if entry.status == .retired { return result(.revoked, "key_retired", claims, kid) }
        if let revocation = revocations?.check(claims, at: validator.now()) {
            switch revocation {
            case .superseded: return result(.revoked, "superseded", claims, kid)
            case .deleted: return result(.revoked, "deleted", claims, kid)
            case .ownerRevoked: return result(.revoked, "owner_revoked", claims, kid)
            case .ancestorRevoked: return result(.revoked, "ancestor_revoked", claims, kid)
            }
        }
        do {
            _ = try validator.validate(token)
            return result(.live, "valid", claims, kid)
        } catch {
            switch error.code {
            case .expired: return result(.expired, "expired", claims, kid)
            case .notYetValid: return result(.live, "not_yet_valid", claims, kid)
            // Any other refusal of a genuine token (e.g. a lineage rule) makes it dead like a revocation.
            default: return result(.revoked, error.code.rawValue, claims, kid)
            }
        }
    }
}
