/// Checks PATs offline: signature by a trusted key, claims, times, revocation, domain.
///
/// One `Validator` is shared by every thread of a service. Its key set and revocation list
/// can be replaced at any time (for example by a refresher) while other threads validate;
/// each validation sees one consistent pair.
public final class Validator: Sendable {
    public enum StaleListPolicy: String, Sendable {
        /// Refuse every token while the list (or the signed key set) is stale (fail closed).
        case reject
        /// Keep accepting on the last list and key set held.
        case accept
    }

    public struct Policy: Sendable {
        /// Clock-skew allowance for `iat`, `nbf` and `exp`, in seconds. A revocation list whose
        /// prune margin is smaller is refused (pruned entries could otherwise come back).
        public var leeway: Int64 = 60
        /// Tokens longer than this are refused before decoding.
        public var maxTokenBytes = PASETOv4Public.defaultMaxTokenBytes
        /// Refuse every token while no revocation list is loaded.
        public var requireRevocationList = true
        /// How long past its next-update a list or signed key set still counts as fresh, in seconds.
        public var staleGrace: Int64 = 0
        public var staleListPolicy: StaleListPolicy = .reject
        /// When set, tokens must carry this `dom`.
        public var domain: String?
        /// Authenticated data that tokens were signed with but do not carry.
        public var implicitAssertion: [UInt8] = []
        /// Tokens remembered after a full validation (0 turns the cache off).
        public var cacheCapacity = 100_000
        /// Bytes the cache may hold, by the estimate each entry is charged (its token, claims and
        /// bookkeeping; the benchmarks check the estimate against measured memory). 0 turns the cache off.
        public var cacheMaxBytes = 64 * 1024 * 1024
        /// Tokens longer than this are validated but never cached.
        public var cacheMaxTokenBytes = 4096

        public init() {}
    }

    /// Why the held revocation list was dropped: a new key set no longer trusts its signer.
    public struct DroppedList: Sendable, Equatable, CustomStringConvertible {
        public let sequence: UInt64
        public let signer: KeyID
        /// The signed key set that dropped it (nil: keys replaced directly).
        public let keySetSequence: UInt64?

        public var description: String {
            "revocation list \(sequence) was dropped because its signer \(signer) is not an active key of "
                + (keySetSequence.map { "key set \($0)" } ?? "the new key set")
                + "; waiting for a list signed by a trusted key"
        }
    }

    /// One consistent view of what a validation trusts; replaced whole, never mutated.
    final class Snapshot: Sendable {
        let keys: KeySet
        /// The active keys by id bytes: footers are matched without building a string.
        let keyIndex: [(id: [UInt8], key: PublicKey)]
        let revocations: RevocationList?
        /// The signed key set `keys` came from (nil when keys were given directly).
        let signedKeySet: SignedKeySet?
        /// Why a list is no longer held, until one is installed.
        let dropped: DroppedList?
        /// Changes whenever the key set does; cached results count only under their epoch.
        let keysEpoch: UInt64

        init(keys: KeySet, revocations: RevocationList?, signedKeySet: SignedKeySet? = nil,
             dropped: DroppedList? = nil, keysEpoch: UInt64) {
            self.keys = keys
            self.keyIndex = keys.activeKeys.map { (Array($0.id.rawValue.utf8), $0) }
            self.revocations = revocations
            self.signedKeySet = signedKeySet
            self.dropped = dropped
            self.keysEpoch = keysEpoch
        }

        func key(for kid: ArraySlice<UInt8>) -> PublicKey? {
            for entry in keyIndex where entry.id.elementsEqual(kid) { return entry.key }
            return nil
        }

        /// The held list if its signer is still active under `keys`; else nil and why.
        func listKept(under keys: KeySet, keySetSequence: UInt64?) -> (RevocationList?, DroppedList?) {
            guard let list = revocations else { return (nil, dropped) }
            if keys.verificationKey(for: list.signer) != nil { return (list, nil) }
            return (nil, DroppedList(sequence: list.sequence, signer: list.signer, keySetSequence: keySetSequence))
        }
    }

    private let state: SnapshotCell<Snapshot>
    private let cache: ValidationCache?
    public let policy: Policy
    private let clock: @Sendable () -> Timestamp

    public init(keys: KeySet, revocations: RevocationList? = nil, policy: Policy = Policy(),
                clock: @escaping @Sendable () -> Timestamp = { Timestamp.now() }) {
        self.state = SnapshotCell(Snapshot(keys: keys, revocations: revocations, keysEpoch: 0))
        self.cache = policy.cacheCapacity > 0 && policy.cacheMaxBytes > 0
            ? ValidationCache(capacity: policy.cacheCapacity, maxBytes: policy.cacheMaxBytes) : nil
        self.policy = policy
        self.clock = clock
    }

