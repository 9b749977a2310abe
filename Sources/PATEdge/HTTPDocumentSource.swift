import AsyncHTTPClient
import NIOCore
import NIOHTTP1

/// Fetches the documents over HTTP(S) with AsyncHTTPClient: conditional GET
/// (`If-None-Match` → 304), bounded bodies (a `Content-Length` over the limit is refused
/// before the body is read; a streamed body is cut at the limit), a deadline per request.
/// The shared client asks for gzip and inflates it (bounded to 25× the compressed size);
/// the limit applies to the inflated bytes. The list is asked for with `?since=SEQ` (deltas
/// from the list held) and `&wait=SECONDS` (a long poll; the deadline is `timeout` past it),
/// and the issuer's `X-PAT-Sequence` says whether it understood them.
///
/// One long poll holds one connection: a process running many refreshers on one client (a
/// relay fan-out test, a benchmark) needs a client whose per-host connection limit is above
/// their number (`HTTPClient.Configuration.connectionPool`).
public struct HTTPDocumentSource: PATDocumentSource {
    public let keysURL: String
    public let revocationsURL: String
    public let timeout: TimeAmount
    private let client: HTTPClient

    /// - Parameters:
    ///   - client: defaults to the shared client (no shutdown needed).
    ///   - timeout: deadline for one request, body included.
    public init(keysURL: String, revocationsURL: String, client: HTTPClient = .shared, timeout: TimeAmount = .seconds(10)) {
        self.keysURL = keysURL
        self.revocationsURL = revocationsURL
        self.client = client
        self.timeout = timeout
    }

    public var location: String { "\(keysURL), \(revocationsURL)" }

    public func fetch(_ document: PATDocument, ifNoneMatch etag: String?, maxBytes: Int) async throws -> PATFetchResult {
        try await get(document == .keys ? keysURL : revocationsURL, document: document, ifNoneMatch: etag, maxBytes: maxBytes,
                      deadline: timeout).result
    }

    public func fetchRevocations(since: UInt64?, wait: Duration?, ifNoneMatch etag: String?, maxBytes: Int) async throws -> PATRevocationsFetch {
        var url = revocationsURL
        var deadline = timeout
        if let since {
            url += (url.contains("?") ? "&" : "?") + "since=\(since)"
            if let wait, wait > .zero {
                let seconds = max(1, wait.components.seconds)
                url += "&wait=\(seconds)"
                deadline = deadline + .seconds(seconds)
            }
        }
        return try await get(url, document: .revocations, ifNoneMatch: etag, maxBytes: maxBytes, deadline: deadline)
    }

    private func get(_ url: String, document: PATDocument, ifNoneMatch etag: String?, maxBytes: Int,
                     deadline timeout: TimeAmount) async throws -> PATRevocationsFetch {
        var request = HTTPClientRequest(url: url)
        request.method = .GET
        request.headers.add(name: "Accept", value: document == .keys ? "application/json" : "application/octet-stream")
        if let etag { request.headers.add(name: "If-None-Match", value: etag) }
        let response: HTTPClientResponse
        do {
            response = try await client.execute(request, deadline: .now() + timeout)
        } catch {
            throw PATEdgeError("GET \(url): \(error)")
        }
        let sequence = response.headers.first(name: "X-PAT-Sequence").flatMap { UInt64($0) }
        switch response.status {
        case .notModified:
            return PATRevocationsFetch(result: .notModified, sequence: sequence)
        case .ok:
            if let length = response.headers.first(name: "Content-Length").flatMap({ Int($0) }), length > maxBytes {
                throw PATEdgeError("GET \(url): body of \(length) bytes exceeds the limit of \(maxBytes) bytes")
            }
            let body: ByteBuffer
            do {
                body = try await response.body.collect(upTo: maxBytes)
            } catch is NIOTooManyBytesError {
                throw PATEdgeError("GET \(url): body exceeds the limit of \(maxBytes) bytes")
            } catch {
                throw PATEdgeError("GET \(url): reading the body failed: \(error)")
            }
            return PATRevocationsFetch(result: .modified(bytes: Array(body.readableBytesView), etag: response.headers.first(name: "ETag")),
                                       sequence: sequence)
        default:
            throw PATEdgeError("GET \(url): HTTP \(response.status.code) \(response.status.reasonPhrase)")
        }
    }
}
