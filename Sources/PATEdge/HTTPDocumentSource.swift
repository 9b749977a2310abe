import AsyncHTTPClient
import NIOCore
import NIOHTTP1

/// Fetches the documents over HTTP(S) with AsyncHTTPClient: conditional GET
/// (`If-None-Match` → 304), bounded bodies (a `Content-Length` over the limit is refused
/// before the body is read; a streamed body is cut at the limit), a deadline per request.
/// The shared client asks for gzip and inflates it (bounded to 25× the compressed size);
/// the limit applies to the inflated bytes.
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
        let url = document == .keys ? keysURL : revocationsURL
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
        switch response.status {
        case .notModified:
            return .notModified
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
            return .modified(bytes: Array(body.readableBytesView), etag: response.headers.first(name: "ETag"))
        default:
            throw PATEdgeError("GET \(url): HTTP \(response.status.code) \(response.status.reasonPhrase)")
        }
    }
}
