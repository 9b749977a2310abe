import Hummingbird
import Logging
import PATHummingbird
import PATKit
import PATManagement
import PATRegistry

/// The management API, JSON over HTTP: a thin adapter over the management service
/// (`PATManagement`), which holds every rule. Requests are authenticated by a PAT (Bearer)
/// that the API's own `Validator` checks; the route decodes the body, calls the service with
/// `Caller.token`, and maps its `ManagementError` to a status and error code:
///
/// | route | scope | answer |
/// | --- | --- | --- |
/// | `POST /v3/personal-access-tokens` | `pats:create` | 201, the PAT with `accessToken` |
/// | `GET /v3/personal-access-tokens?status=&owner=&expiringWithin=&unusedFor=&limit=&offset=` | `pats:list` | 200 `{"personalAccessTokens": […], "total", "limit", "offset"}` |
/// | `POST /v3/personal-access-tokens/usage` (`{"entries": […]}`, an edge's `PATUsageReporter`) | `pats:report_usage` | 200 `{"recorded", "unknown", "newAddresses"}` |
/// | `DELETE /v3/personal-access-tokens?owner=` | `pats:delete` | 200 `{"deleted": [ids], "count"}`: every PAT of the owner |
/// | `GET …/{id}` | `pats:read` | 200, the PAT |
/// | `POST …/{id}/scopes`, `DELETE …/{id}/scopes` (`{"scopes": […]}`) | `pats:update` | 200, re-issued with `accessToken` |
/// | `DELETE …/{id}/scopes/all` | `pats:update` | 200, re-issued with `accessToken` |
/// | `POST …/{id}/revoke` | `pats:revoke` | 200, the PAT |
/// | `POST …/{id}/regenerate` (`{"duration"}` or `{"expiresAt"}`, optional `{"overlap": "1h"}`) | `pats:regenerate` (`pats:rotate_self` for the caller itself) | 200, re-issued with `accessToken` |
/// | `DELETE …/{id}` | `pats:delete` | 204 (200 with `"published": false` when publishing failed) |
///
/// Every change's answer ends with `"published": true|false`: false (with a `"warning"`) when the
/// change is recorded but the list that holds it could not be published yet — the republisher
/// retries until it can (`GET /status` shows the unpublished changes and the error).
///
/// Errors: 400 `invalid_request` naming the field, 401 (the caller's PAT is revoked in the
/// registry), 403 `scope_missing` naming the scope (a permission, or a scope the caller may
/// not hand out) or `forbidden` (domain, delegation depth), 404, 409 `name_taken`/`conflict`,
/// 503 `unavailable` with `Retry-After` (the registry's database is down or too slow), 500 `internal` (the cause is logged, never sent).
public struct ManagementRoutes: PATRouteGroup {
    public static let basePath = "/v3/personal-access-tokens"
    /// `Retry-After` of a 503 when the registry is unavailable.
    public static let unavailableRetryAfterSeconds = 5

    let service: PATManagement
    let validator: Validator
    let rateLimiter: RateLimiter?
    let logger: Logger
    let clock: @Sendable () -> Timestamp
    /// Where the authenticator counts and times validations (`ManagementServer.install` sets it).
    var metrics: PATValidationMetrics? = nil

    public func addRoutes(to router: Router<PATServer.Context>) {
        let api = self
        let group = router.group(RouterPath(ManagementRoutes.basePath))
            .add(middleware: PATAuthenticator<PATServer.Context>(validator: validator, metrics: metrics))
        if let rateLimiter { group.add(middleware: RateLimitMiddleware<PATServer.Context>(limiter: rateLimiter)) }
        group.post { request, context in try await api.create(request, context) }
        group.post("usage") { request, context in try await api.reportUsage(request, context) }
        group.get { request, context in try await api.list(request, context) }
        group.delete { request, context in try await api.deleteAll(request, context) }
        group.get("{id}") { request, context in try await api.show(request, context) }
        group.delete("{id}") { request, context in try await api.delete(request, context) }
        group.post("{id}/scopes") { request, context in try await api.addScopes(request, context) }
        group.delete("{id}/scopes") { request, context in try await api.removeScopes(request, context) }
        group.delete("{id}/scopes/all") { request, context in try await api.clearScopes(request, context) }
        group.post("{id}/revoke") { request, context in try await api.revoke(request, context) }
        group.post("{id}/regenerate") { request, context in try await api.regenerate(request, context) }
    }

