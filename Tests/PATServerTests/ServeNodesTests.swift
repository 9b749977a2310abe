import AsyncHTTPClient
import Foundation
import PATEdge
import PATKit
import PATManagement
import PATRegistry
import PATRegistryPostgres
import PATRegistryTestSupport
import PATServer
import PATStore
import PATTestSupport
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Two `pat serve` processes on one PostgreSQL database: the issue's end-to-end scenarios. The
/// pat binary and a PostgreSQL server are prerequisites (failures in CI).
@Suite("two pat serve processes on one PostgreSQL", .serialized, .timeLimit(.minutes(15)))
struct ServeNodesTests {
    static let path = ManagementRoutes.basePath
    static let secret = "0123456789abcdef0123456789abcdef"

    /// Two homes with the same keys, a fresh database with an admin PAT, a webhook secret file.
    struct Cluster {
        let database: PostgresConfiguration
        let homes: [TempDir]
        let adminToken: String
        let secretPath: String

        /// What a gate pins: the anchors of the issuer both nodes share.
        var anchors: TrustAnchors {
            get throws {
                guard let anchors = try homes[0].home.keyStore.trustAnchors() else { throw TestFailure("node a has no trust anchor") }
                return anchors
            }
        }

        init() async throws {
            database = try await PostgresTestDatabase.create()
            let a = try TempDir("patnode-a"), b = try TempDir("patnode-b")
            try a.home.keyStore.generate()
            try b.copyKeys(from: a.home)
            homes = [a, b]
            let store = try await PostgresRegistry.open(database, logger: quietRegistryLogger)
            let service = PATManagement(store: store, keyStore: a.home.keyStore,
                                        policy: ManagementPolicy(catalog: try a.home.catalog(named: "management")))
            adminToken = try await service.create(CreateRequest(owner: "admin", name: "bootstrap", scopes: [try Scope(parsing: "pats:admin")],
                                                                expiry: .after(TimeSpan(seconds: 86_400))), by: .localOperator).token ?? ""
            await store.close()
            secretPath = a.path + "/hook.key"
            try SecureFile.writeAtomically(secretPath, Array((ServeNodesTests.secret + "\n").utf8), mode: 0o600)
        }

        /// `pat serve` arguments of node `index` (the database URL goes in the environment).
        func arguments(_ index: Int, hook: String, lease: String = "60s") -> [String] {
            ["serve", "--home", homes[index].path, "--rate-limit", "0", "--webhook", hook, "--webhook-secret-file", secretPath,
             "--webhook-claim-lease", lease, "--expiry-notice", "off"]
        }

        var environment: [String: String] { [RegistryDatabase.environmentVariable: database.testURL] }

        func store() async throws -> any PATRegistryStore { try await PostgresRegistry.open(database, logger: quietRegistryLogger) }
    }

    /// Runs `work` over `items`, at most `width` at a time; results in the items' order.
    static func concurrently<Item: Sendable, Value: Sendable>(_ items: [Item], width: Int,
                                                              _ work: @escaping @Sendable (Item) async throws -> Value) async throws -> [Value] {
        try await withThrowingTaskGroup(of: (Int, Value).self) { group in
            var results = [Value?](repeating: nil, count: items.count)
            var next = 0
            func add() {
                guard next < items.count else { return }
                let index = next, item = items[index]
                next += 1
                group.addTask { (index, try await work(item)) }
            }
            for _ in 0..<width { add() }
            while let (index, value) = try await group.next() {
                results[index] = value
                add()
            }
            return results.map { $0! }
        }
    }

    /// The list node `base` serves now.
    static func served(_ base: String, keys: KeySet) async throws -> (list: RevocationList, bytes: [UInt8]) {
        let response = try await http(base + "/.well-known/pat/revocations")
        guard response.status == 200 else { throw TestFailure("\(base) serves no list: \(response.status)") }
        return (try RevocationList(verifying: response.body, keys: keys), response.body)
    }

    /// A gate (`pat serve --verify-only`'s application, in this process) fed from node `base`.
    static func withGate<T: Sendable>(fedFrom base: String, anchors: TrustAnchors,
                                      _ body: (String, PATRefresher) async throws -> T) async throws -> T {
        let gate = GateConfiguration(source: .urls(keys: base + "/.well-known/pat/keys", revocations: base + "/.well-known/pat/revocations"),
                                     trustAnchors: anchors, refreshInterval: .seconds(1))
        let empty = try TempDir()
        return try await withPATServer(PATServerConfiguration(home: empty.home, mode: .gate(gate))) { port, refresher in
            guard let refresher else { throw TestFailure("no refresher") }
            return try await body("http://127.0.0.1:\(port)/verify", refresher)
        }
    }

