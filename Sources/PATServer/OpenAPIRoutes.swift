import Hummingbird
import NIOCore

/// `GET /openapi.json`: the OpenAPI 3.1 document of every route `pat serve` mounts
/// (`Sources/PATServer/Resources/openapi.json`, embedded in the binary at build time), without
/// authentication. `OpenAPIContractTests` fails when a route is mounted that the document does not
/// name, or the document names one no mode mounts; `scripts/schemathesis.sh` fuzzes a live server
/// against it.
public struct OpenAPIRoutes: PATRouteGroup {
    public static let path = "/openapi.json"

    /// The document's bytes (UTF-8 JSON).
    public static var document: [UInt8] { PackageResources.openapi_json }

    public init() {}

    public func addRoutes(to router: Router<PATServer.Context>) {
        router.get(RouterPath(OpenAPIRoutes.path)) { _, _ in
            var headers = HTTPFields()
            headers[.contentType] = "application/json; charset=utf-8"
            headers[.cacheControl] = "public, no-cache"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: OpenAPIRoutes.document)))
        }
    }
}
