import Foundation
import Hummingbird
import HummingbirdTesting
import PATKit
import PATServer
import PATTestSupport
import Testing

/// Issue 14 §3: the OpenAPI document (`GET /openapi.json`) and the routes `pat serve` mounts do
/// not drift. Every route of every mode is in the document, and every operation in the document
/// is mounted by some mode.
@Suite("OpenAPI contract (issue 14)", .timeLimit(.minutes(3)))
struct OpenAPIContractTests {
    static let methods: Set<String> = ["get", "put", "post", "delete", "options", "head", "patch", "trace"]

    /// The document's operations, as `METHOD /path`.
    static func documented() throws -> Set<String> {
        let document = try #require(try JSONSerialization.jsonObject(with: Data(OpenAPIRoutes.document)) as? [String: Any])
        let paths = try #require(document["paths"] as? [String: [String: Any]], "the document has paths")
        var out: Set<String> = []
        for (path, item) in paths {
            for method in item.keys where methods.contains(method) { out.insert("\(method.uppercased()) \(path)") }
        }
        return out
    }

    /// The routes a router holds, as `METHOD /path`.
    static func mounted(_ router: Router<PATServer.Context>) -> Set<String> {
        Set(router.routes.map { "\($0.method.rawValue) \($0.path.description)" })
    }

    /// What one side has that the other lacks.
    static func drift(mounted: Set<String>, documented: Set<String>) -> (undocumented: [String], unmounted: [String]) {
        (mounted.subtracting(documented).sorted(), documented.subtracting(mounted).sorted())
    }

    /// Every mode's routes: the issuer with the management API and the secret-scanning endpoint,
    /// and a relaying gate.
    static func everyMode() async throws -> Set<String> {
        let home = try await ManagementHome()
        let scanner = try TokenHygieneServerTests.Scanner().configured
        let (issuer, _) = try home.configuration { $0.secretScanning = SecretScanningConfiguration(keys: [scanner]) }
        let issuing = try Issuing()
        var gate = GateConfiguration(trustAnchors: issuing.anchors)
        gate.relay = true
        let relay = PATServerConfiguration(home: home.home, mode: .gate(gate))
        return mounted(PATServer.makeRouter(issuer).router).union(mounted(PATServer.makeRouter(relay).router))
    }

    @Test("every mounted route is documented, and every documented operation is mounted")
    func routesMatchTheDocument() async throws {
        let (undocumented, unmounted) = Self.drift(mounted: try await Self.everyMode(), documented: try Self.documented())
        #expect(undocumented.isEmpty, "routes missing from Sources/PATServer/Resources/openapi.json: \(undocumented)")
        #expect(unmounted.isEmpty, "operations in the document that no mode of pat serve mounts: \(unmounted)")
    }

    @Test("a route added without documenting it is caught")
    func undocumentedRouteIsCaught() async throws {
        let home = try await ManagementHome()
        let (configuration, _) = try home.configuration()
        let router = PATServer.makeRouter(configuration).router
        router.get("/v3/personal-access-tokens/{id}/secret") { _, _ in "x" }
        let (undocumented, _) = Self.drift(mounted: Self.mounted(router), documented: try Self.documented())
        #expect(undocumented == ["GET /v3/personal-access-tokens/{id}/secret"])
    }

    @Test("every $ref resolves, operation ids are unique, and the management API is behind the bearer scheme")
    func documentIsWellFormed() throws {
        let text = String(decoding: OpenAPIRoutes.document, as: UTF8.self)
        let document = try #require(try JSONSerialization.jsonObject(with: Data(OpenAPIRoutes.document)) as? [String: Any])
        #expect(document["openapi"] as? String == "3.1.0")
        let components = try #require(document["components"] as? [String: [String: Any]])
        let refs = text.components(separatedBy: "\"$ref\": \"#/components/").dropFirst().map { $0.prefix(while: { $0 != "\"" }) }
        #expect(!refs.isEmpty)
        for ref in refs {
            let parts = ref.split(separator: "/").map(String.init)
            #expect(parts.count == 2 && components[parts[0]]?[parts[1]] != nil, "unresolved $ref #/components/\(ref)")
        }
        let paths = try #require(document["paths"] as? [String: [String: [String: Any]]])
        var ids: [String] = []
        for (path, item) in paths {
            for (method, operation) in item where Self.methods.contains(method) {
                ids.append(operation["operationId"] as? String ?? "\(method) \(path) has no operationId")
                guard path.hasPrefix("/v3/personal-access-tokens"), path != "/v3/personal-access-tokens/leaks" else { continue }
                let security = operation["security"] as? [[String: [String]]]
                #expect(security?.first?["bearerAuth"] != nil, "\(method) \(path) is not behind bearerAuth")
                let responses = operation["responses"] as? [String: Any]
                #expect(responses?["401"] != nil, "\(method) \(path) does not document 401")
            }
        }
        #expect(Set(ids).count == ids.count, "duplicate operationId")
    }

    @Test("GET /openapi.json serves the document without authentication")
    func servedWithoutAuthentication() async throws {
        let home = try await ManagementHome()
        let (configuration, _) = try home.configuration()
        let (app, _) = PATServer.makeApplication(configuration)
        try await app.test(.router) { client in
            try await client.execute(uri: "/openapi.json", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType]?.hasPrefix("application/json") == true)
                #expect(Array(response.body.readableBytesView) == OpenAPIRoutes.document)
            }
        }
    }
    /// schemathesis (ST204, "wrong response to undeclared method"): `TRACE /healthz` was 404, as if
    /// the path did not exist. A path served under other methods answers 405 with `Allow`.
    @Test("a method a path does not serve is 405 with Allow, in the JSON error shape; an unknown path stays 404")
    func methodNotAllowed() async throws {
        let home = try await ManagementHome()
        let (configuration, _) = try home.configuration()
        let (app, _) = PATServer.makeApplication(configuration)
        let cases: [(String, HTTPRequest.Method, String)] = [
            ("/healthz", .trace, "GET"),
            ("/.well-known/pat/keys", .delete, "GET, HEAD"),
            ("/v3/personal-access-tokens", .put, "DELETE, GET, POST"),
            ("/v3/personal-access-tokens/some-id", .post, "DELETE, GET"),
            ("/v3/personal-access-tokens/some-id/scopes/all", .post, "DELETE"),
            // A literal segment is its own route, not a value of {id} (schemathesis ST205).
            ("/v3/personal-access-tokens/usage", .options, "POST"),
        ]
        try await app.test(.router) { client in
            for (path, method, allow) in cases {
                try await client.execute(uri: path, method: method) { response in
                    #expect(response.status == .methodNotAllowed, "\(method) \(path)")
                    #expect(response.headers[.allow] == allow, "\(method) \(path)")
                    #expect(String(buffer: response.body).contains(#""code":"method_not_allowed""#))
                }
            }
            try await client.execute(uri: "/v3/personal-access-tokens/some-id/nothing", method: .get) { response in
                #expect(response.status == .notFound)
            }
            try await client.execute(uri: "/healthz", method: .get) { response in
                #expect(response.status == .ok)
            }
        }
    }
}
