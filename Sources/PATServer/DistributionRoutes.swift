import Hummingbird
import Logging
import PATHummingbird
import PATKit
import PATStore
import ServiceLifecycle

/// `GET /.well-known/pat/keys` and `GET /.well-known/pat/revocations`: the signed key set and
/// signed revocation list, without authentication (both are public and signed). Every answer
/// carries the document's sequence in `X-PAT-Sequence`.
///
/// - The key set: strong `ETag`, `If-None-Match` → 304, gzip when accepted, `no-cache`.
/// - The list as a whole: the same, with `Cache-Control: max-age` up to its next-update (so a
///   CDN or nginx may cache it).
/// - `?since=SEQ` (an edge holding list `SEQ`): the signed deltas from `SEQ` to the current list
///   (`application/vnd.patkit.revocation-delta`, one or more concatenated), or the whole list when
///   no chain from `SEQ` is held (too old, unknown, or longer than the list), or 304 when nothing is
///   newer than `SEQ`.
/// - `?since=SEQ&wait=SECONDS`: a long poll — answers as soon as a list newer than `SEQ` is held,
///   or 304 after `wait` seconds (cut to `RevocationFeed.maxWait`, 60 s). Waiting connections count
///   against the server's connection cap like any other; the server answers them all at once on
///   shutdown.
///
/// The documents come from an issuer's `HOME/published` (re-read whenever they change; the
/// republisher offers each new list the moment it publishes it) or, on a relay, from what its
/// refresher verified.
public struct DistributionRoutes: PATRouteGroup {
    public static let keysPath = "/.well-known/pat/keys"
    public static let revocationsPath = "/.well-known/pat/revocations"
    public static let deltaContentType = "application/vnd.patkit.revocation-delta"

    let keys: any ServedFile
    let feed: RevocationFeed
    /// Looks for a list written by another process before answering (an issuer's files).
    let look: (@Sendable () -> Void)?
    let clock: @Sendable () -> Timestamp

    /// An issuer's routes over `HOME/published`, feeding `feed` (which the server must run as a
    /// service; the management API's republisher offers it every list it publishes).
    public init(home: PATHome, feed: RevocationFeed, maxRevocationListBytes: Int = RevocationList.defaultMaxBytes,
                clock: @escaping @Sendable () -> Timestamp = { Timestamp.now() }, logger: Logger = Logger(label: "patkit.serve")) {
        let keys = PublishedFile(path: home.publishedKeysPath, maxBytes: SignedKeySet.maxDocumentBytes) { SignedKeySet.unverifiedSequence($0) }
        let watcher = PublishedListWatcher(home: home, feed: feed, keys: keys, maxBytes: maxRevocationListBytes, logger: logger)
        feed.setPoll { watcher.check() }
        self.keys = keys
        self.feed = feed
        self.look = { watcher.check() }
        self.clock = clock
    }

    /// A relay's routes: the key set `validator` holds and the lists `feed` is offered (by the
    /// relay's refresher, after verifying them).
    public init(relaying validator: Validator, feed: RevocationFeed, clock: @escaping @Sendable () -> Timestamp = { Timestamp.now() }) {
        self.keys = HeldKeySet(validator: validator)
        self.feed = feed
        self.look = nil
        self.clock = clock
    }

    public func addRoutes(to router: Router<PATServer.Context>) { register(on: router) }

    /// Adds the two routes (GET and HEAD) to `router`.
    public func register<Context: RequestContext>(on router: some RouterMethods<Context>) {
        let routes = self
        for method in [HTTPRequest.Method.get, .head] {
            router.on(RouterPath(DistributionRoutes.keysPath), method: method) { request, _ in
                try DistributionRoutes.respond(request, file: routes.keys, contentType: "application/json",
                                               missing: "no key set is published yet (run `pat publish` on the issuer)")
            }
            router.on(RouterPath(DistributionRoutes.revocationsPath), method: method) { request, _ in
                try await routes.revocations(request)
            }
        }
    }