    // MARK: routes

    func create(_ request: Request, _ context: PATServer.Context) async throws -> Response {
        let caller = try Self.caller(context)
        let body = try await ManagementBody.read(request, optional: false)
        try body.allow(["name", "description", "expiresAt", "duration", "scopes", "domain", "revoked", "owner"])
        let create = CreateRequest(owner: try body.string("owner"), name: try body.requiredString("name"),
                                   description: try body.string("description", nullable: true), scopes: try body.scopes(),
                                   expiry: try body.expiry(), domain: try body.string("domain", nullable: true),
                                   revoked: try body.bool("revoked") ?? false)
        let issued = try await call { try await service.create(create, by: caller) }
        logger.info("PAT created", metadata: ["id": "\(issued.record.id)", "by": "\(caller.principal)"])
        var headers = HTTPFields()
        headers[.location] = "\(ManagementRoutes.basePath)/\(issued.record.id)"
        return ManagementJSON.response(.created, Self.answer(issued.json(at: clock()), issued.publication), headers: headers)
    }

    func list(_ request: Request, _ context: PATServer.Context) async throws -> Response {
        let caller = try Self.caller(context)
        let query = request.uri.queryParameters
        try Self.allowQuery(query, ["status", "owner", "limit", "offset", "expiringWithin", "unusedFor"])
        guard let status = StatusFilter(rawValue: query.get("status") ?? "all") else {
            throw ManagementBody.invalid("status", "must be active, expired, revoked or all")
        }
        let limit = try Self.integer(query, "limit", default: 100, range: 1...1000)
        let offset = try Self.integer(query, "offset", default: 0, range: 0...Int(Int32.max))
        let owner = query.get("owner")
        let expiringWithin = try Self.span(query, "expiringWithin"), unusedFor = try Self.span(query, "unusedFor")
        let records = try await call {
            try await service.list(owner: owner, status: status, unusedFor: unusedFor, expiringWithin: expiringWithin, by: caller)
        }
        let now = clock()
        var o = JSONObject()
        o.set("personalAccessTokens", .array(records.dropFirst(offset).prefix(limit).map { .object($0.json(at: now)) }))
        o.set("total", .number(String(records.count)))
        o.set("limit", .number(String(limit)))
        o.set("offset", .number(String(offset)))
        return ManagementJSON.response(.ok, o)
    }

    func show(_ request: Request, _ context: PATServer.Context) async throws -> Response {
        let caller = try Self.caller(context)
        let id = try Self.id(context)
        let record = try await call(id: id) { try await service.record(id: id, by: caller) }
        return ManagementJSON.response(.ok, record.json(at: clock()))
    }

    func addScopes(_ request: Request, _ context: PATServer.Context) async throws -> Response {
        let caller = try Self.caller(context)
        let id = try Self.id(context)
        let body = try await ManagementBody.read(request, optional: false)
        try body.allow(["scopes"])
        let scopes = try body.scopes()
        return reissued(try await call(id: id) { try await service.addScopes(id: id, scopes, by: caller) }, caller: caller, action: "scopes added")
    }

    func removeScopes(_ request: Request, _ context: PATServer.Context) async throws -> Response {
        let caller = try Self.caller(context)
        let id = try Self.id(context)
        let body = try await ManagementBody.read(request, optional: false)
        try body.allow(["scopes"])
        let scopes = try body.scopes()
        return reissued(try await call(id: id) { try await service.removeScopes(id: id, scopes, by: caller) }, caller: caller, action: "scopes removed")
    }