    public var keys: KeySet { state.read { $0.keys } }
    public var revocations: RevocationList? { state.read { $0.revocations } }
    /// The signed key set the keys came from, when they were installed from one.
    public var signedKeySet: SignedKeySet? { state.read { $0.signedKeySet } }
    /// Set when a new key set dropped the held list, until a list is installed.
    public var droppedList: DroppedList? { state.read { $0.dropped } }
    /// Tokens currently remembered by the cache.
    public var cachedTokenCount: Int { cache?.count ?? 0 }
    /// Bytes charged for the tokens the cache holds (at most `policy.cacheMaxBytes`).
    public var cachedBytes: Int { cache?.bytes ?? 0 }
    /// Validations answered from the cache so far (the rules were still checked on each): with
    /// ``cachedTokenCount`` and ``cachedBytes``, what a metrics exporter reports for the cache.
    public var cacheHitCount: Int { cache?.hits ?? 0 }

    /// Replaces the trusted keys. Tokens of keys no longer active fail on the next call,
    /// cached or not; a held list whose signer is no longer active is dropped (tokens are then
    /// refused as `missing_revocation_list` until a list signed by a trusted key arrives).
    public func replaceKeys(_ keys: KeySet) {
        let changed = state.update { held -> (Snapshot, Bool) in
            let (list, dropped) = held.listKept(under: keys, keySetSequence: nil)
            let changed = keys != held.keys
            return (Snapshot(keys: keys, revocations: list, dropped: dropped,
                             keysEpoch: changed ? held.keysEpoch &+ 1 : held.keysEpoch), changed)
        }
        if changed { cache?.removeAll() }
    }

    /// Installs a verified signed key set (see `SignedKeySet(verifying:anchors:)`), with a
    /// list verified against its keys when one came with it. Refuses a lower key-set sequence
    /// than the one held (rollback) and a different document under the held sequence; then
    /// the list's rules as in `install(_:)`. Without a list, a held list whose signer is no
    /// longer active is dropped (`droppedList` says so). All or nothing, atomically.
    public func install(_ keySet: SignedKeySet, revocations list: RevocationList? = nil) throws(PATKitError) {
        let leeway = policy.leeway
        let changed = try state.tryUpdate { (held: Snapshot) throws(PATKitError) -> (Snapshot, Bool) in
            if let current = held.signedKeySet {
                if keySet.sequence < current.sequence { throw .keySetRollback(held: current.sequence, offered: keySet.sequence) }
                if keySet.sequence == current.sequence, keySet != current {
                    throw .invalidDocument("a different key set with the held sequence \(current.sequence) was offered")
                }
            }
            let keysChanged = keySet.keys != held.keys
            let epoch = keysChanged ? held.keysEpoch &+ 1 : held.keysEpoch
            if let list {
                try Validator.admit(list, keys: keySet.keys, held: held.revocations, leeway: leeway)
                return (Snapshot(keys: keySet.keys, revocations: list, signedKeySet: keySet, keysEpoch: epoch), keysChanged)
            }
            let (kept, dropped) = held.listKept(under: keySet.keys, keySetSequence: keySet.sequence)
            return (Snapshot(keys: keySet.keys, revocations: kept, signedKeySet: keySet, dropped: dropped, keysEpoch: epoch), keysChanged)
        }
        if changed { cache?.removeAll() }
    }

    /// Installs a newer revocation list. Refuses a lower sequence than the one held, a
    /// different list under the same sequence, a list whose prune margin is below this
    /// validator's leeway, and a list whose signer is not an active key now.
    /// Takes effect on the next call, cached tokens included.
    public func install(_ list: RevocationList) throws(PATKitError) {
        let leeway = policy.leeway
        try state.tryUpdate { (held: Snapshot) throws(PATKitError) -> (Snapshot, Void) in
            guard held.keys.verificationKey(for: list.signer) != nil else {
                throw .invalidDocument("revocation list is signed by \(list.signer), which is not an active key")
            }
            if let current = held.revocations, list.sequence == current.sequence, list.signature == current.signature {
                return (held, ())
            }
            try Validator.admit(list, keys: held.keys, held: held.revocations, leeway: leeway)
            return (Snapshot(keys: held.keys, revocations: list, signedKeySet: held.signedKeySet, keysEpoch: held.keysEpoch), ())
        }
    }

    /// Replaces the key set and the revocation list together, atomically: for a rotation where
    /// the new list is signed by a key only the new set holds. The list must be signed by an
    /// active key of `keys`; rollback and equivocation are refused as in `install(_:)`.
    public func install(keys: KeySet, revocations list: RevocationList) throws(PATKitError) {
        let leeway = policy.leeway
        let changed = try state.tryUpdate { (held: Snapshot) throws(PATKitError) -> (Snapshot, Bool) in
            try Validator.admit(list, keys: keys, held: held.revocations, leeway: leeway)
            let keysChanged = keys != held.keys
            return (Snapshot(keys: keys, revocations: list, keysEpoch: keysChanged ? held.keysEpoch &+ 1 : held.keysEpoch), keysChanged)
        }
        if changed { cache?.removeAll() }
    }

