import Foundation
import PATTestSupport
import Testing

/// Interoperability with a stock PASETO implementation (pyseto), both ways, through the real
/// `pat` binary: see scripts/interop_pyseto.py. Needs a Python with pyseto ($PATKIT_PYTHON, else
/// .venv/bin/python as made by scripts/quickstart.sh and .ci/run): in CI its absence fails.
@Suite(.timeLimit(.minutes(5)))
struct InteropTests {
    @Test("tokens and keys round-trip with pyseto in both directions")
    func pysetoRoundTrip() async throws {
        let python = try await Prerequisite.pyseto.require()
        let pat = try await Prerequisite.patBinary.require()
        let script = TestPaths.packageRoot.appendingPathComponent("scripts/interop_pyseto.py").path
        let result = try await ChildProcess.run(python, [script, pat])
        let text = result.stdout + result.stderr
        #expect(result.status == 0, "interop script failed:\n\(text)")
        #expect(text.contains("8 passed, 0 failed"), "unexpected interop output:\n\(text)")
        #expect(!text.contains("FAIL"), "\(text)")
    }
}
