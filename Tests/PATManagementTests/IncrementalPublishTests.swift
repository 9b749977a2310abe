import Foundation
import PATKit
import PATManagement
import PATRegistry
import PATRegistryTestSupport
import PATTestSupport
import Testing

/// Incremental publishing (issue 15): `pat serve`'s publisher signs each list as an update of
/// the last one, reading only the rows the registry's triggers logged as changed. Each update
/// must hold exactly the entries a whole rebuild of the same rows holds.
@Suite("Incremental publishing: every update equals a whole rebuild", .timeLimit(.minutes(5)))
struct IncrementalPublishTests {
    /// The entries of a signed list: everything between its header and its signature.
    static func entries(_ result: PublishResult) -> ArraySlice<UInt8> {
        let header = 8 + 1 + result.signer.rawValue.utf8.count + 8 * 3 + 4 * 4
        return result.bytes[header..<(result.bytes.count - 64)]
    }

    /// A home on `backend`, its clock and service, and a publisher holding a cache.
    static func setUp(_ backend: RegistryBackend) async throws -> (TestHome, TestClock, PATManagement, Publisher, PublisherCache) {
        let t = try await TestHome.make(backend)
        let clock = TestClock()
        var cached = t.publisher(at: clock)
        let cache = PublisherCache()
        cached.cache = cache
        return (t, clock, t.service(at: clock), cached, cache)
    }

    /// Whole rebuilds and updates.
    static func counts(_ cache: PublisherCache) -> [Int] { [cache.publishes.whole, cache.publishes.updates] }

    @Test("random lifecycle changes, pruning and publishes by another publisher: each update equals a whole rebuild",
          arguments: RegistryBackend.allCases)
    func updatesEqualWholeRebuilds(_ backend: RegistryBackend) async throws {
        let (t, clock, service, cached, cache) = try await Self.setUp(backend)
        let whole = t.publisher(at: clock, directory: t.home.path + "/whole")
        let seed: UInt64 = 0x15_0015
        var rng = SplitMix64(seed: seed)
        func roll(_ n: Int) -> Int { Int(rng.next() % UInt64(n)) }
        let scope = try Scope(parsing: "clients:view")
        var ids: [String] = []
        var created = 0
        try await cached.publish()

        for step in 0..<60 {
            for _ in 0..<roll(5) {
                let expiry = Expiry.after(TimeSpan(seconds: Int64([600, 3600, 86_400][roll(3)])))
                do {
                    switch ids.isEmpty ? 0 : roll(7) {
                    case 0:
                        created += 1
                        let owner = ["alice", "bob", "carol"][roll(3)]
                        let pat = try await service.create(CreateRequest(owner: owner, name: "pat\(created)", scopes: [scope],
                                                                         expiry: expiry), by: .localOperator)
                        ids.append(pat.record.id)
                    case 1: _ = try await service.revoke(id: ids[roll(ids.count)], by: .localOperator)
                    case 2: _ = try await service.regenerate(id: ids[roll(ids.count)], expiry: expiry, by: .localOperator)
                    case 3:
                        _ = try await service.regenerate(id: ids[roll(ids.count)], expiry: expiry,
                                                         overlap: TimeSpan(seconds: Int64([60, 1800][roll(2)])), by: .localOperator)
                    case 4: _ = try await service.delete(id: ids[roll(ids.count)], by: .localOperator)
                    case 5: _ = try await service.revokeAll(owner: ["alice", "bob", "carol"][roll(3)], by: .localOperator)
                    default: _ = try await service.addScopes(id: ids[roll(ids.count)], [try Scope(parsing: "groups:view")],
                                                             by: .localOperator)
                    }
                } catch is ManagementError {
                    // Revoking a deleted PAT, adding a scope it holds…: refused, and nothing changed.
                }
            }
            clock.advance(Int64([0, 30, 700, 4000][roll(4)])) // horizons pass: entries are pruned
            let update = try await cached.publish()
            if roll(3) == 0 { try await whole.publish() } // another publisher stamps some changes in between
            let rebuilt = try await whole.publish()
            #expect(Self.entries(update) == Self.entries(rebuilt), "seed \(seed), step \(step)")
            #expect(update.tokenEntries == rebuilt.tokenEntries, "seed \(seed), step \(step)")
            #expect(update.ownerEntries == rebuilt.ownerEntries, "seed \(seed), step \(step)")
        }
        #expect(cache.publishes.whole == 1)
        #expect(cache.publishes.updates == 60)
    }

    @Test("the list in place is what the cache says: a list written by someone else is read, and the cache is not trusted for it",
          arguments: [RegistryBackend.sqlite])
    func aListWrittenByAnotherPublisherIsRead(_ backend: RegistryBackend) async throws {
        let (t, clock, service, cached, cache) = try await Self.setUp(backend)
        let pat = try await service.create(CreateRequest(owner: "alice", name: "ci", scopes: [try Scope(parsing: "clients:view")],
                                                         expiry: .after(TimeSpan(seconds: 3600))), by: .localOperator)
        let first = try await cached.publish()
        _ = try await service.revoke(id: pat.record.id, by: .localOperator)
        // `pat publish` (no cache) writes the same folder meanwhile.
        let other = try await t.publisher(at: clock).publish()
        let next = try await cached.publish()
        #expect(next.sequence == other.sequence + 1)
        // The delta beside the list leads from the other publisher's list, which edges may hold.
        let delta = try RevocationDelta(verifying: try #require(next.delta), keys: try t.keyStore.keySet())
        #expect(delta.baseSequence == other.sequence)
        #expect(next.sequence > first.sequence)
        #expect(cache.publishes.updates == 1)
        #expect(try t.validator(at: clock).revocations?.floor(of: pat.record.id) == 2)
    }

    @Test("a rebuild is whole when the cache is too old, the margin changed or the clock went back")
    func wholeRebuilds() async throws {
        let t = try await TestHome.make(.sqlite)
        let clock = TestClock()
        let cache = PublisherCache(wholeRebuildInterval: .seconds(3600))
        var cached = t.publisher(at: clock)
        cached.cache = cache
        try await cached.publish()
        try await cached.publish()
        #expect(Self.counts(cache) == [1, 1])
        cached.leeway = 30
        try await cached.publish()
        #expect(Self.counts(cache) == [2, 1])
        clock.advance(-10)
        try await cached.publish()
        #expect(Self.counts(cache) == [3, 1])
        let expiring = PublisherCache(wholeRebuildInterval: .zero)
        cached.cache = expiring
        try await cached.publish()
        try await cached.publish()
        #expect(Self.counts(expiring) == [2, 0])
    }
}
