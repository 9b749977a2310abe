import Foundation
import PATEdge
import PATKit
import PATServer
import PATStore
import PATTestSupport
import Synchronization
import Testing

/// A source tests control: documents with entity tags, an optional failure, and a log of
/// what was asked and answered.
final class FakeSource: PATDocumentSource {
    struct Document: Sendable {
        var bytes: [UInt8]
        var etag: String
    }

    struct Call: Sendable, Equatable {
        let document: PATDocument
        let ifNoneMatch: String?
        let notModified: Bool
    }

    private struct State {
        var keys: Document?
        var list: Document?
        var failure: String?
        var calls: [Call] = []
        var version = 0
    }

    private let state = Mutex(State())

    var location: String { "fake" }

    /// A key set document (normally `Issuing.signedKeys`).
    func set(keys: [UInt8]) {
        state.withLock { $0.version += 1; $0.keys = Document(bytes: keys, etag: "\"k\($0.version)\"") }
    }

    func set(list: [UInt8]) {
        state.withLock { $0.version += 1; $0.list = Document(bytes: list, etag: "\"l\($0.version)\"") }
    }

    func fail(_ reason: String?) { state.withLock { $0.failure = reason } }

    var calls: [Call] { state.withLock { $0.calls } }

    func fetch(_ document: PATDocument, ifNoneMatch etag: String?, maxBytes: Int) async throws -> PATFetchResult {
        try state.withLock { s in
            if let failure = s.failure { throw PATEdgeError(failure) }
            guard let doc = document == .keys ? s.keys : s.list else { throw PATEdgeError("404 \(document)") }
            let unchanged = doc.etag == etag
            s.calls.append(Call(document: document, ifNoneMatch: etag, notModified: unchanged))
            if unchanged { return .notModified }
            guard doc.bytes.count <= maxBytes else { throw PATEdgeError("\(document) exceeds \(maxBytes) bytes") }
            return .modified(bytes: doc.bytes, etag: doc.etag)
        }
    }
}

@Suite("the edge refresher", .timeLimit(.minutes(5)))
struct RefresherTests {
    static func policy(_ configure: (inout Validator.Policy) -> Void = { _ in }) -> Validator.Policy {
        var policy = Validator.Policy()
        configure(&policy)
        return policy
    }

    @Test func conditionalFetchesAndAnAtomicSwap() async throws {
        let issuing = try Issuing()
        let source = FakeSource()
        source.set(keys: try issuing.signedKeys())
        source.set(list: try issuing.list(sequence: 1))
        let validator = Validator(keys: KeySet())
        let token = try issuing.token()
        #expect(validationCode { try validator.validate(token) } == .missingKeySet, "nothing trusted before the first round")

        let refresher = PATRefresher(validator: validator, source: source, trustAnchors: issuing.anchors, logger: quietLogger())
        let status = await refresher.refresh()
        #expect(status.lastError == nil)
        #expect(status.sequence == 1)
        #expect(status.activeKeyCount == 1)
        #expect(status.acceptingTokens)
        #expect(status.lastSuccess != nil)
        #expect(try validator.validate(token).subject == "alice")

        await refresher.refresh()
        let second = source.calls.suffix(2)
        #expect(second.allSatisfy { $0.notModified && $0.ifNoneMatch != nil }, "the second round revalidates: \(second)")
        #expect(refresher.status.lastError == nil)

        // A new list revoking the token is picked up by the next round, swapped in atomically:
        // a validation running meanwhile sees the old list (accepted) or the new one (revoked),
        // never a missing list or any other state.
        let pat = try validator.validate(token)
        source.set(list: try issuing.list(sequence: 2, revoked: [pat.id]))
        let stop = Atomic<Bool>(false)
        let observer = Task {
            var outcomes: [PATValidationError.Code?] = []
            while !stop.load(ordering: .acquiring) {
                outcomes.append(validationCode { try validator.validate(token) })
                await Task.yield()
            }
            outcomes.append(validationCode { try validator.validate(token) })
            return outcomes
        }
        await refresher.refresh()
        stop.store(true, ordering: .releasing)
        let outcomes = try await withTimeLimit(.seconds(60), "the observing task to finish") { await observer.value }
        #expect(refresher.status.sequence == 2)
        let firstRefusal = outcomes.firstIndex { $0 != nil } ?? outcomes.endIndex
        #expect(outcomes[..<firstRefusal].allSatisfy { $0 == nil })
        #expect(outcomes[firstRefusal...].allSatisfy { $0 == .revoked }, "seen while swapping: \(Set(outcomes.map { "\(String(describing: $0))" }))")
        #expect(outcomes.last == .revoked)
        #expect(throws: PATValidationError(.revoked, Revocation.superseded(floor: 2).description)) { try validator.validate(token) }
    }

