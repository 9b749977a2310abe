import Synchronization

/// Checks PATs offline: signature by a trusted key, claims, times, revocation, domain.
///
/// One `Validator` is shared by every thread of a service. Its key set and revocation list
/// can be replaced at any time (for example by a refresher) while other threads validate;
/// each validation sees one consistent pair.
public final class Validator: Sendable {
    public enum StaleListPolicy: String, Sendable {
        /// Refuse every token while the list is stale (fail closed).
        case reject
        /// Keep accepting on the last list held.
        case accept
    }

    public struct Policy: Sendable {
        /// Clock-skew allowance for `iat`, `nbf` and `exp`, in seconds.
        public var leeway: Int64 = 60
        /// Tokens longer than this are refused before decoding.
        public var maxTokenBytes = PASETOv4Public.defaultMaxTokenBytes
        /// Refuse every token while no revocation list is loaded.
        public var requireRevocationList = true
        /// How long past its next-update a list still counts as fresh, in seconds.
        public var staleGrace: Int64 = 0
        public var staleListPolicy: StaleListPolicy = .reject
        /// When set, tokens must carry this `dom`.
        public var domain: String?
        /// Authenticated data that tokens were signed with but do not carry.
        public var implicitAssertion: [UInt8] = []
        /// Tokens remembered after a full validation (0 turns the cache off). An entry costs
        /// about the token's length plus its claims (see the benchmarks for the measured figure).
        public var cacheCapacity = 100_000

        public init() {}
    }

    /// One consistent view of what a validation trusts; replaced whole, never mutated.
    final class Snapshot: Sendable {
        let keys: KeySet
        /// The active keys by id bytes: footers are matched without building a string.
        let keyIndex: [(id: [UInt8], key: PublicKey)]
        let revocations: RevocationList?
        /// Changes whenever the key set does; cached results count only under their epoch.
        let keysEpoch: UInt64

        init(keys: KeySet, revocations: RevocationList?, keysEpoch: UInt64) {
            self.keys = keys
            self.keyIndex = keys.activeKeys.map { (Array($0.id.rawValue.utf8), $0) }
            self.revocations = revocations
            self.keysEpoch = keysEpoch
        }

        func key(for kid: ArraySlice<UInt8>) -> PublicKey? {
            for entry in keyIndex where entry.id.elementsEqual(kid) { return entry.key }
            return nil
        }
    }

    private let state: Mutex<Snapshot>
    private let cache: ValidationCache?
    public let policy: Policy
    private let clock: @Sendable () -> Timestamp

    public init(keys: KeySet, revocations: RevocationList? = nil, policy: Policy = Policy(),
                clock: @escaping @Sendable () -> Timestamp = { Timestamp.now() }) {
        self.state = Mutex(Snapshot(keys: keys, revocations: revocations, keysEpoch: 0))
        self.cache = policy.cacheCapacity > 0 ? ValidationCache(capacity: policy.cacheCapacity) : nil
        self.policy = policy
        self.clock = clock
    }

    public var keys: KeySet { state.withLock { $0.keys } }
    public var revocations: RevocationList? { state.withLock { $0.revocations } }
    /// Tokens currently remembered by the cache.
    public var cachedTokenCount: Int { cache?.count ?? 0 }
    /// Validations answered from the cache so far (the rules were still checked on each).
    package var cacheHitCount: Int { cache?.hits ?? 0 }

    /// Replaces the trusted keys. Tokens of keys no longer active fail on the next call,
    /// cached or not.
    public func replaceKeys(_ keys: KeySet) {
        state.withLock { $0 = Snapshot(keys: keys, revocations: $0.revocations, keysEpoch: $0.keysEpoch &+ 1) }
        cache?.removeAll()
    }

