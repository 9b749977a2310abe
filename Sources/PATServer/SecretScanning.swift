import Crypto
import Hummingbird
import Logging
import NIOCore
import PATHummingbird
import PATKit
import PATManagement

/// A secret scanner's public key: ECDSA P-256, named by the key identifier its requests carry
/// in `Github-Public-Key-Identifier` (for GitHub, a `key_identifier` of
/// `https://api.github.com/meta/public_keys/secret_scanning`).
public struct ScannerKey: Sendable {
    public let identifier: String
    /// The key as an uncompressed point (P256.Signing.PublicKey is not Sendable; rebuilding it
    /// from these 65 bytes per report costs microseconds).
    private let point: [UInt8]

    /// - Parameter pem: a `-----BEGIN PUBLIC KEY-----` (SubjectPublicKeyInfo) P-256 key.
    public init(identifier: String, pem: String) throws(PATKitError) {
        guard !identifier.isEmpty, identifier.utf8.count <= 256, identifier.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != 0x3D }) else {
            throw .invalidArgument("scanner key identifier \"\(identifier.prefix(64))\" must be 1–256 visible ASCII characters without =")
        }
        do { point = Array(try P256.Signing.PublicKey(pemRepresentation: pem).x963Representation) } catch {
            throw .invalidArgument("scanner key \(identifier.prefix(64)): not a PEM P-256 public key (\(error))")
        }
        self.identifier = identifier
    }

    /// `KEY_ID=PEM_FILE`, as `pat serve --scanner-key` takes it.
    public init(option: String) throws(PATKitError) {
        guard let equals = option.firstIndex(of: "="), equals != option.startIndex, option.index(after: equals) != option.endIndex else {
            throw .invalidArgument("--scanner-key \"\(option.prefix(80))\": write KEY_ID=PEM_FILE")
        }
        let path = String(option[option.index(after: equals)...])
        let pem = String(decoding: try SecureFile.read(path, maxBytes: 16 * 1024), as: UTF8.self)
        try self.init(identifier: String(option[..<equals]), pem: pem)
    }

    /// True when `signature` (base64 of a DER ECDSA signature, as the header carries it) signs
    /// `body` (SHA-256) under this key.
    func verifies(_ signature: String, body: [UInt8]) -> Bool {
        guard let der = SecretScanningRoutes.base64Decode(signature),
              let parsed = try? P256.Signing.ECDSASignature(derRepresentation: der),
              let key = try? P256.Signing.PublicKey(x963Representation: point) else { return false }
        return key.isValidSignature(parsed, for: body)
    }
}

/// Settings of the secret-scanning partner endpoint.
public struct SecretScanningConfiguration: Sendable {
    /// The scanner keys reports must be signed with (`pat serve --scanner-key`).
    public var keys: [ScannerKey]
    /// What to do with a live PAT reported (default: revoke).
    public var action: LeakAction
    /// The largest report body accepted.
    public var maxBodyBytes: Int
    /// The most tokens one report may carry.
    public var maxTokens: Int

    public init(keys: [ScannerKey], action: LeakAction = .revoke, maxBodyBytes: Int = 1024 * 1024, maxTokens: Int = 1000) {
        self.keys = keys
        self.action = action
        self.maxBodyBytes = maxBodyBytes
        self.maxTokens = maxTokens
    }
}