    func clearScopes(_ request: Request, _ context: PATServer.Context) async throws -> Response {
        let caller = try Self.caller(context)
        let id = try Self.id(context)
        try await ManagementBody.read(request, optional: true).allow([])
        return reissued(try await call(id: id) { try await service.clearScopes(id: id, by: caller) }, caller: caller, action: "scopes cleared")
    }

    func revoke(_ request: Request, _ context: PATServer.Context) async throws -> Response {
        let caller = try Self.caller(context)
        let id = try Self.id(context)
        try await ManagementBody.read(request, optional: true).allow([])
        let result = try await call(id: id) { try await service.revoke(id: id, by: caller) }
        if !result.wasAlreadyRevoked { logger.info("PAT revoked", metadata: ["id": "\(id)", "by": "\(caller.principal)"]) }
        return ManagementJSON.response(.ok, Self.answer(result.record.json(at: clock()), result.publication))
    }

    func regenerate(_ request: Request, _ context: PATServer.Context) async throws -> Response {
        let caller = try Self.caller(context)
        let id = try Self.id(context)
        let body = try await ManagementBody.read(request, optional: true)
        try body.allow(["duration", "expiresAt", "overlap"])
        let expiry = try body.expiry()
        var overlap: TimeSpan? = nil
        if let text = try body.string("overlap", nullable: true) {
            do { overlap = try OverlapSpan.parse(text) } catch { throw ManagementBody.invalid("overlap", "\(error)") }
        }
        return reissued(try await call(id: id) { try await service.regenerate(id: id, expiry: expiry, overlap: overlap, by: caller) },
                        caller: caller, action: "regenerated")
    }

    /// An edge's usage report (`PATUsageReporter`'s body): `{"entries": [{"id", "firstUsedAt",
    /// "lastUsedAt", "lastUsedFrom", "lastOutcome", "days": [{"date", "uses"}]}]}`.
    func reportUsage(_ request: Request, _ context: PATServer.Context) async throws -> Response {
        let caller = try Self.caller(context)
        let body = try await ManagementBody.read(request, optional: false, maxBytes: 4 * 1024 * 1024,
                                                 maxMembers: PATManagement.maxUsageEntries,
                                                 maxDepth: 5) // {"entries": [{…, "days": [{…}]}]}
        try body.allow(["entries"])
        guard case .array(let items)? = body.object["entries"] else {
            throw ManagementBody.invalid("entries", "is required: an array of usage entries")
        }
        var entries: [UsageUpdate] = []
        entries.reserveCapacity(items.count)
        for (index, item) in items.enumerated() { entries.append(try Self.usageEntry(item, field: "entries[\(index)]")) }
        let receipt = try await call { try await service.recordUsage(entries, by: caller) }
        var o = JSONObject()
        o.set("recorded", .number(String(receipt.recorded)))
        o.set("unknown", .number(String(receipt.unknown)))
        o.set("newAddresses", .number(String(receipt.newAddresses)))
        return ManagementJSON.response(.ok, o)
    }

