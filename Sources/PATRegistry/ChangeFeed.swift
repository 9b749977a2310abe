import Synchronization

/// The plumbing of `PATRegistryStore.externalChanges()` for every back end: fans one
/// "changes happened" signal out to each subscriber's stream, and runs the back end's watcher
/// (SQLite: a poller; PostgreSQL: a `LISTEN` connection) only while someone subscribes.
package final class ChangeFeed: Sendable {
    private struct State {
        var subscribers: [Int: AsyncStream<Void>.Continuation] = [:]
        var nextID = 0
        var watcher: Task<Void, Never>?
        var closed = false
    }

    private let state = Mutex(State())
    private let watch: @Sendable (ChangeFeed) async -> Void

    /// - Parameter watch: runs until cancelled, calling `broadcast()` whenever changes may have
    ///   happened; started with the first subscriber, cancelled when the last one leaves.
    package init(watch: @escaping @Sendable (ChangeFeed) async -> Void) {
        self.watch = watch
    }

    package func subscribe() -> AsyncStream<Void> {
        let (stream, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let id = state.withLock { s -> Int? in
            guard !s.closed else { return nil }
            let id = s.nextID
            s.nextID += 1
            s.subscribers[id] = continuation
            if s.watcher == nil {
                let watch = self.watch
                s.watcher = Task { await watch(self) } // holds the feed until cancelled
            }
            return id
        }
        guard let id else {
            continuation.finish()
            return stream
        }
        continuation.onTermination = { [weak self] _ in self?.unsubscribe(id) }
        return stream
    }

    /// Wakes every subscriber (once, however many changes happened).
    package func broadcast() {
        let subscribers = state.withLock { Array($0.subscribers.values) }
        for subscriber in subscribers { subscriber.yield() }
    }

    /// True while someone subscribes.
    package var hasSubscribers: Bool { state.withLock { !$0.subscribers.isEmpty } }

    /// Ends every stream and the watcher; later subscriptions end at once.
    package func close() {
        let (subscribers, watcher) = state.withLock { s -> ([AsyncStream<Void>.Continuation], Task<Void, Never>?) in
            s.closed = true
            defer {
                s.subscribers = [:]
                s.watcher = nil
            }
            return (Array(s.subscribers.values), s.watcher)
        }
        watcher?.cancel()
        for subscriber in subscribers { subscriber.finish() }
    }

    private func unsubscribe(_ id: Int) {
        let watcher = state.withLock { s -> Task<Void, Never>? in
            s.subscribers[id] = nil
            guard s.subscribers.isEmpty else { return nil }
            defer { s.watcher = nil }
            return s.watcher
        }
        watcher?.cancel()
    }
}
