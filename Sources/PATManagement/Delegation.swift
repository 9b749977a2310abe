import PATKit
import PATRegistry

/// Where minting is bounded: every rule that keeps what a token hands out within what it has.
///
/// Verification is offline, so a token minted wrongly can never be caught later: the issuer is
/// the only place where authority can be bounded. A caller bounded by these rules — a PAT
/// without `pats:admin` — is the *parent* of every token it mints or re-issues:
///
/// 1. **Domain**: the token acts in the parent's `dom`; a parent without `dom` mints only
///    domain-less tokens.
/// 2. **Scopes**: every scope of the token is covered by one of the parent's (structurally:
///    `clients:view:*` covers `clients:view:c-1`, not the reverse). `pats` scopes follow the
///    same rule, so no one hands out management rights it does not hold.
/// 3. **Lifetime**: the token never expires after the parent (an explicit later expiry is
///    refused naming the parent's; without one, the default lifetime is cut to it). Besides,
///    no token outlives the policy's maximum lifetime, whoever mints it. A regenerate's overlap
///    keeps the previous token alive, so it is bounded the same way (`overlapEnd`).
/// 4. **Lineage**: the token carries the parent's chain plus the parent (`par`, at most
///    `PATAncestor.maxDepth` entries; deeper minting is refused), so revoking, regenerating or
///    deleting any ancestor kills it at the next list. The chain comes from the parent's
///    record; the parent must be live in the registry (with its ancestors) when it mints: the
///    registry knows of a revocation before any list.
/// 5. **Who may undo**: a PAT revoked by anyone but its owner acting alone (an admin, the
///    operator, another PAT, a secret scanner) can be regenerated only by `pats:admin` or the
///    operator.
/// 6. **Self-rotation**: `pats:rotate_self` lets a PAT regenerate itself and nothing else; the
///    caller is then the parent of its own next generation, so rules 1–4 bound it: same domain
///    and scopes, an expiry no later than its own (rotating never extends a token's life), the
///    same lineage; the calling generation dies with the rotation.
///
/// Besides, every expiry is bounded by the maximum lifetime: the service's, and the stricter
/// per-domain policy stored in the registry (`LifetimePolicy`), whoever mints.
///
/// The operator (CLI) and `pats:admin` have full authority; what they issue has no lineage.
/// Ownership (a caller acts on its own `sub`'s PATs unless admin) is `Caller`'s rule.
struct Delegation: Sendable {
    let caller: Caller
    let policy: ManagementPolicy

    /// The PAT that bounds what is handed out; nil for the operator and `pats:admin`.
    var parent: VerifiedPAT? {
        guard case .token(let pat) = caller, !caller.isAdmin else { return nil }
        return pat
    }

    // MARK: 1. domain

    /// The domain of a new token: `requested`, or the parent's when nil.
    func domain(_ requested: String?) throws(ManagementError) -> String? {
        if let requested { try Identifier.check(requested, field: "domain") }
        guard let parent else { return requested }
        guard let requested else { return parent.domain }
        try checkDomain(requested, field: "domain")
        return requested
    }

    /// Throws unless a token acting in `domain` is within the parent's domain.
    func checkDomain(_ domain: String?, field: String = "domain") throws(ManagementError) {
        guard let parent, !Identifier.same(domain, parent.domain) else { return }
        let what = domain.map { "domain \"\(Printable.clip($0, 64))\"" } ?? "no domain"
        let allowed = parent.domain.map { "only tokens of its own domain \"\(Printable.clip($0, 64))\"" } ?? "only tokens without a domain"
        throw ManagementError(.forbidden, field: field,
                              "a token with \(what) cannot be issued by PAT \(parent.id), which issues \(allowed) (pats:admin may choose)")
    }

    // MARK: 2. scopes

    /// Throws, naming the first scope no scope of the parent covers.
    func checkScopes(_ scopes: some Sequence<Scope>, field: String = "scopes") throws(ManagementError) {
        guard let parent else { return }
        for scope in scopes where !parent.scopes.allows(scope) {
            throw ManagementError(.forbidden, field: field,
                                  "a token carrying \(scope) can only be issued by a caller holding a scope that covers it "
                                  + "(or pats:admin); PAT \(parent.id) does not", scope: scope.description)
        }
    }

    // MARK: 3. lifetime