    /// What the test saw of the lists both nodes served while it ran.
    final class ListWatch: Sendable {
        struct Seen: Sendable {
            let node: Int
            let sequence: UInt64
            let bytes: [UInt8]
        }

        private let seen = Mutex<[Seen]>([])
        var all: [Seen] { seen.withLock { $0 } }
        func add(_ one: Seen) { seen.withLock { $0.append(one) } }
    }

    @Test("2 × 500 creates and 200 revokes through both nodes: nothing lost or duplicated, every revoked token refused by gates fed from either node")
    func twoNodesUnderLoad() async throws {
        let cluster = try await Cluster()
        let keys = try cluster.homes[0].home.keyStore.keySet()
        let receiver = HookReceiver()
        try await WebhookTests.withReceiver(receiver) { hook in
            _ = try await withPatServe(cluster.arguments(0, hook: hook), environment: cluster.environment, timeLimit: .seconds(600)) { portA, _ in
                _ = try await withPatServe(cluster.arguments(1, hook: hook), environment: cluster.environment, timeLimit: .seconds(600)) { portB, _ in
                    let nodes = ["http://127.0.0.1:\(portA)", "http://127.0.0.1:\(portB)"]
                    let watch = ListWatch()
                    let watcher = Task {
                        while !Task.isCancelled {
                            for (index, base) in nodes.enumerated() {
                                if let served = try? await Self.served(base, keys: keys) {
                                    watch.add(.init(node: index, sequence: served.list.sequence, bytes: served.bytes))
                                }
                            }
                            try? await Task.sleep(for: .milliseconds(50))
                        }
                    }
                    defer { watcher.cancel() }

                    // 2 × 500 creates, 500 through each node, 32 at a time.
                    let created = try await Self.concurrently(Array(0..<1000), width: 32) { index -> (id: String, token: String) in
                        let response = try await request(nodes[index % 2] + Self.path, method: .POST, token: cluster.adminToken,
                                                         body: #"{"name": "n\#(index)", "owner": "user\#(index % 25)", "scopes": ["clients:view"], "duration": "1d"}"#)
                        guard response.status == 201 else { throw TestFailure("create \(index): \(response.status) \(response.text.prefix(300))") }
                        return (try response.string("id"), try response.string("accessToken"))
                    }
                    #expect(Set(created.map(\.id)).count == 1000, "1000 distinct PATs")

                    // 200 revokes, each through the node that did not create the PAT.
                    let doomed = Array(created.enumerated().prefix(200))
                    try await Self.concurrently(doomed, width: 32) { index, pat in
                        let response = try await request(nodes[(index + 1) % 2] + Self.path + "/\(pat.id)/revoke", method: .POST,
                                                         token: cluster.adminToken)
                        guard response.status == 200 else { throw TestFailure("revoke \(pat.id): \(response.status)") }
                    }

                    // Nothing lost, nothing duplicated: the registry holds exactly these PATs.
                    let store = try await cluster.store()
                    let records = try await store.list(now: Timestamp.now())
                    let stored = Set(records.filter { $0.owner != "admin" }.map(\.id))
                    #expect(stored == Set(created.map(\.id)), "the registry holds every created PAT and no other")
                    let revokedIDs = Set(records.filter { $0.isRevoked }.map(\.id))
                    #expect(revokedIDs == Set(doomed.map(\.element.id)))
                    await store.close()

                    // Each node serves a list refusing all 200 (the other node's revokes reach it by NOTIFY).
                    for base in nodes {
                        try await awaitCondition("\(base) serves a list refusing every revoked token") {
                            let validator = Validator(keys: keys, revocations: try await Self.served(base, keys: keys).list)
                            return doomed.allSatisfy { pat in validationCode { try validator.validate(pat.element.token) } == .revoked }
                        }
                    }
                    var sequences: [UInt64] = []
                    for base in nodes { sequences.append(try await Self.served(base, keys: keys).list.sequence) }
                    let wanted = sequences
                    // A gate fed from either node refuses every revoked token and accepts the others.
                    for (index, base) in nodes.enumerated() {
                        try await Self.withGate(fedFrom: base, anchors: try cluster.anchors) { verify, refresher in
                            try await awaitEvent("the gate fed from node \(index) holds list \(wanted[index])") {
                                try await refresher.waitUntilRefreshed(toSequence: wanted[index])
                            }
                            let refused = try await Self.concurrently(doomed, width: 16) { _, pat in
                                try await http(verify, headers: [("Authorization", "Bearer \(pat.token)")]).status
                            }
                            #expect(refused.allSatisfy { $0 == 401 }, "node \(index)'s gate: \(refused.filter { $0 != 401 }.count) revoked tokens not refused")
                            let live = try await Self.concurrently(Array(created.suffix(100)), width: 16) { pat in
                                try await http(verify, headers: [("Authorization", "Bearer \(pat.token)")]).status
                            }
                            #expect(live.allSatisfy { $0 == 204 }, "node \(index)'s gate accepts the live tokens")
                        }
                    }

                    // Sequences: each node's only rise; one sequence is one list, whichever node serves it;
                    // and a later list never accepts a token an earlier one refused.
                    watcher.cancel()
                    let seen = watch.all
                    for node in 0..<2 {
                        let mine = seen.filter { $0.node == node }.map(\.sequence)
                        #expect(mine == mine.sorted(), "node \(node) served sequences out of order")
                    }
                    var bytesBySequence: [UInt64: [UInt8]] = [:]
                    for one in seen {
                        if let earlier = bytesBySequence[one.sequence] {
                            #expect(earlier == one.bytes, "sequence \(one.sequence) published twice with different content")
                        }
                        bytesBySequence[one.sequence] = one.bytes
                    }
                    var refusedBefore = 0
                    for sequence in bytesBySequence.keys.sorted() {
                        let validator = Validator(keys: keys, revocations: try RevocationList(verifying: bytesBySequence[sequence]!, keys: keys))
                        let refused = doomed.filter { pat in validationCode { try validator.validate(pat.element.token) } == .revoked }.count
                        #expect(refused >= refusedBefore, "list \(sequence) refuses fewer revoked tokens than the list before it")
                        refusedBefore = refused
                    }
                    #expect(bytesBySequence.count >= 2)

                    // Webhooks: every change delivered once, by one node or the other.
                    try await receiver.waitForHooks(1200 + 1)
                    let deliveries = receiver.hooks.compactMap(\.delivery)
                    #expect(Set(deliveries).count == deliveries.count, "no webhook delivered twice")
                    #expect(deliveries.count == 1201, "the admin's create, 1000 creates, 200 revokes")
                }
            }
        }
    }

    @Test("SIGKILL of a node mid-traffic loses no committed change and no webhook; the other node publishes and delivers them")
    func aNodeKilledMidTraffic() async throws {
        let cluster = try await Cluster()
        let keys = try cluster.homes[0].home.keyStore.keySet()
        let receiver = HookReceiver()
        let acknowledged = AcknowledgedChanges()
        try await WebhookTests.withReceiver(receiver) { hook in
            _ = try await withPatServe(cluster.arguments(1, hook: hook, lease: "2s"), environment: cluster.environment,
                                       timeLimit: .seconds(600)) { portB, _ in
                let nodeB = "http://127.0.0.1:\(portB)"
                _ = try await withPatServe(cluster.arguments(0, hook: hook, lease: "2s"), environment: cluster.environment,
                                           stopWith: nil, timeLimit: .seconds(600)) { portA, childA in
                    let nodes = ["http://127.0.0.1:\(portA)", nodeB]
                    // Traffic through both nodes; node A is killed once it acknowledged 120 changes.
                    _ = try await Self.concurrently(Array(0..<400), width: 24) { index -> Bool in
                        if acknowledged.count(node: 0) >= 120 { acknowledged.killOnce { try? childA.signal(SIGKILL) } }
                        // Once node A is dead, its share goes to node B (as a load balancer would send it).
                        let node = index % 2 == 0 && !acknowledged.killed ? 0 : 1
                        let earlier = index >= 40 ? acknowledged.created(at: index - 40) : nil
                        do {
                            if let earlier, index % 5 == 0 {
                                let response = try await request(nodes[node] + Self.path + "/\(earlier.id)/revoke", method: .POST,
                                                                 token: cluster.adminToken)
                                if response.status == 200 { acknowledged.revoked(earlier.id, token: earlier.token, node: node) }
                            } else {
                                let response = try await request(nodes[node] + Self.path, method: .POST, token: cluster.adminToken,
                                                                 body: #"{"name": "k\#(index)", "owner": "user\#(index % 9)", "scopes": ["clients:view"], "duration": "1d"}"#)
                                if response.status == 201 {
                                    acknowledged.created(index: index, id: try response.string("id"), token: try response.string("accessToken"),
                                                         node: node)
                                }
                            }
                        } catch {
                            // A request to the killed node: no answer, outcome unknown.
                        }
                        return true
                    }
                    acknowledged.killOnce { try? childA.signal(SIGKILL) }
                }
                #expect(acknowledged.count(node: 0) >= 100, "node A acknowledged changes before it died")

                // No committed change lost: everything acknowledged is in the registry.
                let store = try await cluster.store()
                let records = try await store.list(now: Timestamp.now())
                let byID = Dictionary(uniqueKeysWithValues: records.map { ($0.id, $0) })
                for id in acknowledged.createdIDs { #expect(byID[id] != nil, "acknowledged create \(id) is missing") }
                for id in acknowledged.revokedIDs { #expect(byID[id]?.isRevoked == true, "acknowledged revoke \(id) is missing") }

                // Node B publishes every revoke, node A's included.
                try await awaitCondition("node B serves a list refusing every revoked token") {
                    let validator = Validator(keys: keys, revocations: try await Self.served(nodeB, keys: keys).list)
                    return acknowledged.revokedTokens.allSatisfy { token in validationCode { try validator.validate(token) } == .revoked }
                }

                // No webhook lost: the outbox drains (node B takes over node A's claims once their lease
                // ran out), and every change in the registry was delivered, under one delivery id.
                try await awaitCondition("node B drains the outbox, node A's claimed events included", within: .seconds(180)) {
                    try await store.read { tx in try await tx.events(after: 0, limit: 1) }.isEmpty
                }
                await store.close()
                var deliveriesByChange: [String: Set<String>] = [:]
                for hook in receiver.hooks {
                    guard let object = try? hook.object(), let data = object["data"] as? [String: Any], let id = data["id"] as? String,
                          let event = hook.event, let delivery = hook.delivery else { continue }
                    deliveriesByChange["\(event) \(id)", default: []].insert(delivery)
                }
                for record in records where record.owner != "admin" {
                    #expect(deliveriesByChange["personalAccessToken.created \(record.id)"]?.count == 1,
                            "the create of \(record.id) was delivered once (one delivery id)")
                    if record.isRevoked {
                        #expect(deliveriesByChange["personalAccessToken.revoked \(record.id)"]?.count == 1,
                                "the revoke of \(record.id) was delivered once (one delivery id)")
                    }
                }
            }
        }
    }
}

/// The changes the nodes acknowledged (answered 2xx), by node.
final class AcknowledgedChanges: Sendable {
    private struct State {
        var created: [Int: (id: String, token: String)] = [:]
        var revoked: [String: String] = [:]
        var perNode = [0, 0]
        var killed = false
    }

    private let state = Mutex(State())

    func created(index: Int, id: String, token: String, node: Int) {
        state.withLock { s in
            s.created[index] = (id, token)
            s.perNode[node] += 1
        }
    }

    func revoked(_ id: String, token: String, node: Int) {
        state.withLock { s in
            s.revoked[id] = token
            s.perNode[node] += 1
        }
    }

    func created(at index: Int) -> (id: String, token: String)? { state.withLock { $0.created[index] } }
    var killed: Bool { state.withLock { $0.killed } }
    func count(node: Int) -> Int { state.withLock { $0.perNode[node] } }
    var createdIDs: [String] { state.withLock { $0.created.values.map(\.id) } }
    var revokedIDs: [String] { state.withLock { Array($0.revoked.keys) } }
    var revokedTokens: [String] { state.withLock { Array($0.revoked.values) } }

    /// Runs `kill` the first time only.
    func killOnce(_ kill: () -> Void) {
        let first = state.withLock { s -> Bool in
            defer { s.killed = true }
            return !s.killed
        }
        if first { kill() }
    }
}
