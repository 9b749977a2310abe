import Synchronization
import Testing
@testable import PATKit

@Suite("Concurrency", .timeLimit(.minutes(5)))
struct ConcurrencyTests {
    struct Outcome: Sendable {
        /// Index into the token list; -1 marks a failed install by the swapper.
        let token: Int
        let code: PATValidationError.Code?
        /// The revoking list was already installed when this validation started.
        let afterRevocation: Bool
    }

    final class Flag: Sendable {
        let value = Atomic<Bool>(false)
    }

    @Test("a shared validator stays consistent while keys and lists are swapped", arguments: [0, 1000])
    func sharedValidator(cacheCapacity: Int) async throws {
        let a = try Fixture.key(1), b = try Fixture.key(2)
        let keysAB = KeySet(keys: [a.publicKey, b.publicKey])
        let keysB = KeySet(keys: [b.publicKey])
        let revokedID = PATClaims.newID()
        // Lists are signed by b, which stays active throughout; from sequence 2 on they revoke one PAT.
        let lists: [RevocationList] = try (1...40).map { (sequence: UInt64) in
            var builder = RevocationList.Builder()
            if sequence >= 2 { builder.revoke(id: revokedID, below: 2, horizon: Fixture.now.adding(seconds: 30 * Fixture.day)) }
            let bytes = try builder.sign(with: b, sequence: sequence, issuedAt: Fixture.now.adding(seconds: -60),
                                         nextUpdate: Fixture.now.adding(seconds: Fixture.hour))
            return try RevocationList(verifying: bytes, keys: keysAB)
        }
        var policy = Validator.Policy()
        policy.cacheCapacity = cacheCapacity
        let validator = Validator(keys: keysAB, revocations: lists[0], policy: policy, clock: { Fixture.now })

        let tokenA = try Issuer(key: a).issue(try Fixture.claims())
        let tokenB = try Issuer(key: b).issue(try Fixture.claims())
        let tokenRevoked = try Issuer(key: b).issue(try Fixture.claims(id: revokedID))
        var pieces = try #require(TokenPieces(tokenB))
        pieces.payload[12] ^= 0x04
        let tokens = [tokenA, tokenB, tokenRevoked, pieces.token]
        let allowed: [Set<PATValidationError.Code?>] = [[nil, .unknownKey], [nil], [nil, .revoked], [.badSignature]]
        let revokingListInstalled = Flag()

        let outcomes = await withTaskGroup(of: [Outcome].self) { group in
            group.addTask {
                var failures: [Outcome] = []
                for i in 1..<lists.count {
                    validator.replaceKeys(i % 2 == 0 ? keysAB : keysB)
                    do { try validator.install(lists[i]) } catch { failures.append(Outcome(token: -1, code: nil, afterRevocation: false)) }
                    if i == 1 { revokingListInstalled.value.store(true, ordering: .sequentiallyConsistent) }
                    await Task.yield()
                }
                validator.replaceKeys(keysAB)
                return failures
            }
            for _ in 0..<4 {
                group.addTask {
                    var seen: [Outcome] = []
                    for _ in 0..<150 {
                        for (index, token) in tokens.enumerated() {
                            let after = revokingListInstalled.value.load(ordering: .sequentiallyConsistent)
                            let code = validationCode { try validator.validate(token) }
                            seen.append(Outcome(token: index, code: code, afterRevocation: after))
                        }
                        await Task.yield()
                    }
                    return seen
                }
            }
            var all: [Outcome] = []
            for await part in group { all += part }
            return all
        }

        #expect(!outcomes.contains { $0.token == -1 }, "every install succeeded")
        #expect(outcomes.count == 4 * 150 * tokens.count)
        for outcome in outcomes where outcome.token >= 0 {
            #expect(allowed[outcome.token].contains(outcome.code), "token \(outcome.token): \(String(describing: outcome.code))")
            // Once the revoking list is in, the revoked PAT never passes again (cached or not).
            if outcome.token == 2, outcome.afterRevocation {
                #expect(outcome.code == .revoked)
            }
        }
        // The final state is the swapper's last word.
        #expect(validator.revocations?.sequence == 40)
        #expect(validationCode { try validator.validate(tokenA) } == nil)
        #expect(validationCode { try validator.validate(tokenRevoked) } == .revoked)
    }

    @Test("one issuer and one validator shared by many tasks")
    func sharedIssuer() async throws {
        let key = try Fixture.key(3)
        let issuer = Issuer(key: key)
        let validator = Fixture.validator(keys: [key.publicKey])
        let failures = await withTaskGroup(of: Int.self) { group in
            for task in 0..<8 {
                group.addTask {
                    var failed = 0
                    for i in 0..<50 {
                        do {
                            let claims = try Fixture.claims(subject: "user-\(task)-\(i)")
                            let pat = try validator.validate(try issuer.issue(claims))
                            if pat.subject != claims.subject { failed += 1 }
                        } catch {
                            failed += 1
                        }
                    }
                    return failed
                }
            }
            return await group.reduce(0, +)
        }
        #expect(failures == 0)
    }

    /// A value that records when it is freed, and whether anyone read it afterwards.
    final class Tracked: Sendable {
        let id: Int
        let log: FreedLog
        init(_ id: Int, _ log: FreedLog) { self.id = id; self.log = log }
        deinit { log.freed(id) }
    }

    final class FreedLog: Sendable {
        private let state = Mutex<(freed: Set<Int>, readAfterFree: Int)>(([], 0))
        func freed(_ id: Int) { state.withLock { _ = $0.freed.insert(id) } }
        func read(_ id: Int) { state.withLock { if $0.freed.contains(id) { $0.readAfterFree += 1 } } }
        var freedCount: Int { state.withLock { $0.freed.count } }
        var readsAfterFree: Int { state.withLock { $0.readAfterFree } }
    }

    @Test("the lock-free snapshot: readers never see a freed value, and replaced values are freed", .timeLimit(.minutes(2)))
    func snapshotReclamation() async {
        let log = FreedLog()
        let cell = SnapshotCell(Tracked(0, log))
        let writes = 2_000
        let stop = Flag()
        let reads = await withTaskGroup(of: Int.self) { group in
            for _ in 0..<4 {
                group.addTask {
                    var count = 0
                    while !stop.value.load(ordering: .relaxed) || count == 0 {
                        cell.read { value in log.read(value.id) }
                        count += 1
                        if count % 256 == 0 { await Task.yield() }
                    }
                    return count
                }
            }
            group.addTask {
                for id in 1...writes {
                    cell.update { _ in (Tracked(id, log), ()) }
                    if id % 64 == 0 { await Task.yield() }
                }
                stop.value.store(true, ordering: .relaxed)
                return 0
            }
            return await group.reduce(0, +)
        }
        #expect(reads > 0)
        #expect(log.readsAfterFree == 0, "no reader used a value after it was freed")
        #expect(log.freedCount == writes, "every replaced value was freed; only the current one is held")
    }
}
