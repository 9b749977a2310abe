import Hummingbird
import PATHummingbird
import Synchronization

/// 405 Method Not Allowed with `Allow` for a path the server serves under other methods (RFC 9110
/// §15.5.6). Hummingbird's router answers 404 to any request it cannot match, path or method;
/// this middleware tells the two apart with the router's own list of routes (`Router.routes`),
/// loaded into its `RouteTable` once every route is mounted (`PATServer.makeRouter`).
struct MethodNotAllowedMiddleware<Context: RequestContext>: RouterMiddleware {
    let table: RouteTable

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound {
            // The router's "no such route" (a route that matched answers its own errors, and
            // serves this method, so it is passed through below).
            let allowed = table.methods(for: request.uri.path)
            guard !allowed.isEmpty, !allowed.contains(request.method.rawValue) else { throw error }
            let list = allowed.joined(separator: ", ")
            var headers = HTTPFields()
            headers[.allow] = list
            throw PATHTTPError(.methodNotAllowed, code: "method_not_allowed",
                               message: "\(request.method.rawValue.prefix(32)) is not served here; this path takes \(list)",
                               headers: headers)
        }
    }
}

/// The routes a router serves, for `MethodNotAllowedMiddleware`: each path's segments (a
/// `{parameter}` matches any one segment) and its methods.
final class RouteTable: Sendable {
    private struct Entry {
        let segments: [Substring?]  // nil: a parameter
        var methods: [String]
    }

    private let entries = Mutex<[Entry]>([])

    func load<Context>(_ routes: [Router<Context>.RouteDescription]) {
        var out: [Entry] = []
        for route in routes {
            let segments: [Substring?] = route.path.description.split(separator: "/").map {
                $0.hasPrefix("{") && $0.hasSuffix("}") ? nil : $0
            }
            if let index = out.firstIndex(where: { $0.segments == segments }) {
                out[index].methods.append(route.method.rawValue)
            } else {
                out.append(Entry(segments: segments, methods: [route.method.rawValue]))
            }
        }
        entries.withLock { $0 = out }
    }

    /// The methods of the route `path` resolves to (sorted), empty when none. As the router's
    /// trie does, a literal segment wins over a parameter (`/…/usage` is not `/…/{id}`).
    func methods(for path: String) -> [String] {
        let parts = path.split(separator: "/")
        let best = entries.withLock { entries in
            entries.filter { entry in
                entry.segments.count == parts.count && zip(entry.segments, parts).allSatisfy { $0 == nil || $0 == $1 }
            }.max { a, b in a.segments.map { $0 != nil }.lexicographicallyPrecedes(b.segments.map { $0 != nil }) { !$0 && $1 } }
        }
        return Set(best?.methods ?? []).sorted()
    }
}
