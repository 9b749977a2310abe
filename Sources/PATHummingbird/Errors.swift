import Hummingbird
import PATKit

/// The one error shape of PATKit's HTTP surfaces:
/// `{"error": {"code": "…", "message": "…"}}`, with `Cache-Control: no-store`.
///
/// Codes are `PATValidationError.Code` values for token failures (`expired`, `revoked`, …), and
/// `missing_token`, `scope_missing`, `bad_request`, `not_found`, `internal`, … otherwise.
public struct PATHTTPError: HTTPResponseError, Sendable, CustomStringConvertible {
    public var status: HTTPResponse.Status
    public var code: String
    public var message: String
    public var headers: HTTPFields

    public init(_ status: HTTPResponse.Status, code: String, message: String, headers: HTTPFields = [:]) {
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
    }

    public var description: String { "\(status.code) \(code): \(message)" }

    public func response(from request: Request, context: some RequestContext) throws -> Response { makeResponse() }

    /// The JSON response.
    public func makeResponse() -> Response {
        var inner = JSONObject()
        inner.set("code", .string(code))
        inner.set("message", .string(message))
        var outer = JSONObject()
        outer.set("error", .object(inner))
        let body = JSONWriter.encode(.object(outer)) + [0x0A]
        var fields = headers
        fields[.contentType] = "application/json; charset=utf-8"
        if !fields.contains(.cacheControl) { fields[.cacheControl] = "no-store" }
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }

    // MARK: the PAT errors

    /// 401: no bearer token (RFC 6750 §3.1: no error code when the request has no credentials).
    public static func missingToken(realm: String = "PATKit") -> PATHTTPError {
        var headers = HTTPFields()
        headers[.wwwAuthenticate] = "Bearer realm=\"\(HeaderText.quoted(realm))\""
        return PATHTTPError(.unauthorized, code: "missing_token",
                            message: "this request needs a personal access token: send Authorization: Bearer <token>",
                            headers: headers)
    }

    /// 403: the PAT is valid but lacks `scope` (named in the message and in `WWW-Authenticate`).
    public static func scopeMissing(_ scope: String, patID: String? = nil) -> PATHTTPError {
        var headers = HTTPFields()
        let shown = HeaderText.quoted(scope)
        headers[.wwwAuthenticate] = "Bearer error=\"insufficient_scope\", scope=\"\(shown)\""
        let who = patID.map { "PAT \(HeaderText.printable($0, limit: 128)) lacks" } ?? "the PAT lacks"
        return PATHTTPError(.forbidden, code: PATValidationError.Code.scopeMissing.rawValue,
                            message: "\(who) the required scope \(shown)", headers: headers)
    }

    /// The response for a token the validator refused:
    /// - `scope_missing` → 403;
    /// - `stale_revocation_list`, `missing_revocation_list`, `stale_key_set`, `missing_key_set`
    ///   → 503 with `Retry-After`: the verifier cannot decide, the token is not known to be bad;
    /// - anything else → 401 with `WWW-Authenticate: Bearer error="invalid_token", error_description="…"`.
    public static func refused(_ error: PATValidationError, retryAfterSeconds: Int = 30) -> PATHTTPError {
        switch error.code {
        case .scopeMissing:
            var headers = HTTPFields()
            headers[.wwwAuthenticate] = "Bearer error=\"insufficient_scope\""
            return PATHTTPError(.forbidden, code: error.code.rawValue, message: error.reason, headers: headers)
        case .staleRevocationList, .missingRevocationList, .staleKeySet, .missingKeySet:
            var headers = HTTPFields()
            headers[.retryAfter] = String(retryAfterSeconds)
            return PATHTTPError(.serviceUnavailable, code: error.code.rawValue, message: error.reason, headers: headers)
        default:
            var headers = HTTPFields()
            headers[.wwwAuthenticate] = "Bearer error=\"invalid_token\", error_description=\"\(HeaderText.quoted(error.reason))\""
            return PATHTTPError(.unauthorized, code: error.code.rawValue, message: error.reason, headers: headers)
        }
    }

    /// The code for a plain HTTP status.
    public static func code(for status: HTTPResponse.Status) -> String {
        switch status.code {
        case 400: return "bad_request"
        case 401: return "unauthorized"
        case 403: return "forbidden"
        case 404: return "not_found"
        case 405: return "method_not_allowed"
        case 408: return "request_timeout"
        case 409: return "conflict"
        case 413: return "too_large"
        case 415: return "unsupported_media_type"
        case 429: return "rate_limited"
        case 500: return "internal"
        case 503: return "unavailable"
        default: return "http_\(status.code)"
        }
    }
}

/// Renders every error that reaches it in the one JSON shape: `PATHTTPError` as is, other
/// HTTP errors (404 from the router, 400 from decoding…) with their status, and anything
/// else as a 500 that does not leak internals (the error is logged).
public struct PATErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    public init() {}

    public func handle(_ request: Request, context: Context,
                       next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as PATHTTPError {
            return error.makeResponse()
        } catch let error as HTTPError {
            let message = error.body ?? error.status.reasonPhrase
            return PATHTTPError(error.status, code: PATHTTPError.code(for: error.status), message: message,
                                headers: error.headers).makeResponse()
        } catch let error as any HTTPResponseError {
            return PATHTTPError(error.status, code: PATHTTPError.code(for: error.status),
                                message: error.status.reasonPhrase).makeResponse()
        } catch {
            context.logger.error("request failed", metadata: ["error": "\(error)"])
            return PATHTTPError(.internalServerError, code: "internal", message: "internal error").makeResponse()
        }
    }
}

/// Text made safe for header values.
enum HeaderText {
    /// Printable ASCII for a quoted-string: `"` and `\` become `'`, anything else outside
    /// 0x20–0x7E becomes `?`; cut at `limit` characters.
    static func quoted(_ text: String, limit: Int = 200) -> String {
        var out = ""
        for scalar in text.unicodeScalars.prefix(limit) {
            switch scalar.value {
            case 0x22, 0x5C: out.append("'")
            case 0x20...0x7E: out.unicodeScalars.append(scalar)
            default: out.append("?")
            }
        }
        return out
    }

    static func printable(_ text: String, limit: Int) -> String { quoted(text, limit: limit) }
}
