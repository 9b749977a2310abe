import Foundation
import Hummingbird
import PATEdge
import PATKit
import PATManagement
import PATRegistry
import PATRegistryPostgres
import PATRegistryTestSupport
import PATServer
import PATStore
import PATTestSupport
import Testing

/// `pat serve` nodes on one registry, in this process: each node is a `ManagementServer` with its
/// own home (the same keys) and its own store on the shared database.
@Suite("several pat serve nodes on one registry", .serialized, .timeLimit(.minutes(10)))
struct MultiNodeServerTests {
    static let path = ManagementRoutes.basePath
    static let secret = Array("a-shared-secret-of-some-length".utf8)

    /// A second node beside `home`: another home holding the same keys, another store on the
    /// same database.
    struct Node {
        let dir: TempDir
        let store: any PATRegistryStore

        init(beside home: ManagementHome) async throws {
            dir = try TempDir("patnode")
            try dir.copyKeys(from: home.home)
            store = try await home.reopen()
        }

        func configuration(_ configure: (inout ManagementConfiguration) -> Void = { _ in }) throws -> (PATServerConfiguration, ManagementServer) {
            var settings = ManagementConfiguration()
            settings.refreshInterval = .seconds(1)
            settings.rateLimit = nil
            settings.expiryLeadTimes = [] // as ManagementHome's: these tests count change events only
            configure(&settings)
            let management = try ManagementServer(home: dir.home, configuration: settings, store: store,
                                                  logger: quietLogger("patkit.node-b"))
            var configuration = PATServerConfiguration(home: dir.home)
            management.install(into: &configuration)
            return (configuration, management)
        }
    }

    /// Runs node B (beside `home`) for `body` with its base URL.
    static func withNode<T: Sendable>(_ node: Node, _ configure: (inout ManagementConfiguration) -> Void = { _ in },
                                      _ body: (String, ManagementServer) async throws -> T) async throws -> T {
        let (configuration, management) = try node.configuration(configure)
        return try await withPATServer(configuration) { port, _ in try await body("http://127.0.0.1:\(port)", management) }
    }

    /// The list a distribution endpoint serves, verified with the home's keys.
    static func servedList(_ base: String, keys: KeySet) async throws -> RevocationList {
        let response = try await http(base + "/.well-known/pat/revocations")
        #expect(response.status == 200)
        return try RevocationList(verifying: response.body, keys: keys)
    }

