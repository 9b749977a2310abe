import PATTestSupport
import Testing
@testable import PATKit

/// `RevocationList.Builder.sign(updating:changedTokens:changedOwners:…)`: the list signed from
/// the previous list and the entries of the keys that changed is, byte for byte, the list the
/// publisher signs from every registry row (`revoke`/`keep`/`delete`/`revokeAll`, `prune`, `sign`).
@Suite("Incremental list signing")
struct RevocationListUpdateTests {
    let key: SecretKey
    let keys: KeySet

    init() throws {
        key = try Fixture.key(12)
        keys = KeySet(keys: [key.publicKey])
    }

    // MARK: - The registry model

    struct Overlap: Equatable { var generation: UInt64; var until: Int64 }
    /// A live PAT whose floor is above 1 (revoked, regenerated or re-scoped).
    struct Superseded: Equatable { var floor: UInt64; var horizon: Int64; var overlap: Overlap? }
    struct OwnerRevocation: Equatable { var before: Int64; var horizon: Int64 }

    /// The rows the publisher reads: per PAT id an optional superseded row and an optional
    /// tombstone, per owner an optional revoke-all.
    struct Registry {
        var superseded: [String: Superseded] = [:]
        var tombstones: [String: Int64] = [:]
        var owners: [String: OwnerRevocation] = [:]

        /// The rows of `ids` and `subjects` (nil: every row) fed into a fresh builder with the
        /// publisher's calls, in its order (superseded rows, then tombstones, then owners).
        func builder(ids: Set<String>? = nil, owners subjects: Set<String>? = nil) -> RevocationList.Builder {
            var builder = RevocationList.Builder()
            for (id, row) in superseded.sorted(by: { $0.key < $1.key }) where ids?.contains(id) ?? true {
                builder.revoke(id: id, below: row.floor, horizon: Timestamp(seconds: row.horizon))
                if let overlap = row.overlap {
                    builder.keep(id: id, generation: overlap.generation, until: Timestamp(seconds: overlap.until))
                }
            }
            for (id, horizon) in tombstones.sorted(by: { $0.key < $1.key }) where ids?.contains(id) ?? true {
                builder.delete(id: id, horizon: Timestamp(seconds: horizon))
            }
            for (owner, row) in owners.sorted(by: { $0.key < $1.key }) where subjects?.contains(owner) ?? true {
                builder.revokeAll(subject: owner, issuedBefore: Timestamp(seconds: row.before), horizon: Timestamp(seconds: row.horizon))
            }
            return builder
        }
    }

    /// The header fields of one publish.
    struct Signing {
        var sequence: UInt64
        var now: Timestamp
        var margin: Int64
        var issuedAt: Timestamp { now }
        var nextUpdate: Timestamp { now.adding(seconds: Fixture.hour) }
    }

    /// The publisher's full build: every row, pruned, signed.
    struct FullBuild {
        var bytes: [UInt8]
        var pruned: Int
        /// The keys of the entries `prune` dropped, and of those the list holds.
        var prunedTokens: Set<EntryKey>, prunedOwners: Set<EntryKey>
        var listedTokens: Set<EntryKey>, listedOwners: Set<EntryKey>
    }

    func full(_ registry: Registry, _ s: Signing) throws -> FullBuild {
        var builder = registry.builder()
        let unpruned = builder
        let pruned = builder.prune(now: s.now, margin: s.margin)
        let bytes = try builder.sign(with: key, sequence: s.sequence, issuedAt: s.issuedAt, nextUpdate: s.nextUpdate, pruneMargin: s.margin)
        let listedTokens = Set(builder.tokenEntries.keys), listedOwners = Set(builder.ownerEntries.keys)
        return FullBuild(bytes: bytes, pruned: pruned,
                         prunedTokens: Set(unpruned.tokenEntries.keys).subtracting(listedTokens),
                         prunedOwners: Set(unpruned.ownerEntries.keys).subtracting(listedOwners),
                         listedTokens: listedTokens, listedOwners: listedOwners)
    }

    /// The incremental build: `base`, the rows of the changed ids and owners only, and their keys.
    func incremental(_ registry: Registry, base: RevocationList, ids: Set<String>, owners: Set<String>,
                     _ s: Signing) throws -> (bytes: [UInt8], pruned: Int) {
        try registry.builder(ids: ids, owners: owners)
            .sign(updating: base, changedTokens: Set(ids.map(RevocationList.tokenKey)), changedOwners: Set(owners.map(RevocationList.ownerKey)),
                  now: s.now, with: key, sequence: s.sequence, issuedAt: s.issuedAt, nextUpdate: s.nextUpdate, pruneMargin: s.margin)
    }

