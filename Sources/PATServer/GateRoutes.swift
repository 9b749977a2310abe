import Hummingbird
import NIOCore
import PATEdge
import PATHummingbird
import PATKit

/// `GET /verify` for a proxy's subrequest authentication (nginx `auth_request`, Traefik
/// `forwardAuth`, Envoy `ext_authz` in HTTP mode…):
///
/// - `Authorization: Bearer <PAT>` — the token to check;
/// - `X-PAT-Require-Scope` (optional) — scopes the PAT must grant, separated by spaces or
///   commas (or repeated headers), e.g. `channels:publish:ch-42`; the id part may be any
///   path segment the proxy took from the request (`channels:publish:$1`);
/// - `X-PAT-Domain` (optional) — the domain the PAT must act in. It can only narrow: when
///   the gate has a domain of its own, a different `X-PAT-Domain` is refused (a client that
///   sends the header through a proxy cannot widen what the gate accepts).
///
/// The proxy should set (or clear) `X-PAT-Require-Scope` and `X-PAT-Domain` itself, and
/// overwrite `X-PAT-Subject` / `X-PAT-Id` towards the upstream with the gate's answer.
///
/// Answers 204 with `X-PAT-Subject` (the owner; bytes outside visible ASCII, `%` and
/// `" , ; = \` are percent-encoded), `X-PAT-Id`, `X-PAT-Generation`, `X-PAT-Scope` (granted scopes),
/// `X-PAT-Expires` (the PAT's expiry, RFC 3339) and `X-PAT-Domain` when the PAT has one; 401 (missing or refused token, with
/// `WWW-Authenticate`), 403 (a required scope is missing; named), 503 (stale or missing
/// revocation list), or 400 (a malformed `X-PAT-Require-Scope`: a proxy misconfiguration).
/// `GET /status` returns the refresher's status as JSON: 200 while tokens can pass, 503 with the
/// reason in `"refusal"` while every token is refused (a readiness probe). `GET /healthz`
/// answers 200 while the process serves (a liveness probe).
///
/// With `usage`, every decision on a genuine PAT is counted in memory (accepted, or refused with
/// its code) for a `PATUsageReporter` to send to the issuer in the background; `/verify` never
/// waits for it. The client address is `X-PAT-Client-Address` when the proxy sets it (it must
/// then overwrite whatever the client sent), else the connection's peer.
public struct GateRoutes: PATRouteGroup {
    public let validator: Validator
    public let refresher: PATRefresher?
    public let domain: String?
    public let usage: UsageCounter?
    /// Where validations are counted and timed (nil: not recorded).
    public let metrics: PATValidationMetrics?
    /// The answer headers of recently accepted PATs.
    let answers = GateAnswers()

    public init(validator: Validator, refresher: PATRefresher? = nil, domain: String? = nil, usage: UsageCounter? = nil,
                metrics: PATValidationMetrics? = nil) {
        self.validator = validator
        self.refresher = refresher
        self.domain = domain
        self.usage = usage
        self.metrics = metrics
    }

    public func addRoutes(to router: Router<PATServer.Context>) { register(on: router) }

