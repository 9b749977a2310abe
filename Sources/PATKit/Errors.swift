/// Errors of PATKit outside token validation: keys, files, scopes, claims, lists.
/// Every case carries what was wrong; `description` also says what to do where that is known.
public enum PATKitError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A PASERK string or raw key that is not a valid k4 key of the expected type.
    case invalidKey(String)
    /// A secret key file that group or others may read.
    case insecureKeyFile(path: String, mode: UInt32)
    /// A file could not be read or written.
    case io(path: String, reason: String)
    /// A scope string outside the grammar or the catalog.
    case invalidScope(String)
    /// Claims that cannot be issued or parsed.
    case invalidClaims(String)
    /// A revocation list or key set document that is malformed, unsigned or signed by an unknown key.
    case invalidDocument(String)
    /// A revocation list older than the one already held.
    case rollback(held: UInt64, offered: UInt64)
    /// A signed key set older than the one already held.
    case keySetRollback(held: UInt64, offered: UInt64)
    /// libsodium reported a failure.
    case crypto(String)
    /// A caller passed a value outside the accepted range.
    case invalidArgument(String)

    public var description: String {
        switch self {
        case .invalidKey(let r): return "invalid key: \(r)"
        case .insecureKeyFile(let path, let mode):
            return "refusing to load secret key \(path): its mode is \(String(mode & 0o777, radix: 8)), "
                + "readable by group or others; run `chmod 600 \(path)` (and rotate the key if others may have read it)"
        case .io(let path, let r): return "\(path): \(r)"
        case .invalidScope(let r): return "invalid scope: \(r)"
        case .invalidClaims(let r): return "invalid claims: \(r)"
        case .invalidDocument(let r): return "invalid document: \(r)"
        case .rollback(let held, let offered):
            return "refusing revocation list sequence \(offered): sequence \(held) is already held (rollback)"
        case .keySetRollback(let held, let offered):
            return "refusing key set sequence \(offered): sequence \(held) is already held (rollback)"
        case .crypto(let r): return "cryptography failure: \(r)"
        case .invalidArgument(let r): return r
        }
    }
}

/// Why a token was not accepted. `code` is stable (for logs, exit codes and JSON);
/// `reason` is a sentence for people.
public struct PATValidationError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable, Equatable, CaseIterable {
        case malformed
        case tooLarge = "too_large"
        case unknownKey = "unknown_key"
        case badSignature = "bad_signature"
        case expired
        case notYetValid = "not_yet_valid"
        case revoked
        /// A token that minted this one (an entry of `par`) was revoked, regenerated or deleted.
        case ancestorRevoked = "ancestor_revoked"
        case staleRevocationList = "stale_revocation_list"
        case missingRevocationList = "missing_revocation_list"
        /// No trusted key set is loaded (an edge before its first good key set).
        case missingKeySet = "missing_key_set"
        /// The signed key set is past its next-update (plus grace) and the policy refuses.
        case staleKeySet = "stale_key_set"
        case wrongDomain = "wrong_domain"
        case scopeMissing = "scope_missing"
    }

    public let code: Code
    public let reason: String

    public init(_ code: Code, _ reason: String) {
        self.code = code
        self.reason = reason
    }

    public var description: String { "\(code.rawValue): \(reason)" }

    static func malformed(_ reason: String) -> PATValidationError { .init(.malformed, reason) }
}
