import Foundation
import Hummingbird
import HummingbirdTesting
import PATEdge
import PATHummingbird
import PATKit
import PATManagement
import PATRegistry
@testable import PATServer
import PATStore
import PATTestSupport
import Testing

/// The server's pieces on their own, without a whole server around them: the republisher,
/// conditional requests, the rate-limit middleware and the file document source.
@Suite("server pieces", .timeLimit(.minutes(5)))
struct PiecesTests {
    // MARK: Republisher

    static func republisher(_ home: ManagementHome, interval: Duration? = nil, cache: PublisherCache? = nil) throws -> (Republisher, Validator) {
        var publisher = Publisher(store: home.store, keyStore: home.home.keyStore, outputDirectory: home.home.publishedDirectory)
        publisher.cache = cache
        let validator = Validator(keys: try home.home.keyStore.keySet())
        return (Republisher(publisher: publisher, validator: validator, interval: interval, retryInterval: .seconds(1),
                            logger: quietLogger()), validator)
    }

    @Test func republisherPublishesInstallsAndSignalsEachList() async throws {
        let home = try await ManagementHome()
        let victim = try await home.issue(owner: "ivy", name: "victim", scopes: ["clients:view"])
        let (republisher, validator) = try Self.republisher(home)
        #expect(republisher.interval == .seconds(1800), "half of the publisher's one-hour next-update")
        #expect(republisher.lastResult == nil)

        let first = try await republisher.publishNow()
        #expect(republisher.lastResult?.sequence == first.sequence)
        #expect(validator.revocations?.sequence == first.sequence, "the list reached the validator")
        #expect(try publishedValidator(home.home).revocations?.sequence == first.sequence, "and the files")
        try await awaitEvent("published \(first.sequence)") { try await republisher.waitUntilPublished(sequence: first.sequence) }

        _ = try await home.service.revoke(id: victim.record.id, by: .localOperator)
        let waiter = Task { try await republisher.waitUntilPublished(sequence: first.sequence + 1) }
        let second = try #require(await republisher.publish(reason: "test"))
        #expect(second.sequence == first.sequence + 1)
        try await awaitEvent("the waiter learns of list \(second.sequence)") { try await waiter.value }
        #expect(validationCode { try validator.validate(victim.bearer) } == .revoked)

        // A new signing key reaches the validator with the list it signed.
        _ = try home.home.keyStore.generate()
        let rotated = try await republisher.publishNow()
        #expect(validator.keys == (try home.home.keyStore.keySet()))
        #expect(validator.revocations?.signer == rotated.signer)
    }

    @Test func republisherFailuresAreReportedAndRecovered() async throws {
        let home = try await ManagementHome()
        let (republisher, validator) = try Self.republisher(home)
        home.store.failWrites.store(true, ordering: .relaxed)
        #expect(await republisher.publish(reason: "test") == nil, "a failure is logged and reported as nil, never thrown")
        #expect(republisher.lastError?.contains(FlakyStore.internalDetail) == true)
        #expect(validator.revocations == nil)
        await #expect(throws: RegistryError.self) { try await republisher.publishNow() }

        home.store.failWrites.store(false, ordering: .relaxed)
        let result = try #require(await republisher.publish(reason: "test"))
        #expect(republisher.lastError == nil)
        #expect(validator.revocations?.sequence == result.sequence)
    }

    @Test func republisherTimerRunsUntilCancelled() async throws {
        let home = try await ManagementHome()
        let (republisher, _) = try Self.republisher(home, interval: .milliseconds(100))
        let start = try await republisher.publishNow().sequence
        let running = Task { try await republisher.run() }
        try await awaitEvent("two timer rounds") { try await republisher.waitUntilPublished(sequence: start + 2) }
        running.cancel()
        try await withTimeLimit(.seconds(60), "the timer to stop once cancelled") { try await running.value }
    }

    @Test("changes publish updates of the cached list; the timer's regular round rebuilds it whole")
    func republisherTimerRebuildsWhole() async throws {
        let home = try await ManagementHome()
        let victim = try await home.issue(owner: "ivy", name: "victim", scopes: ["clients:view"])
        let cache = PublisherCache()
        let (republisher, validator) = try Self.republisher(home, interval: .seconds(3600), cache: cache)
        try await republisher.publishNow()
        _ = try await home.service.revoke(id: victim.record.id, by: .localOperator)
        try await republisher.publishNow()
        #expect(cache.publishes.whole == 1)
        #expect(cache.publishes.updates == 1)
        #expect(validationCode { try validator.validate(victim.bearer) } == .revoked)

        let (timed, _) = try Self.republisher(home, interval: .milliseconds(100), cache: cache)
        let start = try await timed.publishNow().sequence
        #expect(cache.publishes.updates == 2)
        let running = Task { try await timed.run() }
        // Three lists: at least two timer rounds (the store may also announce the revoke as a change of its own).
        try await awaitEvent("timer rounds") { try await timed.waitUntilPublished(sequence: start + 3) }
        running.cancel()
        try await withTimeLimit(.seconds(60), "the timer to stop once cancelled") { try await running.value }
        #expect(cache.publishes.whole >= 2, "the timer's round rebuilt the list whole")
    }

