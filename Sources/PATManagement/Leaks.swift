import PATKit
import PATRegistry

/// What the service does with a live PAT reported leaked.
public enum LeakAction: String, Sendable, CaseIterable {
    /// Revoke it and announce it. A PAT issued outside the registry (`pat issue`) has no record
    /// to revoke: its id gets a tombstone until the token's expiry, which kills exactly the
    /// tokens with that id (every generation), nothing else of the owner.
    case revoke
    /// Only announce it (`personalAccessToken.leaked`); someone decides what to do.
    case notify
}

/// One leaked token to respond to: its claims — verified by its signature, so the caller must
/// have checked that a key of this issuer signed it (`TokenInspector`) — and where it was found.
/// Never the token itself.
public struct LeakReport: Sendable {
    public var claims: PATClaims
    /// Where the token was found: a URL, or a file location. At most 2,048 bytes.
    public var url: String
    /// What found it: a secret scanner's `source` (`content`, `commit`, …) or `pat_scan`. At
    /// most 64 bytes.
    public var source: String

    public init(claims: PATClaims, url: String, source: String) {
        self.claims = claims
        self.url = url
        self.source = source
    }

    public static let maxURLBytes = 2048
    public static let maxSourceBytes = 64
}

/// What responding to one leaked token did.
public struct LeakResponse: Sendable, Equatable {
    public enum Outcome: String, Sendable {
        /// It was live: now revoked (and announced).
        case revoked
        /// It was live and issued outside the registry: its id now has a tombstone until its expiry.
        case revokedUnregistered = "revoked_unregistered"
        /// It was live: announced, not revoked (`LeakAction.notify`).
        case notified
        /// It was live and this generation was reported before: announced then, nothing done now
        /// (`LeakAction.notify`; a repeated or replayed report).
        case reportedBefore = "reported_before"
        /// The registry already knows it is dead: revoked, superseded, deleted or expired.
        case notLive = "not_live"
    }

    public let id: String
    public let generation: UInt64
    public let outcome: Outcome
    /// Why it is not live (`revoked`, `superseded`, `deleted`, `expired`, `owner_revoked`), for `notLive`.
    public let reason: String?
    /// True when this report was the first of this generation (a `leaked` event was recorded
    /// for a live token).
    public let firstReport: Bool
}

extension PATManagement {
    /// Responds to leaked tokens: records each reported generation once (`RegistryTransaction.recordLeak`),
    /// and for each token the registry still knows live, revokes it (`action: .revoke`) and records
    /// `personalAccessToken.leaked` with where it was found — once per generation, however often
    /// it is reported. A repeated or replayed report therefore revokes and announces nothing more.
    /// Publishes once at the end when something was revoked.
    ///
    /// Callers: the operator (`pat scan --revoke`), `pats:admin`, or a secret scanner whose
    /// signed report the adapter verified (`Caller.secretScanner`). One transaction per token.
    public func respondToLeaks(_ reports: [LeakReport], action: LeakAction, by caller: Caller) async throws(ManagementError) -> [LeakResponse] {
        switch caller {
        case .localOperator, .secretScanner: break
        case .token(let pat) where !caller.isAdmin:
            throw ManagementError(.permissionMissing, "PAT \(pat.id) lacks the required scope \(ManagementPermission.admin.scope) "
                                  + "to report leaks", scope: ManagementPermission.admin.scope)
        case .token: break
        }
        for (index, report) in reports.enumerated() {
            try checkText(report.url, field: "leaks[\(index)].url", maxBytes: LeakReport.maxURLBytes)
            try checkText(report.source, field: "leaks[\(index)].source", maxBytes: LeakReport.maxSourceBytes)
        }
        var responses: [LeakResponse] = []
        var revokedAny = false, recordedAny = false
        for report in reports {
            let response = try await respond(to: report, action: action, by: caller)
            responses.append(response)
            if response.outcome == .revoked || response.outcome == .revokedUnregistered { revokedAny = true }
            if response.firstReport { recordedAny = true }
        }
        if revokedAny {
            await changed("leak")
        } else if recordedAny {
            onChange()
        }
        return responses
    }