    /// How two lists differ, entry by entry, with ids and owners named where known.
    func difference(expected: [UInt8], actual: [UInt8], names: [EntryKey: String]) -> String {
        guard let e = try? RevocationList(verifying: expected, keys: keys), let a = try? RevocationList(verifying: actual, keys: keys) else {
            return "the incremental list does not verify"
        }
        var lines: [String] = []
        if e.sequence != a.sequence || e.issuedAt != a.issuedAt || e.nextUpdate != a.nextUpdate || e.pruneMargin != a.pruneMargin {
            lines.append("header: expected seq \(e.sequence) \(e.issuedAt)…\(e.nextUpdate) margin \(e.pruneMargin), "
                         + "got seq \(a.sequence) \(a.issuedAt)…\(a.nextUpdate) margin \(a.pruneMargin)")
        }
        lines.append("counts (tokens, owners, overlaps): expected (\(e.tokenEntryCount), \(e.ownerEntryCount), \(e.overlapEntryCount)), "
                     + "got (\(a.tokenEntryCount), \(a.ownerEntryCount), \(a.overlapEntryCount))")
        let eb = e.builder, ab = a.builder
        func compare<V>(_ table: String, _ x: [EntryKey: V], _ y: [EntryKey: V], _ same: (V, V) -> Bool) {
            for k in Set(x.keys).union(y.keys).sorted() {
                let l = x[k], r = y[k]
                if let l, let r, same(l, r) { continue }
                lines.append("\(table) \(names[k] ?? "\(k)"): expected \(l.map { "\($0)" } ?? "none"), got \(r.map { "\($0)" } ?? "none")")
            }
        }
        compare("token", eb.tokenEntries, ab.tokenEntries) { $0 == $1 }
        compare("owner", eb.ownerEntries, ab.ownerEntries) { $0 == $1 }
        compare("overlap", eb.overlapEntries, ab.overlapEntries) { $0 == $1 }
        return lines.prefix(12).joined(separator: "\n")
    }

    // MARK: - Random registry changes

    static func roll(_ rng: inout SplitMix64, _ n: Int) -> Int { Int(rng.next() % UInt64(n)) }
    static func chance(_ rng: inout SplitMix64, _ percent: Int) -> Bool { roll(&rng, 100) < percent }
    static func pick<T>(_ rng: inout SplitMix64, _ items: [T]) -> T? { items.isEmpty ? nil : items[roll(&rng, items.count)] }

    /// A horizon (or overlap end) around `now`: mostly ahead, some already past, some right at
    /// the prune cutoff (an entry whose horizon is the cutoff stays).
    static func instant(_ rng: inout SplitMix64, now: Int64, margin: Int64) -> Int64 {
        switch roll(&rng, 10) {
        case 0: return now - margin - 1 - Int64(roll(&rng, 5000))      // pruned at once
        case 1: return now - margin + Int64(roll(&rng, 3)) - 1           // cutoff − 1, cutoff, cutoff + 1
        case 2: return now + Int64(roll(&rng, 600))                      // pruned within a few steps
        default: return now + Int64(roll(&rng, 40_000))
        }
    }

    struct Chain {
        var registry = Registry()
        var now: Int64 = Fixture.now.seconds
        var changedIDs: Set<String> = []
        var changedOwners: Set<String> = []
        var log: [String] = []
    }

    static let idPool = (0..<260).map { "pat-\($0)-" + String(repeating: "q", count: 14) }
    static let ownerPool = (0..<30).map { "owner-\($0)" }

    static func initialRegistry(_ rng: inout SplitMix64, now: Int64, margin: Int64) -> Registry {
        var registry = Registry()
        for id in idPool.prefix(200) {
            let kind = roll(&rng, 10)
            if kind < 8 {
                let floor = 2 + UInt64(roll(&rng, 6))
                let overlap = chance(&rng, 35)
                    ? Overlap(generation: chance(&rng, 80) ? floor - 1 - UInt64(roll(&rng, Int(floor) - 1)) : floor + UInt64(roll(&rng, 2)),
                              until: instant(&rng, now: now, margin: margin))
                    : nil
                registry.superseded[id] = Superseded(floor: floor, horizon: instant(&rng, now: now, margin: margin), overlap: overlap)
            }
            if kind >= 7 { registry.tombstones[id] = instant(&rng, now: now, margin: margin) }
        }
        for owner in ownerPool.prefix(20) {
            registry.owners[owner] = OwnerRevocation(before: now - Int64(roll(&rng, 100_000)), horizon: instant(&rng, now: now, margin: margin))
        }
        return registry
    }