    // MARK: HTTPConditional (RFC 9110)

    /// The gate parses X-PAT-Require-Scope over bytes (issue 15): the same requirements as the grammar says.
    @Test func requiredScopesParseEveryForm() throws {
        typealias R = GateRoutes.Requirement
        #expect(try GateRoutes.requiredScopes([]) == [])
        #expect(try GateRoutes.requiredScopes(["clients:view"]) == [R(entity: "clients", operation: "view", id: nil)])
        #expect(try GateRoutes.requiredScopes([" channels:publish:ch-1,\tclients:view:* ", "a:b:x:y"]) == [
            R(entity: "channels", operation: "publish", id: "ch-1"), R(entity: "clients", operation: "view", id: nil),
            R(entity: "a", operation: "b", id: "x:y"),  // the id is any text after the second colon
        ])
        #expect(try GateRoutes.requiredScopes(["channels:publish:é/1"]) == [R(entity: "channels", operation: "publish", id: "é/1")])
        for bad in [["Channels:view"], ["clients"], [":view"], ["clients:"], ["clients:vïew"], [" , "], [""]] {
            #expect(throws: PATHTTPError.self, "\(bad)") { try GateRoutes.requiredScopes(bad) }
        }
        #expect(throws: PATHTTPError.self) { try GateRoutes.requiredScopes([Array(repeating: "a:b", count: 33).joined(separator: " ")]) }
    }

    /// Percent-encoding leaves safe text as it is and encodes the rest byte by byte.
    @Test func percentEncodingKeepsSafeTextAndEncodesTheRest() {
        #expect(PercentEncoding.encode("alice@example.org") == "alice@example.org")
        #expect(PercentEncoding.encode("eve,admin") == "eve%2Cadmin")
        #expect(PercentEncoding.encode("é 100%") == "%C3%A9%20100%25")
    }

    @Test func ifNoneMatchComparesWeaklyAndAcceptsListsAndStar() {
        let tag = "\"abc\""
        #expect(HTTPConditional.matches([tag], etag: tag))
        #expect(HTTPConditional.matches(["W/\"abc\""], etag: tag), "weak comparison")
        #expect(HTTPConditional.matches(["\"x\", \"abc\""], etag: tag), "a list")
        #expect(HTTPConditional.matches(["\"x\"", " \"abc\" "], etag: tag), "several fields, spaces")
        #expect(HTTPConditional.matches(["*"], etag: tag))
        #expect(!HTTPConditional.matches(["\"abcd\""], etag: tag))
        #expect(!HTTPConditional.matches(["abc"], etag: tag), "an unquoted tag is another tag")
        #expect(!HTTPConditional.matches([], etag: tag))
        #expect(!HTTPConditional.matches([""], etag: tag))
    }

    @Test func acceptEncodingHonoursQualities() {
        #expect(HTTPConditional.acceptsGzip(["gzip"]))
        #expect(HTTPConditional.acceptsGzip(["GZIP"]))
        #expect(HTTPConditional.acceptsGzip(["x-gzip"]))
        #expect(HTTPConditional.acceptsGzip(["br;q=1.0, gzip;q=0.8"]))
        #expect(HTTPConditional.acceptsGzip(["*"]))
        #expect(!HTTPConditional.acceptsGzip(["gzip;q=0"]))
        #expect(!HTTPConditional.acceptsGzip(["gzip; q=0"]), "spaces around parameters")
        #expect(!HTTPConditional.acceptsGzip(["*;q=0"]))
        #expect(!HTTPConditional.acceptsGzip(["*, gzip;q=0"]), "an explicit gzip entry wins over *")
        #expect(HTTPConditional.acceptsGzip(["*;q=0, gzip"]))
        #expect(!HTTPConditional.acceptsGzip(["br, deflate"]))
        #expect(!HTTPConditional.acceptsGzip([]))
    }

    // MARK: RateLimitMiddleware

    @Test func rateLimitMiddlewareLimitsEachCallerAndPassesAnonymousRequests() async throws {
        let issuing = try Issuing()
        let validator = Validator(keys: issuing.keySet)
        try validator.installRevocations(try issuing.list(sequence: 1))
        let time = TestClock()
        let limiter = RateLimiter(policy: RateLimiter.Policy(capacity: 2, refillPerSecond: 0.5), now: { time.now })
        let router = Router(context: BasicPATRequestContext.self)
        router.add(middleware: PATErrorMiddleware<BasicPATRequestContext>())
        router.add(middleware: PATAuthenticator<BasicPATRequestContext>(validator: validator, allowAnonymous: true))
        router.add(middleware: RateLimitMiddleware<BasicPATRequestContext>(limiter: limiter))
        router.get("/r") { _, context in
            guard let pat = context.pat else { return "anonymous" }
            return "hello \(pat.subject)"
        }
        let alice = try issuing.token(subject: "alice"), bob = try issuing.token(subject: "bob")
        let app = Application(router: router)
        try await app.test(.router) { client in
            for _ in 0..<2 {
                try await client.execute(uri: "/r", method: .get, headers: [.authorization: "Bearer \(alice)"]) { response in
                    #expect(response.status == .ok)
                    #expect(String(buffer: response.body) == "hello alice")
                }
            }
            try await client.execute(uri: "/r", method: .get, headers: [.authorization: "Bearer \(alice)"]) { response in
                #expect(response.status == .tooManyRequests)
                #expect(response.headers[.retryAfter] == "2", "one request regained in 2 s")
                #expect(String(buffer: response.body).contains("\"rate_limited\""))
            }
            try await client.execute(uri: "/r", method: .get, headers: [.authorization: "Bearer \(bob)"]) { response in
                #expect(response.status == .ok, "buckets are per caller")
            }
            for _ in 0..<5 {
                try await client.execute(uri: "/r", method: .get) { response in
                    #expect(response.status == .ok, "no PAT, no bucket: the route decides")
                    #expect(String(buffer: response.body) == "anonymous")
                }
            }
            time.advance(2)
            try await client.execute(uri: "/r", method: .get, headers: [.authorization: "Bearer \(alice)"]) { response in
                #expect(response.status == .ok, "refilled")
            }
        }
        #expect(limiter.keyCount == 2)
    }

    // MARK: FileDocumentSource

    @Test func fileDocumentSourceTagsFilesAndRereadsOnlyChangedOnes() async throws {
        let dir = try TempDir()
        let issuing = try Issuing()
        try dir.publish(keys: try issuing.signedKeys(), list: try issuing.list(sequence: 1))
        let source = FileDocumentSource(keysPath: dir.home.publishedKeysPath, revocationsPath: dir.home.publishedRevocationsPath)
        #expect(source.location.contains(dir.home.publishedKeysPath))

        guard case .modified(let keys, let keysTag?) = try await source.fetch(.keys, ifNoneMatch: nil, maxBytes: 1 << 20) else {
            Issue.record("the key set should be read, with a tag")
            return
        }
        #expect(keys == (try issuing.signedKeys()))
        #expect(try await source.fetch(.keys, ifNoneMatch: keysTag, maxBytes: 1 << 20) == .notModified)

        guard case .modified(_, let listTag?) = try await source.fetch(.revocations, ifNoneMatch: nil, maxBytes: 1 << 20) else {
            Issue.record("the list should be read, with a tag")
            return
        }
        let next = try issuing.list(sequence: 2)
        try dir.publish(list: next) // a new file (atomic rename): a new tag
        let changed = try await source.fetch(.revocations, ifNoneMatch: listTag, maxBytes: 1 << 20)
        guard case .modified(let bytes, let newTag?) = changed else {
            Issue.record("a replaced file is read again, got \(changed)")
            return
        }
        #expect(bytes == next)
        #expect(newTag != listTag)

        // Bounded: a file over the limit is refused, not read.
        await #expect(throws: PATKitError.self) { try await source.fetch(.revocations, ifNoneMatch: nil, maxBytes: 16) }
        // Missing: the error names the file.
        let missing = FileDocumentSource(keysPath: dir.path + "/nope.json", revocationsPath: dir.path + "/nope.bin")
        do {
            _ = try await missing.fetch(.keys, ifNoneMatch: nil, maxBytes: 1 << 20)
            Issue.record("a missing file should fail")
        } catch let error as PATEdgeError {
            #expect(error.description.contains("nope.json"))
        }
    }

    @Test("the gate's answer headers: one entry per PAT id and generation, all forgotten when the capacity is reached")
    func gateAnswersAreBounded() throws {
        let issuing = try Issuing()
        let validator = Validator(keys: issuing.keySet)
        try validator.install(try RevocationList(verifying: try issuing.list(sequence: 1), keys: issuing.keySet))
        let answers = GateAnswers(capacity: 3)
        var first: HTTPFields? = nil
        for n in 0..<3 {
            let pat = try validator.validate(try issuing.token(subject: "user\(n)"))
            let headers = answers.headers(for: pat)
            #expect(headers[GateHeader.subject] == "user\(n)")
            if n == 0 { first = headers }
            #expect(answers.count == n + 1)
        }
        #expect(answers.headers(for: try validator.validate(try issuing.token(subject: "user3")))[GateHeader.subject] == "user3")
        #expect(answers.count == 1, "the fourth PAT found the table full: it was emptied first")
        #expect(first?[GateHeader.expires] != nil)
    }
}