    private func respond(to report: LeakReport, action: LeakAction, by caller: Caller) async throws(ManagementError) -> LeakResponse {
        let claims = report.claims
        let now = clock()
        let principal = caller.principal
        let leeway: Int64 = 60 // as a verifier's: a token within it of its expiry still passes
        return try await change(id: claims.id) { tx in
            func result(_ outcome: LeakResponse.Outcome, reason: String? = nil, first: Bool = false) -> LeakResponse {
                LeakResponse(id: claims.id, generation: claims.generation, outcome: outcome, reason: reason, firstReport: first)
            }
            let record = try await tx.lockRecord(id: claims.id)
            if record == nil { try await tx.lockOwner(claims.subject) }
            let first = try await tx.recordLeak(LeakRecord(id: claims.id, generation: claims.generation, reportedAt: now,
                                                           url: report.url, source: report.source))
            if now > claims.expiresAt.adding(seconds: leeway) { return result(.notLive, reason: "expired") }
            if let revocation = try await tx.ownerRevocation(owner: claims.subject), claims.issuedAt < revocation.issuedBefore {
                return result(.notLive, reason: "owner_revoked")
            }
            func announce(_ data: JSONObject, done: String) async throws {
                var data = data
                var leak = JSONObject()
                leak.set("url", .string(report.url))
                leak.set("source", .string(report.source))
                leak.set("generation", .number(String(claims.generation)))
                leak.set("action", .string(done))
                leak.set("reportedAt", .string(now.rfc3339))
                data.set("leak", .object(leak))
                _ = try await tx.recordChange(ManagementEvent.leaked.change(data: data, actor: principal, at: now))
            }
            guard var record else {
                if try await tx.tombstone(id: claims.id) != nil { return result(.notLive, reason: "deleted") }
                // Issued outside the registry (`pat issue`): no record to revoke, so a tombstone
                // for its id kills it (every generation of that id) until it expires.
                var data = JSONObject()
                data.set("id", .string(claims.id))
                data.set("owner", .string(claims.subject))
                data.set("domain", claims.domain.map { .string($0) } ?? .null)
                data.set("generation", .number(String(claims.generation)))
                data.set("expiresAt", .string(claims.expiresAt.rfc3339))
                data.set("registered", .bool(false))
                if action == .revoke {
                    try await tx.insertTombstone(Tombstone(id: claims.id, owner: claims.subject, horizon: claims.expiresAt, deletedAt: now))
                    if first { try await announce(data, done: "revoked") }
                    return result(.revokedUnregistered, first: first)
                }
                if first { try await announce(data, done: "notified") }
                return result(first ? .notified : .reportedBefore, first: first)
            }
            if claims.generation < record.floor {
                return result(.notLive, reason: record.isRevoked && claims.generation == record.generation ? "revoked" : "superseded")
            }
            guard claims.generation <= record.generation else {
                throw ManagementError(.conflict, field: "id",
                                      "the leaked token of PAT \(claims.id) has generation \(claims.generation), above the registry's "
                                      + "\(record.generation): it was issued outside the registry (`pat issue --id`); delete the PAT "
                                      + "(`pat delete \(claims.id)`) to kill every generation")
            }
            if action == .revoke {
                try await PATManagement.markRevoked(&record, by: principal, now: now, tx: tx)
                if first { try await announce(record.json(at: now), done: "revoked") }
                return result(.revoked, first: first)
            }
            if first { try await announce(record.json(at: now), done: "notified") }
            return result(first ? .notified : .reportedBefore, first: first)
        }
    }

    /// Text stored as given (URLs, sources): bounded, and without NUL (PostgreSQL text cannot hold it).
    func checkText(_ text: String, field: String, maxBytes: Int) throws(ManagementError) {
        guard text.utf8.count <= maxBytes else { throw ManagementError(.invalidInput, field: field, "must be at most \(maxBytes) bytes") }
        guard !text.utf8.contains(0) else { throw ManagementError(.invalidInput, field: field, "must not contain the NUL character (U+0000)") }
    }
}
