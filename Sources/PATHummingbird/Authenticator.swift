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
///
/// A response to a request whose PAT was accepted carries `X-PAT-Expires`: the PAT's expiry in
/// RFC 3339 (like GitHub's `GitHub-Authentication-Token-Expiration`), so clients see it coming.
///
/// With `usage`, every use is counted in memory after the validator has decided (accepted, or
/// refused with its code — a missing scope included), for a `PATUsageReporter` to send to the
/// issuer in the background; the request never waits for that. The client address is the
/// connection's peer (`RemoteAddressRequestContext`, as `BasicPATRequestContext` is), unless
/// `clientAddress` says otherwise (e.g. a header set by a trusted proxy).
public struct PATAuthenticator<Context: PATRequestContext>: RouterMiddleware {
    public let validator: Validator
    /// When set, tokens must act in this domain (else the validator's policy domain applies).
    public let domain: String?
    public let allowAnonymous: Bool
    /// Where uses are counted; nil: not counted.
    public let usage: UsageCounter?
    /// The client address recorded with a use; nil: the connection's peer.
    public let clientAddress: (@Sendable (Request, Context) -> String?)?
    /// Where validations are counted and timed (nil: not recorded).
    public let metrics: PATValidationMetrics?

    public init(validator: Validator, domain: String? = nil, allowAnonymous: Bool = false, usage: UsageCounter? = nil,
                clientAddress: (@Sendable (Request, Context) -> String?)? = nil, metrics: PATValidationMetrics? = nil) {
        self.validator = validator
        self.domain = domain
        self.allowAnonymous = allowAnonymous
        self.usage = usage
        self.clientAddress = clientAddress
        self.metrics = metrics
    }

    public func handle(_ request: Request, context: Context,
                       next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        let pat: VerifiedPAT
        switch BearerToken.extract(from: request.headers) {
        case .missing:
            guard allowAnonymous else {
                metrics?.recordMissingToken()
                throw PATHTTPError.missingToken()
            }
            return try await next(request, context)
        case .malformed(let reason):
            metrics?.recordRefusal(.malformed)
            throw PATHTTPError.refused(PATValidationError(.malformed, reason))
        case .token(let token):
            do throws(PATValidationError) {
                pat = try PATValidationMetrics.validate(token, with: validator, domain: domain, recordedBy: metrics)
            } catch {
                usage?.recordRefused(token, error: error, address: address(request, context), at: validator.now())
                throw PATHTTPError.refused(error)
            }
        }
        context.pat = pat
        var response: Response
        do {
            response = try await next(request, context)
        } catch let error as PATHTTPError where error.code == PATValidationError.Code.scopeMissing.rawValue {
            usage?.recordRefused(pat, code: .scopeMissing, address: address(request, context), at: validator.now())
            throw error
        } catch {
            usage?.recordAccepted(pat, address: address(request, context), at: validator.now())
            throw error
        }
        usage?.recordAccepted(pat, address: address(request, context), at: validator.now())
        if PATHeader.expires != HTTPFields.Element.Name.authorization { response.headers[PATHeader.expires] = pat.expiresAt.rfc3339 }
        return response
    }

    private func address(_ request: Request, _ context: Context) -> String? {
        if let clientAddress { return clientAddress(request, context) }
        return (context as? any RemoteAddressRequestContext)?.remoteAddress?.ipAddress
    }
}

/// Header names PATKit's HTTP surfaces add to responses. The fallback never applies (the name is
/// valid; a test checks it) and is never written.
public enum PATHeader {
    /// `X-PAT-Expires`: the accepted PAT's expiry, RFC 3339 UTC.
    public static let expires = HTTPFields.Element.Name("X-PAT-Expires") ?? HTTPFields.Element.Name.authorization
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
        // Over the UTF-8 bytes, not Characters: a token is ~360 ASCII bytes and grapheme breaking
        // over them was the largest cost of a cached `/verify` (issue 15's profile). The delimiters
        // are ASCII, and a string equal to "bearer" ignoring ASCII case is the only one `lowercased()`
        // turned into "bearer".
        var text = value
        return text.withUTF8 { bytes in
            // One pass each way over the bytes (closures per byte were still measurable).
            var start = 0, end = bytes.count
            while start < end, bytes[start] == 0x20 || bytes[start] == 0x09 { start += 1 }
            while end > start, bytes[end - 1] == 0x20 || bytes[end - 1] == 0x09 { end -= 1 }
            var space = start
            while space < end, bytes[space] != 0x20, bytes[space] != 0x09 { space += 1 }
            guard isBearer(bytes[start..<space]) else { return .missing }
            var first = space
            while first < end, bytes[first] == 0x20 || bytes[first] == 0x09 { first += 1 }
            guard first < end else { return .malformed("the Bearer credentials are empty") }
            for i in first..<end where bytes[i] == 0x20 || bytes[i] == 0x09 || bytes[i] == UInt8(ascii: ",") {
                return .malformed("the Bearer credentials must be one token")
            }
            return .token(String(decoding: UnsafeBufferPointer(rebasing: bytes[first..<end]), as: UTF8.self))
        }
    }

    /// `bearer` in any ASCII case.
    private static func isBearer(_ scheme: Slice<UnsafeBufferPointer<UInt8>>) -> Bool {
        guard scheme.count == 6 else { return false }
        let b = scheme.startIndex
        return scheme[b] | 0x20 == UInt8(ascii: "b") && scheme[b + 1] | 0x20 == UInt8(ascii: "e") && scheme[b + 2] | 0x20 == UInt8(ascii: "a")
            && scheme[b + 3] | 0x20 == UInt8(ascii: "r") && scheme[b + 4] | 0x20 == UInt8(ascii: "e") && scheme[b + 5] | 0x20 == UInt8(ascii: "r")
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
