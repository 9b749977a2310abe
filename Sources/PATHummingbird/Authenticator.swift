import Hummingbird
import PATKit

/// Verifies the request's bearer PAT with a shared `Validator` and puts it in the context.
///
/// - no `Authorization: Bearer` → 401 `missing_token` (or, with `allowAnonymous`, the request
///   goes on with `context.pat == nil`);
/// - a token the validator refuses → 401 with its code (`expired`, `revoked`, …) and
///   `WWW-Authenticate: Bearer error="invalid_token", error_description="…"`; a stale or
///   missing revocation list → 503 (the verifier cannot decide; see `PATHTTPError.refused`).
///
/// Routes then declare the scope they need with `PATScopeRequirement` or the `requiring:`
/// route methods, e.g. `channels:publish:{id}` with the id taken from the path.
public struct PATAuthenticator<Context: PATRequestContext>: RouterMiddleware {
    public let validator: Validator
    /// When set, tokens must act in this domain (else the validator's policy domain applies).
    public let domain: String?
    public let allowAnonymous: Bool
    /// Where validations are counted and timed (nil: not recorded).
    public let metrics: PATValidationMetrics?

    public init(validator: Validator, domain: String? = nil, allowAnonymous: Bool = false, metrics: PATValidationMetrics? = nil) {
        self.validator = validator
        self.domain = domain
        self.allowAnonymous = allowAnonymous
        self.metrics = metrics
    }

    public func handle(_ request: Request, context: Context,
                       next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        switch BearerToken.extract(from: request.headers) {
        case .missing:
            guard allowAnonymous else {
                metrics?.recordMissingToken()
                throw PATHTTPError.missingToken()
            }
        case .malformed(let reason):
            metrics?.recordRefusal(.malformed)
            throw PATHTTPError.refused(PATValidationError(.malformed, reason))
        case .token(let token):
            do throws(PATValidationError) {
                if let metrics {
                    context.pat = try metrics.validate(token, with: validator, domain: domain)
                } else {
                    context.pat = try validator.validate(token, domain: domain)
                }
            } catch {
                throw PATHTTPError.refused(error)
            }
        }
        return try await next(request, context)
    }
}

/// The bearer token of a request (RFC 6750 §2.1).
public enum BearerToken: Equatable, Sendable {
    case missing
    case malformed(String)
    case token(String)

    /// A request with no `Authorization` header, or another scheme, has no bearer token.
    /// More than one `Authorization` header, or an empty token, is malformed.
    public static func extract(from headers: HTTPFields) -> BearerToken {
        let values = headers[values: .authorization]
        guard let value = values.first else { return .missing }
        guard values.count == 1 else { return .malformed("more than one Authorization header") }
        let trimmed = value.drop { $0 == " " || $0 == "\t" }
        guard let space = trimmed.firstIndex(where: { $0 == " " || $0 == "\t" }) else {
            return trimmed.lowercased() == "bearer" ? .malformed("the Bearer credentials are empty") : .missing
        }
        guard trimmed[..<space].lowercased() == "bearer" else { return .missing }
        let token = trimmed[space...].trimmingSpaces()
        guard !token.isEmpty else { return .malformed("the Bearer credentials are empty") }
        guard !token.contains(where: { $0 == " " || $0 == "\t" || $0 == "," }) else {
            return .malformed("the Bearer credentials must be one token")
        }
        return .token(String(token))
    }
}

extension Substring {
    /// Without leading and trailing spaces and tabs (HTTP header whitespace).
    package func trimmingSpaces() -> Substring {
        var s = self
        while let first = s.first, first == " " || first == "\t" { s = s.dropFirst() }
        while let last = s.last, last == " " || last == "\t" { s = s.dropLast() }
        return s
    }
}
