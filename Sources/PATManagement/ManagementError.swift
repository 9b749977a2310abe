import PATRegistry

/// Why the management service refused or failed an operation: one structured error for every
/// front end. It carries no CLI or HTTP wording — each adapter maps `kind` to its own status
/// (an exit code, an HTTP status and error code) and `field` to its own name for the input
/// (`--expires-in`, `duration`, …).
///
/// `Kind` is a struct with static members rather than an enum, so that adding a kind later
/// does not break code that switches over the kinds it knows.
public struct ManagementError: Error, Sendable, Equatable, CustomStringConvertible {
    public struct Kind: Sendable, Hashable, CustomStringConvertible {
        public let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// An input outside the accepted form or range, including a lifetime beyond what the
        /// caller may hand out. `field` names the input.
        public static let invalidInput = Kind("invalid_input")
        /// The caller's PAT lacks the `pats` permission the operation needs (`scope` names it).
        public static let permissionMissing = Kind("permission_missing")
        /// The operation would hand out more than the caller holds (a domain, a scope — named
        /// in `scope` —, a delegation level) or undo a revocation the caller may not undo.
        public static let forbidden = Kind("forbidden")
        /// No such PAT, or one of an owner the caller does not manage (never revealed).
        public static let notFound = Kind("not_found")
        /// The PAT was deleted (told to the operator; other callers get `notFound`).
        public static let deleted = Kind("deleted")
        /// The owner already has a PAT of that name.
        public static let nameTaken = Kind("name_taken")
        /// The PAT's state does not allow it: not active, already holding the scope, deleted,
        /// at its last generation.
        public static let conflict = Kind("conflict")
        /// The caller's own PAT is revoked, superseded or deleted in the registry (the
        /// registry knows before any published list does).
        public static let callerRevoked = Kind("caller_revoked")
        /// The registry, the key store or the file system failed; `underlying` says how (for
        /// logs: it may name paths and database details).
        public static let internalFailure = Kind("internal_failure")
    }

    public let kind: Kind
    /// The input the error is about, in the service's names: `owner`, `name`, `description`,
    /// `domain`, `scopes[2]`, `duration`, `expiresAt`, `id`, `status`; nil when none.
    public let field: String?
    /// What was wrong, as a sentence without any front end's wording.
    public let reason: String
    /// The scope at stake: the permission missing, or the scope the caller may not hand out.
    public let scope: String?
    /// For `internalFailure`: the underlying error's description.
    public let underlying: String?

    public init(_ kind: Kind, field: String? = nil, _ reason: String, scope: String? = nil, underlying: String? = nil) {
        self.kind = kind
        self.field = field
        self.reason = reason
        self.scope = scope
        self.underlying = underlying
    }

    /// `field: reason`, or the reason alone.
    public var description: String { field.map { "\($0): \(reason)" } ?? reason }

    /// The error for anything below the service: store conflicts and missing records keep their
    /// meaning, everything else is an internal failure.
    static func wrapping(_ error: any Error, id: String? = nil) -> ManagementError {
        switch error {
        case let error as ManagementError:
            return error
        case let error as RegistryError:
            switch error.kind {
            case .notFound: return .notFound(id ?? "")
            case .deleted: return ManagementError(.deleted, field: "id", error.message)
            case .conflict: return ManagementError(.conflict, error.message)
            case .invalid, .database: break
            }
            return ManagementError(.internalFailure, "the registry failed", underlying: error.message)
        case is CancellationError:
            return ManagementError(.internalFailure, "the operation was cancelled", underlying: "\(error)")
        default:
            return ManagementError(.internalFailure, "the operation failed", underlying: "\(error)")
        }
    }

    static func notFound(_ id: String) -> ManagementError {
        ManagementError(.notFound, field: "id", "no PAT with id \(Printable.clip(id, 128))")
    }
}
