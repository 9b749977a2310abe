/// The claims of a PAT. Registered PASETO claims plus PATKit's `gen`, `dom` and `scope`;
/// any other claim is kept in `extra` and travels untouched.
public struct PATClaims: Sendable, Equatable {
    /// `jti`: the PAT id, random (≥ 128 bits) and URL-safe; kept for the PAT's life.
    public var id: String
    /// `sub`: the owner.
    public var subject: String
    /// `gen`: the generation, 1 ... 2^53−1; every re-issue of the same PAT raises it.
    public var generation: UInt64
    public var issuedAt: Timestamp
    public var expiresAt: Timestamp
    public var notBefore: Timestamp?
    public var issuer: String?
    public var audience: String?
    /// `dom`: the domain the PAT acts in.
    public var domain: String?
    public var scopes: ScopeSet
    /// Claims PATKit does not interpret, in token order.
    public var extra: JSONObject

    public static let maxGeneration: UInt64 = (1 << 53) - 1
    static let registered: Set<String> = ["jti", "sub", "gen", "iat", "exp", "nbf", "iss", "aud", "dom", "scope"]

    static func isRegistered(_ key: String) -> Bool {
        switch key {
        case "jti", "sub", "gen", "iat", "exp", "nbf", "iss", "aud", "dom", "scope": return true
        default: return false
        }
    }

    public init(id: String, subject: String, generation: UInt64 = 1, issuedAt: Timestamp, expiresAt: Timestamp,
                notBefore: Timestamp? = nil, issuer: String? = nil, audience: String? = nil, domain: String? = nil,
                scopes: ScopeSet = ScopeSet(), extra: JSONObject = JSONObject()) {
        self.id = id
        self.subject = subject
        self.generation = generation
        self.issuedAt = issuedAt
        self.expiresAt = expiresAt
        self.notBefore = notBefore
        self.issuer = issuer
        self.audience = audience
        self.domain = domain
        self.scopes = scopes
        self.extra = extra
    }

    /// A fresh random PAT id: 128 bits, base64url (22 characters).
    public static func newID() -> String { Sodium.base64URLEncode(Sodium.randomBytes(16)) }

    /// Checks the rules for issuing; parsing applies the same rules.
    public func validateForIssue() throws(PATKitError) {
        guard PATClaims.isValidID(id) else {
            throw .invalidClaims("jti \"\(id.prefix(80))\" must be 22–128 URL-safe characters (A–Z a–z 0–9 - _), at least 128 bits")
        }
        guard !subject.isEmpty, subject.utf8.count <= 256 else { throw .invalidClaims("sub must be 1–256 bytes") }
        guard (1...PATClaims.maxGeneration).contains(generation) else {
            throw .invalidClaims("gen must be an integer from 1 to 2^53−1, not \(generation)")
        }
        guard issuedAt < expiresAt else { throw .invalidClaims("exp (\(expiresAt)) must be after iat (\(issuedAt))") }
        for t in [issuedAt, expiresAt] + (notBefore.map { [$0] } ?? []) where t < Timestamp.minimum || t > Timestamp.maximum {
            throw .invalidClaims("time \(t.seconds) is outside years 0001–9999")
        }
        if let domain, domain.isEmpty || domain.utf8.count > 256 { throw .invalidClaims("dom must be 1–256 bytes") }
        for key in extra.keys where PATClaims.registered.contains(key) {
            throw .invalidClaims("extra claim \"\(key)\" collides with a registered claim")
        }
    }

    static func isValidID(_ id: String) -> Bool {
        let u = id.utf8
        return u.count >= 22 && u.count <= 128 && u.allSatisfy {
            ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5F || $0 == 0x2D
        }
    }

    /// The JSON object in a fixed member order.
    public var json: JSONObject {
        var o = JSONObject()
        o.set("jti", .string(id))
        o.set("sub", .string(subject))
        o.set("gen", .number(String(generation)))
        o.set("iat", .string(issuedAt.rfc3339))
        if let notBefore { o.set("nbf", .string(notBefore.rfc3339)) }
        o.set("exp", .string(expiresAt.rfc3339))
        if let issuer { o.set("iss", .string(issuer)) }
        if let audience { o.set("aud", .string(audience)) }
        if let domain { o.set("dom", .string(domain)) }
        if !scopes.isEmpty { o.set("scope", .string(scopes.claim)) }
        for (key, value) in extra.members { o.set(key, value) }
        return o
    }