    /// Installs a newer revocation list. Refuses a lower sequence than the one held, and a
    /// different list under the same sequence. Its signer must be an active key now.
    /// Takes effect on the next call, cached tokens included.
    public func install(_ list: RevocationList) throws(PATKitError) {
        let result: Result<Void, PATKitError> = state.withLock { state in
            guard state.keys.verificationKey(for: list.signer) != nil else {
                return .failure(.invalidDocument("revocation list is signed by \(list.signer), which is not an active key"))
            }
            if let held = state.revocations {
                if list.sequence < held.sequence { return .failure(.rollback(held: held.sequence, offered: list.sequence)) }
                if list.sequence == held.sequence {
                    return list.signature == held.signature ? .success(())
                        : .failure(.invalidDocument("a different revocation list with the held sequence \(held.sequence) was offered"))
                }
            }
            state = Snapshot(keys: state.keys, revocations: list, keysEpoch: state.keysEpoch)
            return .success(())
        }
        try result.get()
    }

    /// Replaces the key set and the revocation list together, atomically: for a rotation where
    /// the new list is signed by a key only the new set holds. The list must be signed by an
    /// active key of `keys`; rollback and equivocation are refused as in `install(_:)`.
    public func install(keys: KeySet, revocations list: RevocationList) throws(PATKitError) {
        let result: Result<Void, PATKitError> = state.withLock { state in
            guard keys.verificationKey(for: list.signer) != nil else {
                return .failure(.invalidDocument("revocation list is signed by \(list.signer), which is not an active key of the new key set"))
            }
            if let held = state.revocations {
                if list.sequence < held.sequence { return .failure(.rollback(held: held.sequence, offered: list.sequence)) }
                if list.sequence == held.sequence, list.signature != held.signature {
                    return .failure(.invalidDocument("a different revocation list with the held sequence \(held.sequence) was offered"))
                }
            }
            state = Snapshot(keys: keys, revocations: list, keysEpoch: state.keysEpoch &+ 1)
            return .success(())
        }
        try result.get()
        cache?.removeAll()
    }

    /// The validator's current time (its clock), for callers reporting on staleness.
    public func now() -> Timestamp { clock() }

    /// Verifies `bytes` against the current keys and installs the list.
    @discardableResult
    public func installRevocations(_ bytes: [UInt8]) throws(PATKitError) -> RevocationList {
        let list = try RevocationList(verifying: bytes, keys: keys)
        try install(list)
        return list
    }

    /// Validates a token and returns the verified PAT, or throws why not.
    /// - Parameter domain: when given (or set in the policy), the token's `dom` must equal it.
    public func validate(_ token: String, domain: String? = nil) throws(PATValidationError) -> VerifiedPAT {
        let snapshot = state.withLock { $0 }
        let domain = domain ?? policy.domain
        if let cache, token.utf8.count <= policy.maxTokenBytes, let hit = cache.lookup(token, epoch: snapshot.keysEpoch) {
            try check(hit.pat.claims, tokenKey: hit.tokenKey, ownerKey: hit.ownerKey,
                      revocations: snapshot.revocations, domain: domain, now: clock())
            return hit.pat
        }
        let parts = try PASETOv4Public.parse(token, maxBytes: policy.maxTokenBytes)
        let kid = try Footer.keyID(from: parts.footer)
        guard let key = snapshot.key(for: kid) else {
            throw PATValidationError(.unknownKey, "token is signed by \(String(decoding: kid.prefix(64), as: UTF8.self)), which is not an active key of this verifier")
        }
        try PASETOv4Public.verify(parts, key: key, implicitAssertion: policy.implicitAssertion)
        let claims = try PATClaims(jsonBytes: parts.messageBytes)
        let pat = VerifiedPAT(claims: claims, keyID: key.id)
        guard let cache else {
            try check(claims, tokenKey: nil, ownerKey: nil, revocations: snapshot.revocations, domain: domain, now: clock())
            return pat
        }
        // Hash the lookup keys once, for this call and every later hit (ancestors carry theirs).
        let tokenKey = RevocationList.tokenKey(claims.id)
        let ownerKey = RevocationList.ownerKey(claims.subject)
        try check(claims, tokenKey: tokenKey, ownerKey: ownerKey, revocations: snapshot.revocations, domain: domain, now: clock())
        cache.insert(token, ValidationCache.Entry(pat: pat, tokenKey: tokenKey, ownerKey: ownerKey, keysEpoch: snapshot.keysEpoch))
        return pat
    }

