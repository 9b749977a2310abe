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
    /// `par`: the tokens that minted this one, root first, the direct parent last (empty: none).
    /// See `PATAncestor`.
    public var lineage: [PATAncestor]
    /// Claims PATKit does not interpret, in token order.
    public var extra: JSONObject

    public static let maxGeneration: UInt64 = (1 << 53) - 1
    static func isRegistered(_ key: String) -> Bool { registeredBit(key) != 0 }

    public init(id: String, subject: String, generation: UInt64 = 1, issuedAt: Timestamp, expiresAt: Timestamp,
                notBefore: Timestamp? = nil, issuer: String? = nil, audience: String? = nil, domain: String? = nil,
                scopes: ScopeSet = ScopeSet(), lineage: [PATAncestor] = [], extra: JSONObject = JSONObject()) {
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
        self.lineage = lineage
        self.extra = extra
    }

    /// A fresh random PAT id: 128 bits, base64url (22 characters). Never begins with "-", which
    /// a command line would read as an option (`pat revoke -x…`); ids are redrawn until they do not.
    public static func newID() -> String {
        while true {
            let id = Sodium.base64URLEncode(Sodium.randomBytes(16))
            if !id.hasPrefix("-") { return id }
        }
    }

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
        if let problem = PATClaims.lineageProblem(lineage) { throw .invalidClaims(problem) }
        for key in extra.keys where PATClaims.isRegistered(key) {
            throw .invalidClaims("extra claim \"\(key)\" collides with a registered claim")
        }
    }

    package static func isValidID(_ id: String) -> Bool {
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
        if !lineage.isEmpty { o.set("par", .array(lineage.map { .string($0.description) })) }
        for (key, value) in extra.members { o.set(key, value) }
        return o
    }

    static let parseLimits = JSONLimits(maxBytes: 8 * 1024, maxDepth: 8, maxMembers: 128, maxStringBytes: 4096)

    /// Parses claims from a verified message. Strict: unique keys, required claims present,
    /// every registered claim of its type, times in `YYYY-MM-DDTHH:MM:SSZ`. Registered claims
    /// are read straight from the bytes (no intermediate JSON tree); others are kept as JSON.
    public init(json input: [UInt8]) throws(PATValidationError) {
        try self.init(jsonBytes: input)
    }

    /// The same, over any contiguous bytes (the validator passes a slice of the payload).
    package init(jsonBytes input: some ContiguousBytes) throws(PATValidationError) {
        let result = input.withUnsafeBytes { raw in
            Result { () throws(PATValidationError) -> PATClaims in try PATClaims.parse(raw.bindMemory(to: UInt8.self)) }
        }
        self = try result.get()
    }

    private static func parse(_ bytes: UnsafeBufferPointer<UInt8>) throws(PATValidationError) -> PATClaims {
        var p = JSONParser(bytes: bytes, limits: parseLimits)
        func json<T>(_ body: (inout JSONParser) throws(JSONError) -> T) throws(PATValidationError) -> T {
            do { return try body(&p) } catch { throw .malformed("claims are not valid JSON: \(error)") }
        }
        func string(_ key: String) throws(PATValidationError) -> String {
            guard case .string(let s) = try json({ (p) throws(JSONError) in try p.value() }) else {
                throw .malformed("claim \"\(key)\" must be a string")
            }
            return s
        }
        func time(_ key: String) throws(PATValidationError) -> Timestamp {
            let parsed: Timestamp?
            if let raw = p.plainString() {
                parsed = Timestamp.parse(raw)
            } else if case .string(let s) = try json({ (p) throws(JSONError) in try p.value() }) {
                parsed = Timestamp(rfc3339: s)
            } else {
                throw .malformed("claim \"\(key)\" must be a string")
            }
            guard let parsed else { throw .malformed("claim \"\(key)\" must be an RFC 3339 UTC time like 2026-01-31T12:00:00Z") }
            return parsed
        }

        var id: String?, subject: String?, issuer: String?, audience: String?, domain: String?
        var generation: UInt64?, issuedAt: Timestamp?, expiresAt: Timestamp?, notBefore: Timestamp?
        var scopes = ScopeSet()
        var lineage: [PATAncestor] = []
        var extra = JSONObject()
        var seen: UInt16 = 0
        try json { (p) throws(JSONError) in try p.beginObject() }
        var first = true
        while let key = try json({ (p) throws(JSONError) in try p.nextKey(first: first) }) {
            first = false
            let bit = registeredBit(key)
            if bit != 0 {
                guard seen & bit == 0 else { throw .malformed("claims are not valid JSON: duplicate key \"\(key)\"") }
                seen |= bit
            }
            switch key {
            case "jti": id = try string(key)
            case "sub": subject = try string(key)
            case "iss": issuer = try string(key)
            case "aud": audience = try string(key)
            case "dom": domain = try string(key)
            case "iat": issuedAt = try time(key)
            case "exp": expiresAt = try time(key)
            case "nbf": notBefore = try time(key)
            case "gen":
                guard let value = try json({ (p) throws(JSONError) in try p.value() }).integer, value >= 1,
                      UInt64(value) <= PATClaims.maxGeneration else {
                    throw .malformed("claim \"gen\" must be an integer from 1 to 2^53−1")
                }
                generation = UInt64(value)
            case "scope":
                do {
                    if let raw = p.plainString() {
                        scopes = try ScopeSet(claimBytes: raw)
                    } else {
                        scopes = try ScopeSet(claim: try string(key))
                    }
                } catch let error as PATKitError {
                    throw .malformed("claim \"scope\": \(error)")
                } catch let error as PATValidationError {
                    throw error
                } catch {
                    throw .malformed("claim \"scope\": \(error)")
                }
            case "par":
                // Read element by element, without building a JSON tree: a fresh validation of a
                // depth-4 token pays only for what it must (the budget is 2 % of a validation).
                guard p.beginArray() else { throw .malformed("claim \"par\" must be an array of \"<key>.<gen>\" strings") }
                lineage.reserveCapacity(PATAncestor.maxDepth) // one allocation, not one per growth
                var firstElement = true
                while try json({ (p) throws(JSONError) in try p.nextElement(first: firstElement) }) {
                    firstElement = false
                    guard lineage.count < PATAncestor.maxDepth else {
                        throw .malformed("claim \"par\" holds more than \(PATAncestor.maxDepth) ancestors")
                    }
                    do {
                        if let raw = p.plainString() {
                            lineage.append(try PATAncestor(bytes: raw))
                        } else {
                            lineage.append(try PATAncestor(parsing: try string(key)))
                        }
                    } catch let error as PATKitError {
                        throw .malformed("claim \"par\": \(error)")
                    } catch let error as PATValidationError {
                        throw error
                    } catch {
                        throw .malformed("claim \"par\": \(error)")
                    }
                }
                guard !lineage.isEmpty else { throw .malformed("claim \"par\" must hold 1 to \(PATAncestor.maxDepth) ancestors") }
            default:
                guard extra[key] == nil else { throw .malformed("claims are not valid JSON: duplicate key \"\(key)\"") }
                extra.appendUnique(key, try json({ (p) throws(JSONError) in try p.value() }))
                guard extra.count < parseLimits.maxMembers else { throw .malformed("claims have more than \(parseLimits.maxMembers) members") }
            }
        }
        try json { (p) throws(JSONError) in try p.finish() }
        // The member limit counts registered claims too, as the JSON parser does.
        guard extra.count + seen.nonzeroBitCount <= parseLimits.maxMembers else {
            throw .malformed("claims have more than \(parseLimits.maxMembers) members")
        }

        guard let id else { throw .malformed("required claim \"jti\" is missing") }
        guard PATClaims.isValidID(id) else { throw .malformed("claim \"jti\" must be 22–128 URL-safe characters") }
        guard let subject else { throw .malformed("required claim \"sub\" is missing") }
        guard !subject.isEmpty, subject.utf8.count <= 256 else { throw .malformed("claim \"sub\" must be 1–256 bytes") }
        guard let generation else { throw .malformed("required claim \"gen\" is missing") }
        guard let issuedAt else { throw .malformed("required claim \"iat\" is missing") }
        guard let expiresAt else { throw .malformed("required claim \"exp\" is missing") }
        // The issuing rules (validateForIssue) hold for what parses, too.
        guard issuedAt < expiresAt else { throw .malformed("claim \"exp\" must be after \"iat\"") }
        if let domain, domain.isEmpty || domain.utf8.count > 256 { throw .malformed("claim \"dom\" must be 1–256 bytes") }
        if let problem = PATClaims.lineageProblem(lineage) { throw .malformed(problem) }
        return PATClaims(id: id, subject: subject, generation: generation, issuedAt: issuedAt, expiresAt: expiresAt,
                         notBefore: notBefore, issuer: issuer, audience: audience, domain: domain, scopes: scopes,
                         lineage: lineage, extra: extra)
    }

    /// A distinct bit per registered claim (for duplicate detection); 0 for any other key.
    static func registeredBit(_ key: String) -> UInt16 {
        switch key {
        case "jti": return 1 << 0
        case "sub": return 1 << 1
        case "gen": return 1 << 2
        case "iat": return 1 << 3
        case "exp": return 1 << 4
        case "nbf": return 1 << 5
        case "iss": return 1 << 6
        case "aud": return 1 << 7
        case "dom": return 1 << 8
        case "scope": return 1 << 9
        case "par": return 1 << 10
        default: return 0
        }
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
    /// The tokens that minted this one, root first (`par`; empty for a root token).
    public var lineage: [PATAncestor] { storage.claims.lineage }

    /// A claim by name, registered or not (e.g. a service-specific flag).
    public subscript(claim name: String) -> JSONValue? { storage.claims.json[name] }

    /// True when the PAT's scopes grant `operation` on `entity` `id`; nothing is implicit.
    public func allows(entity: String, operation: String, id: String? = nil) -> Bool {
        storage.claims.scopes.allows(entity: entity, operation: operation, id: id)
    }

    /// Throws `scopeMissing` unless the PAT's scopes grant the request.
    public func authorize(entity: String, operation: String, id: String? = nil) throws(PATValidationError) {
        guard allows(entity: entity, operation: operation, id: id) else {
            throw PATValidationError(.scopeMissing, "PAT \(self.id) lacks scope \(entity):\(operation):\(id ?? "*")")
        }
    }

    public static func == (a: VerifiedPAT, b: VerifiedPAT) -> Bool {
        a.storage === b.storage || (a.claims == b.claims && a.keyID == b.keyID)
    }
}
