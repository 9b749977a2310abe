import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Holds a `Validator`'s current immutable snapshot so that readers never take a lock and
/// never write a cache line another thread reads.
///
/// Readers publish the pointer they are about to use in their own thread's hazard slot, check
/// that it is still current, and use it without retaining it. A writer (serialised, rare)
/// swaps the pointer, waits until no hazard slot holds the old one (a validation takes tens of
/// microseconds at most), then releases it. This is the hazard-pointer scheme (Michael, 2004)
/// with one slot per thread, written with the standard library's `Synchronization.Atomic`
/// because PATKit depends on libsodium only. Measured reason: with a `Mutex`, two threads
/// validating fresh tokens reached 1.83 × one thread where bare libsodium reached 1.99 × (see
/// the benchmarks' `validate.fresh_all_cores` against `baseline.libsodium_verify_all_cores`).
final class SnapshotCell<Value: AnyObject & Sendable>: @unchecked Sendable {
    // @unchecked: `current` is only changed by writers holding `writer`; readers reach the
    // value through the hazard protocol above.
    private let current: Atomic<UnsafeMutableRawPointer>
    private let writer = Mutex(())

    init(_ value: Value) {
        current = Atomic(Unmanaged.passRetained(value).toOpaque())
    }

    deinit {
        // No reader can hold the cell any more.
        Unmanaged<Value>.fromOpaque(current.load(ordering: .acquiring)).release()
    }

    /// Runs `body` with the current value, lock-free.
    @inline(__always)
    func read<R, E: Error>(_ body: (Value) throws(E) -> R) throws(E) -> R {
        let slot = HazardSlot.current()
        guard !slot.inUse else {
            // A read inside a read on the same thread (not done by PATKit): retain instead.
            return try body(retained())
        }
        slot.inUse = true
        var pointer = current.load(ordering: .acquiring)
        while true {
            slot.protected.store(UInt(bitPattern: pointer), ordering: .sequentiallyConsistent)
            let again = current.load(ordering: .sequentiallyConsistent)
            if again == pointer { break }
            pointer = again
        }
        defer {
            slot.protected.store(0, ordering: .releasing)
            slot.inUse = false
        }
        let outcome = Unmanaged<Value>.fromOpaque(pointer)._withUnsafeGuaranteedRef { (value: Value) -> Result<R, E> in
            do throws(E) { return .success(try body(value)) } catch { return .failure(error) }
        }
        return try outcome.get()
    }

    /// The current value, retained (for the rare nested read).
    private func retained() -> Value {
        writer.withLock { _ in Unmanaged<Value>.fromOpaque(current.load(ordering: .acquiring)).takeUnretainedValue() }
    }

    func update<R>(_ body: (Value) -> (Value, R)) -> R {
        writer.withLock { _ in
            let held = Unmanaged<Value>.fromOpaque(current.load(ordering: .acquiring)).takeUnretainedValue()
            let (next, result) = body(held)
            replace(with: next)
            return result
        }
    }

    func tryUpdate<R, E: Error>(_ body: (Value) throws(E) -> (Value, R)) throws(E) -> R {
        let outcome: Result<R, E> = writer.withLock { _ in
            let held = Unmanaged<Value>.fromOpaque(current.load(ordering: .acquiring)).takeUnretainedValue()
            do throws(E) {
                let (next, result) = try body(held)
                replace(with: next)
                return .success(result)
            } catch {
                return .failure(error)
            }
        }
        return try outcome.get()
    }

    /// Swaps in `next` and releases the old value once no reader holds it. Caller holds `writer`.
    private func replace(with next: Value) {
        let fresh = Unmanaged.passRetained(next).toOpaque()
        let old = current.exchange(fresh, ordering: .sequentiallyConsistent)
        guard old != fresh else {
            Unmanaged<Value>.fromOpaque(fresh).release() // the same object again: drop the extra retain
            return
        }
        HazardSlot.waitUntilUnprotected(UInt(bitPattern: old))
        Unmanaged<Value>.fromOpaque(old).release()
    }
}

/// One thread's hazard slot: the snapshot pointer it is reading, 0 when none. Slots are
/// created once per thread, recycled when the thread exits, and never freed.
final class HazardSlot: @unchecked Sendable {
    let protected = Atomic<UInt>(0)
    /// Touched only by the owning thread.
    var inUse = false
    /// Keeps other slots' atomics off this one's cache line.
    private let padding: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
                          UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)

    private static let registry = Mutex<(all: [HazardSlot], free: [HazardSlot])>(([], []))

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        // The destructor runs when a thread that used a slot exits: the slot goes back to the pool.
        let status = pthread_key_create(&key) { raw in
            guard let raw else { return }
            let slot = Unmanaged<HazardSlot>.fromOpaque(raw).takeRetainedValue()
            slot.protected.store(0, ordering: .releasing)
            HazardSlot.registry.withLock { $0.free.append(slot) }
        }
        precondition(status == 0, "pthread_key_create failed") // only at exhaustion of process keys
        return key
    }()

    @inline(__always)
    static func current() -> HazardSlot {
        if let raw = pthread_getspecific(key) { return Unmanaged<HazardSlot>.fromOpaque(raw).takeUnretainedValue() }
        return register()
    }

    private static func register() -> HazardSlot {
        let slot = registry.withLock { registry -> HazardSlot in
            if let reused = registry.free.popLast() { return reused }
            let slot = HazardSlot()
            registry.all.append(slot)
            return slot
        }
        pthread_setspecific(key, Unmanaged.passRetained(slot).toOpaque())
        return slot
    }

    /// Returns once no slot protects `pointer` (readers that saw it have finished).
    static func waitUntilUnprotected(_ pointer: UInt) {
        let slots = registry.withLock { $0.all }
        for slot in slots {
            var spins = 0
            while slot.protected.load(ordering: .sequentiallyConsistent) == pointer {
                spins += 1
                if spins > 64 { sched_yield() }
            }
        }
    }
}