    /// One change of the kinds the registry makes, recorded in the chain's changed sets.
    static func change(_ chain: inout Chain, _ rng: inout SplitMix64, margin: Int64) {
        let now = chain.now
        let id = pick(&rng, idPool)!
        let owner = pick(&rng, ownerPool)!
        let old = chain.registry.superseded[id]
        var r = chain.registry
        let what: String
        var ofOwner = false
        switch roll(&rng, 13) {
        case 0, 1: // revoke / re-scope: the floor goes up (or is set), the overlap kept or cleared
            var row = old ?? Superseded(floor: 1, horizon: instant(&rng, now: now, margin: margin), overlap: nil)
            row.floor += 1 + UInt64(roll(&rng, 3))
            row.horizon = max(row.horizon, instant(&rng, now: now, margin: margin))
            if chance(&rng, 50) { row.overlap = nil }
            r.superseded[id] = row
            what = "revoke \(id) → floor \(row.floor) horizon \(row.horizon), overlap \(row.overlap.map { "\($0)" } ?? "none")"
        case 2, 3: // regenerate with an overlap (its generation below the floor, or — a broken row — not)
            var row = old ?? Superseded(floor: 1, horizon: instant(&rng, now: now, margin: margin), overlap: nil)
            row.floor += 1
            row.horizon = max(row.horizon, instant(&rng, now: now, margin: margin))
            let generation = chance(&rng, 80) ? row.floor - 1 : row.floor + UInt64(roll(&rng, 2))
            row.overlap = Overlap(generation: generation, until: instant(&rng, now: now, margin: margin))
            r.superseded[id] = row
            what = "regenerate \(id) → floor \(row.floor) horizon \(row.horizon), overlap \(row.overlap!)"
        case 4: // regenerate without an overlap
            var row = old ?? Superseded(floor: 1, horizon: instant(&rng, now: now, margin: margin), overlap: nil)
            row.floor += 1
            row.overlap = nil
            r.superseded[id] = row
            what = "regenerate \(id) → floor \(row.floor), no overlap"
        case 5: // the overlap ends early
            guard old?.overlap != nil else { return }
            r.superseded[id]!.overlap = nil
            what = "clear overlap of \(id)"
        case 6: // delete: a tombstone; the live row goes, or (a lagging registry) stays
            r.tombstones[id] = max(r.tombstones[id] ?? .min, instant(&rng, now: now, margin: margin))
            if chance(&rng, 70) { r.superseded[id] = nil }
            what = "delete \(id) → tombstone \(r.tombstones[id]!), superseded row \(r.superseded[id] == nil ? "removed" : "kept")"
        case 7: // a tombstone pruned from the registry (or the live row purged)
            if chance(&rng, 70) {
                guard r.tombstones[id] != nil else { return }
                r.tombstones[id] = nil
                what = "remove tombstone of \(id)"
            } else {
                guard old != nil else { return }
                r.superseded[id] = nil
                what = "remove superseded row of \(id)"
            }
        case 8: // revoke-all
            let before = now - Int64(roll(&rng, 100_000))
            r.owners[owner] = OwnerRevocation(before: max(before, r.owners[owner]?.before ?? .min),
                                              horizon: instant(&rng, now: now, margin: margin))
            what = "revoke-all \(owner) → \(r.owners[owner]!)"
            ofOwner = true
        case 9: // an owner revocation removed
            guard r.owners[owner] != nil else { return }
            r.owners[owner] = nil
            what = "remove revoke-all of \(owner)"
            ofOwner = true
        case 10: // a horizon (or overlap end) moves, either way
            let horizon = instant(&rng, now: now, margin: margin)
            switch roll(&rng, 4) {
            case 0:
                guard old != nil else { return }
                r.superseded[id]!.horizon = horizon
                what = "superseded horizon of \(id) → \(horizon)"
            case 1:
                guard old?.overlap != nil else { return }
                r.superseded[id]!.overlap!.until = horizon
                what = "overlap end of \(id) → \(horizon)"
            case 2:
                guard r.tombstones[id] != nil else { return }
                r.tombstones[id] = horizon
                what = "tombstone horizon of \(id) → \(horizon)"
            default:
                guard r.owners[owner] != nil else { return }
                r.owners[owner]!.horizon = horizon
                what = "owner horizon of \(owner) → \(horizon)"
                ofOwner = true
            }
        case 11: // a key named changed though nothing changed (or never existed): a no-op
            if chance(&rng, 50) { chain.changedIDs.insert(id) } else { chain.changedOwners.insert(owner) }
            chain.log.append("spurious change of \(id) / \(owner)")
            return
        default: // the floor lowered back (a registry restored from a backup) with a fresh overlap or none
            guard var row = old, row.floor > 2 else { return }
            row.floor -= 1
            row.overlap = chance(&rng, 50) ? Overlap(generation: row.floor - 1, until: instant(&rng, now: now, margin: margin)) : nil
            r.superseded[id] = row
            what = "lower floor of \(id) → \(row.floor), overlap \(row.overlap.map { "\($0)" } ?? "none")"
        }
        chain.registry = r
        if ofOwner { chain.changedOwners.insert(owner) } else { chain.changedIDs.insert(id) }
        chain.log.append(what)
    }

