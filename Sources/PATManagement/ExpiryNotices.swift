import Logging
import PATKit
import PATRegistry
import ServiceLifecycle
import Synchronization

extension PATManagement {
    /// Lead times of `personalAccessToken.expiring` by default: 7 days and 1 day ahead.
    public static let defaultExpiryLeadTimes = [TimeSpan(seconds: 7 * 86_400), TimeSpan(seconds: 86_400)]

    /// Records `personalAccessToken.expiring` for every active PAT (its lineage live) whose expiry is within a lead
    /// time and that was not warned yet for that lead time and expiry: once per PAT, expiry and
    /// lead time, on every node and across restarts (the registry records each notice —
    /// `claimExpiryNotice` — in the transaction that records its event; a second node or a
    /// restarted one finds it taken). When several lead times are due at once (a PAT created a
    /// day before it expires), one event is sent, for the shortest; the longer ones are marked
    /// sent. A regenerate with a new expiry is warned about again. Returns the events recorded.
    @discardableResult
    public func sendExpiryNotices(leadTimes: [TimeSpan] = PATManagement.defaultExpiryLeadTimes) async throws(ManagementError) -> Int {
        let leads = Array(Set(leadTimes.map(\.seconds).filter { $0 > 0 })).sorted()
        guard let longest = leads.last else { return 0 }
        let now = clock()
        let candidates = try await read { tx in try await tx.expiringRecords(after: now, through: now.adding(seconds: longest)) }
        // What is due and not yet sent: the shortest lead time not below the time left.
        let due = candidates.compactMap { candidate -> (PATRecord, [Int64])? in
            let left = candidate.record.expiresAt.seconds - now.seconds
            let dueLeads = leads.filter { $0 >= left }
            guard let shortest = dueLeads.first, !candidate.noticed.contains(shortest) else { return nil }
            return (candidate.record, dueLeads)
        }
        var sent = 0
        var start = 0
        while start < due.count {
            let chunk = Array(due[start..<min(start + 200, due.count)])
            sent += try await change(id: nil) { tx in
                var sent = 0
                for (candidate, dueLeads) in chunk {
                    // Still the same expiry and still active (a change may have come in between), its
                    // lineage included: a PAT whose ancestor died is no longer worth renewing.
                    guard let stored = try await tx.record(id: candidate.id), stored.expiresAt == candidate.expiresAt else { continue }
                    let record = try await tx.derivingRevokedAncestor(stored, now: now)
                    guard record.status(at: now) == .active, let shortest = dueLeads.first else { continue }
                    var claimed = false
                    for lead in dueLeads {
                        let fresh = try await tx.claimExpiryNotice(id: record.id, expiresAt: record.expiresAt, leadSeconds: lead, at: now)
                        if lead == shortest { claimed = fresh }
                    }
                    guard claimed else { continue }
                    var data = record.json(at: now)
                    var notice = JSONObject()
                    notice.set("leadTime", .string(formatDuration(shortest)))
                    notice.set("leadSeconds", .number(String(shortest)))
                    notice.set("expiresInSeconds", .number(String(record.expiresAt.seconds - now.seconds)))
                    data.set("expiryNotice", .object(notice))
                    _ = try await tx.recordChange(ManagementEvent.expiring.change(data: data, actor: .localOperator, at: now))
                    sent += 1
                }
                return sent
            }
            start += chunk.count
        }
        // Notices of expiries long past are not needed any more.
        _ = try await change(id: nil) { tx in try await tx.removeExpiryNotices(expiresBefore: now.adding(seconds: -86_400)) }
        if sent > 0 { onChange() }
        return sent
    }
}

/// Runs `PATManagement.sendExpiryNotices` at start and then every `interval`, as a `Service`
/// beside `pat serve`'s webhook dispatcher. Every node may run one: each notice is sent once.
public final class ExpiryNotifier: Service, Sendable {
    public let service: PATManagement
    public let leadTimes: [TimeSpan]
    public let interval: Duration
    private let logger: Logger
    private let rounds = AwaitableCounter()
    private let sent = Mutex(0)

    public init(service: PATManagement, leadTimes: [TimeSpan] = PATManagement.defaultExpiryLeadTimes,
                interval: Duration = .seconds(60), logger: Logger = Logger(label: "patkit.expiry")) {
        self.service = service
        self.leadTimes = leadTimes
        self.interval = interval
        self.logger = logger
    }

    /// Events recorded by this notifier so far.
    public var sentCount: Int { sent.withLock { $0 } }

    /// Returns once `count` rounds have finished (successfully or not). Throws
    /// `CancellationError` when the task is cancelled: bound the wait.
    public func waitUntilRounds(_ count: Int) async throws {
        try await rounds.wait(atLeast: UInt64(max(0, count)))
    }

    /// One round now.
    @discardableResult
    public func runOnce() async -> Int {
        defer { rounds.increment() }
        do {
            let count = try await service.sendExpiryNotices(leadTimes: leadTimes)
            sent.withLock { $0 += count }
            if count > 0 { logger.info("expiry notices recorded", metadata: ["count": "\(count)"]) }
            return count
        } catch {
            logger.warning("cannot record expiry notices; retrying next round", metadata: ["error": "\(error)"])
            return 0
        }
    }

    public func run() async throws {
        let interval = self.interval
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await self.runOnce()
                do { try await Task.sleep(for: interval) } catch { return }
            }
        }
    }
}