    static func usageEntry(_ value: JSONValue, field: String) throws(PATHTTPError) -> UsageUpdate {
        guard case .object(let o) = value else { throw ManagementBody.invalid(field, "must be an object") }
        for key in o.keys where !["id", "firstUsedAt", "lastUsedAt", "lastUsedFrom", "lastOutcome", "days"].contains(key) {
            throw ManagementBody.invalid("\(field).\(key.prefix(64))", "unknown field")
        }
        func string(_ name: String) throws(PATHTTPError) -> String {
            guard let text = o[name]?.stringValue else { throw ManagementBody.invalid("\(field).\(name)", "must be a string") }
            return text
        }
        func time(_ name: String) throws(PATHTTPError) -> Timestamp {
            guard let instant = Timestamp(rfc3339: try string(name)) else {
                throw ManagementBody.invalid("\(field).\(name)", "must be an RFC 3339 UTC time such as 2027-01-31T12:00:00Z")
            }
            return instant
        }
        var address: String? = nil
        switch o["lastUsedFrom"] {
        case nil, .null?: address = nil
        case .string(let text)?: address = text
        default: throw ManagementBody.invalid("\(field).lastUsedFrom", "must be a string or null")
        }
        guard case .array(let dayItems)? = o["days"] else { throw ManagementBody.invalid("\(field).days", "must be an array") }
        var days: [UsageDay] = []
        for (index, item) in dayItems.enumerated() {
            guard case .object(let d) = item, let date = d["date"]?.stringValue, date.utf8.count == 10,
                  let midnight = Timestamp(rfc3339: date + "T00:00:00Z"), let uses = d["uses"]?.integer, uses >= 0 else {
                throw ManagementBody.invalid("\(field).days[\(index)]", "must be {\"date\": \"YYYY-MM-DD\", \"uses\": N}")
            }
            days.append(UsageDay(day: UsageDay.day(of: midnight), uses: UInt64(uses)))
        }
        return UsageUpdate(id: try string("id"), firstUsedAt: try time("firstUsedAt"), lastUsedAt: try time("lastUsedAt"),
                           lastUsedFrom: address, lastOutcome: try string("lastOutcome"), days: days)
    }

    func delete(_ request: Request, _ context: PATServer.Context) async throws -> Response {
        let caller = try Self.caller(context)
        let id = try Self.id(context)
        let deleted = try await call(id: id) { try await service.delete(id: id, by: caller) }
        logger.info("PAT deleted", metadata: ["id": "\(id)", "by": "\(caller.principal)"])
        guard deleted.publication.isPublished else {
            // No body says "not published" in a 204: the answer becomes 200 with one.
            var o = JSONObject()
            o.set("id", .string(id))
            return ManagementJSON.response(.ok, Self.answer(o, deleted.publication))
        }
        var headers = HTTPFields()
        headers[.cacheControl] = "no-store"
        return Response(status: .noContent, headers: headers)
    }

    func deleteAll(_ request: Request, _ context: PATServer.Context) async throws -> Response {
        let caller = try Self.caller(context)
        let query = request.uri.queryParameters
        try Self.allowQuery(query, ["owner"])
        let owner = query.get("owner")
        let deleted = try await call { try await service.deleteAll(owner: owner, by: caller) }
        if !deleted.isEmpty {
            logger.info("PATs deleted", metadata: ["count": "\(deleted.count)", "by": "\(caller.principal)"])
        }
        var o = JSONObject()
        o.set("deleted", .array(deleted.map { .string($0.record.id) }))
        o.set("count", .number(String(deleted.count)))
        return ManagementJSON.response(.ok, Self.answer(o, deleted.first?.publication ?? service.republisher?.publication ?? .deferred))
    }

    // MARK: helpers

    private func reissued(_ issued: IssuedPAT, caller: Caller, action: String) -> Response {
        logger.info("PAT re-issued", metadata: ["id": "\(issued.record.id)", "action": "\(action)",
                                                "generation": "\(issued.record.generation)", "by": "\(caller.principal)"])
        return ManagementJSON.response(.ok, Self.answer(issued.json(at: clock()), issued.publication))
    }

    /// A change's answer: `object`, then `"published"`: whether verifiers can see the change
    /// yet, and when they cannot, a `"warning"` saying so (the cause is in the server's log and
    /// `GET /status`, never in the answer).
    static func answer(_ object: JSONObject, _ publication: Publication) -> JSONObject {
        var o = object
        o.set("published", .bool(publication.isPublished))
        if !publication.isPublished {
            o.set("warning", .string(unpublishedWarning))
        }
        return o
    }

    static let unpublishedWarning = "the change is recorded, but publishing the revocation list failed, so verifiers do not see it "
        + "yet; the server retries until a publish succeeds (see GET /status)"

