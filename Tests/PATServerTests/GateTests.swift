import Foundation
import Hummingbird
import PATEdge
import PATKit
import PATServer
import PATStore
import Testing

@Suite("the /verify gate", .timeLimit(.minutes(5)))
struct GateTests {
    /// A home with published keys and a list revoking `revokedID`.
    struct Setup {
        let dir: TempDir
        let issuing: Issuing
        let revokedID: String

        init(nextUpdate: Timestamp = Timestamp.now().adding(seconds: 3600),
             issuedAt: Timestamp = Timestamp.now().adding(seconds: -1)) throws {
            dir = try TempDir()
            issuing = try Issuing()
            revokedID = PATClaims.newID()
            try dir.publish(keys: try issuing.signedKeys(),
                            list: try issuing.list(sequence: 1, revoked: [revokedID], issuedAt: issuedAt, nextUpdate: nextUpdate))
        }

        func gate(_ configure: (inout GateConfiguration) -> Void = { _ in }) -> PATServerConfiguration {
            var gate = GateConfiguration(trustAnchors: issuing.anchors, refreshInterval: .seconds(1))
            configure(&gate)
            return PATServerConfiguration(home: dir.home, mode: .gate(gate))
        }
    }

    @Test func aValidTokenPassesWithItsOwnerAndID() async throws {
        let setup = try Setup()
        let id = PATClaims.newID()
        let token = try setup.issuing.token(id: id, subject: "alice", scopes: ["channels:publish:ch-1", "clients:view"], domain: "d1")
        try await withPATServer(setup.gate()) { port, _ in
            let url = "http://127.0.0.1:\(port)/verify"
            let plain = try await http(url, headers: [("Authorization", "Bearer \(token)")])
            #expect(plain.status == 204)
            #expect(plain.header("X-PAT-Subject") == "alice")
            #expect(plain.header("X-PAT-Id") == id)
            #expect(plain.header("X-PAT-Generation") == "1")
            #expect(plain.header("X-PAT-Scope") == "channels:publish:ch-1 clients:view:*")
            #expect(plain.header("X-PAT-Domain") == "d1")
            #expect(plain.header("Cache-Control") == "no-store")

            let scoped = try await http(url, headers: [("Authorization", "bearer  \(token)"),
                                                       ("X-PAT-Require-Scope", "channels:publish:ch-1 clients:view:c-9"),
                                                       ("X-PAT-Domain", "d1")])
            #expect(scoped.status == 204, "scheme is case-insensitive; every listed scope is granted")
        }
    }

    @Test("answers are built once per verified PAT, and never carry another PAT's claims (same id and generation, other claims)")
    func answersAreKeptPerVerifiedPAT() async throws {
        let setup = try Setup()
        let id = PATClaims.newID()
        let alice = try setup.issuing.token(id: id, subject: "alice", scopes: ["channels:publish:ch-1"])
        let bob = try setup.issuing.token(id: id, subject: "bob", scopes: ["clients:view"], domain: "d2")
        try await withPATServer(setup.gate()) { port, _ in
            let url = "http://127.0.0.1:\(port)/verify"
            for round in 0..<3 {
                for (token, subject, scope, domain) in [(alice, "alice", "channels:publish:ch-1", nil), (bob, "bob", "clients:view:*", "d2")] {
                    let answer = try await http(url, headers: [("Authorization", "Bearer \(token)")])
                    #expect(answer.status == 204)
                    #expect(answer.header("X-PAT-Subject") == subject, "round \(round)")
                    #expect(answer.header("X-PAT-Scope") == scope, "round \(round)")
                    #expect(answer.header("X-PAT-Domain") == domain, "round \(round)")
                    #expect(answer.header("X-PAT-Id") == id)
                }
            }
        }
    }

