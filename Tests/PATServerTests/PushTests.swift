import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import PATEdge
import PATKit
import PATManagement
import PATServer
import PATStore
import PATTestSupport
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Signed deltas, `X-PAT-Sequence`, long polls, edges that use them, and relays.
@Suite("push: deltas, long polls, relays", .timeLimit(.minutes(15)))
struct PushTests {
    static let api = ManagementRoutes.basePath
    static let list = DistributionRoutes.revocationsPath
    static let keys = DistributionRoutes.keysPath

    /// Revokes `id` through the management API (which publishes before answering).
    static func revoke(_ base: String, _ home: ManagementHome, _ id: String) async throws {
        let revoked = try await request("\(base)\(api)/\(id)/revoke", method: .POST, token: home.adminToken)
        #expect(revoked.status == 200, "\(String(decoding: revoked.body, as: UTF8.self))")
    }

    /// A home whose list holds `revoked` entries before the server starts: deltas are sent only
    /// when smaller than the list, which a list of a few entries is not.
    static func home(revoked: Int = 40) async throws -> ManagementHome {
        let home = try await ManagementHome()
        for i in 0..<revoked {
            let issued = try await home.issue(owner: "old", name: "old-\(i)", scopes: ["pats:read"])
            _ = try await home.service.revoke(id: issued.record.id, by: .localOperator)
        }
        return home
    }

    /// The issuer's current list sequence (a request for a newer one than any: 304 with it).
    static func current(_ base: String) async throws -> UInt64 {
        try #require(sequence(try await http(base + list + "?since=9007199254740991")))
    }

    /// A long poll from the list the server serves now, once it is actually waiting. A server may
    /// publish on its own just after starting (changes made before it started): a poll that
    /// answers at once is simply made again from the newer list.
    static func holdLongPoll(_ base: String, _ feed: RevocationFeed) async throws -> (held: UInt64, answer: Task<HTTPResult, any Error>) {
        while true {
            let held = try await current(base)
            let finished = Mutex(false)
            let answer = Task {
                defer { finished.withLock { $0 = true } }
                return try await http(base + list + "?since=\(held)&wait=60")
            }
            try await awaitCondition("a long poll waits (or answers at once)") {
                feed.waiterCount >= 1 || finished.withLock { $0 }
            }
            if feed.waiterCount >= 1 { return (held, answer) }
            _ = try await answer.value
        }
    }

    static func sequence(_ result: HTTPResult) -> UInt64? { result.header("X-PAT-Sequence").flatMap { UInt64($0) } }

    @Test("list, delta and key set carry X-PAT-Sequence; ?since answers deltas that rebuild the list byte for byte")
    func sequencesAndDeltas() async throws {
        let home = try await Self.home()
        let victims = [try await home.issue(owner: "bob", name: "a", scopes: ["pats:read"]),
                       try await home.issue(owner: "bob", name: "b", scopes: ["pats:read"])]
        try await withManagementServer(home) { base, _ in
            let anchors = try #require(try home.home.keyStore.trustAnchors())
            let keysAnswer = try await http(base + Self.keys)
            #expect(keysAnswer.status == 200)
            let keySet = try SignedKeySet(verifying: keysAnswer.body, anchors: anchors)
            #expect(Self.sequence(keysAnswer) == keySet.sequence)

            let first = try await http(base + Self.list)
            #expect(first.status == 200)
            let held = try RevocationList(verifying: first.body, keys: keySet.keys)
            #expect(Self.sequence(first) == held.sequence)


            for victim in victims { try await Self.revoke(base, home, victim.record.id) }
            let whole = try await http(base + Self.list)
            let current = try RevocationList(verifying: whole.body, keys: keySet.keys)
            #expect(current.sequence >= held.sequence + 2)

            let delta = try await http(base + Self.list + "?since=\(held.sequence)")
            #expect(delta.status == 200)
            #expect(delta.header("Content-Type") == DistributionRoutes.deltaContentType)
            #expect(Self.sequence(delta) == current.sequence)
            #expect(delta.body.count < 2 * 1024, "two revocations: \(delta.body.count) bytes")
            var applied = held
            for step in try RevocationDelta.chain(verifying: delta.body, keys: keySet.keys) { applied = try applied.applying(step) }
            #expect(applied.bytes == whole.body, "the deltas rebuild the served list byte for byte")

            // A sequence the issuer has no chain from (0 is never a list's): the whole list.
            let unknown = try await http(base + Self.list + "?since=0")
            #expect(unknown.status == 200 && unknown.body == whole.body)
            #expect(unknown.header("Content-Type") == "application/octet-stream")
            #expect(Self.sequence(unknown) == current.sequence)
            let ahead = try await http(base + Self.list + "?since=\(current.sequence + 100)")
            #expect(ahead.status == 304, "an edge claiming a newer list gets nothing to apply")
            for bad in ["?since=x", "?since=-1", "?wait=5", "?since=1&since=2", "?since=99999999999999999"] {
                #expect(try await http(base + Self.list + bad).status == 400, "\(bad)")
            }
        }
    }

