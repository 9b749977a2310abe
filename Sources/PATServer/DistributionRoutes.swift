import Hummingbird
import Logging
import PATHummingbird
import PATKit
import PATStore

/// `GET /.well-known/pat/keys` and `GET /.well-known/pat/revocations`: the published key set
/// and signed revocation list of a PATKit home, without authentication (both are public and
/// signed). Strong `ETag`s, `If-None-Match` → 304, gzip when accepted, and
/// `Cache-Control: max-age` up to the list's next-update. Files are re-read when they change.
public struct DistributionRoutes: PATRouteGroup {
    public static let keysPath = "/.well-known/pat/keys"
    public static let revocationsPath = "/.well-known/pat/revocations"

    let keys: PublishedFile
    let revocations: PublishedFile
    let clock: @Sendable () -> Timestamp

    public init(home: PATHome, maxRevocationListBytes: Int = RevocationList.defaultMaxBytes,
                clock: @escaping @Sendable () -> Timestamp = { Timestamp.now() }, logger: Logger = Logger(label: "patkit.serve")) {
        let keys = PublishedFile(path: home.publishedKeysPath, maxBytes: SignedKeySet.maxDocumentBytes)
        self.keys = keys
        let keyStore = home.keyStore
        self.revocations = PublishedFile(path: home.publishedRevocationsPath, maxBytes: maxRevocationListBytes) { bytes in
            // The list's next-update sets max-age; it is read by verifying the list against the
            // published key set, itself verified with the home's trust anchors (a list that does
            // not verify is still served, with no-cache).
            do {
                guard let anchors = try keyStore.trustAnchors() else {
                    throw PATKitError.invalidArgument("no trust anchor in \(keyStore.anchorsPath)")
                }
                let keySet = try SignedKeySet(verifying: Array(keys.current().bytes.readableBytesView), anchors: anchors)
                return try RevocationList(verifying: bytes, keys: keySet.keys).nextUpdate
            } catch {
                logger.warning("the published revocation list does not verify with the published keys; serving it with no-cache",
                               metadata: ["error": "\(error)"])
                return nil
            }
        }
        self.clock = clock
    }

    public func addRoutes(to router: Router<PATServer.Context>) { register(on: router) }

    /// Adds the two routes (GET and HEAD) to `router`.
    public func register<Context: RequestContext>(on router: some RouterMethods<Context>) {
        let keys = self.keys, revocations = self.revocations, clock = self.clock
        for method in [HTTPRequest.Method.get, .head] {
            router.on(RouterPath(DistributionRoutes.keysPath), method: method) { request, _ in
                try DistributionRoutes.respond(request, file: keys, contentType: "application/json",
                                               cacheControl: { _ in "public, no-cache" },
                                               missing: "no key set is published yet (run `pat publish` on the issuer)")
            }
            router.on(RouterPath(DistributionRoutes.revocationsPath), method: method) { request, _ in
                try DistributionRoutes.respond(request, file: revocations, contentType: "application/octet-stream",
                                               cacheControl: { version in
                                                   guard let next = version.nextUpdate else { return "public, no-cache" }
                                                   let seconds = max(0, next.seconds - clock().seconds)
                                                   return "public, max-age=\(seconds), no-transform"
                                               },
                                               missing: "no revocation list is published yet (run `pat publish` on the issuer)")
            }
        }
    }

    static func respond(_ request: Request, file: PublishedFile, contentType: String,
                        cacheControl: (PublishedFile.Version) -> String, missing: String) throws(PATHTTPError) -> Response {
        let version: PublishedFile.Version
        do { version = try file.current() } catch {
            switch error {
            case .absent: throw PATHTTPError(.notFound, code: "not_published", message: missing)
            case .unreadable: throw PATHTTPError(.internalServerError, code: "internal", message: "the published file cannot be read")
            }
        }
        let gzip = HTTPConditional.acceptsGzip(request.headers[values: .acceptEncoding]) ? version.gzip : nil
        let etag = gzip == nil ? version.etag : version.gzipETag
        var headers = HTTPFields()
        headers[.eTag] = etag
        headers[.cacheControl] = cacheControl(version)
        headers[.vary] = "Accept-Encoding"
        if HTTPConditional.matches(request.headers[values: .ifNoneMatch], etag: etag) {
            return Response(status: .notModified, headers: headers)
        }
        headers[.contentType] = contentType
        if gzip != nil { headers[.contentEncoding] = "gzip" }
        let response = Response(status: .ok, headers: headers, body: .init(byteBuffer: gzip ?? version.bytes))
        return request.method == .head ? response.createHeadResponse() : response
    }
}

/// Conditional requests and content negotiation, as RFC 9110 words them.
enum HTTPConditional {
    /// True when an `If-None-Match` field lists `etag` (weak comparison) or is `*`.
    static func matches(_ values: [String], etag: String) -> Bool {
        let wanted = opaque(etag)
        for value in values {
            for item in value.split(separator: ",") {
                let tag = item.trimmingSpaces()
                if tag == "*" || opaque(String(tag)) == wanted { return true }
            }
        }
        return false
    }

    private static func opaque(_ tag: String) -> Substring {
        tag.hasPrefix("W/") ? tag.dropFirst(2) : tag[...]
    }

    /// True when `Accept-Encoding` accepts gzip (`gzip`, `x-gzip` or `*`) with a non-zero q.
    static func acceptsGzip(_ values: [String]) -> Bool {
        var gzip: Bool? = nil
        var star: Bool? = nil
        for value in values {
            for item in value.split(separator: ",") {
                let parts = item.split(separator: ";")
                guard let name = parts.first?.trimmingSpaces().lowercased() else { continue }
                var accepted = true
                for parameter in parts.dropFirst() {
                    let p = parameter.trimmingSpaces()
                    if p.lowercased().hasPrefix("q="), let q = Double(p.dropFirst(2)) { accepted = q > 0 }
                }
                if name == "gzip" || name == "x-gzip" { gzip = accepted } else if name == "*" { star = accepted }
            }
        }
        return gzip ?? star ?? false
    }
}