/// `POST /v3/personal-access-tokens/leaks`: GitHub's secret-scanning partner endpoint.
///
/// The request: a JSON array of `{"token", "type", "url", "source"}`, signed by the scanner with
/// ECDSA P-256 / SHA-256 over the exact body — `Github-Public-Key-Identifier` names the key,
/// `Github-Public-Key-Signature` carries the base64 DER signature. Only configured scanner keys
/// are accepted: a missing or malformed signature header, an unknown key identifier or a
/// signature that does not verify is answered 401 before the body is parsed; a body over the
/// limit 413.
///
/// Each token is inspected offline with the management API's keys and list (`TokenInspector`):
/// a token no key of ours signed is a false positive; a genuine one is a true positive, and a
/// live one goes to the management service (`respondToLeaks`, as `Caller.secretScanner`), which
/// revokes it (or only announces it) and records `personalAccessToken.leaked` with the `url` and
/// `source`, never the token.
///
/// The answer (200) is GitHub's feedback shape, one element per reported token, in order:
/// `[{"token_hash": "<hex SHA-256 of the token>", "token_type": "<type as sent>", "label":
/// "true_positive" | "false_positive"}]` — the hash, never the raw token.
///
/// Replays: the scanner signs only the body (no time, no nonce), so a captured report can be
/// sent again. It is harmless by construction: the service acts only on tokens the registry
/// still knows live, and records each reported generation once, so a replay revokes nothing new
/// and announces nothing twice; it gets the same answer.
public struct SecretScanningRoutes: PATRouteGroup {
    public static let path = "/v3/personal-access-tokens/leaks"
    static let keyIdentifierHeader = HTTPFieldName("Github-Public-Key-Identifier") ?? HTTPFieldName.authorization
    static let signatureHeader = HTTPFieldName("Github-Public-Key-Signature") ?? HTTPFieldName.authorization

    let configuration: SecretScanningConfiguration
    let service: PATManagement
    let validator: Validator
    let logger: Logger

    public init(configuration: SecretScanningConfiguration, service: PATManagement, validator: Validator,
                logger: Logger = Logger(label: "patkit.serve")) {
        self.configuration = configuration
        self.service = service
        self.validator = validator
        self.logger = logger
    }

    public func addRoutes(to router: Router<PATServer.Context>) {
        let routes = self
        router.post(RouterPath(SecretScanningRoutes.path)) { request, _ in try await routes.report(request) }
    }