    /// Parses claims from a verified message. Strict: unique keys, required claims present,
    /// every registered claim of its type, times in `YYYY-MM-DDTHH:MM:SSZ`.
    public init(json bytes: some ContiguousBytes) throws(ValidationError) {
        let value: JSONValue
        do {
            value = try JSONParser.parse(bytes, limits: JSONLimits(maxBytes: 8 * 1024, maxDepth: 8, maxMembers: 128, maxStringBytes: 4096))
        } catch {
            throw .malformed("claims are not valid JSON: \(error)")
        }
        guard case .object(let object) = value else { throw .malformed("claims must be a JSON object") }

        func string(_ key: String, required: Bool) throws(ValidationError) -> String? {
            guard let v = object[key] else {
                if required { throw .malformed("required claim \"\(key)\" is missing") }
                return nil
            }
            guard case .string(let s) = v else { throw .malformed("claim \"\(key)\" must be a string") }
            return s
        }
        func time(_ key: String, required: Bool) throws(ValidationError) -> Timestamp? {
            guard let s = try string(key, required: required) else { return nil }
            guard let t = Timestamp(rfc3339: s) else {
                throw .malformed("claim \"\(key)\" must be an RFC 3339 UTC time like 2026-01-31T12:00:00Z")
            }
            return t
        }

        guard let id = try string("jti", required: true), PATClaims.isValidID(id) else {
            throw .malformed("claim \"jti\" must be 22–128 URL-safe characters")
        }
        guard let subject = try string("sub", required: true), !subject.isEmpty, subject.utf8.count <= 256 else {
            throw .malformed("claim \"sub\" must be 1–256 bytes")
        }
        guard let genValue = object["gen"] else { throw .malformed("required claim \"gen\" is missing") }
        guard let gen = genValue.integer, gen >= 1, UInt64(gen) <= PATClaims.maxGeneration else {
            throw .malformed("claim \"gen\" must be an integer from 1 to 2^53−1")
        }
        guard let iat = try time("iat", required: true), let exp = try time("exp", required: true) else {
            throw .malformed("required time claims are missing")
        }
        let nbf = try time("nbf", required: false)
        let scopeClaim = try string("scope", required: false)
        let scopes: ScopeSet
        do { scopes = try ScopeSet(claim: scopeClaim ?? "") } catch { throw .malformed("claim \"scope\": \(error)") }
        var extra = JSONObject()
        for (key, v) in object.members where !PATClaims.isRegistered(key) { extra.set(key, v) }

        self.init(id: id, subject: subject, generation: UInt64(gen), issuedAt: iat, expiresAt: exp, notBefore: nbf,
                  issuer: try string("iss", required: false), audience: try string("aud", required: false),
                  domain: try string("dom", required: false), scopes: scopes, extra: extra)
    }
}

/// A PAT whose signature, times and revocation status were checked by a `Validator`.
/// Cheap to copy: the claims live in one shared immutable box.
public struct VerifiedPAT: Sendable, Equatable {
    final class Storage: Sendable {
        let claims: PATClaims
        let keyID: KeyID
        init(claims: PATClaims, keyID: KeyID) {
            self.claims = claims
            self.keyID = keyID
        }
    }

    let storage: Storage

    public init(claims: PATClaims, keyID: KeyID) { storage = Storage(claims: claims, keyID: keyID) }

    public var claims: PATClaims { storage.claims }
    /// The key that signed it.
    public var keyID: KeyID { storage.keyID }
    public var id: String { storage.claims.id }
    public var subject: String { storage.claims.subject }
    public var generation: UInt64 { storage.claims.generation }
    public var scopes: ScopeSet { storage.claims.scopes }
    public var domain: String? { storage.claims.domain }
    public var expiresAt: Timestamp { storage.claims.expiresAt }

    /// A claim by name, registered or not (e.g. a service-specific flag).
    public subscript(claim name: String) -> JSONValue? { storage.claims.json[name] }

    /// True when the PAT's scopes grant `operation` on `entity` `id`; nothing is implicit.
    public func allows(entity: String, operation: String, id: String? = nil) -> Bool {
        storage.claims.scopes.allows(entity: entity, operation: operation, id: id)
    }

    /// Throws `scopeMissing` unless the PAT's scopes grant the request.
    public func authorize(entity: String, operation: String, id: String? = nil) throws(ValidationError) {
        guard allows(entity: entity, operation: operation, id: id) else {
            throw ValidationError(.scopeMissing, "PAT \(self.id) lacks scope \(entity):\(operation):\(id ?? "*")")
        }
    }

    public static func == (a: VerifiedPAT, b: VerifiedPAT) -> Bool {
        a.storage === b.storage || (a.claims == b.claims && a.keyID == b.keyID)
    }
}