    static func respond(_ request: Request, file: any ServedFile, contentType: String, missing: String) throws(PATHTTPError) -> Response {
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
        headers[.cacheControl] = "public, no-cache"
        headers[.vary] = "Accept-Encoding"
        if let sequence = version.sequence { headers[DistributionRoutes.sequenceHeader] = String(sequence) }
        if HTTPConditional.matches(request.headers[values: .ifNoneMatch], etag: etag) {
            return Response(status: .notModified, headers: headers)
        }
        headers[.contentType] = contentType
        if gzip != nil { headers[.contentEncoding] = "gzip" }
        let response = Response(status: .ok, headers: headers, body: .init(byteBuffer: gzip ?? version.bytes))
        return request.method == .head ? response.createHeadResponse() : response
    }

    /// `X-PAT-Sequence`.
    public static let sequenceHeader = HTTPFieldName("X-PAT-Sequence") ?? HTTPFieldName.eTag

    /// The query of a list request: `since` and `wait`, strictly (decimal digits, in range).
    static func query(_ request: Request) throws(PATHTTPError) -> (since: UInt64?, wait: Duration?) {
        let parameters = request.uri.queryParameters
        func number(_ name: String, max: UInt64) throws(PATHTTPError) -> UInt64? {
            let values = parameters.getAll(name)
            guard let text = values.first else { return nil }
            guard values.count == 1, !text.isEmpty, text.count <= 16, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                  let value = UInt64(text), value <= max else {
                throw PATHTTPError(.badRequest, code: "bad_request",
                                   message: "\(name) must be one decimal number from 0 to \(max)")
            }
            return value
        }
        let since = try number("since", max: SignedDocument.maxSequence)
        let wait = try number("wait", max: 86_400)
        if wait != nil, since == nil {
            throw PATHTTPError(.badRequest, code: "bad_request", message: "wait needs since: the sequence of the list the edge holds")
        }
        return (since, wait.map { .seconds(Int64($0)) })
    }

    func revocations(_ request: Request) async throws(PATHTTPError) -> Response {
        let (since, wait) = try DistributionRoutes.query(request)
        look?()
        if let since, let wait, wait > .zero, (feed.sequence ?? 0) <= since {
            let feed = self.feed
            // Also answered at once when the server shuts down gracefully.
            _ = await cancelWhenGracefulShutdown { await feed.waitForNewer(than: since, timeout: wait) }
        }
        let longPoll = wait != nil
        switch feed.answer(since: since) {
        case .none:
            throw PATHTTPError(.notFound, code: "not_published", message: "no revocation list is published yet (run `pat publish` on the issuer)")
        case .notModified(let current):
            var headers = HTTPFields()
            headers[DistributionRoutes.sequenceHeader] = String(current.sequence)
            headers[.cacheControl] = longPoll ? "no-store" : "no-cache"
            return Response(status: .notModified, headers: headers)
        case .deltas(let chain, let current):
            var headers = HTTPFields()
            headers[DistributionRoutes.sequenceHeader] = String(current.sequence)
            headers[.contentType] = DistributionRoutes.deltaContentType
            headers[.cacheControl] = longPoll ? "no-store" : "no-cache"
            let response = Response(status: .ok, headers: headers, body: .init(byteBuffer: chain))
            return request.method == .head ? response.createHeadResponse() : response
        case .list(let current):
            return respondList(request, current, conditional: since == nil, longPoll: longPoll)
        }
    }

    func respondList(_ request: Request, _ list: ServedList, conditional: Bool, longPoll: Bool) -> Response {
        let gzip = HTTPConditional.acceptsGzip(request.headers[values: .acceptEncoding]) ? list.gzip : nil
        let etag = gzip == nil ? list.etag : list.gzipETag
        var headers = HTTPFields()
        headers[.eTag] = etag
        headers[DistributionRoutes.sequenceHeader] = String(list.sequence)
        if longPoll {
            headers[.cacheControl] = "no-store"
        } else if conditional, let next = list.nextUpdate {
            headers[.cacheControl] = "public, max-age=\(max(0, next.seconds - clock().seconds)), no-transform"
        } else {
            headers[.cacheControl] = "public, no-cache"
        }
        headers[.vary] = "Accept-Encoding"
        if conditional, HTTPConditional.matches(request.headers[values: .ifNoneMatch], etag: etag) {
            return Response(status: .notModified, headers: headers)
        }
        headers[.contentType] = "application/octet-stream"
        if gzip != nil { headers[.contentEncoding] = "gzip" }
        let response = Response(status: .ok, headers: headers, body: .init(byteBuffer: gzip ?? list.bytes))
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

