import PATKit
import Synchronization

/// The last list a `Publisher` built, kept so that its next publish signs an update of it —
/// only the entries of the PAT ids and owners whose rows changed since are read from the
/// registry (`RegistryTransaction.listChanges(after:)`) and rebuilt — instead of reading and
/// sorting every entry again: at 1,000,000 entries a whole rebuild takes about 1.5 s, an update
/// about a tenth of that (`scripts/multinode-bench.py publish`, README).
///
/// A long-running publisher (`pat serve`) holds one; `pat publish` runs once and rebuilds whole.
/// The list is rebuilt whole again on `pat serve`'s regular republish (every 30 minutes by
/// default: `reset()`), at least every `wholeRebuildInterval`, and whenever the
/// update cannot be proven equal to a whole rebuild: no list held, the prune margin changed,
/// the clock went back, the registry's publish sequence is behind the list held or the
/// registry no longer keeps the changes since it (`ListChanges.retainedSequences`).
public final class PublisherCache: Sendable {
    struct Held: Sendable {
        /// The list as built and verified (the base of the next update).
        let list: RevocationList
        /// The list file as this publisher wrote it: while the file is still that one, the
        /// publisher knows its contents without reading and verifying a million entries again.
        let file: SecureFile.Identity?
        let pruneMargin: Int64
        /// When the last whole rebuild in this chain of updates was made.
        let wholeAt: ContinuousClock.Instant
    }

    /// The longest a chain of updates runs before the list is rebuilt whole (one hour by
    /// default): a bound on how long any difference between the two could last.
    public let wholeRebuildInterval: Duration
    private let state = Mutex<(held: Held?, whole: Int, updates: Int)>((nil, 0, 0))

    public init(wholeRebuildInterval: Duration = .seconds(3600)) {
        self.wholeRebuildInterval = wholeRebuildInterval
    }

    /// Whole rebuilds and updates published with this cache (for tests and metrics).
    public var publishes: (whole: Int, updates: Int) { state.withLock { ($0.whole, $0.updates) } }

    /// The list to update, when one may be: same prune margin, not older than the interval, not
    /// from the future.
    func base(pruneMargin: Int64, now: Timestamp) -> Held? {
        state.withLock { state in
            guard let held = state.held, held.pruneMargin == pruneMargin, now >= held.list.issuedAt,
                  ContinuousClock.now - held.wholeAt < wholeRebuildInterval else { return nil }
            return held
        }
    }

    /// Keeps `held` unless a newer list is held already.
    func keep(_ new: Held, updated: Bool) {
        state.withLock { state in
            if updated { state.updates += 1 } else { state.whole += 1 }
            if let current = state.held, current.list.sequence >= new.list.sequence { return }
            state.held = new
        }
    }

    /// Forgets the list held: the next publish rebuilds whole.
    public func reset() { state.withLock { $0.held = nil } }
}