    /// What a random chain of publishes saw.
    struct Outcome {
        var mismatch: String?
        var steps = 0, zeroChangeSteps = 0, pruned = 0, staleRows = 0, overlapsListed = 0, overlapsDropped = 0, emptyLists = 0
    }

    /// A registry of 200 PATs and 20 owners changed over `steps` publishes; each list is signed
    /// both in full and incrementally from the previous incremental list (so an error carries
    /// over). `forget`: one changed id of each step is left out of the changed sets (a broken
    /// caller), to show the comparison catches it.
    func runChain(seed: UInt64, margin: Int64, steps: Int, forget: Bool = false) throws -> Outcome {
        var rng = SplitMix64(seed: seed)
        var chain = Chain()
        chain.registry = Self.initialRegistry(&rng, now: chain.now, margin: margin)
        var names: [EntryKey: String] = [:]
        for id in Self.idPool { names[RevocationList.tokenKey(id)] = id }
        for owner in Self.ownerPool { names[RevocationList.ownerKey(owner)] = owner }

        var sequence: UInt64 = 1
        let first = try full(chain.registry, Signing(sequence: sequence, now: Timestamp(seconds: chain.now), margin: margin))
        var base = try RevocationList(verifying: first.bytes, keys: keys)
        var listed = (tokens: first.listedTokens, owners: first.listedOwners)
        var outcome = Outcome()

        for step in 1...steps {
            chain.changedIDs = []
            chain.changedOwners = []
            chain.log = []
            // Time passes: not at all, a little, a lot, or exactly to some entry's prune instant.
            switch Self.roll(&rng, 10) {
            case 0: break
            case 1:
                let horizons = chain.registry.superseded.values.map(\.horizon) + chain.registry.tombstones.values
                    + chain.registry.owners.values.map(\.horizon) + chain.registry.superseded.values.compactMap { $0.overlap?.until }
                if let h = Self.pick(&rng, horizons.sorted()) { chain.now = max(chain.now, h + margin + Int64(Self.roll(&rng, 2))) }
            case 2: chain.now += Int64(Self.roll(&rng, 7200))
            default: chain.now += 1 + Int64(Self.roll(&rng, 600))
            }
            let changes = Self.roll(&rng, 9) // 0–8
            if changes == 0 { outcome.zeroChangeSteps += 1 }
            for _ in 0..<changes { Self.change(&chain, &rng, margin: margin) }
            var ids = chain.changedIDs
            if forget, let dropped = Self.pick(&rng, ids.sorted()) {
                ids.remove(dropped)
                chain.log.append("(forgotten: \(dropped))")
            }

            sequence += 1
            let s = Signing(sequence: sequence, now: Timestamp(seconds: chain.now), margin: margin)
            let expected = try full(chain.registry, s)
            let got = try incremental(chain.registry, base: base, ids: ids, owners: chain.changedOwners, s)
            outcome.steps = step
            if got.bytes != expected.bytes {
                outcome.mismatch = "seed \(seed), margin \(margin), step \(step) (now \(chain.now)); changes:\n  "
                    + chain.log.joined(separator: "\n  ") + "\n"
                    + difference(expected: expected.bytes, actual: got.bytes, names: names)
                return outcome
            }
            // The full build also counts rows whose entries an earlier list had already pruned
            // (a superseded row stays in the registry past its horizon); the incremental build
            // counts only entries of the previous list or of changed keys.
            let changedTokenKeys = Set(ids.map(RevocationList.tokenKey)), changedOwnerKeys = Set(chain.changedOwners.map(RevocationList.ownerKey))
            let stale = expected.prunedTokens.subtracting(listed.tokens).subtracting(changedTokenKeys).count
                + expected.prunedOwners.subtracting(listed.owners).subtracting(changedOwnerKeys).count
            #expect(forget || got.pruned == expected.pruned - stale,
                    "seed \(seed), margin \(margin), step \(step): pruned \(got.pruned), full build \(expected.pruned) of which \(stale) stale")

            let next = try RevocationList(verifying: got.bytes, keys: keys)
            outcome.pruned += got.pruned
            outcome.staleRows += stale
            outcome.overlapsListed += next.overlapEntryCount
            outcome.overlapsDropped += max(0, base.overlapEntryCount - next.overlapEntryCount)
            if next.tokenEntryCount + next.ownerEntryCount == 0 { outcome.emptyLists += 1 }
            base = next
            listed = (expected.listedTokens, expected.listedOwners)

            // The registry forgets tombstones and owner revocations once their entries are
            // pruned (as the publisher's removeTombstones/removeOwnerRevocations do): no change to
            // the list, so naming them changed or not must not matter.
            for (id, _) in chain.registry.tombstones where !expected.listedTokens.contains(RevocationList.tokenKey(id)) {
                chain.registry.tombstones[id] = nil
            }
            for (owner, _) in chain.registry.owners where !expected.listedOwners.contains(RevocationList.ownerKey(owner)) {
                chain.registry.owners[owner] = nil
            }
        }
        return outcome
    }

    // MARK: - 1. Property: incremental = full, chained

    @Test("chained incremental lists equal the full build byte for byte (300 random publishes a chain)",
          arguments: [(0x5EED_0001, 0), (0x5EED_0002, 0), (0x5EED_0003, 60), (0x5EED_0004, 60)] as [(UInt64, Int64)])
    func property(seed: UInt64, margin: Int64) throws {
        let outcome = try runChain(seed: seed, margin: margin, steps: 300)
        #expect(outcome.mismatch == nil, "\(outcome.mismatch ?? "")")
        #expect(outcome.steps == 300)
        // The chain went through what it is meant to cover.
        #expect(outcome.zeroChangeSteps > 0, "no step without changes")
        #expect(outcome.pruned > 0, "nothing was pruned")
        #expect(outcome.staleRows > 0, "no row outlived its pruned entry")
        #expect(outcome.overlapsListed > 0, "no list held an overlap")
        #expect(outcome.overlapsDropped > 0, "no overlap left a list")
    }

    @Test("the comparison catches a caller that forgets a changed id")
    func harnessCanFail() throws {
        let outcome = try runChain(seed: 0x5EED_0001, margin: 60, steps: 300, forget: true)
        #expect(outcome.mismatch != nil, "forgetting a changed id every step went unnoticed for \(outcome.steps) steps")
    }

    // MARK: - 2. Edge cases

    static let horizon = Fixture.now.adding(seconds: 30 * Fixture.day).seconds

    @Test("an empty base with changes: every new entry, the overlap too")
    func emptyBase() throws {
        var registry = Registry()
        let s1 = Signing(sequence: 1, now: Fixture.now, margin: 60)
        let base = try RevocationList(verifying: try full(registry, s1).bytes, keys: keys)
        #expect(base.tokenEntryCount + base.ownerEntryCount + base.overlapEntryCount == 0)
        registry.superseded["a-pat-0000000000000000"] = Superseded(floor: 3, horizon: Self.horizon,
                                                                   overlap: Overlap(generation: 2, until: Fixture.now.seconds + 3600))
        registry.superseded["b-pat-0000000000000000"] = Superseded(floor: 2, horizon: Self.horizon, overlap: nil)
        registry.tombstones["c-pat-0000000000000000"] = Self.horizon
        registry.tombstones["d-pat-0000000000000000"] = Fixture.now.seconds - 61 // pruned at once
        registry.owners["owner-a"] = OwnerRevocation(before: Fixture.now.seconds, horizon: Self.horizon)
        let ids = Set(registry.superseded.keys).union(registry.tombstones.keys)
        let s2 = Signing(sequence: 2, now: Fixture.now, margin: 60)
        let expected = try full(registry, s2)
        let got = try incremental(registry, base: base, ids: ids, owners: ["owner-a"], s2)
        #expect(got.bytes == expected.bytes)
        #expect(got.pruned == 1 && expected.pruned == 1)
        let list = try RevocationList(verifying: got.bytes, keys: keys)
        #expect(list.tokenEntryCount == 3 && list.ownerEntryCount == 1 && list.overlapEntryCount == 1)
    }

    @Test("changes that remove every entry give the empty list")
    func removeEverything() throws {
        var rng = SplitMix64(seed: 0x5EED_0E0E)
        var registry = Self.initialRegistry(&rng, now: Fixture.now.seconds, margin: 60)
        let base = try RevocationList(verifying: try full(registry, Signing(sequence: 1, now: Fixture.now, margin: 60)).bytes, keys: keys)
        #expect(base.tokenEntryCount > 100 && base.ownerEntryCount > 5 && base.overlapEntryCount > 5)
        let ids = Set(registry.superseded.keys).union(registry.tombstones.keys), owners = Set(registry.owners.keys)
        registry = Registry()
        let s = Signing(sequence: 2, now: Fixture.now.adding(seconds: 1), margin: 60)
        let expected = try full(registry, s)
        let got = try incremental(registry, base: base, ids: ids, owners: owners, s)
        #expect(got.bytes == expected.bytes)
        #expect(got.pruned == 0 && expected.pruned == 0)
        let list = try RevocationList(verifying: got.bytes, keys: keys)
        #expect(list.tokenEntryCount + list.ownerEntryCount + list.overlapEntryCount == 0)
    }

    @Test("a changed key in neither the base nor the builder changes nothing")
    func unknownChangedKey() throws {
        var registry = Registry()
        registry.superseded["kept-pat-0000000000000"] = Superseded(floor: 4, horizon: Self.horizon,
                                                                   overlap: Overlap(generation: 3, until: Self.horizon))
        registry.owners["kept-owner"] = OwnerRevocation(before: Fixture.now.seconds, horizon: Self.horizon)
        let base = try RevocationList(verifying: try full(registry, Signing(sequence: 1, now: Fixture.now, margin: 0)).bytes, keys: keys)
        let s = Signing(sequence: 2, now: Fixture.now, margin: 0)
        let got = try incremental(registry, base: base, ids: ["never-seen-pat-0000000"], owners: ["never-seen-owner"], s)
        #expect(got.bytes == (try full(registry, s)).bytes)
        #expect(got.pruned == 0)
        // Keys sorting before, between and after the held ones, as raw keys.
        let raw: Set<EntryKey> = [EntryKey(high: 0, low: 0), EntryKey(high: .max, low: .max), EntryKey(high: 1 << 63, low: 7)]
        let byKey = try RevocationList.Builder().sign(updating: base, changedTokens: raw, changedOwners: raw, now: s.now, with: key,
                                                      sequence: 2, issuedAt: s.issuedAt, nextUpdate: s.nextUpdate, pruneMargin: 0)
        #expect(byKey.bytes == got.bytes)
    }

    @Test("a key the builder holds counts as changed though the changed sets do not name it")
    func builderKeysCount() throws {
        var registry = Registry()
        registry.superseded["named-pat-000000000000"] = Superseded(floor: 2, horizon: Self.horizon, overlap: nil)
        registry.superseded["unnamed-pat-0000000000"] = Superseded(floor: 3, horizon: Self.horizon, overlap: nil)
        registry.owners["unnamed-owner"] = OwnerRevocation(before: Fixture.now.seconds, horizon: Self.horizon)
        let base = try RevocationList(verifying: try full(registry, Signing(sequence: 1, now: Fixture.now, margin: 60)).bytes, keys: keys)
        registry.superseded["unnamed-pat-0000000000"] = Superseded(floor: 5, horizon: Self.horizon,
                                                                   overlap: Overlap(generation: 4, until: Self.horizon))
        registry.owners["unnamed-owner"]!.before += 10
        registry.superseded["named-pat-000000000000"] = nil
        let s = Signing(sequence: 2, now: Fixture.now, margin: 60)
        let got = try registry.builder(ids: ["unnamed-pat-0000000000"], owners: ["unnamed-owner"])
            .sign(updating: base, changedTokens: [RevocationList.tokenKey("named-pat-000000000000")], changedOwners: [], now: s.now,
                  with: key, sequence: s.sequence, issuedAt: s.issuedAt, nextUpdate: s.nextUpdate, pruneMargin: s.margin)
        #expect(got.bytes == (try full(registry, s)).bytes)

        // A key the builder holds whose entry is pruned at once: its entry in the base goes too
        // (the keys are taken before pruning).
        var pruning = Registry()
        pruning.superseded["x-pat-0000000000000000"] = Superseded(floor: 2, horizon: Fixture.now.seconds + 1000, overlap: nil)
        let before = try RevocationList(verifying: try full(pruning, Signing(sequence: 1, now: Fixture.now, margin: 60)).bytes, keys: keys)
        pruning.superseded["x-pat-0000000000000000"] = Superseded(floor: 2, horizon: Fixture.now.seconds - 100, overlap: nil)
        let later = Signing(sequence: 2, now: Fixture.now, margin: 60)
        let dropped = try pruning.builder(ids: ["x-pat-0000000000000000"], owners: [])
            .sign(updating: before, changedTokens: [], changedOwners: [], now: later.now, with: key, sequence: later.sequence,
                  issuedAt: later.issuedAt, nextUpdate: later.nextUpdate, pruneMargin: later.margin)
        #expect(dropped.bytes == (try full(pruning, later)).bytes)
    }

    @Test("a carried overlap goes when its PAT's token entry is pruned, and alone when it ends")
    func carriedOverlapPruned() throws {
        let id = "overlapping-pat-000000", other = "other-pat-000000000000"
        var registry = Registry()
        // The overlap outlives the token entry's horizon (a row the registry should not hold,
        // but the full build drops it: no overlap without its token entry).
        registry.superseded[id] = Superseded(floor: 3, horizon: Fixture.now.seconds + 100,
                                             overlap: Overlap(generation: 2, until: Fixture.now.seconds + 10_000))
        registry.superseded[other] = Superseded(floor: 5, horizon: Self.horizon,
                                                overlap: Overlap(generation: 4, until: Fixture.now.seconds + 50))
        for margin in [0, 60] as [Int64] {
            let base = try RevocationList(verifying: try full(registry, Signing(sequence: 1, now: Fixture.now, margin: margin)).bytes, keys: keys)
            #expect(base.overlapEntryCount == 2)
            // `other`'s overlap has ended (its token entry stays); `id`'s token entry is pruned.
            for now in [Fixture.now.seconds + 100 + margin + 1, Fixture.now.seconds + 100 + margin] {
                let s = Signing(sequence: 2, now: Timestamp(seconds: now), margin: margin)
                let expected = try full(registry, s)
                let got = try incremental(registry, base: base, ids: [], owners: [], s)
                #expect(got.bytes == expected.bytes, "margin \(margin), now \(now)")
                #expect(got.pruned == expected.pruned, "margin \(margin), now \(now)")
                let list = try RevocationList(verifying: got.bytes, keys: keys)
                let pruned = now > Fixture.now.seconds + 100 + margin
                #expect(list.floor(of: id) == (pruned ? nil : 3) && (list.overlap(of: id) == nil) == pruned)
                #expect(list.floor(of: other) == 5 && list.overlap(of: other) == nil)
            }
        }
    }

    @Test("an overlap goes when its PAT is deleted, its live row kept or not")
    func overlapOfDeletedPAT() throws {
        let id = "deleted-pat-0000000000"
        var registry = Registry()
        registry.superseded[id] = Superseded(floor: 3, horizon: Self.horizon, overlap: Overlap(generation: 2, until: Self.horizon))
        registry.superseded["bystander-pat-00000000"] = Superseded(floor: 2, horizon: Self.horizon,
                                                                   overlap: Overlap(generation: 1, until: Self.horizon))
        let base = try RevocationList(verifying: try full(registry, Signing(sequence: 1, now: Fixture.now, margin: 60)).bytes, keys: keys)
        #expect(base.overlap(of: id)?.generation == 2)
        for keepLiveRow in [true, false] {
            var deleted = registry
            deleted.tombstones[id] = Fixture.now.seconds + 3600
            if !keepLiveRow { deleted.superseded[id] = nil }
            let s = Signing(sequence: 2, now: Fixture.now.adding(seconds: 5), margin: 60)
            let got = try incremental(deleted, base: base, ids: [id], owners: [], s)
            #expect(got.bytes == (try full(deleted, s)).bytes, "live row kept: \(keepLiveRow)")
            let list = try RevocationList(verifying: got.bytes, keys: keys)
            #expect(list.floor(of: id) == UInt64.max && list.overlap(of: id) == nil && list.overlapEntryCount == 1)
        }
    }

    @Test("a base read through deltas (held as changes on top of an older list) is carried the same")
    func baseFromDeltas() throws {
        var registry = Registry()
        registry.superseded["first-pat-000000000000"] = Superseded(floor: 2, horizon: Self.horizon, overlap: nil)
        let s1 = Signing(sequence: 1, now: Fixture.now, margin: 60)
        let list1 = try RevocationList(verifying: try full(registry, s1).bytes, keys: keys)
        registry.superseded["second-pat-00000000000"] = Superseded(floor: 3, horizon: Self.horizon,
                                                                   overlap: Overlap(generation: 2, until: Self.horizon))
        registry.owners["owner-b"] = OwnerRevocation(before: Fixture.now.seconds, horizon: Self.horizon)
        let list2 = try RevocationList(verifying: try full(registry, Signing(sequence: 2, now: Fixture.now, margin: 60)).bytes, keys: keys)
        let held = try list1.applying(RevocationDelta(verifying: RevocationDelta.make(from: list1, to: list2, signedWith: key), keys: keys),
                                      compactAt: 1_000)
        #expect(held.bytes == list2.bytes)
        registry.tombstones["first-pat-000000000000"] = Self.horizon
        registry.superseded["first-pat-000000000000"] = nil
        let s3 = Signing(sequence: 3, now: Fixture.now.adding(seconds: 10), margin: 60)
        let got = try incremental(registry, base: held, ids: ["first-pat-000000000000"], owners: [], s3)
        #expect(got.bytes == (try full(registry, s3)).bytes)
    }

    @Test("header arguments are checked as by the full sign")
    func headerChecks() throws {
        let base = try RevocationList(verifying: try full(Registry(), Signing(sequence: 1, now: Fixture.now, margin: 60)).bytes, keys: keys)
        let builder = RevocationList.Builder()
        func attempt(sequence: UInt64 = 2, issuedAt: Timestamp = Fixture.now, nextUpdate: Timestamp = Fixture.now.adding(seconds: 60),
                     margin: Int64 = 60) -> PATKitError? {
            let incremental = patError {
                try builder.sign(updating: base, changedTokens: [], changedOwners: [], now: Fixture.now, with: key, sequence: sequence,
                                 issuedAt: issuedAt, nextUpdate: nextUpdate, pruneMargin: margin)
            }
            let whole = patError {
                try builder.sign(with: key, sequence: sequence, issuedAt: issuedAt, nextUpdate: nextUpdate, pruneMargin: margin)
            }
            #expect(incremental?.isInvalidArgument == whole?.isInvalidArgument)
            return incremental
        }
        #expect(attempt() == nil)
        #expect(attempt(sequence: 0)?.isInvalidArgument == true)
        #expect(attempt(nextUpdate: Fixture.now)?.isInvalidArgument == true)
        #expect(attempt(margin: -1)?.isInvalidArgument == true)
        #expect(attempt(margin: RevocationList.maxPruneMargin + 1)?.isInvalidArgument == true)
    }

    // MARK: - 3. The contract: a missed change stays

    @Test("a changed key left out of the changed sets keeps its old entry (not silently fixed)")
    func missedChangeStays() throws {
        let id = "missed-pat-00000000000", seen = "seen-pat-0000000000000"
        var registry = Registry()
        registry.superseded[id] = Superseded(floor: 3, horizon: Self.horizon, overlap: Overlap(generation: 2, until: Self.horizon))
        registry.superseded[seen] = Superseded(floor: 2, horizon: Self.horizon, overlap: nil)
        registry.owners["missed-owner"] = OwnerRevocation(before: Fixture.now.seconds, horizon: Self.horizon)
        let base = try RevocationList(verifying: try full(registry, Signing(sequence: 1, now: Fixture.now, margin: 60)).bytes, keys: keys)
        // The PAT is purged and the owner revocation removed; only `seen` is reported changed.
        registry.superseded[id] = nil
        registry.owners["missed-owner"] = nil
        registry.superseded[seen]!.floor = 4
        let s = Signing(sequence: 2, now: Fixture.now, margin: 60)
        let expected = try full(registry, s)
        let missed = try incremental(registry, base: base, ids: [seen], owners: [], s)
        #expect(missed.bytes != expected.bytes)
        let list = try RevocationList(verifying: missed.bytes, keys: keys)
        #expect(list.floor(of: id) == 3 && list.overlap(of: id)?.generation == 2, "the old entry stays as the base had it")
        #expect(list.ownerEntryCount == 1)
        #expect(list.floor(of: seen) == 4)
        // Named, they go.
        #expect(try incremental(registry, base: base, ids: [seen, id], owners: ["missed-owner"], s).bytes == expected.bytes)
        // A raised floor missed stays at the old floor too.
        registry.superseded[id] = Superseded(floor: 9, horizon: Self.horizon, overlap: nil)
        let raised = try incremental(registry, base: base, ids: [seen], owners: ["missed-owner"], s)
        #expect(raised.bytes != (try full(registry, s)).bytes)
        #expect(try RevocationList(verifying: raised.bytes, keys: keys).floor(of: id) == 3)
    }
}