    /// The rules a list must meet to replace `held` under `keys`.
    private static func admit(_ list: RevocationList, keys: KeySet, held: RevocationList?, leeway: Int64) throws(PATKitError) {
        guard keys.verificationKey(for: list.signer) != nil else {
            throw .invalidDocument("revocation list is signed by \(list.signer), which is not an active key of the key set")
        }
        if let held {
            if list.sequence < held.sequence { throw .rollback(held: held.sequence, offered: list.sequence) }
            if list.sequence == held.sequence, list.signature != held.signature {
                throw .invalidDocument("a different revocation list with the held sequence \(held.sequence) was offered")
            }
        }
        guard list.pruneMargin >= leeway else { throw .invalidDocument(Validator.marginProblem(list, leeway: leeway)) }
    }

    static func marginProblem(_ list: RevocationList, leeway: Int64) -> String {
        "revocation list \(list.sequence) keeps entries only \(list.pruneMargin) s past expiry (its prune margin), "
            + "less than this verifier's leeway of \(leeway) s, so a pruned revocation could pass again: "
            + "lower the leeway to at most \(list.pruneMargin) s, or have the issuer publish with --leeway \(leeway) or more"
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

    /// Verifies a chain of deltas (`RevocationDelta.chain(verifying:keys:)`) against the current
    /// keys, applies it to the held list and installs the result, with the same rules as a list
    /// fetched whole (`install(_:)`). Throws when no list is held or the chain starts elsewhere.
    @discardableResult
    public func installRevocations(delta bytes: [UInt8]) throws(PATKitError) -> RevocationList {
        let deltas = try RevocationDelta.chain(verifying: bytes, keys: keys)
        guard var list = revocations else {
            throw .invalidDocument("a revocation list delta needs a list to apply to; none is held")
        }
        for delta in deltas { list = try list.applying(delta) }
        try install(list)
        return list
    }

    /// Validates a token and returns the verified PAT, or throws why not.
    /// - Parameter domain: when given (or set in the policy), the token's `dom` must equal it.
    public func validate(_ token: String, domain: String? = nil) throws(PATValidationError) -> VerifiedPAT {
        try state.read { (snapshot: Snapshot) throws(PATValidationError) -> VerifiedPAT in
            try validate(token, domain: domain ?? policy.domain, snapshot: snapshot)
        }
    }

    private func validate(_ token: String, domain: String?, snapshot: Snapshot) throws(PATValidationError) -> VerifiedPAT {
        if let cache, token.utf8.count <= policy.cacheMaxTokenBytes, let hit = cache.lookup(token, epoch: snapshot.keysEpoch) {
            let now = clock()
            try checkSources(snapshot, now: now)
            try check(hit.pat.claims, tokenKey: hit.tokenKey, ownerKey: hit.ownerKey,
                      revocations: snapshot.revocations, domain: domain, now: now)
            return hit.pat
        }
        let parts = try PASETOv4Public.parse(token, maxBytes: policy.maxTokenBytes)
        let kid = try Footer.keyID(from: parts.footer)
        guard let key = snapshot.key(for: kid) else {
            if snapshot.keyIndex.isEmpty {
                throw PATValidationError(.missingKeySet, "no trusted key set is loaded; refusing until one is")
            }
            throw PATValidationError(.unknownKey, "token is signed by \(String(decoding: kid.prefix(64), as: UTF8.self)), which is not an active key of this verifier")
        }
        try PASETOv4Public.verify(parts, key: key, implicitAssertion: policy.implicitAssertion)
        let claims = try PATClaims(jsonBytes: parts.messageBytes)
        let pat = VerifiedPAT(claims: claims, keyID: key.id)
        let now = clock()
        try checkSources(snapshot, now: now)
        guard let cache, token.utf8.count <= policy.cacheMaxTokenBytes else {
            try check(claims, tokenKey: nil, ownerKey: nil, revocations: snapshot.revocations, domain: domain, now: now)
            return pat
        }
        // Hash the lookup keys once, for this call and every later hit (ancestors carry theirs).
        let tokenKey = RevocationList.tokenKey(claims.id)
        let ownerKey = RevocationList.ownerKey(claims.subject)
        try check(claims, tokenKey: tokenKey, ownerKey: ownerKey, revocations: snapshot.revocations, domain: domain, now: now)
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

    /// Whether what the snapshot holds may decide at all: the signed key set is fresh, and the
    /// list's prune margin covers the leeway. Applied on every call, cached or not.
    private func checkSources(_ snapshot: Snapshot, now: Timestamp) throws(PATValidationError) {
        if let keySet = snapshot.signedKeySet, policy.staleListPolicy == .reject, keySet.isStale(at: now, grace: policy.staleGrace) {
            throw PATValidationError(.staleKeySet,
                                     "key set \(keySet.sequence) was due for update at \(keySet.nextUpdate); refusing until a fresh key set arrives")
        }
        if let list = snapshot.revocations, list.pruneMargin < policy.leeway {
            throw PATValidationError(.missingRevocationList, "no usable revocation list: " + Validator.marginProblem(list, leeway: policy.leeway))
        }
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
            if let revocation = list.check(claims, tokenKey: tokenKey, ownerKey: ownerKey, now: now) {
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