    public func register<Context: RequestContext>(on router: some RouterMethods<Context>) {
        let gate = self
        for method in [HTTPRequest.Method.get, .head, .post] {
            router.on("/verify", method: method) { request, context in
                try gate.verify(request, peer: gate.usage == nil ? nil : (context as? any RemoteAddressRequestContext)?.remoteAddress)
            }
        }
        router.get("/status") { _, _ in gate.statusResponse() }
        router.get("/healthz") { _, _ in
            var headers = HTTPFields()
            headers[.contentType] = "application/json; charset=utf-8"
            headers[.cacheControl] = "no-store"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: "{\"alive\":true}\n")))
        }
    }

    func verify(_ request: Request, peer: SocketAddress? = nil) throws(PATHTTPError) -> Response {
        // Authentication first: a request without a usable token is 401 whatever else it says
        // (schemathesis: a missing token answered 400 when the proxy's scope header was empty).
        let token: String
        switch BearerToken.extract(from: request.headers) {
        case .missing:
            metrics?.recordMissingToken()
            throw PATHTTPError.missingToken()
        case .malformed(let reason):
            metrics?.recordRefusal(.malformed)
            throw PATHTTPError.refused(PATValidationError(.malformed, reason))
        case .token(let value): token = value
        }
        let required = try GateRoutes.requiredScopes(request.headers[values: GateHeader.requireScope])
        let asked = request.headers[GateHeader.domain].map { String(Substring($0).trimmingSpaces()) }.flatMap { $0.isEmpty ? nil : $0 }
        if let asked, let own = self.domain, asked != own {
            // Said without naming the gate's domain: the caller is not authenticated yet.
            metrics?.recordRefusal(.wrongDomain)
            throw PATHTTPError.refused(PATValidationError(.wrongDomain, "X-PAT-Domain names a domain this gate does not serve"))
        }
        let domain = self.domain ?? asked
        let pat: VerifiedPAT
        do throws(PATValidationError) {
            pat = try PATValidationMetrics.validate(token, with: validator, domain: domain, recordedBy: metrics)
        } catch {
            usage?.recordRefused(token, error: error, address: clientAddress(request, peer), at: validator.now())
            throw PATHTTPError.refused(error)
        }
        for scope in required where !pat.allows(entity: scope.entity, operation: scope.operation, id: scope.id) {
            usage?.recordRefused(pat, code: .scopeMissing, address: clientAddress(request, peer), at: validator.now())
            throw PATHTTPError.scopeMissing("\(scope.entity):\(scope.operation):\(scope.id ?? "*")", patID: pat.id)
        }
        usage?.recordAccepted(pat, address: clientAddress(request, peer), at: validator.now())
        return Response(status: .noContent, headers: answers.headers(for: pat))
    }

    /// The client's address: the proxy's `X-PAT-Client-Address` (bounded, visible ASCII), else the peer.
    func clientAddress(_ request: Request, _ peer: SocketAddress?) -> String? {
        if GateHeader.clientAddress != .authorization, let given = request.headers[GateHeader.clientAddress] {
            let trimmed = String(Substring(given).trimmingSpaces())
            guard !trimmed.isEmpty, trimmed.utf8.count <= 64, trimmed.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { return nil }
            return trimmed
        }
        return peer?.ipAddress
    }

    /// A required scope: entity and operation checked against the grammar; the id is any text
    /// (an id outside the grammar can only be granted by a wildcard scope).
    struct Requirement: Equatable {
        let entity: String
        let operation: String
        let id: String?
    }

    static func requiredScopes(_ values: [String]) throws(PATHTTPError) -> [Requirement] {
        var out: [Requirement] = []
        for value in values {
            // Over UTF-8 bytes (the separators are ASCII): splitting Characters cost more than the
            // cached validation itself (issue 15).
            var text = value
            try text.withUTF8 { bytes in
                Result { () throws(PATHTTPError) in try requirements(in: bytes, into: &out) }
            }.get()
        }
        // A header that is present but names nothing (empty, or separators only) is a proxy
        // misconfiguration, never "no scope required".
        if !values.isEmpty, out.isEmpty {
            throw PATHTTPError(.badRequest, code: "bad_request", message: "X-PAT-Require-Scope is present but names no scope")
        }
        return out
    }

    /// The requirements of one header value, appended to `out` (at most 32 in all).
    private static func requirements(in bytes: UnsafeBufferPointer<UInt8>, into out: inout [Requirement]) throws(PATHTTPError) {
        var start = 0
        while start < bytes.count {
            var end = start
            var colons = (-1, -1)
            while end < bytes.count, bytes[end] != 0x20, bytes[end] != 0x2C, bytes[end] != 0x09 {
                if bytes[end] == UInt8(ascii: ":") {
                    if colons.0 < 0 { colons.0 = end } else if colons.1 < 0 { colons.1 = end }
                }
                end += 1
            }
            defer { start = end + 1 }
            guard end > start else { continue }
            let item = UnsafeBufferPointer(rebasing: bytes[start..<end])
            let base = colons.1 < 0 ? item : UnsafeBufferPointer(rebasing: bytes[start..<colons.1])
            guard colons.0 >= 0, let scope = try? Scope(parsing: String(decoding: base, as: UTF8.self)) else {
                throw PATHTTPError(.badRequest, code: "bad_request",
                                   message: "X-PAT-Require-Scope: \"\(String(decoding: item, as: UTF8.self).prefix(80))\" is not ENTITY:OPERATION[:ID]")
            }
            let id = colons.1 < 0 ? nil : String(decoding: UnsafeBufferPointer(rebasing: bytes[(colons.1 + 1)..<end]), as: UTF8.self)
            guard out.count < 32 else {
                throw PATHTTPError(.badRequest, code: "bad_request", message: "X-PAT-Require-Scope: more than 32 scopes")
            }
            out.append(Requirement(entity: scope.entity, operation: scope.operation, id: id == "*" ? nil : id))
        }
    }

    func statusResponse() -> Response {
        var o: JSONObject
        let accepting: Bool
        if let refresher {
            let status = refresher.status
            o = status.json
            accepting = status.acceptingTokens
        } else {
            o = JSONObject()
            let active = validator.keys.activeKeys.count
            o.set("activeKeys", .number(String(active)))
            if let list = validator.revocations { o.set("sequence", .number(String(list.sequence))) }
            let refusal: String? = active == 0 ? "no trusted key set is loaded"
                : validator.revocations == nil && validator.policy.requireRevocationList ? "no revocation list is loaded" : nil
            accepting = refusal == nil
            o.set("acceptingTokens", .bool(accepting))
            if let refusal { o.set("refusal", .string(refusal)) }
        }
        var headers = HTTPFields()
        headers[.contentType] = "application/json; charset=utf-8"
        headers[.cacheControl] = "no-store"
        if !accepting { headers[.retryAfter] = "5" }
        return Response(status: accepting ? .ok : .serviceUnavailable, headers: headers,
                        body: .init(byteBuffer: ByteBuffer(bytes: JSONWriter.encode(.object(o)) + [0x0A])))
    }
}

