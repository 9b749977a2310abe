import Foundation
import Hummingbird
import PATEdge
import PATHummingbird
import PATServer
import PATKit
import Testing

@Suite("PATAuthenticator and scope requirements", .timeLimit(.minutes(5)))
struct MiddlewareTests {
    /// A service: `POST /channels/{id}/messages` needs `channels:publish:{id}`;
    /// `/groups/{group}/...` needs `groups:view:{group}` (as group middleware);
    /// `/broken` declares a parameter its path lacks; `/me` needs only a valid PAT.
    static func makeApp(validator: Validator, onRunning: @escaping @Sendable (Int) async -> Void) throws -> some ApplicationProtocol {
        let router = Router(context: BasicPATRequestContext.self)
        router.add(middleware: PATErrorMiddleware())
        router.add(middleware: PATAuthenticator(validator: validator))
        try router.post("/channels/{id}/messages", requiring: "channels:publish:{id}") { _, context in
            "published by \(try context.requirePAT().subject)"
        }
        router.get("/me") { _, context in try context.requirePAT().subject }
        try router.get("/broken", requiring: "channels:publish:{id}") { _, _ in "never" }
        router.group("/groups/:group")
            .add(middleware: try PATScopeRequirement<BasicPATRequestContext>("groups:view:{group}"))
            .get("members") { _, _ in "members" }
        return Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                           onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? 0) },
                           logger: quietLogger())
    }

    @Test func routesCheckTheirPathDerivedScopes() async throws {
        let issuing = try Issuing()
        var policy = Validator.Policy()
        policy.requireRevocationList = false
        let validator = Validator(keys: issuing.keySet, policy: policy)
        let token = try issuing.token(subject: "bob", scopes: ["channels:publish:ch-1", "groups:view:*"])
        let auth = [("Authorization", "Bearer \(token)")]
        try await withRunningServer({ onRunning in try Self.makeApp(validator: validator, onRunning: onRunning) }) { port in
            let base = "http://127.0.0.1:\(port)"
            let ok = try await http("\(base)/channels/ch-1/messages", method: .POST, headers: auth)
            #expect(ok.status == 200)
            #expect(ok.text == "published by bob")

            let forbidden = try await http("\(base)/channels/ch-2/messages", method: .POST, headers: auth)
            #expect(forbidden.status == 403)
            #expect(forbidden.errorCode == "scope_missing")
            #expect(forbidden.text.contains("channels:publish:ch-2"), "the 403 names the missing scope")

            let anonymous = try await http("\(base)/channels/ch-1/messages", method: .POST)
            #expect(anonymous.status == 401)
            #expect(anonymous.errorCode == "missing_token")
            #expect(anonymous.header("WWW-Authenticate") == "Bearer realm=\"PATKit\"")

            let invalid = try await http("\(base)/me", headers: [("Authorization", "Bearer v4.public.AAAA")])
            #expect(invalid.status == 401)
            #expect(invalid.header("WWW-Authenticate")?.hasPrefix("Bearer error=\"invalid_token\", error_description=\"") == true)

            let me = try await http("\(base)/me", headers: auth)
            #expect(me.status == 200)
            #expect(me.text == "bob")

            let members = try await http("\(base)/groups/g-7/members", headers: auth)
            #expect(members.status == 200, "a wildcard scope grants every group")

            let broken = try await http("\(base)/broken", headers: auth)
            #expect(broken.status == 500)
            #expect(broken.errorCode == "internal")

            let nowhere = try await http("\(base)/nowhere", headers: auth)
            #expect(nowhere.status == 404)
            #expect(nowhere.errorCode == "not_found")
        }
    }

    @Test func aRevokedTokenIsRefusedWithItsCode() async throws {
        let issuing = try Issuing()
        let revokedID = PATClaims.newID()
        let validator = Validator(keys: issuing.keySet)
        try validator.installRevocations(try issuing.list(sequence: 1, revoked: [revokedID]))
        let revoked = try issuing.token(id: revokedID, scopes: ["channels:publish:ch-1"])
        try await withRunningServer({ onRunning in try Self.makeApp(validator: validator, onRunning: onRunning) }) { port in
            let response = try await http("http://127.0.0.1:\(port)/channels/ch-1/messages", method: .POST,
                                          headers: [("Authorization", "Bearer \(revoked)")])
            #expect(response.status == 401)
            #expect(response.errorCode == "revoked")
        }
    }

    /// The README's edge-service setup, end to end: a distribution server, and a service whose
    /// refresher fetches from it and whose middleware checks a path-derived scope.
    @Test func aServiceWiredAsTheREADMEShows() async throws {
        let dir = try TempDir()
        let cache = try TempDir("service-cache")
        let issuing = try Issuing()
        try dir.publish(keys: try issuing.signedKeys(), list: try issuing.list(sequence: 1))
        let token = try issuing.token(subject: "frank", scopes: ["channels:publish:ch-1"])
        let anchorsFile = cache.path + "/anchors.txt" // what `pat keys export --anchors` printed on the issuer
        try SecureFile.writeAtomically(anchorsFile, Array(issuing.anchors.text.utf8))
        try await withPATServer(PATServerConfiguration(home: dir.home)) { issuerPort, _ in
            let issuer = "http://127.0.0.1:\(issuerPort)"
            try await withRunningServer({ onRunning in
                // --- as in the README ---
                let refresher = PATRefresher(keysURL: "\(issuer)/.well-known/pat/keys",
                                             revocationsURL: "\(issuer)/.well-known/pat/revocations",
                                             trustAnchors: try TrustAnchors(contentsOfFile: anchorsFile),
                                             cacheDirectory: cache.path, logger: quietLogger())
                let router = Router(context: BasicPATRequestContext.self)
                router.add(middleware: PATErrorMiddleware())
                router.add(middleware: PATAuthenticator(validator: refresher.validator))
                try router.post("/channels/{id}/messages", requiring: "channels:publish:{id}") { _, context in
                    "published by \(try context.requirePAT().subject)"
                }
                var app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                                      onServerRunning: { await onRunning($0.localAddress?.port ?? 0) }, logger: quietLogger())
                app.addServices(refresher)                          // refreshes every 5 s, stops with the app
                app.beforeServerStarts { await refresher.refresh() } // first keys and list before serving
                // ---
                return app
            }) { port in
                let ok = try await http("http://127.0.0.1:\(port)/channels/ch-1/messages", method: .POST,
                                        headers: [("Authorization", "Bearer \(token)")])
                #expect(ok.status == 200)
                #expect(ok.text == "published by frank")
                let other = try await http("http://127.0.0.1:\(port)/channels/ch-9/messages", method: .POST,
                                           headers: [("Authorization", "Bearer \(token)")])
                #expect(other.status == 403)
            }
        }
    }

    @Test func templates() throws {
        #expect(try PATScopeTemplate("channels:publish:{id}").id == .parameter("id"))
        #expect(try PATScopeTemplate("clients:view").id == .any)
        #expect(try PATScopeTemplate("clients:view:*").id == .any)
        #expect(try PATScopeTemplate("clients:view:c-1").id == .literal("c-1"))
        #expect(throws: PATKitError.self) { try PATScopeTemplate("channels") }
        #expect(throws: PATKitError.self) { try PATScopeTemplate("Channels:publish") }
        #expect(throws: PATKitError.self) { try PATScopeTemplate("channels:publish:{}") }
        #expect(throws: PATKitError.self) { try PATScopeTemplate("channels:publish:{a-b}") }
        #expect(throws: PATKitError.self) { try PATScopeTemplate("a:b:c:d") }
    }

    @Test func bearerExtraction() {
        func headers(_ values: [String]) -> HTTPFields {
            var fields = HTTPFields()
            for value in values { fields.append(.init(name: .authorization, value: value)) }
            return fields
        }
        #expect(BearerToken.extract(from: headers([])) == .missing)
        #expect(BearerToken.extract(from: headers(["Basic abc"])) == .missing)
        #expect(BearerToken.extract(from: headers(["Bearer abc"])) == .token("abc"))
        #expect(BearerToken.extract(from: headers(["BEARER   abc  "])) == .token("abc"))
        #expect(BearerToken.extract(from: headers(["Bearer"])) == .malformed("the Bearer credentials are empty"))
        #expect(BearerToken.extract(from: headers(["Bearer a b"])) == .malformed("the Bearer credentials must be one token"))
        #expect(BearerToken.extract(from: headers(["Bearer a", "Bearer b"])) == .malformed("more than one Authorization header"))
        // Read over bytes (issue 15): tabs are spaces, the scheme is ASCII "bearer" in any case.
        #expect(BearerToken.extract(from: headers(["\tbEaReR\tabc\t"])) == .token("abc"))
        #expect(BearerToken.extract(from: headers(["Bearer a,b"])) == .malformed("the Bearer credentials must be one token"))
        #expect(BearerToken.extract(from: headers(["Bearer   "])) == .malformed("the Bearer credentials are empty"))
        #expect(BearerToken.extract(from: headers(["Bearerx abc"])) == .missing)
        #expect(BearerToken.extract(from: headers(["Bearér abc"])) == .missing)
        #expect(BearerToken.extract(from: headers(["Bearer v4.public.é"])) == .token("v4.public.é"))
    }
}