    @Test func refusals() async throws {
        let setup = try Setup()
        let other = try Issuing()
        let good = try setup.issuing.token(scopes: ["channels:publish:ch-1"], domain: "d1")
        let revoked = try setup.issuing.token(id: setup.revokedID)
        let foreign = try other.token()
        try await withPATServer(setup.gate()) { port, _ in
            let url = "http://127.0.0.1:\(port)/verify"

            let missing = try await http(url)
            #expect(missing.status == 401)
            #expect(missing.errorCode == "missing_token")
            #expect(missing.header("WWW-Authenticate")?.hasPrefix("Bearer") == true)

            let basic = try await http(url, headers: [("Authorization", "Basic dXNlcjpwYXNz")])
            #expect(basic.status == 401)
            #expect(basic.errorCode == "missing_token")

            let garbage = try await http(url, headers: [("Authorization", "Bearer v4.public.nonsense")])
            #expect(garbage.status == 401)
            #expect(garbage.errorCode == "malformed")
            let challenge = try #require(garbage.header("WWW-Authenticate"))
            #expect(challenge.hasPrefix("Bearer error=\"invalid_token\", error_description=\""))

            let wasRevoked = try await http(url, headers: [("Authorization", "Bearer \(revoked)")])
            #expect(wasRevoked.status == 401)
            #expect(wasRevoked.errorCode == "revoked")

            let unknownKey = try await http(url, headers: [("Authorization", "Bearer \(foreign)")])
            #expect(unknownKey.status == 401)
            #expect(unknownKey.errorCode == "unknown_key")

            let lacking = try await http(url, headers: [("Authorization", "Bearer \(good)"), ("X-PAT-Require-Scope", "channels:publish:ch-2")])
            #expect(lacking.status == 403)
            #expect(lacking.errorCode == "scope_missing")
            #expect(lacking.text.contains("channels:publish:ch-2"))
            #expect(lacking.header("WWW-Authenticate") == "Bearer error=\"insufficient_scope\", scope=\"channels:publish:ch-2\"")

            let wildcard = try await http(url, headers: [("Authorization", "Bearer \(good)"), ("X-PAT-Require-Scope", "channels:publish")])
            #expect(wildcard.status == 403, "a PAT for one channel does not grant every channel")

            let oddID = try await http(url, headers: [("Authorization", "Bearer \(good)"), ("X-PAT-Require-Scope", "channels:publish:a%2Fb")])
            #expect(oddID.status == 403, "an id outside the grammar is refused, not an error")

            let wrongDomain = try await http(url, headers: [("Authorization", "Bearer \(good)"), ("X-PAT-Domain", "d2")])
            #expect(wrongDomain.status == 401)
            #expect(wrongDomain.errorCode == "wrong_domain")

            let misconfigured = try await http(url, headers: [("Authorization", "Bearer \(good)"), ("X-PAT-Require-Scope", "Channels")])
            #expect(misconfigured.status == 400)
            #expect(misconfigured.errorCode == "bad_request")

            let twoHeaders = try await http(url, headers: [("Authorization", "Bearer \(good)"), ("Authorization", "Bearer \(good)")])
            #expect(twoHeaders.status == 401)
            #expect(twoHeaders.errorCode == "malformed")
        }
    }

    /// schemathesis (ST203): `GET /verify` without `Authorization` but with an empty
    /// `X-PAT-Require-Scope` answered 400; a request without a token is 401 with the challenge.
    @Test("no token is 401 with WWW-Authenticate, even when the scope header is malformed")
    func missingTokenBeforeScopeHeader() async throws {
        let setup = try Setup()
        try await withPATServer(setup.gate()) { port, _ in
            let url = "http://127.0.0.1:\(port)/verify"
            for value in ["", "Channels"] {
                let response = try await http(url, headers: [("X-PAT-Require-Scope", value)])
                #expect(response.status == 401, "X-PAT-Require-Scope: \"\(value)\"")
                #expect(response.errorCode == "missing_token")
                #expect(response.header("WWW-Authenticate")?.hasPrefix("Bearer") == true)
            }
        }
    }

