import PATKit
import PATRegistry

// The one JSON shape of a PAT record, for `pat … --json`, the management API and webhook
// events alike: everything but the token, which is never stored. A freshly issued token is
// added as `accessToken`, first.

extension PATRecord {
    /// The record as JSON at `now` (its status is derived).
    public func json(at now: Timestamp) -> JSONObject {
        func optional(_ value: String?) -> JSONValue { value.map { .string($0) } ?? .null }
        var o = JSONObject()
        o.set("id", .string(id))
        o.set("owner", .string(owner))
        o.set("name", .string(name))
        o.set("description", optional(description))
        o.set("domain", optional(domain))
        o.set("scopes", .array(scopes.map { .string($0.description) }))
        o.set("status", .string(status(at: now).rawValue))
        o.set("generation", .number(String(generation)))
        o.set("validFromGeneration", .number(String(floor)))
        o.set("lineage", .array(lineage.map { .string($0.description) }))
        // Status ancestor_revoked: the first token of the lineage that is no longer valid.
        o.set("revokedAncestor", optional(revokedAncestor?.description))
        o.set("createdAt", .string(createdAt.rfc3339))
        o.set("updatedAt", .string(updatedAt.rfc3339))
        o.set("expiresAt", .string(expiresAt.rfc3339))
        o.set("maxExpiresAt", .string(maxExpiresAt.rfc3339))
        o.set("lastRotatedAt", optional(lastRotatedAt?.rfc3339))
        // After a regenerate with an overlap, while it lasts: until when generation − 1 stays valid.
        o.set("previousGenerationValidUntil", optional(overlap(at: now)?.until.rfc3339))
        o.set("revokedAt", optional(revokedAt?.rfc3339))
        o.set("revokedBy", revokedBy.map { .object($0.json) } ?? .null)
        o.set("lastUsedAt", optional(usage?.lastUsedAt.rfc3339))
        o.set("lastUsedFrom", optional(usage?.lastUsedFrom))
        o.set("lastUseOutcome", optional(usage?.lastOutcome))
        o.set("uses", .number(String(usage?.uses ?? 0)))
        return o
    }
}

extension IssuedPAT {
    /// `accessToken` (when one was issued), then the record, then `issuedAt`.
    public func json(at now: Timestamp) -> JSONObject {
        var o = JSONObject()
        if let token { o.set("accessToken", .string(token)) }
        for member in record.json(at: now).members { o.set(member.key, member.value) }
        o.set("issuedAt", .string(issuedAt.rfc3339))
        return o
    }
}

extension DeletedPAT {
    /// The last record, with status `deleted` and `deletedAt`.
    public var json: JSONObject {
        var o = record.json(at: tombstone.deletedAt)
        o.set("status", .string("deleted"))
        o.set("deletedAt", .string(tombstone.deletedAt.rfc3339))
        return o
    }
}