    /// The expiry of a new or regenerated token: in the future, within the maximum lifetime —
    /// the service's, or the token's domain's policy when that is stricter — and never after
    /// the parent's. Without a requested expiry, the default lifetime cut to both.
    func expiry(_ requested: Expiry?, now: Timestamp, domainPolicy: LifetimePolicy? = nil) throws(ManagementError) -> Timestamp {
        let field = requested?.field ?? "duration"
        let maxLifetime = min(policy.maxLifetime.seconds, domainPolicy?.maxLifetime.seconds ?? .max)
        let expiresAt: Timestamp
        switch requested {
        case .after(let span)?: expiresAt = now.adding(seconds: span.seconds)
        case .at(let instant)?: expiresAt = instant
        case nil:
            let byDefault = now.adding(seconds: min(policy.defaultLifetime.seconds, maxLifetime))
            expiresAt = parent.map { min(byDefault, $0.expiresAt) } ?? byDefault
        }
        guard expiresAt > now else {
            throw ManagementError(.invalidInput, field: field, "the expiry \(expiresAt) is not in the future (now \(now))")
        }
        let lifetime = expiresAt.seconds - now.seconds
        guard lifetime <= maxLifetime else {
            let which = domainPolicy.map { $0.maxLifetime.seconds < policy.maxLifetime.seconds } ?? false
                ? "of domain \"\(Printable.clip(domainPolicy?.domain ?? "", 64))\" (its lifetime policy)" : ""
            throw ManagementError(.invalidInput, field: field,
                                  "a lifetime of \(formatDuration(lifetime)) (until \(expiresAt)) exceeds the maximum lifetime "
                                  + "\(which.isEmpty ? "" : which + " ")of \(formatDuration(maxLifetime))")
        }
        try checkWithinParent(expiresAt, field: field)
        return expiresAt
    }

    /// The end of a regenerate's overlap: the previous generation of `record` stays valid until
    /// then. At most the policy's maximum overlap; never after the previous generation's own
    /// expiry (cut to it); and — an overlap keeps a token alive — never after the parent's
    /// expiry (refused, naming it). Only an active PAT has a generation to keep: a revoked one
    /// stays dead, an expired one has nothing left to overlap. Nil for no overlap.
    func overlapEnd(_ overlap: TimeSpan?, for record: PATRecord, now: Timestamp) throws(ManagementError) -> Timestamp? {
        guard let overlap else { return nil }
        guard overlap.seconds <= policy.maxOverlap.seconds else {
            throw ManagementError(.invalidInput, field: "overlap",
                                  "an overlap of \(formatDuration(overlap.seconds)) exceeds the maximum of \(formatDuration(policy.maxOverlap.seconds))")
        }
        switch record.status(at: now) {
        case .active: break
        case .revoked:
            throw ManagementError(.invalidInput, field: "overlap",
                                  "PAT \(record.id) is revoked: its tokens stay dead; regenerate it without an overlap")
        case .ancestorRevoked:
            throw ManagementError(.invalidInput, field: "overlap",
                                  "PAT \(record.id) was issued by \(record.revokedAncestor?.description ?? "a token"), which is revoked, "
                                  + "regenerated or deleted: its tokens stay dead; regenerate it without an overlap")
        case .expired:
            throw ManagementError(.invalidInput, field: "overlap",
                                  "PAT \(record.id) expired at \(record.expiresAt): there is no valid token to overlap; regenerate it without an overlap")
        }
        let end = min(now.adding(seconds: overlap.seconds), record.expiresAt)
        try checkWithinParent(end, field: "overlap")
        return end
    }

    /// Throws when a token expiring at `expiresAt` would outlive the parent.
    func checkWithinParent(_ expiresAt: Timestamp, field: String) throws(ManagementError) {
        guard let parent, expiresAt > parent.expiresAt else { return }
        throw ManagementError(.invalidInput, field: field,
                              "the expiry \(expiresAt) is after the expiry of the calling PAT \(parent.id) (\(parent.expiresAt)): "
                              + "a token never outlives the token that issues it; choose \(parent.expiresAt) or earlier")
    }

    // MARK: 4. lineage

