import PATKit
import PATRegistry

extension RegistryTransaction {
    /// `records` with `revokedAncestor` derived: the first ancestor in each lineage that the
    /// registry no longer holds valid at `now` — deleted, or its generation below its floor and
    /// not kept by an overlap — exactly what makes an edge refuse the token (`ancestor_revoked`)
    /// at the next list. One read per distinct ancestor (the records themselves serve as ancestors
    /// first); records without lineage cost nothing.
    func derivingRevokedAncestors(_ records: [PATRecord], now: Timestamp) async throws -> [PATRecord] {
        guard records.contains(where: { !$0.lineage.isEmpty }) else { return records }
        // PAT ids are ASCII (`PATClaims.isValidID`): String equality is byte equality for them.
        var known: [String: PATRecord?] = [:]
        for record in records { known[record.id] = record }
        var derived = records
        for index in derived.indices where !derived[index].lineage.isEmpty {
            derived[index].revokedAncestor = nil
            for link in derived[index].lineage {
                let ancestor: PATRecord?
                if let cached = known[link.id] { ancestor = cached } else {
                    ancestor = try await record(id: link.id)
                    known[link.id] = .some(ancestor)
                }
                guard let ancestor, ancestor.isLive(generation: link.generation, at: now) else {
                    derived[index].revokedAncestor = link
                    break
                }
            }
        }
        return derived
    }

    /// The record with `revokedAncestor` derived.
    func derivingRevokedAncestor(_ record: PATRecord, now: Timestamp) async throws -> PATRecord {
        try await derivingRevokedAncestors([record], now: now)[0]
    }
}
