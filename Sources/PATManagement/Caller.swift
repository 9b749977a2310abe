import PATKit
import PATRegistry

/// The management permissions: scopes of the entity `pats`. `pats:admin` grants every
/// operation on every owner's PATs; the others act on the caller's own PATs (`sub`), and an
/// id in the scope (`pats:read:<PAT id>`) narrows it to that PAT. Two are narrower still:
/// `pats:rotate_self` lets a PAT regenerate only itself (`Delegation`, rule 6), and
/// `pats:report_usage` lets an edge report the use it counted of any PAT — telemetry, no
/// authority over a PAT.
public enum ManagementPermission: String, Sendable, CaseIterable {
    case create, list, read, update, revoke, regenerate, delete, admin
    case rotateSelf = "rotate_self"
    case reportUsage = "report_usage"

    public static let entity = "pats"
    public var scope: String { "\(ManagementPermission.entity):\(rawValue)" }
}

/// Who asks the management service for something, and with what authority.
public enum Caller: Sendable {
    /// The operator on the issuer's machine (the `pat` CLI): full authority; what it issues
    /// has no lineage.
    case localOperator
    /// The holder of a PAT that a `Validator` accepted: what its `pats` scopes grant, on its
    /// own `sub`'s PATs — or everything with `pats:admin`.
    case token(VerifiedPAT)
    /// A secret scanner whose report (a leak of PATs) was signed by the configured scanner key
    /// `keyID`: it may only report leaks (`respondToLeaks`), nothing else.
    case secretScanner(keyID: String)

    /// The operator, or a PAT holding `pats:admin`.
    public var isAdmin: Bool {
        switch self {
        case .localOperator: return true
        case .token(let pat):
            return pat.allows(entity: ManagementPermission.entity, operation: ManagementPermission.admin.rawValue, id: nil)
        case .secretScanner: return false
        }
    }

    /// How changes by this caller are recorded and announced (`actor`).
    public var principal: Principal {
        switch self {
        case .localOperator: return .localOperator
        case .token(let pat): return .token(id: pat.id, generation: pat.generation, subject: pat.subject, admin: isAdmin)
        case .secretScanner(let keyID): return .secretScanner(keyID: keyID)
        }
    }

    /// Throws unless the caller may perform `permission` (on the PAT `id`, for an operation
    /// on one PAT).
    func require(_ permission: ManagementPermission, id: String? = nil) throws(ManagementError) {
        if case .secretScanner = self {
            throw ManagementError(.permissionMissing, "a secret scanner may only report leaks", scope: permission.scope)
        }
        guard case .token(let pat) = self, !isAdmin else { return }
        guard pat.allows(entity: ManagementPermission.entity, operation: permission.rawValue, id: id) else {
            throw ManagementError(.permissionMissing, "PAT \(pat.id) lacks the required scope \(permission.scope)",
                                  scope: permission.scope)
        }
    }

    /// True when the caller manages `owner`'s PATs: an admin, or the owner itself (bytes).
    func manages(_ owner: String) -> Bool {
        switch self {
        case .localOperator: return true
        case .token(let pat): return isAdmin || Identifier.same(pat.subject, owner)
        case .secretScanner: return false
        }
    }

    /// The owner an operation is about: `requested`, or the caller's own `sub` when nil (the
    /// operator must name one). Another owner needs `pats:admin`.
    func owner(_ requested: String?, field: String = "owner") throws(ManagementError) -> String {
        switch self {
        case .localOperator:
            guard let requested else { throw ManagementError(.invalidInput, field: field, "is required") }
            try Identifier.check(requested, field: field)
            return requested
        case .token(let pat):
            let requested = requested ?? pat.subject
            try Identifier.check(requested, field: field)
            if !Identifier.same(requested, pat.subject), !isAdmin {
                throw ManagementError(.permissionMissing, field: field,
                                      "PAT \(pat.id) may act only on its own owner's PATs; another owner needs \(ManagementPermission.admin.scope)",
                                      scope: ManagementPermission.admin.scope)
            }
            return requested
        case .secretScanner:
            throw ManagementError(.permissionMissing, field: field, "a secret scanner may only report leaks")
        }
    }
}