/// `HTTPField.Name` (HTTPTypes), reached through the `HTTPFields` that Hummingbird exports.
public typealias HTTPFieldName = HTTPFields.Element.Name

/// The gate's header names. The fallback never applies (the names are valid; a test checks
/// them) and `appendPAT` refuses to write it.
public enum GateHeader {
    public static let requireScope = HTTPFieldName("X-PAT-Require-Scope") ?? HTTPFieldName.authorization
    public static let domain = HTTPFieldName("X-PAT-Domain") ?? HTTPFieldName.authorization
    public static let subject = HTTPFieldName("X-PAT-Subject") ?? HTTPFieldName.authorization
    public static let id = HTTPFieldName("X-PAT-Id") ?? HTTPFieldName.authorization
    public static let generation = HTTPFieldName("X-PAT-Generation") ?? HTTPFieldName.authorization
    public static let scope = HTTPFieldName("X-PAT-Scope") ?? HTTPFieldName.authorization
    public static let expires = PATHeader.expires
    /// Set by the proxy: the client's address, recorded with the use (usage reporting).
    public static let clientAddress = HTTPFieldName("X-PAT-Client-Address") ?? HTTPFieldName.authorization
}

extension HTTPFields {
    /// Appends a gate header, never the `Authorization` fallback of an (impossible) invalid name.
    mutating func appendPAT(_ name: HTTPFieldName, _ value: String) {
        guard name != .authorization else { return }
        append(HTTPFields.Element(name: name, value: value))
    }
}

/// Percent-encodes every byte outside visible ASCII, `%` itself, and the bytes that delimit
/// items or parameters in structured header values (`"` `,` `;` `=` `\`), so a value travels in
/// a header unchanged or recognisably encoded — never silently altered, and never read by a
/// downstream parser as several values (`eve,admin`).
enum PercentEncoding {
    static let delimiters: Set<UInt8> = [0x22, 0x2C, 0x3B, 0x3D, 0x5C, 0x25]

    static func encode(_ text: String) -> String {
        // Most owners and domains need no encoding: answer the same string, without a copy.
        if text.utf8.allSatisfy({ $0 >= 0x21 && $0 <= 0x7E && !delimiters.contains($0) }) { return text }
        let hex: [Character] = Array("0123456789ABCDEF")
        var out = ""
        for byte in text.utf8 {
            if byte >= 0x21, byte <= 0x7E, !delimiters.contains(byte) {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                out.append("%")
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0x0F)])
            }
        }
        return out
    }
}
