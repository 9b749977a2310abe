import PATStore

/// Who made a change: the local operator (the `pat` CLI, full authority), the holder of a
/// PAT (its id, `sub`, and whether it held `pats:admin`), or a secret scanner reporting a leak
/// (the scanner key that signed its report). Recorded with revocations, so that
/// only someone at least as strong can undo one, and named in every change event (`actor`).
public enum Principal: Sendable, Equatable, Codable {
    /// The operator on the issuer's machine, through the `pat` CLI.
    case localOperator
    /// The holder of PAT `id` (generation `generation`) whose owner is `subject`.
    case token(id: String, generation: UInt64, subject: String, admin: Bool)
    /// A secret scanner (GitHub's partner program) whose report, signed with the scanner key
    /// `keyID`, revoked a leaked PAT.
    case secretScanner(keyID: String)

    /// True when `self` is the PAT holder `owner` acting without `pats:admin`: the only
    /// revoker an owner may overrule.
    public func isOwnerActingAlone(_ owner: String) -> Bool {
        guard case .token(_, _, let subject, let admin) = self else { return false }
        return !admin && subject.utf8.elementsEqual(owner.utf8)
    }

    /// The JSON form: `{"type": "cli"}`, `{"type": "pat", "id": …, "generation": …, "subject": …, "admin": …}`
    /// or `{"type": "scanner", "keyId": …}`.
    public var json: JSONObject {
        var o = JSONObject()
        switch self {
        case .localOperator:
            o.set("type", .string("cli"))
        case .token(let id, let generation, let subject, let admin):
            o.set("type", .string("pat"))
            o.set("id", .string(id))
            o.set("generation", .number(String(generation)))
            o.set("subject", .string(subject))
            o.set("admin", .bool(admin))
        case .secretScanner(let keyID):
            o.set("type", .string("scanner"))
            o.set("keyId", .string(keyID))
        }
        return o
    }

    private enum CodingKeys: String, CodingKey { case type, id, generation, subject, admin, keyID = "keyId" }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        switch try c.decode(String.self, forKey: .type) {
        case "cli": self = .localOperator
        case "pat":
            self = .token(id: try c.decode(String.self, forKey: .id), generation: try c.decode(UInt64.self, forKey: .generation),
                          subject: try c.decode(String.self, forKey: .subject), admin: try c.decode(Bool.self, forKey: .admin))
        case "scanner": self = .secretScanner(keyID: try c.decode(String.self, forKey: .keyID))
        case let other:
            throw DecodingError.dataCorruptedError(forKey: .type, in: c, debugDescription: "unknown principal type \(other)")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .localOperator:
            try c.encode("cli", forKey: .type)
        case .token(let id, let generation, let subject, let admin):
            try c.encode("pat", forKey: .type)
            try c.encode(id, forKey: .id)
            try c.encode(generation, forKey: .generation)
            try c.encode(subject, forKey: .subject)
            try c.encode(admin, forKey: .admin)
        case .secretScanner(let keyID):
            try c.encode("scanner", forKey: .type)
            try c.encode(keyID, forKey: .keyID)
        }
    }
}
