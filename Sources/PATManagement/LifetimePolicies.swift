import PATKit
import PATRegistry

extension PATManagement {
    /// Sets the maximum lifetime of the tokens of `domain` (`pat policy set`; the operator or
    /// `pats:admin`). Stored in the registry, so every node and every later command applies it:
    /// creates and regenerates in that domain get at most `min(maxLifetime, policy.maxLifetime)`,
    /// and a default lifetime longer than that is cut to it. Tokens already issued keep their expiry.
    @discardableResult
    public func setLifetimePolicy(domain: String, maxLifetime: TimeSpan, by caller: Caller) async throws(ManagementError) -> LifetimePolicy {
        try requireAdmin(caller)
        try Identifier.check(domain, field: "domain")
        guard maxLifetime.seconds > 0, maxLifetime.seconds <= 100 * 31_536_000 else {
            throw ManagementError(.invalidInput, field: "maxLifetime", "must be a positive duration of at most 100 years")
        }
        let policy = LifetimePolicy(domain: domain, maxLifetime: maxLifetime, updatedAt: clock())
        try await change(id: nil) { tx in try await tx.saveLifetimePolicy(policy) }
        return policy
    }

    /// Removes the domain's policy (the global maximum applies again); false when it had none.
    @discardableResult
    public func removeLifetimePolicy(domain: String, by caller: Caller) async throws(ManagementError) -> Bool {
        try requireAdmin(caller)
        try Identifier.check(domain, field: "domain")
        return try await change(id: nil) { tx in try await tx.removeLifetimePolicy(domain: domain) }
    }

    /// Every domain's policy, by domain.
    public func lifetimePolicies(by caller: Caller) async throws(ManagementError) -> [LifetimePolicy] {
        try requireAdmin(caller)
        return try await read { tx in try await tx.lifetimePolicies() }
    }

    private func requireAdmin(_ caller: Caller) throws(ManagementError) {
        guard caller.isAdmin else {
            throw ManagementError(.permissionMissing, "lifetime policies are set by the operator or \(ManagementPermission.admin.scope)",
                                  scope: ManagementPermission.admin.scope)
        }
    }
}
