import Hummingbird
import Logging
import NIOPosix
import PATHummingbird
import PATKit
import PATRegistry

/// The management API, JSON over HTTP, authenticated by a PAT (Bearer) that the API's own
/// `Validator` checks, authorized by `pats:*` scopes (`ManagementPermission`):
///
/// | route | scope | answer |
/// | --- | --- | --- |
/// | `POST /v3/personal-access-tokens` | `pats:create` | 201, the PAT with `accessToken` |
/// | `GET /v3/personal-access-tokens?status=&owner=&limit=&offset=` | `pats:list` | 200 `{"personalAccessTokens": […], "total", "limit", "offset"}` |
/// | `DELETE /v3/personal-access-tokens?owner=` | `pats:delete` | 200 `{"deleted": [ids], "count"}`: every PAT of the owner |
/// | `GET …/{id}` | `pats:read` | 200, the PAT |
/// | `POST …/{id}/scopes`, `DELETE …/{id}/scopes` (`{"scopes": […]}`) | `pats:update` | 200, re-issued with `accessToken` |
/// | `DELETE …/{id}/scopes/all` | `pats:update` | 200, re-issued with `accessToken` |
/// | `POST …/{id}/revoke` | `pats:revoke` | 200, the PAT |
/// | `POST …/{id}/regenerate` (`{"duration"}` or `{"expiresAt"}`) | `pats:regenerate` | 200, re-issued with `accessToken` |
/// | `DELETE …/{id}` | `pats:delete` | 204 |
///
/// A caller manages the PATs of its own `sub`; `pats:admin` grants every operation on every
/// owner's PATs (`owner` in a create body, `?owner=` on the collection). Another owner's PAT
/// is reported as absent (404). A caller cannot hand out `pats` scopes it does not hold: a
/// request whose resulting token would carry one is refused (403 naming it).
///
/// Every change is published at once (the caller's old tokens are refused by the API and by
/// anything reading the new list), then announced to webhooks.
public struct ManagementRoutes: PATRouteGroup {
    public static let basePath = "/v3/personal-access-tokens"

    let lifecycle: Lifecycle
    let validator: Validator
    let republisher: Republisher
    let webhooks: WebhookDispatcher?
    let rateLimiter: RateLimiter?
    let defaultLifetime: TimeSpan
    let logger: Logger
    let clock: @Sendable () -> Timestamp

