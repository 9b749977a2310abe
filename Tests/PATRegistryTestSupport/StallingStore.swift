import PATRegistry
import Synchronization

/// A store that pauses (randomly) after every read inside a transaction, so that concurrent transactions
/// on other connections or nodes overlap in the read-then-write window a missing lock would
/// leave open. The pause widens races; it is never what a test asserts on.
package final class StallingStore: PATRegistryStore {
    package let inner: any PATRegistryStore
    package let pause: Duration
    /// Awaited after every read, before the pause (e.g. a gate a test opens).
    package let afterRead: @Sendable () async -> Void

    package init(_ inner: any PATRegistryStore, pause: Duration = .milliseconds(3),
                 afterRead: @escaping @Sendable () async -> Void = {}) {
        self.inner = inner
        self.pause = pause
        self.afterRead = afterRead
    }

    package func read<T: Sendable>(_ body: @Sendable (any RegistryTransaction) async throws -> T) async throws -> T {
        let pause = self.pause, afterRead = self.afterRead
        return try await inner.read { tx in try await body(StallingTransaction(inner: tx, pause: pause, afterRead: afterRead)) }
    }

    package func write<T: Sendable>(_ body: @Sendable (any RegistryTransaction) async throws -> T) async throws -> T {
        let pause = self.pause, afterRead = self.afterRead
        return try await inner.write { tx in try await body(StallingTransaction(inner: tx, pause: pause, afterRead: afterRead)) }
    }

    package func externalChanges() -> AsyncStream<Void> { inner.externalChanges() }
    package func close() async { await inner.close() }
}

struct StallingTransaction: RegistryTransaction {
    let inner: any RegistryTransaction
    let pause: Duration
    let afterRead: @Sendable () async -> Void

    /// The value read, after a pause of 0 to 2 × `pause` (random, so that transactions that
    /// began in one order also reach their next step in the other).
    private func stalled<T>(_ value: T) async throws -> T {
        await afterRead()
        try await Task.sleep(for: pause * Double.random(in: 0...2))
        return value
    }