    @Test func rollbackIsRefusedAndTheLastGoodListKept() async throws {
        let issuing = try Issuing()
        let source = FakeSource()
        source.set(keys: try issuing.signedKeys())
        source.set(list: try issuing.list(sequence: 5))
        let refresher = PATRefresher(validator: Validator(keys: KeySet()), source: source, trustAnchors: issuing.anchors, logger: quietLogger())
        await refresher.refresh()
        #expect(refresher.status.sequence == 5)

        source.set(list: try issuing.list(sequence: 4))
        let status = await refresher.refresh()
        #expect(status.sequence == 5)
        #expect(status.lastError?.contains("rollback") == true, "\(status.lastError ?? "no error")")
        #expect(status.consecutiveFailures == 1)

        // Another list under the held sequence (equivocation) is refused too.
        source.set(list: try issuing.list(sequence: 5, revoked: [PATClaims.newID()]))
        let equivocation = await refresher.refresh()
        #expect(equivocation.lastError?.contains("held sequence 5") == true)
        #expect(equivocation.consecutiveFailures == 2)

        source.set(list: try issuing.list(sequence: 6))
        let recovered = await refresher.refresh()
        #expect(recovered.sequence == 6)
        #expect(recovered.lastError == nil)
        #expect(recovered.consecutiveFailures == 0)
    }

    @Test func aListSignedByAnUnknownKeyIsRefused() async throws {
        let issuing = try Issuing()
        let stranger = try Issuing()
        let source = FakeSource()
        source.set(keys: try issuing.signedKeys())
        source.set(list: try issuing.list(sequence: 1))
        let refresher = PATRefresher(validator: Validator(keys: KeySet()), source: source, trustAnchors: issuing.anchors, logger: quietLogger())
        await refresher.refresh()

        source.set(list: try stranger.list(sequence: 9))
        let status = await refresher.refresh()
        #expect(status.sequence == 1)
        let error = try #require(status.lastError)
        #expect(error.contains("not an active key"), "\(error)")
        #expect(error.contains(stranger.key.id.rawValue), "the reason names the signer")
    }

