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

    /// FORMATS.md is enough to check PATKit's documents: scripts/patkit_formats.py, written from it
    /// alone (Ed25519 from pyseto's dependency `cryptography`, BLAKE2b from Python's standard
    /// library), agrees with every test vector and verifies what `pat publish` writes, delta included.
    @Test("an independent Python verifier agrees with the format vectors and with pat publish's key set, list and delta")
    func independentFormatVerifier() async throws {
        let python = try await Prerequisite.pyseto.require()
        let script = TestPaths.packageRoot.appendingPathComponent("scripts/patkit_formats.py").path
        let vectors = TestPaths.packageRoot.appendingPathComponent("vectors/patkit-formats.json").path
        let checked = try await ChildProcess.run(python, [script, "vectors", vectors])
        #expect(checked.status == 0, "\(checked.stdout)\(checked.stderr)")
        #expect(checked.stdout.contains("18 of 18 cases agree"), "\(checked.stdout)")

        let pat = try await PatRunner()
        try await pat.ok(["keys", "generate"])
        try await pat.ok(["publish"])
        for name in ["a", "b"] {
            let issued = try await pat.issue(["create", "--owner", "o", "--name", name, "--scope", "clients:view", "--expires-in", "1d"])
            try await pat.ok(["revoke", issued.id])
        }
        let rotated = try await pat.issue(["create", "--owner", "o", "--name", "r", "--scope", "clients:view", "--expires-in", "1d"])
        try await pat.ok(["regenerate", rotated.id, "--overlap", "1h", "--expires-in", "1d", "--json"])
        try await pat.ok(["publish"])
        let anchors = pat.home + "/anchors.txt"
        try Data(try await pat.ok(["keys", "export", "--anchors"]).stdout.utf8).write(to: URL(fileURLWithPath: anchors))
        let published = try await ChildProcess.run(python, [script, "published", pat.home + "/published", anchors])
        #expect(published.status == 0, "\(published.stdout)\(published.stderr)")
        #expect(published.stdout.contains("[3, 0, 1] token/owner/overlap entries"), "\(published.stdout)")
        #expect(published.stdout.contains("verified"), "a delta was published and verified: \(published.stdout)")
    }
}