    func record(id: String) async throws -> PATRecord? { try await stalled(try await inner.record(id: id)) }
    func record(owner: String, name: String) async throws -> PATRecord? {
        try await stalled(try await inner.record(owner: owner, name: name))
    }
    func lockOwner(_ owner: String) async throws { try await stalled(try await inner.lockOwner(owner)) }
    func lockRecord(id: String) async throws -> PATRecord? { try await stalled(try await inner.lockRecord(id: id)) }
    func records(owner: String?, status: StatusFilter, now: Timestamp) async throws -> [PATRecord] {
        try await stalled(try await inner.records(owner: owner, status: status, now: now))
    }
    func recordCount() async throws -> Int { try await inner.recordCount() }
    func insert(_ record: PATRecord) async throws { try await inner.insert(record) }
    func update(_ record: PATRecord) async throws { try await inner.update(record) }
    func removeRecord(id: String) async throws { try await inner.removeRecord(id: id) }
    func supersededEntries() async throws -> [SupersededEntry] { try await stalled(try await inner.supersededEntries()) }
    func stampListChanges(_ sequence: UInt64, forgettingThrough: UInt64) async throws {
        try await inner.stampListChanges(sequence, forgettingThrough: forgettingThrough)
    }
    func listChanges(after sequence: UInt64) async throws -> ListChanges { try await stalled(try await inner.listChanges(after: sequence)) }
    func tombstone(id: String) async throws -> Tombstone? { try await stalled(try await inner.tombstone(id: id)) }
    func insertTombstone(_ tombstone: Tombstone) async throws { try await inner.insertTombstone(tombstone) }
    func tombstones() async throws -> [Tombstone] { try await stalled(try await inner.tombstones()) }
    func removeTombstones(horizonBefore cutoff: Timestamp) async throws -> Int { try await inner.removeTombstones(horizonBefore: cutoff) }
    func ownerRevocation(owner: String) async throws -> OwnerRevocation? {
        try await stalled(try await inner.ownerRevocation(owner: owner))
    }
    func saveOwnerRevocation(_ revocation: OwnerRevocation) async throws { try await inner.saveOwnerRevocation(revocation) }
    func ownerRevocations() async throws -> [OwnerRevocation] { try await stalled(try await inner.ownerRevocations()) }
    func removeOwnerRevocations(horizonBefore cutoff: Timestamp) async throws -> Int {
        try await inner.removeOwnerRevocations(horizonBefore: cutoff)
    }
    func publishSequence() async throws -> UInt64 { try await stalled(try await inner.publishSequence()) }
    func setPublishSequence(_ sequence: UInt64) async throws { try await inner.setPublishSequence(sequence) }
    func recordChange(_ event: ChangeEvent) async throws -> ChangeEvent { try await inner.recordChange(event) }
    func changeCounter() async throws -> UInt64 { try await inner.changeCounter() }
    func events(after id: Int64, limit: Int) async throws -> [ChangeEvent] { try await inner.events(after: id, limit: limit) }
    func removeEvents(_ ids: [Int64]) async throws { try await inner.removeEvents(ids) }
    func claimEvents(claimant: String, lease: Duration, limit: Int) async throws -> [ChangeEvent] {
        try await stalled(try await inner.claimEvents(claimant: claimant, lease: lease, limit: limit))
    }
    func renewClaims(_ ids: [Int64], claimant: String, lease: Duration) async throws -> [Int64] {
        try await inner.renewClaims(ids, claimant: claimant, lease: lease)
    }
    func releaseClaims(_ ids: [Int64], claimant: String) async throws { try await inner.releaseClaims(ids, claimant: claimant) }
    func recordLeak(_ leak: LeakRecord) async throws -> Bool { try await inner.recordLeak(leak) }
    func leak(id: String, generation: UInt64) async throws -> LeakRecord? { try await stalled(try await inner.leak(id: id, generation: generation)) }
    func recordUsage(_ update: UsageUpdate, addressLimit: Int) async throws -> UsageRecorded {
        try await inner.recordUsage(update, addressLimit: addressLimit)
    }
    func usageDays(id: String) async throws -> [UsageDay] { try await stalled(try await inner.usageDays(id: id)) }
    func expiringRecords(after: Timestamp, through: Timestamp) async throws -> [(record: PATRecord, noticed: Set<Int64>)] {
        try await stalled(try await inner.expiringRecords(after: after, through: through))
    }
    func claimExpiryNotice(id: String, expiresAt: Timestamp, leadSeconds: Int64, at time: Timestamp) async throws -> Bool {
        try await inner.claimExpiryNotice(id: id, expiresAt: expiresAt, leadSeconds: leadSeconds, at: time)
    }
    func removeExpiryNotices(expiresBefore cutoff: Timestamp) async throws -> Int { try await inner.removeExpiryNotices(expiresBefore: cutoff) }
    func lifetimePolicy(domain: String) async throws -> LifetimePolicy? { try await stalled(try await inner.lifetimePolicy(domain: domain)) }
    func lifetimePolicies() async throws -> [LifetimePolicy] { try await inner.lifetimePolicies() }
    func saveLifetimePolicy(_ policy: LifetimePolicy) async throws { try await inner.saveLifetimePolicy(policy) }
    func removeLifetimePolicy(domain: String) async throws -> Bool { try await inner.removeLifetimePolicy(domain: domain) }
}

/// A gate a test holds shut: the first task to reach it stops there (and says so) until the test
/// opens it; everyone after passes.
package final class FirstArrivalGate: Sendable {
    private struct State {
        var arrived = false
        var open = false
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())
    private let arrival = AwaitableCounter()

    package init() {}

    /// Stops the first caller until `open()`.
    package func pass() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let stop = state.withLock { s -> Bool in
                guard !s.arrived, !s.open else { return false }
                s.arrived = true
                s.waiter = continuation
                return true
            }
            if stop { arrival.increment() } else { continuation.resume() }
        }
    }

    /// Returns once a task is held at the gate.
    package func waitForArrival() async throws { try await arrival.wait(atLeast: 1) }

    package func open() {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            s.open = true
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume()
    }
}