    @Test("a change made through node A is published by node B", arguments: RegistryBackend.allCases)
    func nodeBPublishesNodeAsChange(_ backend: RegistryBackend) async throws {
        let home = try await ManagementHome(backend)
        let node = try await Node(beside: home)
        let victim = try await home.issue(owner: "alice", name: "victim", scopes: ["clients:view"])
        let keys = try home.home.keyStore.keySet()
        try await withManagementServer(home) { nodeA, _ in
            try await Self.withNode(node) { nodeB, b in
                // B watches for other nodes' changes (its first announcement says it does).
                try await awaitEvent("node B watches the registry") { try await b.republisher.waitUntilExternalPublishes(1) }
                let revoked = try await request(nodeA + Self.path + "/\(victim.record.id)/revoke", method: .POST, token: home.adminToken)
                #expect(revoked.status == 200)
                try await awaitEvent("node B publishes because of node A's change") {
                    try await b.republisher.waitUntilExternalPublishes(2)
                }
                let list = try await Self.servedList(nodeB, keys: keys)
                let validator = Validator(keys: keys, revocations: list)
                #expect(validationCode { try validator.validate(victim.bearer) } == .revoked,
                        "node B's list \(list.sequence) refuses the token revoked through node A")
            }
        }
    }

    @Test("two nodes' dispatchers deliver every event exactly once", arguments: RegistryBackend.allCases)
    func noDuplicateDeliveriesAcrossNodes(_ backend: RegistryBackend) async throws {
        let home = try await ManagementHome(backend)
        let node = try await Node(beside: home)
        let receiver = HookReceiver()
        try await WebhookTests.withReceiver(receiver) { hook in
            let hooks = try webhookConfiguration([hook], secrets: [Self.secret])
            let configure: (inout ManagementConfiguration) -> Void = {
                $0.webhooks = hooks
            }
            try await withManagementServer(home, configure) { nodeA, a in
                try await Self.withNode(node, configure) { nodeB, b in
                    let count = 60
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        for index in 0..<count {
                            group.addTask {
                                let base = index % 2 == 0 ? nodeA : nodeB
                                let created = try await request(base + Self.path, method: .POST, token: home.adminToken,
                                                                body: #"{"name": "n\#(index)", "owner": "o\#(index % 5)", "scopes": ["clients:view"]}"#)
                                #expect(created.status == 201)
                            }
                        }
                        try await group.waitForAll()
                    }
                    try await receiver.waitForHooks(count)
                    let (da, db) = (try #require(a.webhooks), try #require(b.webhooks))
                    try await awaitCondition("every event settles on one node or the other") {
                        da.settledCount + db.settledCount >= count
                    }
                    try await awaitCondition("the outbox is empty") {
                        try await home.store.read { tx in try await tx.events(after: 0, limit: 10) }.isEmpty
                    }
                    let deliveries = receiver.hooks.compactMap(\.delivery)
                    #expect(deliveries.count == count, "\(deliveries.count) requests for \(count) events")
                    #expect(Set(deliveries).count == count, "no event delivered twice")
                    #expect(da.settledCount > 0 || db.settledCount > 0)
                }
            }
        }
    }

    @Test("events a dead node had claimed are delivered by another once its lease runs out", arguments: RegistryBackend.allCases)
    func aDeadNodesEventsAreTakenOver(_ backend: RegistryBackend) async throws {
        let home = try await ManagementHome(backend)
        for index in 0..<5 { _ = try await home.issue(owner: "carol", name: "p\(index)", scopes: ["clients:view"]) }
        // The dead node: it claimed every event for 2 s, then died (nothing renews or releases).
        let claimed = try await home.store.write { tx in
            try await tx.claimEvents(claimant: "dead-node", lease: .seconds(2), limit: 100)
        }
        #expect(claimed.count == 5)
        let receiver = HookReceiver()
        try await WebhookTests.withReceiver(receiver) { hook in
            let store = try await home.reopen()
            let dispatcher = WebhookDispatcher(configuration: try webhookConfiguration([hook], secrets: [Self.secret]),
                                               store: store, pollInterval: .milliseconds(200), logger: quietLogger())
            let running = Task { try await dispatcher.run() }
            defer { running.cancel() }
            try await awaitEvent("the five events settle on the live node") { try await dispatcher.waitUntilSettled(5) }
            #expect(Set(receiver.hooks.compactMap(\.delivery)) == Set(claimed.map(\.delivery)))
            #expect(receiver.hooks.count == 5)
            running.cancel()
            _ = try await withTimeLimit(.seconds(60), "the dispatcher to stop") { await running.result }
        }
    }

    @Test("registry down: the API answers 503 with Retry-After, edges keep validating with their last list (PostgreSQL)")
    func databaseDown() async throws {
        let configuration = try await PostgresTestDatabase.create()
        var impatient = configuration
        impatient.acquireTimeout = .seconds(1)
        impatient.connectTimeout = .seconds(1)
        let home = try await ManagementHome(.postgres, database: configuration)
        let store = try await PostgresRegistry.open(impatient, logger: quietRegistryLogger)
        let valid = try await home.issue(owner: "dave", name: "valid", scopes: ["clients:view"])
        let doomed = try await home.issue(owner: "dave", name: "doomed", scopes: ["clients:view"])
        _ = try await home.service.revoke(id: doomed.record.id, by: .localOperator)
        var settings = ManagementConfiguration()
        settings.refreshInterval = .seconds(1)
        settings.rateLimit = nil
        settings.expiryLeadTimes = []
        settings.retryInterval = .milliseconds(200)
        let management = try ManagementServer(home: home.home, configuration: settings, store: store, logger: quietLogger())
        var server = PATServerConfiguration(home: home.home)
        management.install(into: &server)
        try await withPATServer(server) { port, _ in
            let base = "http://127.0.0.1:\(port)"
            let published = try #require(management.republisher.lastResult?.sequence)
            let cache = try TempDir("patgate-cache")
            let gate = GateConfiguration(source: .urls(keys: base + "/.well-known/pat/keys", revocations: base + "/.well-known/pat/revocations"),
                                         trustAnchors: try #require(try home.home.keyStore.trustAnchors()),
                                         refreshInterval: .seconds(1), cacheDirectory: cache.path)
            let empty = try TempDir()
            try await withPATServer(PATServerConfiguration(home: empty.home, mode: .gate(gate))) { gatePort, refresher in
                let verify = "http://127.0.0.1:\(gatePort)/verify"
                let feeder = try #require(refresher)
                try await awaitEvent("the edge holds the node's list") { try await feeder.waitUntilRefreshed(toSequence: published) }

                try await PostgresTestDatabase.down(configuration)
                let refused = try await request(base + Self.path, method: .POST, token: home.adminToken,
                                                body: #"{"name": "while-down", "scopes": ["clients:view"]}"#)
                #expect(refused.status == 503)
                #expect(refused.errorCode == "unavailable")
                #expect(refused.header("Retry-After") == String(ManagementRoutes.unavailableRetryAfterSeconds))
                #expect(!(refused.errorMessage ?? "").contains(configuration.password ?? "-"), "no secret in the answer")
                let listed = try await request(base + Self.path, method: .GET, token: home.adminToken)
                #expect(listed.status == 503, "reads too")

                // The edge refreshes from the node (which still serves its last published files) and
                // decides offline: the valid token passes, the revoked one is refused.
                let rounds = feeder.completedRounds
                try await awaitEvent("the edge completes another refresh round") { try await feeder.waitUntilRounds(rounds + 1) }
                #expect(try await http(verify, headers: [("Authorization", "Bearer \(valid.bearer)")]).status == 204)
                let revoked = try await http(verify, headers: [("Authorization", "Bearer \(doomed.bearer)")])
                #expect(revoked.status == 401 && revoked.errorCode == "revoked")

                try await PostgresTestDatabase.up(configuration)
                try await awaitCondition("the API works again once the database is back") {
                    try await request(base + Self.path, method: .GET, token: home.adminToken).status == 200
                }
            }
        }
    }
}