    @Test("a long poll answers the moment a list is published")
    func longPollWakes() async throws {
        let home = try await Self.home()
        let victim = try await home.issue(owner: "bob", name: "a", scopes: ["pats:read"])
        let (configuration, _) = try home.configuration()
        let feed = configuration.revocationFeed
        try await withPATServer(configuration) { port, _ in
            let base = "http://127.0.0.1:\(port)"
            let (held, waiting) = try await Self.holdLongPoll(base, feed)
            try await Self.revoke(base, home, victim.record.id)
            let answer = try await awaitEvent("the long poll answers") { try await waiting.value }
            #expect(answer.status == 200)
            // The revoke's list, or one the server published just before it (changes made
            // before it started are published too): newer than what the edge held, as a delta.
            #expect((Self.sequence(answer) ?? 0) > held)
            #expect(answer.header("Content-Type") == DistributionRoutes.deltaContentType)
            let keys = try SignedKeySet(verifying: try await http(base + Self.keys).body,
                                        anchors: try #require(try home.home.keyStore.trustAnchors())).keys
            #expect(try RevocationList(verifying: try await http(base + Self.list).body, keys: keys).floor(of: victim.record.id) != nil)
            #expect(feed.wakeUpCount >= 1)
        }
    }

    /// A distribution server over `dir`'s files, and a way to publish the next list with its delta.
    final class FileIssuer: Sendable {
        let dir: TempDir
        let issuing: Issuing
        let builder: Mutex<(RevocationList.Builder, [UInt8], UInt64)>

        init() throws {
            dir = try TempDir()
            issuing = try Issuing()
            var builder = RevocationList.Builder()
            // Enough entries that a delta is smaller than the list (else the list is sent).
            for _ in 0..<100 { builder.revoke(id: PATClaims.newID(), below: 2, horizon: Timestamp.now().adding(seconds: 3600)) }
            let list = try builder.sign(with: issuing.key, sequence: 3, issuedAt: Timestamp.now().adding(seconds: -1),
                                        nextUpdate: Timestamp.now().adding(seconds: 3600))
            try dir.publish(keys: try issuing.signedKeys(), list: list)
            try dir.pin(issuing.anchors)
            self.builder = Mutex((builder, list, 3))
        }

        /// Writes the next list and the delta to it, as `pat publish` does (delta first).
        @discardableResult
        func publishNext(revoking id: String = PATClaims.newID()) throws -> (list: [UInt8], delta: [UInt8], sequence: UInt64) {
            try builder.withLock { state in
                let previous = try RevocationList(verifying: state.1, keys: issuing.keySet)
                state.0.revoke(id: id, below: 2, horizon: Timestamp.now().adding(seconds: 3600))
                state.2 += 1
                let list = try state.0.sign(with: issuing.key, sequence: state.2, issuedAt: Timestamp.now().adding(seconds: -1),
                                            nextUpdate: Timestamp.now().adding(seconds: 3600))
                let delta = try RevocationDelta.make(from: previous, to: try RevocationList(verifying: list, keys: issuing.keySet),
                                                     signedWith: issuing.key)
                try SecureFile.writeAtomically(dir.home.publishedDirectory + "/revocations.delta", delta, mode: 0o644)
                try SecureFile.writeAtomically(dir.home.publishedRevocationsPath, list, mode: 0o644)
                state.1 = list
                return (list, delta, state.2)
            }
        }
    }

    @Test("1,000 waiting edges: the server stays responsive, and one publish answers them all")
    func thousandWaiters() async throws {
        ServerLimits.raiseOpenFileLimit()
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        try #require(limit.rlim_cur >= 2_300, "1,000 long polls need 2,000 descriptors in this process; the limit is \(limit.rlim_cur)")
        let issuer = try FileIssuer()
        var configuration = PATServerConfiguration(home: issuer.dir.home)
        configuration.limits.maxConnections = 1_100
        // On a loaded 2-core machine running the whole suite, opening 1,000 connections can take
        // minutes: neither the request-head timeout nor the first polls' wait may run out meanwhile
        // (both are tested elsewhere).
        configuration.limits.headerTimeout = .seconds(600)
        configuration.revocationFeed = RevocationFeed(maxWait: .seconds(900))
        let feed = configuration.revocationFeed
        var clientConfiguration = HTTPClient.Configuration()
        clientConfiguration.connectionPool = .init(idleTimeout: .seconds(900), concurrentHTTP1ConnectionsPerHostSoftLimit: 1_100)
        let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: clientConfiguration)
        defer { _ = client.shutdown() }
        try await withPATServer(configuration) { port, _ in
            let url = "http://127.0.0.1:\(port)\(Self.list)?since=3&wait=900"
            let failure = FirstFailure()
            let answers = Task {
                try await withThrowingTaskGroup(of: (Int, UInt64?, [UInt8]).self) { group in
                    // In batches of 100, each once the previous one waits: no burst of 1,000 connects.
                    for batch in 0..<10 {
                        for _ in 0..<100 {
                            group.addTask {
                                do {
                                    let response = try await client.execute(HTTPClientRequest(url: url), timeout: .seconds(960))
                                    let body = try await response.body.collect(upTo: 1 << 20)
                                    return (Int(response.status.code), response.headers.first(name: "X-PAT-Sequence").flatMap { UInt64($0) },
                                            Array(body.readableBytesView))
                                } catch {
                                    failure.record("\(error)")
                                    throw error
                                }
                            }
                        }
                        while feed.waiterCount < (batch + 1) * 100, failure.value == nil {
                            try await Task.sleep(for: .milliseconds(20))
                        }
                    }
                    var all: [(Int, UInt64?, [UInt8])] = []
                    for try await answer in group { all.append(answer) }
                    return all
                }
            }
            try await awaitCondition("1,000 long polls wait", within: .seconds(420)) {
                if let failure = failure.value { throw TestFailure("a long poll failed: \(failure)") }
                return feed.waiterCount >= 1_000
            }
            // Responsive meanwhile: other requests are answered at once (with the shared client's own connections).
            for _ in 0..<5 {
                #expect(try await http("http://127.0.0.1:\(port)\(Self.keys)").status == 200)
                #expect(try await http("http://127.0.0.1:\(port)\(Self.list)?since=3").status == 304)
            }
            #expect(feed.waiterCount == 1_000)
            let next = try issuer.publishNext()
            let all = try await awaitEvent("every long poll answers", within: .seconds(300)) { try await answers.value }
            #expect(all.count == 1_000)
            #expect(all.allSatisfy { $0.0 == 200 && $0.1 == next.sequence && $0.2 == next.delta })
            #expect(feed.waiterCount == 0)
        }
    }

