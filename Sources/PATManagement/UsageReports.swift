import PATKit
import PATRegistry

/// What storing a usage report did.
public struct UsageReceipt: Sendable, Equatable {
    /// Entries stored.
    public var recorded: Int
    /// Entries about ids the registry has no live record of (deleted, unknown, `pat issue`d): ignored.
    public var unknown: Int
    /// `personalAccessToken.usedFromNewAddress` events recorded.
    public var newAddresses: Int

    public init(recorded: Int = 0, unknown: Int = 0, newAddresses: Int = 0) {
        self.recorded = recorded
        self.unknown = unknown
        self.newAddresses = newAddresses
    }
}

extension PATManagement {
    /// Entries a report may carry.
    public static let maxUsageEntries = 5000
    /// Entries stored per transaction (a report of many PATs takes several short transactions).
    static let usageEntriesPerTransaction = 500
    /// The longest client address stored (an IPv6 literal with a zone is 45 bytes or so).
    public static let maxAddressBytes = 64

    /// Stores what an edge counted (`pats:report_usage`, or an admin): each PAT's last use, its
    /// client address and outcome, uses per day. Entries about ids without a live record are
    /// counted and ignored. With `policy.notifyNewAddresses`, a use from a client address never
    /// seen for that PAT (and not its first) records `personalAccessToken.usedFromNewAddress`.
    ///
    /// The report is telemetry, not authority: it changes nothing a verifier sees, and the
    /// reporter is trusted only to say what its edge saw. Times more than 5 minutes ahead of the
    /// issuer's clock are refused.
    public func recordUsage(_ entries: [UsageUpdate], by caller: Caller) async throws(ManagementError) -> UsageReceipt {
        try caller.require(.reportUsage)
        guard entries.count <= PATManagement.maxUsageEntries else {
            throw ManagementError(.invalidInput, field: "entries", "holds more than \(PATManagement.maxUsageEntries) entries")
        }
        let now = clock()
        for (index, entry) in entries.enumerated() { try checkUsage(entry, field: "entries[\(index)]", now: now) }
        let principal = caller.principal, policy = self.policy
        var receipt = UsageReceipt()
        var start = entries.startIndex
        while start < entries.endIndex {
            let end = min(start + PATManagement.usageEntriesPerTransaction, entries.endIndex)
            let chunk = Array(entries[start..<end])
            let part = try await change(id: nil) { tx in
                var receipt = UsageReceipt()
                for entry in chunk {
                    switch try await tx.recordUsage(entry, addressLimit: policy.addressesPerPAT) {
                    case .unknownPAT:
                        receipt.unknown += 1
                    case .recorded(let newAddress):
                        receipt.recorded += 1
                        guard newAddress, policy.notifyNewAddresses, let address = entry.lastUsedFrom,
                              let record = try await tx.record(id: entry.id) else { continue }
                        var data = record.json(at: now)
                        data.set("address", .string(address))
                        data.set("usedAt", .string(entry.lastUsedAt.rfc3339))
                        _ = try await tx.recordChange(ManagementEvent.usedFromNewAddress.change(data: data, actor: principal, at: now))
                        receipt.newAddresses += 1
                    }
                }
                return receipt
            }
            receipt.recorded += part.recorded
            receipt.unknown += part.unknown
            receipt.newAddresses += part.newAddresses
            start = end
        }
        if receipt.newAddresses > 0 { onChange() }
        return receipt
    }

    /// Uses per day of a PAT the caller may read, oldest first.
    public func usageDays(id: String, by caller: Caller) async throws(ManagementError) -> [UsageDay] {
        try caller.require(.read, id: id)
        try Identifier.checkPATID(id)
        return try await read { tx in
            _ = try await PATManagement.visibleRecord(id, caller: caller, tx)
            return try await tx.usageDays(id: id)
        }
    }

    private func checkUsage(_ entry: UsageUpdate, field: String, now: Timestamp) throws(ManagementError) {
        guard PATClaims.isValidID(entry.id) else { throw ManagementError(.invalidInput, field: "\(field).id", "is not a PAT id") }
        let latest = now.adding(seconds: 300)
        guard entry.firstUsedAt <= entry.lastUsedAt, entry.lastUsedAt <= latest, entry.firstUsedAt.seconds >= 0 else {
            throw ManagementError(.invalidInput, field: "\(field).lastUsedAt",
                                  "must not be before firstUsedAt nor more than 5 minutes ahead of the issuer's clock (\(now))")
        }
        if let address = entry.lastUsedFrom {
            guard !address.isEmpty, address.utf8.count <= PATManagement.maxAddressBytes,
                  address.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
                throw ManagementError(.invalidInput, field: "\(field).lastUsedFrom",
                                      "must be 1–\(PATManagement.maxAddressBytes) visible ASCII characters (an IP address)")
            }
        }
        guard !entry.lastOutcome.isEmpty, entry.lastOutcome.utf8.count <= 32,
              entry.lastOutcome.utf8.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x5F }) else {
            throw ManagementError(.invalidInput, field: "\(field).lastOutcome", "must be accepted or a refusal code such as expired")
        }
        guard !entry.days.isEmpty, entry.days.count <= 8, Set(entry.days.map(\.day)).count == entry.days.count,
              entry.days.allSatisfy({ $0.uses >= 1 && $0.uses <= 1 << 40 }) else {
            throw ManagementError(.invalidInput, field: "\(field).days", "must hold 1–8 distinct days, each with 1 to 2^40 uses")
        }
        let lastDay = UsageDay.day(of: entry.lastUsedAt), firstDay = UsageDay.day(of: entry.firstUsedAt)
        guard entry.days.allSatisfy({ $0.day >= firstDay && $0.day <= lastDay }) else {
            throw ManagementError(.invalidInput, field: "\(field).days", "must lie between firstUsedAt and lastUsedAt")
        }
    }
}