    @Test func aSubjectOutsideVisibleASCIIIsPercentEncoded() async throws {
        let setup = try Setup()
        let token = try setup.issuing.token(subject: "Zoë 100%")
        try await withPATServer(setup.gate()) { port, _ in
            let response = try await http("http://127.0.0.1:\(port)/verify", headers: [("Authorization", "Bearer \(token)")])
            #expect(response.status == 204)
            #expect(response.header("X-PAT-Subject") == "Zo%C3%AB%20100%25")
        }
    }

    @Test("the security review's notes: subject delimiters encoded, empty scope requirement refused, gate domain not disclosed")
    func reviewNotes() async throws {
        let setup = try Setup()
        let token = try setup.issuing.token(subject: "eve,admin;role=admin\"x", domain: "secret-domain")
        try await withPATServer(setup.gate { $0.domain = "secret-domain" }) { port, _ in
            let url = "http://127.0.0.1:\(port)/verify"
            let ok = try await http(url, headers: [("Authorization", "Bearer \(token)")])
            #expect(ok.status == 204)
            #expect(ok.header("X-PAT-Subject") == "eve%2Cadmin%3Brole%3Dadmin%22x")
            for value in ["", " , ", "\t"] {
                let empty = try await http(url, headers: [("Authorization", "Bearer \(token)"), ("X-PAT-Require-Scope", value)])
                #expect(empty.status == 400, "\"\(value)\" must not mean 'no scope required'")
            }
            let probing = try await http(url, headers: [("Authorization", "Bearer v4.public.x"), ("X-PAT-Domain", "guess")])
            #expect(probing.status == 401)
            #expect(!probing.text.contains("secret-domain"))
        }
    }

    @Test func aStaleListIsRefusedAsUnavailableAndTheStatusSaysWhy() async throws {
        let now = Timestamp.now()
        let setup = try Setup(nextUpdate: now.adding(seconds: -60), issuedAt: now.adding(seconds: -3600))
        let token = try setup.issuing.token()
        try await withPATServer(setup.gate()) { port, refresher in
            let response = try await http("http://127.0.0.1:\(port)/verify", headers: [("Authorization", "Bearer \(token)")])
            #expect(response.status == 503)
            #expect(response.errorCode == "stale_revocation_list")
            #expect(response.header("Retry-After") != nil)

            let status = try await http("http://127.0.0.1:\(port)/status")
            #expect(status.status == 503, "a readiness probe: not ready while every token is refused")
            let object = try #require(try JSONSerialization.jsonObject(with: Data(status.body)) as? [String: Any])
            #expect(object["stale"] as? Bool == true)
            #expect(object["acceptingTokens"] as? Bool == false)
            #expect((object["refusal"] as? String)?.contains("due for update") == true)
            #expect(object["sequence"] as? Int == 1)
            #expect(refresher?.status.isStale == true)
        }
        // The same list under a policy that accepts stale lists.
        let accepting = setup.gate { $0.policy.staleListPolicy = .accept }
        try await withPATServer(accepting) { port, refresher in
            let response = try await http("http://127.0.0.1:\(port)/verify", headers: [("Authorization", "Bearer \(token)")])
            #expect(response.status == 204)
            #expect(refresher?.status.isStale == true)
            #expect(refresher?.status.acceptingTokens == true)
        }
    }

    @Test func nothingPublishedMeansEveryTokenIsRefused() async throws {
        let dir = try TempDir()
        let issuing = try Issuing()
        let token = try issuing.token()
        try await withPATServer(PATServerConfiguration(home: dir.home, mode: .gate(GateConfiguration(trustAnchors: issuing.anchors)))) { port, refresher in
            let response = try await http("http://127.0.0.1:\(port)/verify", headers: [("Authorization", "Bearer \(token)")])
            #expect(response.status == 503, "no key set: the gate cannot decide, so it does not say the token is bad")
            #expect(response.errorCode == "missing_key_set")
            let status = try #require(refresher?.status)
            #expect(status.acceptingTokens == false)
            #expect(status.lastError?.contains("keys.json") == true)
            let probe = try await http("http://127.0.0.1:\(port)/status")
            #expect(probe.status == 503, "readiness: not ready while every token is refused")
        }
    }