    static func caller(_ context: PATServer.Context) throws(PATHTTPError) -> Caller { .token(try context.requirePAT()) }

    static func id(_ context: PATServer.Context) throws(PATHTTPError) -> String {
        guard let id = context.parameters.get("id"), !id.isEmpty else { throw notFound("") }
        return id
    }

    static func notFound(_ id: String) -> PATHTTPError {
        PATHTTPError(.notFound, code: "not_found",
                     message: "no personal access token with id \"\(String(id.prefix(128).unicodeScalars.filter { $0.value >= 0x20 && $0.value < 0x7F }))\"")
    }

    static func allowQuery(_ query: Parameters, _ known: Set<String>) throws(PATHTTPError) {
        for element in query where !known.contains(String(element.key)) {
            throw ManagementBody.invalid(String(element.key.prefix(64)),
                                         "unknown query parameter; expected \(known.sorted().joined(separator: ", "))")
        }
    }

    /// A duration query parameter (`7d`), or nil when absent.
    static func span(_ query: Parameters, _ name: String) throws(PATHTTPError) -> TimeSpan? {
        guard let text = query.get(name) else { return nil }
        do { return try TimeSpan(parsing: String(text.prefix(32))) } catch {
            throw ManagementBody.invalid(name, "must be a duration such as 7d, 12h or 90d")
        }
    }

    static func integer(_ query: Parameters, _ name: String, default value: Int, range: ClosedRange<Int>) throws(PATHTTPError) -> Int {
        guard let text = query.get(name) else { return value }
        guard text.count <= 12, let number = Int(text), range.contains(number) else {
            throw ManagementBody.invalid(name, "must be a whole number from \(range.lowerBound) to \(range.upperBound)")
        }
        return number
    }

    /// Calls the service and answers its errors in HTTP terms.
    /// - Parameter id: the PAT the route is about, for a 404.
    @discardableResult
    private func call<T>(id: String? = nil, _ body: () async throws -> T) async throws(PATHTTPError) -> T {
        do { return try await body() } catch let error as ManagementError {
            throw httpError(error, id: id)
        } catch {
            throw httpError(ManagementError(.internalFailure, "the operation failed", underlying: "\(error)"), id: id)
        }
    }

    /// The HTTP form of a service error.
    func httpError(_ error: ManagementError, id: String?) -> PATHTTPError {
        switch error.kind {
        case .invalidInput:
            return ManagementBody.invalid(error.field ?? "body", error.reason)
        case .permissionMissing, .forbidden:
            guard let scope = error.scope else {
                return PATHTTPError(.forbidden, code: "forbidden", message: error.description)
            }
            var refusal = PATHTTPError.scopeMissing(scope)
            refusal.message = error.description
            return refusal
        case .notFound, .deleted:
            return Self.notFound(id ?? "")
        case .nameTaken:
            return PATHTTPError(.conflict, code: "name_taken", message: error.description)
        case .conflict:
            return PATHTTPError(.conflict, code: "conflict", message: error.reason)
        case .callerRevoked:
            return PATHTTPError.refused(PATValidationError(.revoked, error.reason))
        case .unavailable:
            // The registry's database is down or overloaded: try again later. Edges
            // are not affected: they validate offline with the last list they hold.
            logger.warning("management request failed: registry unavailable", metadata: ["cause": "\(error.underlying ?? "-")"])
            var headers = HTTPFields()
            headers[.retryAfter] = String(Self.unavailableRetryAfterSeconds)
            return PATHTTPError(.serviceUnavailable, code: "unavailable",
                                message: "the PAT registry is unavailable: retry after \(Self.unavailableRetryAfterSeconds) s",
                                headers: headers)
        default:
            logger.error("management request failed", metadata: ["error": "\(error.reason)", "cause": "\(error.underlying ?? "-")"])
            return PATHTTPError(.internalServerError, code: "internal", message: "internal error")
        }
    }

}