    public func addRoutes(to router: Router<PATServer.Context>) {
        let api = self
        let group = router.group(RouterPath(ManagementRoutes.basePath))
            .add(middleware: PATAuthenticator<PATServer.Context>(validator: validator))
        if let rateLimiter { group.add(middleware: RateLimitMiddleware<PATServer.Context>(limiter: rateLimiter)) }
        group.post { request, context in try await api.create(request, context) }
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

    // MARK: the caller

    /// The authenticated caller and what its PAT grants here.
    struct Caller {
        let pat: VerifiedPAT

        var subject: String { pat.subject }
        var isAdmin: Bool { pat.allows(entity: ManagementPermission.entity, operation: ManagementPermission.admin.rawValue, id: nil) }

        /// 403 unless the PAT grants `permission` (on `id`, for a route about one PAT) or is admin.
        func require(_ permission: ManagementPermission, id: String? = nil) throws(PATHTTPError) {
            if isAdmin || pat.allows(entity: ManagementPermission.entity, operation: permission.rawValue, id: id) { return }
            throw PATHTTPError.scopeMissing(permission.scope, patID: pat.id)
        }

        func requireAdmin() throws(PATHTTPError) {
            guard isAdmin else { throw PATHTTPError.scopeMissing(ManagementPermission.admin.scope, patID: pat.id) }
        }

        /// True when the caller may see and manage `owner`'s PATs.
        func manages(_ owner: String) -> Bool { isAdmin || owner == subject }

        /// 403 unless the caller holds every `pats` scope of `scopes` (no one hands out more
        /// management rights than it has).
        func mayHandOut(_ scopes: some Sequence<Scope>) throws(PATHTTPError) {
            guard !isAdmin else { return }
            for scope in scopes where scope.entity == ManagementPermission.entity && !pat.scopes.allows(scope) {
                var error = PATHTTPError.scopeMissing(scope.description, patID: pat.id)
                error.message = "a token carrying \(scope.description) can only be issued by a caller holding it (or pats:admin); "
                    + "PAT \(pat.id) does not"
                throw error
            }
        }
    }

    func authenticatedCaller(_ context: PATServer.Context) throws(PATHTTPError) -> Caller { Caller(pat: try context.requirePAT()) }

    // MARK: routes

    func create(_ request: Request, _ context: PATServer.Context) async throws -> Response {
        let caller = try authenticatedCaller(context)
        try caller.require(.create)
        let body = try await ManagementBody.read(request, optional: false)
        try body.allow(["name", "description", "expiresAt", "duration", "scopes", "domain", "revoked", "owner"])
        let name = try body.requiredString("name")
        try Self.check("name", "must be 1–\(PATRecord.maxNameLength) characters without control characters") { () throws(RegistryError) in
            try PATRecord.validateName(name)
        }
        let description = try body.string("description", nullable: true)
        if let description {
            try Self.check("description", "must be at most \(PATRecord.maxDescriptionLength) characters") { () throws(RegistryError) in
                try PATRecord.validateDescription(description)
            }
        }
        let domain = try body.string("domain", nullable: true)
        if let domain {
            try Self.check("domain", "must be 1–256 bytes without control characters") { () throws(RegistryError) in
                try PATRecord.validateDomain(domain)
            }
        }
        let owner = try body.string("owner") ?? caller.subject
        if owner != caller.subject { try caller.requireAdmin() }
        try Self.check("owner", "must be 1–256 bytes without control characters") { () throws(RegistryError) in
            try PATRecord.validateOwner(owner)
        }
        let scopes = try body.scopes()
        let now = clock()
        let expiresAt = try body.expiry(now: now, fallback: defaultLifetime, maxLifetime: lifecycle.maxLifetime)
        let revoked = try body.bool("revoked") ?? false
        try checkCatalog(scopes)
        try caller.mayHandOut(scopes)

        let lifecycle = self.lifecycle
        let existing = try await blocking(field: "name") { try lifecycle.store.read { tx in try tx.record(owner: owner, name: name) } }
        if existing != nil { throw Self.nameTaken(name, owner: owner, caller: caller) }
        let issued = try await blocking(field: "name", conflict: Self.nameTaken(name, owner: owner, caller: caller)) {
            try lifecycle.create(owner: owner, name: name, description: description, scopes: ScopeSet(scopes),
                                 expiry: .at(expiresAt), domain: domain)
        }
        // Created revoked: the record is shown without a token (it would never validate).
        let object: JSONObject
        let record: PATRecord
        if revoked {
            let id = issued.record.id
            record = try await blocking(id: id) { try lifecycle.revoke(id: id) }.record
            object = ManagementJSON.record(record, now: clock())
        } else {
            record = issued.record
            object = ManagementJSON.issued(issued, now: clock())
        }
        await republisher.publish(reason: "create")
        webhooks?.send(.created, data: .object(ManagementJSON.record(record, now: clock())))
        logger.info("PAT created", metadata: ["id": "\(record.id)", "owner": "\(owner)", "by": "\(caller.subject)"])
        var headers = HTTPFields()
        headers[.location] = "\(ManagementRoutes.basePath)/\(record.id)"
        return ManagementJSON.response(.created, object, headers: headers)
    }

    func list(_ request: Request, _ context: PATServer.Context) async throws -> Response {
        let caller = try authenticatedCaller(context)
        try caller.require(.list)
        let query = request.uri.queryParameters
        try Self.allowQuery(query, ["status", "owner", "limit", "offset"])
        let statusText = query.get("status") ?? "all"
        guard let status = StatusFilter(rawValue: statusText) else {
            throw ManagementBody.invalid("status", "must be active, expired, revoked or all")
        }
        let owner = try owner(query, caller: caller)
        let limit = try Self.integer(query, "limit", default: 100, range: 1...1000)
        let offset = try Self.integer(query, "offset", default: 0, range: 0...Int(Int32.max))
        let lifecycle = self.lifecycle, now = clock()
        let records = try await blocking { try lifecycle.store.list(owner: owner, status: status, now: now) }
        var o = JSONObject()
        o.set("personalAccessTokens", .array(records.dropFirst(offset).prefix(limit).map { .object(ManagementJSON.record($0, now: now)) }))
        o.set("total", .number(String(records.count)))
        o.set("limit", .number(String(limit)))
        o.set("offset", .number(String(offset)))
        return ManagementJSON.response(.ok, o)
    }

    func show(_ request: Request, _ context: PATServer.Context) async throws -> Response {
        let caller = try authenticatedCaller(context)
        let id = try Self.id(context)
        try caller.require(.read, id: id)
        let record = try await visibleRecord(id, caller: caller)
        return ManagementJSON.response(.ok, ManagementJSON.record(record, now: clock()))
    }

    func addScopes(_ request: Request, _ context: PATServer.Context) async throws -> Response {
        let caller = try authenticatedCaller(context)
        let id = try Self.id(context)
        try caller.require(.update, id: id)
        let body = try await ManagementBody.read(request, optional: false)
        try body.allow(["scopes"])
        let scopes = try body.scopes()
        try checkCatalog(scopes)
        let record = try await visibleRecord(id, caller: caller)
        try caller.mayHandOut(record.scopes.adding(scopes))
        try requireActive(record)
        let lifecycle = self.lifecycle
        let issued = try await blocking(field: "scopes", id: id) { try lifecycle.addScopes(id: id, scopes) }
        return await reissued(issued, event: .scopesChanged, caller: caller, action: "scopes added")
    }

    func removeScopes(_ request: Request, _ context: PATServer.Context) async throws -> Response {
        let caller = try authenticatedCaller(context)
        let id = try Self.id(context)
        try caller.require(.update, id: id)
        let body = try await ManagementBody.read(request, optional: false)
        try body.allow(["scopes"])
        let scopes = try body.scopes()
        let record = try await visibleRecord(id, caller: caller)
        try caller.mayHandOut(record.scopes.removing(scopes))
        try requireActive(record)
        let lifecycle = self.lifecycle
        let issued = try await blocking(field: "scopes", id: id) { try lifecycle.removeScopes(id: id, scopes) }
        return await reissued(issued, event: .scopesChanged, caller: caller, action: "scopes removed")
    }

    func clearScopes(_ request: Request, _ context: PATServer.Context) async throws -> Response {
        let caller = try authenticatedCaller(context)
        let id = try Self.id(context)
        try caller.require(.update, id: id)
        try await ManagementBody.read(request, optional: true).allow([])
        let record = try await visibleRecord(id, caller: caller)
        try requireActive(record)
        let lifecycle = self.lifecycle
        let issued = try await blocking(id: id) { try lifecycle.clearScopes(id: id) }
        return await reissued(issued, event: .scopesChanged, caller: caller, action: "scopes cleared")
    }

    func revoke(_ request: Request, _ context: PATServer.Context) async throws -> Response {
        let caller = try authenticatedCaller(context)
        let id = try Self.id(context)
        try caller.require(.revoke, id: id)
        try await ManagementBody.read(request, optional: true).allow([])
        _ = try await visibleRecord(id, caller: caller)
        let lifecycle = self.lifecycle
        let result = try await blocking(id: id) { try lifecycle.revoke(id: id) }
        let object = ManagementJSON.record(result.record, now: clock())
        if !result.wasAlreadyRevoked {
            await republisher.publish(reason: "revoke")
            webhooks?.send(.revoked, data: .object(object))
            logger.info("PAT revoked", metadata: ["id": "\(id)", "by": "\(caller.subject)"])
        }
        return ManagementJSON.response(.ok, object)
    }

    func regenerate(_ request: Request, _ context: PATServer.Context) async throws -> Response {
        let caller = try authenticatedCaller(context)
        let id = try Self.id(context)
        try caller.require(.regenerate, id: id)
        let body = try await ManagementBody.read(request, optional: true)
        try body.allow(["duration", "expiresAt"])
        let expiresAt = try body.expiry(now: clock(), fallback: defaultLifetime, maxLifetime: lifecycle.maxLifetime)
        let record = try await visibleRecord(id, caller: caller)
        try caller.mayHandOut(record.scopes)
        let lifecycle = self.lifecycle
        let issued = try await blocking(field: "expiresAt", id: id) { try lifecycle.regenerate(id: id, expiry: .at(expiresAt)) }
        return await reissued(issued, event: .regenerated, caller: caller, action: "regenerated")
    }

    func delete(_ request: Request, _ context: PATServer.Context) async throws -> Response {
        let caller = try authenticatedCaller(context)
        let id = try Self.id(context)
        try caller.require(.delete, id: id)
        let record = try await visibleRecord(id, caller: caller)
        let lifecycle = self.lifecycle
        let tombstone = try await blocking(id: id) { try lifecycle.delete(id: id) }
        await republisher.publish(reason: "delete")
        webhooks?.send(.deleted, data: .object(ManagementJSON.deleted(record, at: tombstone.deletedAt)))
        logger.info("PAT deleted", metadata: ["id": "\(id)", "by": "\(caller.subject)"])
        var headers = HTTPFields()
        headers[.cacheControl] = "no-store"
        return Response(status: .noContent, headers: headers)
    }

    func deleteAll(_ request: Request, _ context: PATServer.Context) async throws -> Response {
        let caller = try authenticatedCaller(context)
        try caller.require(.delete)
        let query = request.uri.queryParameters
        try Self.allowQuery(query, ["owner"])
        let owner = try owner(query, caller: caller)
        let lifecycle = self.lifecycle, now = clock()
        let (records, tombstones) = try await blocking {
            // The records first, for the webhooks; deleteAll then removes what is there.
            let records = try lifecycle.store.list(owner: owner, status: .all, now: now)
            return (records, try lifecycle.deleteAll(owner: owner))
        }
        if !tombstones.isEmpty {
            await republisher.publish(reason: "delete all")
            let deleted = Set(tombstones.map(\.id))
            let at = tombstones.first?.deletedAt ?? now
            for record in records where deleted.contains(record.id) {
                webhooks?.send(.deleted, data: .object(ManagementJSON.deleted(record, at: at)))
            }
            logger.info("PATs deleted", metadata: ["owner": "\(owner)", "count": "\(tombstones.count)", "by": "\(caller.subject)"])
        }
        var o = JSONObject()
        o.set("deleted", .array(tombstones.map { .string($0.id) }))
        o.set("count", .number(String(tombstones.count)))
        return ManagementJSON.response(.ok, o)
    }

    // MARK: helpers

    /// Publishes a re-issue, announces it, and answers with the new token.
    private func reissued(_ issued: IssuedPAT, event: WebhookEvent, caller: Caller, action: String) async -> Response {
        await republisher.publish(reason: action)
        webhooks?.send(event, data: .object(ManagementJSON.record(issued.record, now: clock())))
        logger.info("PAT re-issued", metadata: ["id": "\(issued.record.id)", "action": "\(action)",
                                                "generation": "\(issued.record.generation)", "by": "\(caller.subject)"])
        return ManagementJSON.response(.ok, ManagementJSON.issued(issued, now: clock()))
    }

    /// The record, when it exists and the caller manages its owner; 404 otherwise (another
    /// owner's PAT is not revealed).
    private func visibleRecord(_ id: String, caller: Caller) async throws(PATHTTPError) -> PATRecord {
        let lifecycle = self.lifecycle
        let record = try await blocking(id: id) { try lifecycle.store.get(id: id) }
        guard let record, caller.manages(record.owner) else { throw Self.notFound(id) }
        return record
    }

    /// 409 unless the PAT is active (scope changes re-issue the current expiry).
    private func requireActive(_ record: PATRecord) throws(PATHTTPError) {
        let status = record.status(at: clock())
        guard status == .active else {
            throw PATHTTPError(.conflict, code: "conflict",
                               message: "PAT \(record.id) is \(status): regenerate it first (POST \(ManagementRoutes.basePath)/\(record.id)/regenerate)")
        }
    }

    private func checkCatalog(_ scopes: [Scope]) throws(PATHTTPError) {
        for (index, scope) in scopes.enumerated() {
            do { try lifecycle.catalog.check(scope) } catch {
                throw ManagementBody.invalid("scopes[\(index)]", "\(error)")
            }
        }
    }

    /// `?owner=`: the caller's own `sub` unless given; another owner needs `pats:admin`.
    private func owner(_ query: Parameters, caller: Caller) throws(PATHTTPError) -> String {
        guard let owner = query.get("owner") else { return caller.subject }
        if owner != caller.subject { try caller.requireAdmin() }
        return owner
    }

    static func id(_ context: PATServer.Context) throws(PATHTTPError) -> String {
        guard let id = context.parameters.get("id"), !id.isEmpty else { throw notFound("") }
        return id
    }

    static func notFound(_ id: String) -> PATHTTPError {
        PATHTTPError(.notFound, code: "not_found",
                     message: "no personal access token with id \"\(String(id.prefix(128).unicodeScalars.filter { $0.value >= 0x20 && $0.value < 0x7F }))\"")
    }

    static func nameTaken(_ name: String, owner: String, caller: Caller) -> PATHTTPError {
        let whose = owner == caller.subject ? "you already have" : "owner \(owner) already has"
        return PATHTTPError(.conflict, code: "name_taken",
                            message: "name: \(whose) a personal access token named \"\(name)\"; choose another name or delete that one")
    }

    static func check(_ field: String, _ rule: String, _ body: () throws(RegistryError) -> Void) throws(PATHTTPError) {
        do { try body() } catch { throw ManagementBody.invalid(field, rule) }
    }

    static func allowQuery(_ query: Parameters, _ known: Set<String>) throws(PATHTTPError) {
        for element in query where !known.contains(String(element.key)) {
            throw ManagementBody.invalid(String(element.key.prefix(64)),
                                         "unknown query parameter; expected \(known.sorted().joined(separator: ", "))")
        }
    }

    static func integer(_ query: Parameters, _ name: String, default value: Int, range: ClosedRange<Int>) throws(PATHTTPError) -> Int {
        guard let text = query.get(name) else { return value }
        guard text.count <= 12, let number = Int(text), range.contains(number) else {
            throw ManagementBody.invalid(name, "must be a whole number from \(range.lowerBound) to \(range.upperBound)")
        }
        return number
    }

    /// Runs blocking registry work (SQLite, signing) on NIO's thread pool and turns its errors
    /// into API errors: 404, 409, 400 naming `field`, else a logged 500 that says nothing more.
    /// - Parameter conflict: the answer to a registry conflict, when the route has a better one.
    private func blocking<T: Sendable>(field: String? = nil, id: String? = nil, conflict: PATHTTPError? = nil,
                                       _ body: @escaping @Sendable () throws -> T) async throws(PATHTTPError) -> T {
        do {
            return try await NIOThreadPool.singleton.runIfActive(body)
        } catch let error as RegistryError where error.kind == .conflict && conflict != nil {
            throw conflict ?? mapped(error, field: field, id: id)
        } catch {
            throw mapped(error, field: field, id: id)
        }
    }

    private func mapped(_ error: any Error, field: String?, id: String?) -> PATHTTPError {
        switch error {
        case let error as PATHTTPError:
            return error
        case let error as RegistryError:
            switch error.kind {
            case .notFound, .deleted: return Self.notFound(id ?? "")
            case .conflict: return PATHTTPError(.conflict, code: "conflict", message: error.message)
            case .invalid, .policy: return ManagementBody.invalid(field ?? "body", error.message)
            case .database: break
            }
        case let error as PATKitError:
            switch error {
            case .invalidScope, .invalidClaims: return ManagementBody.invalid(field ?? "scopes", "\(error)")
            default: break
            }
        default:
            break
        }
        logger.error("management request failed", metadata: ["error": "\(error)", "id": "\(id ?? "-")"])
        return PATHTTPError(.internalServerError, code: "internal", message: "internal error")
    }
}