    @Test func aGateFedByURLsFromADistributionServer() async throws {
        let setup = try Setup()
        let cache = try TempDir("patgate-cache")
        let token = try setup.issuing.token(subject: "erin")
        let revoked = try setup.issuing.token(id: setup.revokedID)
        try await withPATServer(PATServerConfiguration(home: setup.dir.home)) { distributionPort, _ in
            let base = "http://127.0.0.1:\(distributionPort)/.well-known/pat"
            let gate = GateConfiguration(source: .urls(keys: "\(base)/keys", revocations: "\(base)/revocations"),
                                         trustAnchors: setup.issuing.anchors, refreshInterval: .seconds(1), cacheDirectory: cache.path)
            let empty = try TempDir()
            try await withPATServer(PATServerConfiguration(home: empty.home, mode: .gate(gate))) { port, refresher in
                let ok = try await http("http://127.0.0.1:\(port)/verify", headers: [("Authorization", "Bearer \(token)")])
                #expect(ok.status == 204)
                #expect(ok.header("X-PAT-Subject") == "erin")
                let refused = try await http("http://127.0.0.1:\(port)/verify", headers: [("Authorization", "Bearer \(revoked)")])
                #expect(refused.status == 401)
                #expect(refused.errorCode == "revoked")
                #expect(refresher?.status.location.contains(base) == true)
            }
        }
        #expect(FileManager.default.fileExists(atPath: cache.path + "/revocations.bin"), "the gate cached the list")
    }

    @Test func aGateDomainCannotBeWidenedByTheRequest() async throws {
        let setup = try Setup()
        let inD1 = try setup.issuing.token(domain: "d1")
        let inD2 = try setup.issuing.token(domain: "d2")
        try await withPATServer(setup.gate { $0.domain = "d1" }) { port, _ in
            let url = "http://127.0.0.1:\(port)/verify"
            #expect(try await http(url, headers: [("Authorization", "Bearer \(inD1)")]).status == 204)
            #expect(try await http(url, headers: [("Authorization", "Bearer \(inD1)"), ("X-PAT-Domain", "d1")]).status == 204)
            let other = try await http(url, headers: [("Authorization", "Bearer \(inD2)")])
            #expect(other.status == 401)
            #expect(other.errorCode == "wrong_domain")
            let widened = try await http(url, headers: [("Authorization", "Bearer \(inD2)"), ("X-PAT-Domain", "d2")])
            #expect(widened.status == 401, "a client-sent X-PAT-Domain does not override the gate's domain")
            #expect(widened.errorCode == "wrong_domain")
        }
    }

    @Test func moreRouteGroupsMountBesideTheMode() async throws {
        struct Hello: PATRouteGroup {
            func addRoutes(to router: Router<PATServer.Context>) {
                router.get("/hello") { _, _ in "hello" }
            }
        }
        let setup = try Setup()
        var configuration = setup.gate()
        configuration.routeGroups = [Hello()]
        try await withPATServer(configuration) { port, _ in
            let hello = try await http("http://127.0.0.1:\(port)/hello")
            #expect(hello.status == 200)
            #expect(hello.text == "hello")
        }
    }

    @Test func headerNamesAreTheDocumentedOnes() {
        #expect(GateHeader.requireScope.rawName == "X-PAT-Require-Scope")
        #expect(GateHeader.domain.rawName == "X-PAT-Domain")
        #expect(GateHeader.subject.rawName == "X-PAT-Subject")
        #expect(GateHeader.id.rawName == "X-PAT-Id")
        #expect(GateHeader.generation.rawName == "X-PAT-Generation")
        #expect(GateHeader.scope.rawName == "X-PAT-Scope")
    }
}
