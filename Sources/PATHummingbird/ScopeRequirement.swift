import Hummingbird
import PATKit

/// A scope a route requires, whose id may come from a path parameter:
/// `channels:publish:{id}` on `/channels/{id}/messages` (or `/channels/:id/messages`) requires
/// `channels:publish:<the id in the path>`; `clients:view` or `clients:view:*` requires the
/// operation on any client; `channels:read:ch-1` a fixed one. Parsed when the route is declared.
public struct PATScopeTemplate: Sendable, Hashable, CustomStringConvertible {
    public enum ID: Sendable, Hashable {
        /// Any entity (`*` or no id): the PAT must grant the operation on every entity of the type.
        case any
        /// One fixed entity id.
        case literal(String)
        /// The value of the named path parameter.
        case parameter(String)
    }

    public let entity: String
    public let operation: String
    public let id: ID

    public init(_ text: String) throws(PATKitError) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2 || parts.count == 3 else {
            throw .invalidScope("\"\(text.prefix(64))\" is not ENTITY:OPERATION[:ID], e.g. channels:publish:{id}")
        }
        if parts.count == 3, parts[2].hasPrefix("{"), parts[2].hasSuffix("}") {
            let name = parts[2].dropFirst().dropLast()
            guard !name.isEmpty, name.count <= 64, name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }) else {
                throw .invalidScope("\"\(text.prefix(64))\": a path parameter is written {name}, name of letters, digits or '_'")
            }
            let base = try Scope(parsing: "\(parts[0]):\(parts[1])")
            self.entity = base.entity
            self.operation = base.operation
            self.id = .parameter(String(name))
        } else {
            let scope = try Scope(parsing: text)
            self.entity = scope.entity
            self.operation = scope.operation
            self.id = scope.id.map { .literal($0) } ?? .any
        }
    }

    public var description: String {
        switch id {
        case .any: return "\(entity):\(operation):*"
        case .literal(let value): return "\(entity):\(operation):\(value)"
        case .parameter(let name): return "\(entity):\(operation):{\(name)}"
        }
    }

    /// Throws unless `pat` grants this scope for the request's path parameters:
    /// 403 `scope_missing` naming the scope, or 500 when the route lacks the parameter.
    public func check(_ pat: VerifiedPAT, parameters: Parameters) throws(PATHTTPError) {
        let required: String?
        switch id {
        case .any: required = nil
        case .literal(let value): required = value
        case .parameter(let name):
            guard let value = parameters.get(name) else {
                throw PATHTTPError(.internalServerError, code: "internal",
                                   message: "the route requires scope \(self) but has no path parameter \"\(name)\"")
            }
            required = value
        }
        guard pat.allows(entity: entity, operation: operation, id: required) else {
            throw PATHTTPError.scopeMissing("\(entity):\(operation):\(required ?? "*")", patID: pat.id)
        }
    }
}

/// Requires scopes of the PAT that `PATAuthenticator` put in the context (every one listed).
/// Use it on a group: `router.group("channels/{id}").add(middleware: try PATScopeRequirement("channels:read:{id}"))`.
/// Without a PAT in the context (no authenticator, or an anonymous request) it answers 401.
public struct PATScopeRequirement<Context: PATRequestContext>: RouterMiddleware {
    public let templates: [PATScopeTemplate]

    public init(_ templates: [PATScopeTemplate]) { self.templates = templates }

    public init(_ scopes: String...) throws(PATKitError) {
        var parsed: [PATScopeTemplate] = []
        for scope in scopes { parsed.append(try PATScopeTemplate(scope)) }
        self.templates = parsed
    }

    public func handle(_ request: Request, context: Context,
                       next: (Request, Context) async throws -> Response) async throws -> Response {
        try PATScopeRequirement.check(templates, context: context)
        return try await next(request, context)
    }

    static func check(_ templates: [PATScopeTemplate], context: Context) throws(PATHTTPError) {
        let pat = try context.requirePAT()
        for template in templates { try template.check(pat, parameters: context.parameters) }
    }
}

extension RouterMethods where Context: PATRequestContext {
    /// Adds a route that runs `handler` only when the request's PAT grants `scope`
    /// (e.g. `channels:publish:{id}`, the id from the path). The authenticator must run first
    /// (as router or group middleware). Throws when `scope` is not a valid template.
    @discardableResult
    public func on(_ path: RouterPath, method: HTTPRequest.Method, requiring scope: String,
                   use handler: @Sendable @escaping (Request, Context) async throws -> some ResponseGenerator) throws(PATKitError) -> Self {
        let templates = [try PATScopeTemplate(scope)]
        return on(path, method: method) { request, context in
            try PATScopeRequirement<Context>.check(templates, context: context)
            return try await handler(request, context)
        }
    }

    @discardableResult
    public func get(_ path: RouterPath = "", requiring scope: String,
                    use handler: @Sendable @escaping (Request, Context) async throws -> some ResponseGenerator) throws(PATKitError) -> Self {
        try on(path, method: .get, requiring: scope, use: handler)
    }

    @discardableResult
    public func post(_ path: RouterPath = "", requiring scope: String,
                     use handler: @Sendable @escaping (Request, Context) async throws -> some ResponseGenerator) throws(PATKitError) -> Self {
        try on(path, method: .post, requiring: scope, use: handler)
    }

    @discardableResult
    public func put(_ path: RouterPath = "", requiring scope: String,
                    use handler: @Sendable @escaping (Request, Context) async throws -> some ResponseGenerator) throws(PATKitError) -> Self {
        try on(path, method: .put, requiring: scope, use: handler)
    }

    @discardableResult
    public func patch(_ path: RouterPath = "", requiring scope: String,
                      use handler: @Sendable @escaping (Request, Context) async throws -> some ResponseGenerator) throws(PATKitError) -> Self {
        try on(path, method: .patch, requiring: scope, use: handler)
    }

    @discardableResult
    public func delete(_ path: RouterPath = "", requiring scope: String,
                       use handler: @Sendable @escaping (Request, Context) async throws -> some ResponseGenerator) throws(PATKitError) -> Self {
        try on(path, method: .delete, requiring: scope, use: handler)
    }
}
