extension RevocationList {
    /// Collects entries and signs a list. Merging keeps the strongest rule: the highest floor,
    /// the latest revoke-all instant, the latest horizon; an overlap is replaced by a newer one.
    public struct Builder: Sendable {
        var tokenEntries: [EntryKey: (floor: UInt64, horizon: Int64)] = [:]
        var ownerEntries: [EntryKey: (before: Int64, horizon: Int64)] = [:]
        var overlapEntries: [EntryKey: (generation: UInt64, until: Int64)] = [:]

        public init() {}

        public var tokenEntryCount: Int { tokenEntries.count }
        public var ownerEntryCount: Int { ownerEntries.count }
        public var overlapEntryCount: Int { overlapEntries.count }

        /// Makes room for this many entries at once (a publisher knows how many it will add):
        /// at 1,000,000 entries, growing the tables step by step costs about 0.3 s.
        public mutating func reserveCapacity(tokens: Int, owners: Int = 0) {
            tokenEntries.reserveCapacity(tokens)
            ownerEntries.reserveCapacity(owners)
        }

        /// Generations of PAT `id` below `floor` are dead until `horizon` (their latest `exp`).
        public mutating func revoke(id: String, below floor: UInt64, horizon: Timestamp) {
            revoke(key: RevocationList.tokenKey(id), below: floor, horizon: horizon)
        }

        public mutating func revoke(key: EntryKey, below floor: UInt64, horizon: Timestamp) {
            let old = tokenEntries[key]
            tokenEntries[key] = (max(floor, old?.floor ?? 0), max(horizon.seconds, old?.horizon ?? .min))
        }

        /// Every generation of PAT `id` is dead.
        public mutating func delete(id: String, horizon: Timestamp) {
            revoke(id: id, below: UInt64.max, horizon: horizon)
        }

        /// Every PAT of `subject` issued before `before` is dead until `horizon`.
        public mutating func revokeAll(subject: String, issuedBefore before: Timestamp, horizon: Timestamp) {
            let key = RevocationList.ownerKey(subject)
            let old = ownerEntries[key]
            ownerEntries[key] = (max(before.seconds, old?.before ?? .min), max(horizon.seconds, old?.horizon ?? .min))
        }

        /// Generation `generation` of PAT `id`, though below the floor, stays valid until `until`
        /// (the end of a regenerate's overlap; at most one overlap a PAT: this replaces any
        /// other). Written only while the PAT's token entry has a higher floor and is not a
        /// deletion (`sign` drops it otherwise).
        public mutating func keep(id: String, generation: UInt64, until: Timestamp) {
            overlapEntries[RevocationList.tokenKey(id)] = (generation, until.seconds)
        }

        /// Drops entries whose horizon is more than `margin` seconds past: the tokens they kill
        /// have expired even for a verifier with that much clock-skew leeway; and overlaps that
        /// ended that long ago. Sign with the same margin (`sign(…, pruneMargin:)`), which
        /// verifiers then hold their leeway to.
        @discardableResult
        public mutating func prune(now: Timestamp, margin: Int64 = RevocationList.defaultPruneMargin) -> Int {
            let before = tokenEntries.count + ownerEntries.count
            let cutoff = now.adding(seconds: -max(0, margin)).seconds
            tokenEntries = tokenEntries.filter { $0.value.horizon >= cutoff }
            ownerEntries = ownerEntries.filter { $0.value.horizon >= cutoff }
            overlapEntries = overlapEntries.filter { $0.value.until >= cutoff }
            return before - tokenEntries.count - ownerEntries.count
        }

        /// The overlaps a list may carry: each for a generation below its PAT's floor, of a PAT
        /// not deleted (an overlap never revives anything else).
        var effectiveOverlaps: [(key: EntryKey, value: (generation: UInt64, until: Int64))] {
            overlapEntries.filter { key, value in
                guard let token = tokenEntries[key] else { return false }
                return token.floor != UInt64.max && value.generation < token.floor
            }.sorted { $0.key < $1.key }
        }

        /// What every signed list's header must satisfy.
        static func checkSigning(sequence: UInt64, issuedAt: Timestamp, nextUpdate: Timestamp, pruneMargin: Int64) throws(PATKitError) {
            try SignedDocument.checkSequence(sequence, "revocation list")
            guard issuedAt < nextUpdate else { throw .invalidArgument("next-update must be after the issue time") }
            guard pruneMargin >= 0, pruneMargin <= RevocationList.maxPruneMargin else {
                throw .invalidArgument("prune margin must be 0–\(RevocationList.maxPruneMargin) seconds")
            }
        }

        /// The signed binary list. `pruneMargin` is the margin entries were pruned with (see
        /// `prune(now:margin:)`): verifiers refuse the list when their leeway exceeds it.
        public func sign(with key: SecretKey, sequence: UInt64, issuedAt: Timestamp, nextUpdate: Timestamp,
                         pruneMargin: Int64 = RevocationList.defaultPruneMargin) throws(PATKitError) -> [UInt8] {
            try Builder.checkSigning(sequence: sequence, issuedAt: issuedAt, nextUpdate: nextUpdate, pruneMargin: pruneMargin)
            let overlaps = effectiveOverlaps
            var out = RevocationList.header(signer: key.id, sequence: sequence, issuedAt: issuedAt, nextUpdate: nextUpdate,
                                            pruneMargin: pruneMargin, counts: (tokenEntries.count, ownerEntries.count, overlaps.count))
            out.reserveCapacity(out.count + (tokenEntries.count + ownerEntries.count + overlaps.count) * RevocationList.entrySize + 64)
            for (k, v) in tokenEntries.sorted(by: { $0.key < $1.key }) {
                k.append(to: &out)
                out.appendLE(v.floor)
                out.appendLE(UInt64(bitPattern: v.horizon))
            }
            for (k, v) in ownerEntries.sorted(by: { $0.key < $1.key }) {
                k.append(to: &out)
                out.appendLE(UInt64(bitPattern: v.before))
                out.appendLE(UInt64(bitPattern: v.horizon))
            }
            for (k, v) in overlaps {
                k.append(to: &out)
                out.appendLE(v.generation)
                out.appendLE(UInt64(bitPattern: v.until))
            }
            let message = out.withUnsafeBytes { RevocationList.signedMessage($0) }
            out += message.withUnsafeBytes { key.sign($0) }
            return out
        }
    }
}