    @Test("deltas are kept for a bounded window: an edge further behind gets the whole list; wait is capped")
    func boundedWindowAndCappedWait() async throws {
        let issuer = try FileIssuer()
        var configuration = PATServerConfiguration(home: issuer.dir.home)
        configuration.revocationFeed = RevocationFeed(maxWait: .seconds(1), maxSteps: 2)
        try await withPATServer(configuration) { port, _ in
            let url = "http://127.0.0.1:\(port)\(Self.list)"
            #expect(Self.sequence(try await http(url)) == 3)
            var published: [(list: [UInt8], delta: [UInt8], sequence: UInt64)] = []
            for _ in 0..<3 {
                published.append(try issuer.publishNext())
                // Each version is picked up when asked for (one stat a request).
                #expect(Self.sequence(try await http(url)) == published.last?.sequence)
            }
            let tooOld = try await http(url + "?since=3")
            #expect(tooOld.status == 200 && tooOld.body == published[2].list, "3 → 6 needs three deltas; two are kept")
            let chain = try await http(url + "?since=4")
            #expect(chain.header("Content-Type") == DistributionRoutes.deltaContentType)
            #expect(chain.body == published[1].delta + published[2].delta)
            // A wait of an hour is cut to the feed's cap (1 s here): 304, not a held connection.
            let capped = try await http(url + "?since=6&wait=3600")
            #expect(capped.status == 304)
            #expect(Self.sequence(capped) == 6)
        }
    }