    func report(_ request: Request) async throws -> Response {
        let identifiers = request.headers[values: SecretScanningRoutes.keyIdentifierHeader]
        let signatures = request.headers[values: SecretScanningRoutes.signatureHeader]
        guard SecretScanningRoutes.keyIdentifierHeader != HTTPFieldName.authorization, identifiers.count == 1, signatures.count == 1,
              let identifier = identifiers.first, let signature = signatures.first else {
            throw refusal("missing_signature", "send one Github-Public-Key-Identifier and one Github-Public-Key-Signature header")
        }
        guard let key = configuration.keys.first(where: { $0.identifier.utf8.elementsEqual(identifier.utf8) }) else {
            throw refusal("unknown_key", "the key identifier is not a configured scanner key")
        }
        let body: [UInt8]
        do {
            body = Array(try await request.body.collect(upTo: configuration.maxBodyBytes).readableBytesView)
        } catch is NIOTooManyBytesError {
            throw PATHTTPError(.contentTooLarge, code: "too_large", message: "the report exceeds \(configuration.maxBodyBytes) bytes")
        }
        guard key.verifies(signature, body: body) else {
            logger.warning("secret-scanning report with a bad signature refused", metadata: ["key": "\(key.identifier)"])
            throw refusal("bad_signature", "the signature does not verify with that scanner key over the request body")
        }
        let matches = try parse(body)
        let inspector = TokenInspector(keys: validator.keys, revocations: validator.revocations, leeway: validator.policy.leeway,
                                       clock: { validator.now() })
        var answers: [JSONValue] = []
        var live: [LeakReport] = []
        for match in matches {
            let inspection = inspector.inspect(match.token)
            if inspection.status == .live, let claims = inspection.claims {
                live.append(LeakReport(claims: claims, url: match.url, source: match.source))
            }
            var o = JSONObject()
            o.set("token_hash", .string(WebhookSignature.hex(Array(SHA256.hash(data: Array(match.token.utf8))))))
            o.set("token_type", .string(match.type))
            o.set("label", .string(inspection.claims == nil ? "false_positive" : "true_positive"))
            answers.append(.object(o))
        }
        let responses: [LeakResponse]
        do throws(ManagementError) {
            responses = try await service.respondToLeaks(live, action: configuration.action, by: .secretScanner(keyID: key.identifier))
        } catch {
            logger.error("cannot respond to a secret-scanning report", metadata: ["error": "\(error)", "cause": "\(error.underlying ?? "-")"])
            if error.kind == .unavailable {
                var headers = HTTPFields()
                headers[.retryAfter] = String(ManagementRoutes.unavailableRetryAfterSeconds)
                throw PATHTTPError(.serviceUnavailable, code: "unavailable", message: "the PAT registry is unavailable: retry later",
                                   headers: headers)
            }
            throw PATHTTPError(.internalServerError, code: "internal", message: "internal error")
        }
        logger.notice("secret-scanning report", metadata: [
            "key": "\(key.identifier)", "tokens": "\(matches.count)", "live": "\(live.count)",
            "revoked": "\(responses.filter { $0.outcome == .revoked || $0.outcome == .revokedUnregistered }.count)",
            "ids": "\(responses.map(\.id).joined(separator: ","))",
        ])
        var headers = HTTPFields()
        headers[.contentType] = "application/json; charset=utf-8"
        headers[.cacheControl] = "no-store"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: JSONWriter.encode(.array(answers)) + [0x0A])))
    }

    struct Match {
        let token: String
        let type: String
        let url: String
        let source: String
    }

    /// The report: a non-empty JSON array of objects with string `token` and `type`, and `url`
    /// and `source` (strings, optional). Other members are ignored (the scanner may add some).
    func parse(_ body: [UInt8]) throws(PATHTTPError) -> [Match] {
        let value: JSONValue
        do {
            value = try JSONParser.parse(body, limits: JSONLimits(maxBytes: configuration.maxBodyBytes, maxDepth: 3,
                                                                  maxMembers: configuration.maxTokens, maxStringBytes: 16 * 1024))
        } catch {
            throw ManagementBody.invalid("body", "not a valid report: \(error)")
        }
        guard case .array(let items) = value, !items.isEmpty else {
            throw ManagementBody.invalid("body", "must be a non-empty JSON array of {token, type, url, source}")
        }
        var out: [Match] = []
        for (index, item) in items.enumerated() {
            guard case .object(let o) = item else { throw ManagementBody.invalid("[\(index)]", "must be an object") }
            guard let token = o["token"]?.stringValue, !token.isEmpty, token.utf8.count <= PASETOv4Public.defaultMaxTokenBytes else {
                throw ManagementBody.invalid("[\(index)].token", "must be a string of 1 to \(PASETOv4Public.defaultMaxTokenBytes) bytes")
            }
            guard let type = o["type"]?.stringValue, type.utf8.count <= 256 else {
                throw ManagementBody.invalid("[\(index)].type", "must be a string of at most 256 bytes")
            }
            func optional(_ name: String, max: Int, default value: String) throws(PATHTTPError) -> String {
                switch o[name] {
                case nil, .null?: return value
                case .string(let text)? where text.utf8.count <= max && !text.utf8.contains(0): return text
                default: throw ManagementBody.invalid("[\(index)].\(name)", "must be a string of at most \(max) bytes without NUL")
                }
            }
            out.append(Match(token: token, type: type, url: try optional("url", max: LeakReport.maxURLBytes, default: ""),
                             source: try optional("source", max: LeakReport.maxSourceBytes, default: "unknown")))
        }
        return out
    }

    private func refusal(_ code: String, _ message: String) -> PATHTTPError {
        PATHTTPError(.unauthorized, code: code, message: message)
    }

    /// Strict standard base64 (RFC 4648 §4, padded), as the signature header carries it.
    static func base64Decode(_ text: String) -> [UInt8]? {
        let bytes = Array(text.utf8)
        guard !bytes.isEmpty, bytes.count % 4 == 0, bytes.count <= 1024 else { return nil }
        var body = bytes
        var padding = 0
        while body.last == 0x3D, padding < 2 { body.removeLast(); padding += 1 }
        guard !body.contains(0x3D), !body.contains(0x2D), !body.contains(0x5F) else { return nil }
        let url = body.map { $0 == 0x2B ? 0x2D : $0 == 0x2F ? 0x5F : $0 }
        return Base64URL.decode(String(decoding: url, as: UTF8.self))
    }
}