    /// Validates a token and checks that it grants `operation` on `entity` `id`.
    public func authorize(_ token: String, entity: String, operation: String, id: String? = nil,
                          domain: String? = nil) throws(PATValidationError) -> VerifiedPAT {
        let pat = try validate(token, domain: domain)
        try pat.authorize(entity: entity, operation: operation, id: id)
        return pat
    }

    /// The time, revocation (own, owner and lineage entries) and domain rules, applied after the
    /// signature — and on every cache hit.
    func check(_ claims: PATClaims, tokenKey: EntryKey?, ownerKey: EntryKey?, revocations: RevocationList?,
               domain: String?, now: Timestamp) throws(PATValidationError) {
        let leeway = policy.leeway
        if claims.issuedAt > now.adding(seconds: leeway) {
            throw PATValidationError(.notYetValid, "token was issued in the future (iat \(claims.issuedAt), now \(now))")
        }
        if let nbf = claims.notBefore, nbf > now.adding(seconds: leeway) {
            throw PATValidationError(.notYetValid, "token is not valid before \(nbf) (now \(now))")
        }
        if now > claims.expiresAt.adding(seconds: leeway) {
            throw PATValidationError(.expired, "token expired at \(claims.expiresAt) (now \(now))")
        }
        if let list = revocations {
            if list.isStale(at: now, grace: policy.staleGrace), policy.staleListPolicy == .reject {
                throw PATValidationError(.staleRevocationList,
                                      "revocation list \(list.sequence) was due for update at \(list.nextUpdate); refusing until a fresh list arrives")
            }
            if let revocation = list.check(claims, tokenKey: tokenKey, ownerKey: ownerKey) {
                if case .ancestorRevoked = revocation { throw PATValidationError(.ancestorRevoked, revocation.description) }
                throw PATValidationError(.revoked, revocation.description)
            }
        } else if policy.requireRevocationList {
            throw PATValidationError(.missingRevocationList, "no revocation list is loaded; refusing until one is")
        }
        // Identity is bytes: Swift's `==` on strings is canonical equivalence ("\u{e9}" == "e\u{301}"),
        // while issuers, lists and other verifiers compare bytes.
        if let domain, !(claims.domain?.utf8.elementsEqual(domain.utf8) ?? false) {
            throw PATValidationError(.wrongDomain, "token acts in domain \(claims.domain.map { "\"\($0)\"" } ?? "(none)"), not \"\(domain)\"")
        }
    }
}

/// Signs PAT claims into PASETO v4.public tokens whose footer names the key.
public struct Issuer: Sendable {
    public let key: SecretKey
    public var implicitAssertion: [UInt8]

    public init(key: SecretKey, implicitAssertion: [UInt8] = []) {
        self.key = key
        self.implicitAssertion = implicitAssertion
    }

    /// The token for `claims`, after checking them against the issuing rules. Never returns a
    /// token a `Validator` would refuse as malformed or too large.
    public func issue(_ claims: PATClaims) throws(PATKitError) -> String {
        try claims.validateForIssue()
        let message = JSONWriter.encode(.object(claims.json))
        // The claims must read back as written (e.g. extra claims holding invalid JSON numbers).
        do {
            guard try PATClaims(json: message) == claims else {
                throw PATKitError.invalidClaims("the claims do not read back as issued")
            }
        } catch let error as PATKitError {
            throw error
        } catch {
            throw .invalidClaims("the claims would not validate: \(error)")
        }
        let token = PASETOv4Public.sign(message: message, footer: Footer.encode(key.id),
                                        implicitAssertion: implicitAssertion, with: key)
        guard token.utf8.count <= PASETOv4Public.defaultMaxTokenBytes else {
            throw .invalidClaims("the token would be \(token.utf8.count) bytes, over the \(PASETOv4Public.defaultMaxTokenBytes)-byte limit verifiers enforce; use fewer scopes or claims")
        }
        return token
    }
}