    /// The parent's record, after checking that the parent and every ancestor of it are live
    /// in the registry: recorded, not deleted, their generation not below the floor (or kept by
    /// an overlap that has not ended). The
    /// registry knows of a revocation before any published list does. Nil when nothing bounds
    /// the caller.
    func liveParent(_ tx: any RegistryTransaction, now: Timestamp) async throws -> PATRecord? {
        guard let parent else { return nil }
        guard let record = try await tx.record(id: parent.id) else {
            let fate = try await tx.tombstone(id: parent.id) == nil
                ? "is not in the registry (e.g. made by `pat issue`): only registry PATs issue tokens" : "was deleted"
            throw ManagementError(.callerRevoked, "PAT \(parent.id) \(fate)")
        }
        // A generation kept by a regenerate's overlap is live until the overlap ends, as at every edge.
        guard record.isLive(generation: parent.generation, at: now) else {
            throw ManagementError(.callerRevoked,
                                  "generation \(parent.generation) of PAT \(parent.id) is no longer valid (revoked, regenerated or re-scoped)")
        }
        for link in record.lineage {
            guard let ancestor = try await tx.record(id: link.id), ancestor.isLive(generation: link.generation, at: now) else {
                throw ManagementError(.callerRevoked, "PAT \(link.id), which issued the calling PAT \(parent.id), is revoked, "
                                      + "regenerated or deleted: so is everything it issued")
            }
        }
        return record
    }

    /// The lineage of a token issued now: none for the operator and admins; the parent's chain
    /// plus the parent otherwise. Re-issuing the parent's own PAT keeps the parent's chain (the
    /// parent's generation dies with the re-issue).
    /// - Parameters:
    ///   - id: the PAT being re-issued, nil for a new PAT.
    ///   - parentRecord: the parent's record, from `liveParent`.
    func lineage(reissuing id: String?, parentRecord: PATRecord?) throws(ManagementError) -> [PATRecord.Ancestor] {
        guard let parent, let parentRecord else { return [] }
        if let id, Identifier.same(id, parent.id) { return parentRecord.lineage }
        if let id, parentRecord.lineage.contains(where: { Identifier.same($0.id, id) }) {
            throw ManagementError(.forbidden, field: "id",
                                  "PAT \(id) is an ancestor of the calling PAT \(parent.id): re-issuing it would revoke the "
                                  + "caller and everything it issued; use a token outside its lineage, or pats:admin")
        }
        guard parentRecord.lineage.count < PATAncestor.maxDepth else {
            throw ManagementError(.forbidden,
                                  "PAT \(parent.id) was issued through \(parentRecord.lineage.count) levels of delegation, the "
                                  + "most there may be (\(PATAncestor.maxDepth)): it cannot issue tokens; ask a token higher in "
                                  + "its lineage, or pats:admin")
        }
        return parentRecord.lineage + [PATRecord.Ancestor(id: parent.id, generation: parent.generation)]
    }

    /// The domain's lifetime policy, read in the transaction that issues.
    static func lifetimePolicy(of domain: String?, _ tx: any RegistryTransaction) async throws -> LifetimePolicy? {
        guard let domain else { return nil }
        return try await tx.lifetimePolicy(domain: domain)
    }

    // MARK: 5. who may undo

    /// Throws when bringing back the revoked `record` needs more authority than the caller's.
    func checkMayRevive(_ record: PATRecord) throws(ManagementError) {
        guard record.isRevoked, !caller.isAdmin else { return }
        guard record.revokedBy?.isOwnerActingAlone(record.owner) != true else { return }
        throw ManagementError(.forbidden, field: "id",
                              "PAT \(record.id) was revoked by an administrator or by someone other than its owner: only "
                              + "\(ManagementPermission.admin.scope) can bring it back", scope: ManagementPermission.admin.scope)
    }

    // MARK: 6. self-rotation

    /// Throws unless the caller may regenerate PAT `id`: `pats:regenerate` (on its own owner's
    /// PATs; every owner's with `pats:admin`), or `pats:rotate_self` when `id` is the calling PAT
    /// itself. What a self-rotation issues is bounded by rules 1–4 like any re-issue by a PAT.
    func requireRegenerate(_ id: String) throws(ManagementError) {
        if case .token(let pat) = caller, !caller.isAdmin, Identifier.same(pat.id, id),
           pat.allows(entity: ManagementPermission.entity, operation: ManagementPermission.rotateSelf.rawValue, id: id) {
            return
        }
        do { try caller.require(.regenerate, id: id) } catch {
            guard case .token(let pat) = caller, Identifier.same(pat.id, id) else { throw error }
            throw ManagementError(.permissionMissing, "PAT \(pat.id) lacks the required scope \(ManagementPermission.regenerate.scope) "
                                  + "(or \(ManagementPermission.rotateSelf.scope) to regenerate itself)",
                                  scope: ManagementPermission.rotateSelf.scope)
        }
    }
}
