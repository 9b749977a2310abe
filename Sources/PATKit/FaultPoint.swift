#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// Named points inside writes where a crash test can stop a process and kill it (a test seam;
/// off unless a program arms it, which only the `pat` CLI does).
///
/// `PAT_TEST_PAUSE_AT=POINT[#N]` armed by `armFromEnvironment()` makes the process stop the N-th
/// time (default: the first) it reaches `POINT`: it writes `pat: test hook: paused at POINT (DETAIL)`
/// to standard error and waits, doing nothing, until it is killed. A test that reads that line
/// and sends SIGKILL knows its kill landed inside the write. The points:
///
/// - `registry.uncommitted`: inside a registry write transaction, its changes made, before commit;
/// - `file.partial`: an atomic file write with half of the temporary file written;
/// - `file.synced`: the temporary file complete and synced, before the rename over the target.
package enum FaultPoint {
    private struct Armed: Sendable {
        let name: String
        let occurrence: Int
    }

    private static let armed = Mutex<Armed?>(nil)
    private static let isArmed = Atomic<Bool>(false)
    private static let hits = Atomic<Int>(0)

    /// Arms the point named by `PAT_TEST_PAUSE_AT`, if set. Call once at program start.
    package static func armFromEnvironment() {
        guard let raw = getenv("PAT_TEST_PAUSE_AT"), let text = String(validatingCString: raw), !text.isEmpty else { return }
        let parts = text.split(separator: "#", maxSplits: 1)
        let occurrence = parts.count == 2 ? max(1, Int(parts[1]) ?? 1) : 1
        armed.withLock { $0 = Armed(name: String(parts[0]), occurrence: occurrence) }
        isArmed.store(true, ordering: .releasing)
    }

    /// Marks that the process reached `name`; pauses for good when that point is armed and
    /// this is its chosen occurrence. One atomic load when nothing is armed.
    @inline(__always)
    package static func reached(_ name: StaticString, _ detail: @autoclosure () -> String = "") {
        guard isArmed.load(ordering: .acquiring) else { return }
        pauseIfChosen("\(name)", detail())
    }

    private static func pauseIfChosen(_ name: String, _ detail: String) {
        guard let target = armed.withLock({ $0 }), target.name == name else { return }
        let count = hits.add(1, ordering: .relaxed).newValue
        guard count == target.occurrence else { return }
        let line = Array("pat: test hook: paused at \(name)#\(count) (\(detail))\n".utf8)
        line.withUnsafeBytes { _ = write(2, $0.baseAddress, $0.count) }
        while true { pause() }
    }
}