    @Test("a long poll with nothing new answers 304 with the sequence after wait")
    func longPollTimesOut() async throws {
        let issuer = try FileIssuer()
        try await withPATServer(PATServerConfiguration(home: issuer.dir.home)) { port, _ in
            let quiet = try await http("http://127.0.0.1:\(port)\(Self.list)?since=3&wait=1")
            #expect(quiet.status == 304)
            #expect(Self.sequence(quiet) == 3)
            #expect(quiet.header("Cache-Control") == "no-store")
        }
    }

    @Test("waiting long polls count against the connection cap")
    func waitersCountAgainstTheCap() async throws {
        let issuer = try FileIssuer()
        var configuration = PATServerConfiguration(home: issuer.dir.home)
        configuration.limits.maxConnections = 3
        let feed = configuration.revocationFeed
        var clientConfiguration = HTTPClient.Configuration()
        clientConfiguration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 16)
        let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: clientConfiguration)
        defer { _ = client.shutdown() }
        try await withPATServer(configuration) { port, _ in
            let url = "http://127.0.0.1:\(port)\(Self.list)?since=3&wait=60"
            let waiting = (0..<3).map { _ in
                Task { try await client.execute(HTTPClientRequest(url: url), timeout: .seconds(120)).status.code }
            }
            try await awaitEvent("3 long polls wait") { try await feed.waitUntilWaiting(3) }
            // A fourth connection is answered 503 and closed without its request being read.
            let fourth = try await IdleConnection.open(port)
            let answered = try await awaitEvent("the fourth connection is answered and closed") { try await fourth.receiveUntilClosed() }
            #expect(answered.hasPrefix("HTTP/1.1 503"), "\(answered.prefix(200))")
            try issuer.publishNext()
            for task in waiting { #expect(try await awaitEvent("a waiter answers") { try await task.value } == 200) }
        }
    }

    // MARK: edges

    @Test("a refresher holds a long poll and applies deltas: a revocation arrives without waiting for a poll interval")
    func refresherLongPolls() async throws {
        let home = try await Self.home()
        let victim = try await home.issue(owner: "bob", name: "a", scopes: ["pats:read"])
        let token = try #require(victim.token)
        try await withManagementServer(home) { base, _ in
            let anchors = try #require(try home.home.keyStore.trustAnchors())
            let validator = Validator(keys: KeySet())
            // An hour between polls: only the long poll can bring the revocation within the test's limit.
            let refresher = PATRefresher(validator: validator,
                                         source: HTTPDocumentSource(keysURL: base + Self.keys, revocationsURL: base + Self.list),
                                         trustAnchors: anchors, interval: .seconds(3600), longPollWait: .seconds(30),
                                         logger: quietLogger())
            let held = try #require(Self.sequence(try await http(base + Self.list)))
            let running = Task { try await refresher.run() }
            defer { running.cancel() }
            try await awaitEvent("the first list") { try await refresher.waitUntilRefreshed(toSequence: held) }
            #expect(throws: Never.self) { try validator.validate(token) }
            try await awaitCondition("the refresher waits in a long poll") { refresher.status.transport == "long-poll" }
            try await Self.revoke(base, home, victim.record.id)
            let revoked = try await Self.current(base) // the API publishes before it answers
            try await awaitEvent("the revocation arrives by long poll") { try await refresher.waitUntilRefreshed(toSequence: revoked) }
            #expect(validationCode { try validator.validate(token) } == .revoked)
            let status = refresher.status
            #expect(status.deltasApplied >= 1)
            #expect(status.fullListsReceived == 1)
            #expect(validator.revocations?.bytes == (try await http(base + Self.list)).body)
        }
    }

    /// A source that answers `since` with what the test set: a delta chain (possibly bad), a whole
    /// list, and `X-PAT-Sequence` only when `supportsDeltas`.
    final class ScriptedSource: PATDocumentSource {
        struct State {
            var keys: [UInt8] = []
            var list: [UInt8] = []
            var delta: [UInt8]? = nil
            var sequence: UInt64 = 0
            var supportsDeltas = true
            var asked: [(since: UInt64?, wait: Duration?)] = []
        }
        let state = Mutex(State())
        var location: String { "scripted" }

        func fetch(_ document: PATDocument, ifNoneMatch etag: String?, maxBytes: Int) async throws -> PATFetchResult {
            let s = state.withLock { $0 }
            let bytes = document == .keys ? s.keys : s.list
            // The tag names the content: length and last byte alone collided for two lists of the
            // same length once in 256 (signatures end in any byte), and the edge never saw list 2.
            var hasher = Hasher()
            hasher.combine(bytes)
            let tag = "\"\(bytes.count)-\(UInt(bitPattern: hasher.finalize()))\""
            return tag == etag ? .notModified : .modified(bytes: bytes, etag: tag)
        }

        func fetchRevocations(since: UInt64?, wait: Duration?, ifNoneMatch etag: String?, maxBytes: Int) async throws -> PATRevocationsFetch {
            let s = state.withLock { $0.asked.append((since, wait)); return $0 }
            guard s.supportsDeltas else { return PATRevocationsFetch(result: try await fetch(.revocations, ifNoneMatch: etag, maxBytes: maxBytes)) }
            if let since, since >= s.sequence { return PATRevocationsFetch(result: .notModified, sequence: s.sequence) }
            if since != nil, let delta = s.delta { return PATRevocationsFetch(result: .modified(bytes: delta, etag: nil), sequence: s.sequence) }
            return PATRevocationsFetch(result: .modified(bytes: s.list, etag: nil), sequence: s.sequence)
        }
    }

    @Test("a delta that does not apply (another base, a foreign signer) is refused and the whole list fetched; an issuer without deltas is polled")
    func refresherFallsBack() async throws {
        let issuing = try Issuing()
        let source = ScriptedSource()
        var builder = RevocationList.Builder()
        let list1 = try builder.sign(with: issuing.key, sequence: 1, issuedAt: Timestamp.now().adding(seconds: -1),
                                     nextUpdate: Timestamp.now().adding(seconds: 3600))
        let victim = PATClaims.newID()
        builder.revoke(id: victim, below: 2, horizon: Timestamp.now().adding(seconds: 3600))
        let list2 = try builder.sign(with: issuing.key, sequence: 2, issuedAt: Timestamp.now().adding(seconds: -1),
                                     nextUpdate: Timestamp.now().adding(seconds: 3600))
        builder.revoke(id: PATClaims.newID(), below: 2, horizon: Timestamp.now().adding(seconds: 3600))
        let list3 = try builder.sign(with: issuing.key, sequence: 3, issuedAt: Timestamp.now().adding(seconds: -1),
                                     nextUpdate: Timestamp.now().adding(seconds: 3600))
        let parsed = try [list1, list2, list3].map { try RevocationList(verifying: $0, keys: issuing.keySet) }
        source.state.withLock { $0.keys = try! issuing.signedKeys(); $0.list = list1; $0.sequence = 1 }

        let validator = Validator(keys: KeySet())
        let refresher = PATRefresher(validator: validator, source: source, trustAnchors: issuing.anchors, interval: .seconds(3600),
                                     longPollWait: .seconds(30), logger: quietLogger())
        #expect(await refresher.refresh().sequence == 1)

        // A delta 2 → 3 offered to an edge holding 1: refused, and the whole list 3 is fetched instead.
        let wrongBase = try RevocationDelta.make(from: parsed[1], to: parsed[2], signedWith: issuing.key)
        source.state.withLock { $0.list = list3; $0.sequence = 3; $0.delta = wrongBase }
        var status = await refresher.refresh()
        #expect(status.sequence == 3)
        #expect(status.fullListsReceived == 2 && status.deltasApplied == 0)
        #expect(validator.revocations?.bytes == list3)

        // A delta signed by a key the anchors never vouched for: refused; the whole list is verified instead.
        let stranger = try SecretKey.generate()
        var foreignBuilder = RevocationList.Builder()
        foreignBuilder.revoke(id: PATClaims.newID(), below: 2, horizon: Timestamp.now().adding(seconds: 3600))
        let foreign3 = try RevocationList(verifying: try foreignBuilder.sign(with: stranger, sequence: 3, issuedAt: Timestamp.now().adding(seconds: -1),
                                                                            nextUpdate: Timestamp.now().adding(seconds: 3600)),
                                          keys: KeySet(keys: [stranger.publicKey]))
        foreignBuilder.revoke(id: victim, below: 2, horizon: Timestamp.now().adding(seconds: 3600))
        let foreign4 = try RevocationList(verifying: try foreignBuilder.sign(with: stranger, sequence: 4, issuedAt: Timestamp.now().adding(seconds: -1),
                                                                            nextUpdate: Timestamp.now().adding(seconds: 3600)),
                                          keys: KeySet(keys: [stranger.publicKey]))
        source.state.withLock { $0.sequence = 4; $0.delta = try! RevocationDelta.make(from: foreign3, to: foreign4, signedWith: stranger) }
        status = await refresher.refresh()
        #expect(status.sequence == 3, "neither the foreign delta nor the list (still 3) moves the edge")
        #expect(validator.revocations?.bytes == list3)

        // An issuer without deltas or long polls: plain polling of the whole list.
        source.state.withLock { $0.supportsDeltas = false; $0.delta = nil; $0.asked = [] }
        status = await refresher.refresh()
        #expect(status.transport == "polling")
    }

    @Test("run() polls an issuer that does not hold long polls")
    func pollsWithoutWait() async throws {
        let issuing = try Issuing()
        let source = ScriptedSource()
        source.state.withLock { $0.keys = try! issuing.signedKeys(); $0.list = try! issuing.list(sequence: 1); $0.supportsDeltas = false }
        let refresher = PATRefresher(validator: Validator(keys: KeySet()), source: source, trustAnchors: issuing.anchors,
                                     interval: .milliseconds(100), longPollWait: .seconds(30), logger: quietLogger())
        let running = Task { try await refresher.run() }
        defer { running.cancel() }
        try await awaitEvent("list 1") { try await refresher.waitUntilRefreshed(toSequence: 1) }
        source.state.withLock { $0.list = try! issuing.list(sequence: 2) }
        try await awaitEvent("list 2 by polling") { try await refresher.waitUntilRefreshed(toSequence: 2) }
        #expect(refresher.status.transport == "polling")
        #expect(source.state.withLock { $0.asked.allSatisfy { $0.wait == nil } }, "never a long poll to an issuer that does not say X-PAT-Sequence")
    }

    // MARK: relays

    @Test("a relay (pat serve --verify-only --relay) serves keys, list, deltas and long polls from what it verified")
    func relay() async throws {
        let home = try await Self.home()
        let victim = try await home.issue(owner: "bob", name: "a", scopes: ["pats:read"])
        try await withManagementServer(home) { issuerBase, _ in
            let anchors = try #require(try home.home.keyStore.trustAnchors())
            let relayDir = try TempDir()
            var gate = GateConfiguration(source: .urls(keys: issuerBase + Self.keys, revocations: issuerBase + Self.list),
                                         trustAnchors: anchors, refreshInterval: .seconds(3600))
            gate.longPollWait = .seconds(30)
            gate.relay = true
            let configuration = PATServerConfiguration(home: relayDir.home, mode: .gate(gate))
            let relayFeed = configuration.revocationFeed
            try await withPATServer(configuration) { port, refresher in
                let relayBase = "http://127.0.0.1:\(port)"
                let issuerList = try await http(issuerBase + Self.list)
                let held = try #require(Self.sequence(issuerList))
                try await awaitEvent("the relay holds the issuer's list") { try await refresher?.waitUntilRefreshed(toSequence: held) }
                let keys = try await http(relayBase + Self.keys)
                #expect(keys.status == 200)
                #expect((try? SignedKeySet(verifying: keys.body, anchors: anchors)) != nil, "a key set the issuer signed")
                #expect(Self.sequence(keys) != nil)
                let list = try await http(relayBase + Self.list)
                #expect(list.status == 200 && list.body == issuerList.body)
                #expect(Self.sequence(list) == held)

                // An edge long-polling the relay gets the issuer's next list as a delta.
                let (relayHeld, waiting) = try await Self.holdLongPoll(relayBase, relayFeed)
                try await Self.revoke(issuerBase, home, victim.record.id)
                let answer = try await awaitEvent("the relay answers") { try await waiting.value }
                #expect(answer.status == 200)
                #expect((Self.sequence(answer) ?? 0) > relayHeld)
                #expect(answer.header("Content-Type") == DistributionRoutes.deltaContentType)
                let revoked = try await Self.current(issuerBase)
                try await awaitEvent("the relay holds the revocation") { try await refresher?.waitUntilRefreshed(toSequence: revoked) }
                let keySet = try SignedKeySet(verifying: keys.body, anchors: anchors)
                let relayed = try RevocationList(verifying: try await http(relayBase + Self.list).body, keys: keySet.keys)
                #expect(relayed.sequence == revoked)
                // The deltas the relay kept rebuild its list from the first one it served.
                let chain = try await http(relayBase + Self.list + "?since=\(held)")
                #expect(chain.header("Content-Type") == DistributionRoutes.deltaContentType)
                var applied = try RevocationList(verifying: list.body, keys: keySet.keys)
                for delta in try RevocationDelta.chain(verifying: chain.body, keys: keySet.keys) { applied = try applied.applying(delta) }
                #expect(applied.bytes == (try await http(issuerBase + Self.list)).body)
                // After that round the relay serves the issuer's key set as signed (it may re-sign on each publish).
                #expect((try await http(relayBase + Self.keys)).body == (try await http(issuerBase + Self.keys)).body)
                #expect((try await http(relayBase + Self.list)).body == applied.bytes)
            }
        }
    }
}

/// The first error of many concurrent requests.
final class FirstFailure: Sendable {
    private let state = Mutex<String?>(nil)
    var value: String? { state.withLock { $0 } }
    func record(_ error: String) { state.withLock { $0 = $0 ?? error } }
}
