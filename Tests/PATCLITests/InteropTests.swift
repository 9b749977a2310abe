import Foundation
import Testing
import PATTestSupport

/// Interoperability with a stock PASETO implementation (pyseto), both ways, through the real
/// `pat` binary: see scripts/interop_pyseto.py. Runs where a Python with pyseto is available
/// ($PATKIT_PYTHON, else .venv/bin/python as made by scripts/quickstart.sh and .ci/run).
struct InteropTests {
    static let packageRoot = TestPaths.packageRoot

    static var python: String? {
        let candidates: [String?] = [ProcessInfo.processInfo.environment["PATKIT_PYTHON"],
                          packageRoot.appendingPathComponent(".venv/bin/python").path]
        return candidates.compactMap { $0 }.first { path in
            guard FileManager.default.isExecutableFile(atPath: path) else { return false }
            let probe = Process()
            probe.executableURL = URL(fileURLWithPath: path)
            probe.arguments = ["-c", "import pyseto"]
            probe.standardOutput = FileHandle.nullDevice
            probe.standardError = FileHandle.nullDevice
            do { try probe.run() } catch { return false }
            probe.waitUntilExit()
            return probe.terminationStatus == 0
        }
    }

    @Test("tokens and keys round-trip with pyseto in both directions",
          .enabled(if: python != nil, "no Python with pyseto found (set PATKIT_PYTHON or run scripts/quickstart.sh); interoperability not checked"))
    func pysetoRoundTrip() throws {
        let python = try #require(Self.python)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [Self.packageRoot.appendingPathComponent("scripts/interop_pyseto.py").path, try PatRunner.binaryPath()]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        #expect(process.terminationStatus == 0, "interop script failed:\n\(text)")
        #expect(text.contains("6 passed, 0 failed"), "unexpected interop output:\n\(text)")
    }
}