    @Test func badKeySetsAreRefused() async throws {
        let issuing = try Issuing()
        let source = FakeSource()
        source.set(keys: try issuing.signedKeys())
        source.set(list: try issuing.list(sequence: 1))
        let validator = Validator(keys: KeySet())
        let refresher = PATRefresher(validator: validator, source: source, trustAnchors: issuing.anchors, logger: quietLogger())
        await refresher.refresh()

        // A plain (unsigned) set, even an honest one, is refused: only anchors vouch for keys.
        source.set(keys: issuing.keySet.encoded())
        let unsigned = await refresher.refresh()
        #expect(unsigned.lastError?.contains("not signed") == true, "\(unsigned.lastError ?? "no error")")
        // Signed, but with no active key.
        var retired = issuing.keySet
        try retired.retire(issuing.key.id)
        source.set(keys: Array(#"{"payload":"e30","signer":"k4.pid.x","signature":"AA"}"#.utf8))
        let garbled = await refresher.refresh()
        #expect(garbled.lastError?.contains("key set") == true)
        #expect(validator.keys == issuing.keySet, "the last good key set stays")
        #expect(throws: PATKitError.self) { try issuing.signedKeys(retired, sequence: 2) } // never signed without an active key
    }

    @Test func failuresKeepTheLastGoodCopyInMemoryAndOnDisk() async throws {
        let issuing = try Issuing()
        let cache = try TempDir("patedge-cache")
        let source = FakeSource()
        source.set(keys: try issuing.signedKeys())
        source.set(list: try issuing.list(sequence: 3))
        let token = try issuing.token()

        let validator = Validator(keys: KeySet())
        let refresher = PATRefresher(validator: validator, source: source, trustAnchors: issuing.anchors, cacheDirectory: cache.path, logger: quietLogger())
        #expect(refresher.status.loadedFromCache == false)
        await refresher.refresh()
        #expect(FileManager.default.fileExists(atPath: cache.path + "/keys.json"))
        #expect(FileManager.default.fileExists(atPath: cache.path + "/revocations.bin"))

        source.fail("connection refused")
        let failed = await refresher.refresh()
        #expect(failed.lastError?.contains("connection refused") == true)
        #expect(failed.sequence == 3)
        #expect(failed.acceptingTokens, "a failed refresh does not drop what is held")
        #expect(try validator.validate(token).subject == "alice")

        // A restart without the network: the cache feeds the new validator at once.
        let restarted = Validator(keys: KeySet())
        let again = PATRefresher(validator: restarted, source: source, trustAnchors: issuing.anchors, cacheDirectory: cache.path, logger: quietLogger())
        #expect(again.status.loadedFromCache)
        #expect(again.status.sequence == 3)
        #expect(try restarted.validate(token).subject == "alice")
        let stillDown = await again.refresh()
        #expect(stillDown.lastError != nil)
        #expect(stillDown.acceptingTokens)
    }

    @Test func staleListsFollowThePolicyAndTheStatusSaysSo() async throws {
        let issuing = try Issuing()
        let source = FakeSource()
        let now = Timestamp.now()
        source.set(keys: try issuing.signedKeys())
        source.set(list: try issuing.list(sequence: 1, issuedAt: now.adding(seconds: -7200), nextUpdate: now.adding(seconds: -600)))
        let token = try issuing.token()

        let strict = PATRefresher(validator: Validator(keys: KeySet()), source: source, trustAnchors: issuing.anchors, logger: quietLogger())
        let rejecting = await strict.refresh()
        #expect(rejecting.isStale)
        #expect(rejecting.staleListPolicy == .reject)
        #expect(!rejecting.acceptingTokens)
        #expect(rejecting.refusal?.contains("due for update") == true)
        #expect(validationCode { try strict.validator.validate(token) } == .staleRevocationList)

        let graceful = PATRefresher(validator: Validator(keys: KeySet(), policy: Self.policy { $0.staleGrace = 3600 }),
                                    source: source, trustAnchors: issuing.anchors, logger: quietLogger())
        let withinGrace = await graceful.refresh()
        #expect(!withinGrace.isStale, "within the grace the list still counts as fresh")
        #expect(try graceful.validator.validate(token).subject == "alice")

        let lenient = PATRefresher(validator: Validator(keys: KeySet(), policy: Self.policy { $0.staleListPolicy = .accept }),
                                   source: source, trustAnchors: issuing.anchors, logger: quietLogger())
        let accepting = await lenient.refresh()
        #expect(accepting.isStale)
        #expect(accepting.acceptingTokens)
        #expect(try lenient.validator.validate(token).subject == "alice")
        #expect(accepting.json["stale"] == .bool(true))
    }

    @Test func overHTTPAgainstTheDistributionServer() async throws {
        let dir = try TempDir()
        let issuing = try Issuing()
        try dir.publish(keys: try issuing.signedKeys(), list: try issuing.list(sequence: 1))
        let token = try issuing.token()
        try await withPATServer(PATServerConfiguration(home: dir.home)) { port, _ in
            let source = HTTPDocumentSource(keysURL: "http://127.0.0.1:\(port)/.well-known/pat/keys",
                                          revocationsURL: "http://127.0.0.1:\(port)/.well-known/pat/revocations")
            let recording = RecordingSource(source)
            let validator = Validator(keys: KeySet())
            let refresher = PATRefresher(validator: validator, source: recording, trustAnchors: issuing.anchors, logger: quietLogger())
            let first = await refresher.refresh()
            #expect(first.lastError == nil)
            #expect(first.sequence == 1)
            #expect(try validator.validate(token).subject == "alice")

            await refresher.refresh()
            #expect(recording.results.suffix(2) == [.notModified, .notModified], "conditional GET: 304s on the second round")

            let pat = try validator.validate(token)
            try dir.publish(list: try issuing.list(sequence: 2, revoked: [pat.id]))
            await refresher.refresh()
            #expect(refresher.status.sequence == 2)
            #expect(validationCode { try validator.validate(token) } == .revoked)

            // Bounded bodies: a list over the limit is refused and the held one kept.
            let small = PATRefresher(validator: Validator(keys: KeySet()), source: source, trustAnchors: issuing.anchors, maxRevocationListBytes: 64,
                                     logger: quietLogger())
            let refused = await small.refresh()
            #expect(refused.sequence == nil)
            #expect(refused.lastError?.contains("exceeds the limit of 64 bytes") == true, "\(refused.lastError ?? "")")

            // Unreachable: the error names the URL.
            let down = HTTPDocumentSource(keysURL: "http://127.0.0.1:1/keys", revocationsURL: "http://127.0.0.1:1/list",
                                          timeout: .seconds(1))
            let failing = PATRefresher(validator: validator, source: down, trustAnchors: issuing.anchors, logger: quietLogger())
            let status = await failing.refresh()
            #expect(status.lastError?.contains("http://127.0.0.1:1/keys") == true)
            #expect(status.sequence == 2, "the shared validator keeps what it holds")
        }
    }

    @Test func runStopsOnCancellation() async throws {
        let issuing = try Issuing()
        let source = FakeSource()
        source.set(keys: try issuing.signedKeys())
        source.set(list: try issuing.list(sequence: 1))
        let refresher = PATRefresher(validator: Validator(keys: KeySet()), source: source, trustAnchors: issuing.anchors, interval: .milliseconds(50),
                                     logger: quietLogger())
        let task = Task { try await refresher.run() }
        try await awaitEvent("run() finishes six rounds") { try await refresher.waitUntilRounds(6) }
        #expect(source.calls.count >= 12, "each round asked for both documents")
        #expect(refresher.status.sequence == 1)
        task.cancel()
        // Were run() to ignore cancellation, this fails after the bound instead of hanging.
        try await withTimeLimit(.seconds(60), "run() to return once cancelled") { try await task.value }
    }

    @Test func waitingForASequenceEndsWhenItIsInstalledOrTheWaiterIsCancelled() async throws {
        let issuing = try Issuing()
        let source = FakeSource()
        source.set(keys: try issuing.signedKeys())
        source.set(list: try issuing.list(sequence: 1))
        let refresher = PATRefresher(validator: Validator(keys: KeySet()), source: source, trustAnchors: issuing.anchors, logger: quietLogger())
        let waiter = Task { try await refresher.waitUntilRefreshed(toSequence: 3) }
        await refresher.refresh()
        source.set(list: try issuing.list(sequence: 3))
        await refresher.refresh()
        try await withTimeLimit(.seconds(60), "the wait for list 3 to end") { try await waiter.value }
        try await refresher.waitUntilRefreshed(toSequence: 2) // already there: returns at once

        let never = Task { try await refresher.waitUntilRefreshed(toSequence: 99) }
        never.cancel()
        let outcome = try await withTimeLimit(.seconds(60), "a cancelled wait to end") { await never.result }
        #expect(throws: CancellationError.self) { try outcome.get() }
    }
}

/// Wraps a source and records what each fetch returned.
final class RecordingSource: PATDocumentSource {
    enum Outcome: Equatable, Sendable { case notModified, modified, failed }
    private let inner: any PATDocumentSource
    private let log = Mutex<[Outcome]>([])

    init(_ inner: any PATDocumentSource) { self.inner = inner }

    var location: String { inner.location }
    var results: [Outcome] { log.withLock { $0 } }

    func fetch(_ document: PATDocument, ifNoneMatch etag: String?, maxBytes: Int) async throws -> PATFetchResult {
        do {
            let result = try await inner.fetch(document, ifNoneMatch: etag, maxBytes: maxBytes)
            log.withLock { $0.append(result == .notModified ? .notModified : .modified) }
            return result
        } catch {
            log.withLock { $0.append(.failed) }
            throw error
        }
    }
}
