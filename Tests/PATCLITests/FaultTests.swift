import Foundation
import Testing
import PATKit

/// Crashes at random points: a `pat` process killed with SIGKILL while it writes the
/// registry or publishes leaves the registry readable and a complete, valid list in place.
@Suite struct FaultTests {
    /// Starts `pat ARGS` and kills it with SIGKILL after `delay` microseconds (if still running).
    func killed(_ pat: PatRunner, _ arguments: [String], after delay: UInt32) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: pat.binary)
        process.arguments = arguments
        process.environment = pat.environment()
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
        usleep(delay)
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    func loadList(_ pat: PatRunner) throws -> RevocationList? {
        let path = pat.home + "/published/revocations.bin"
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let keys = try KeySet(json: SecureFile.read(pat.home + "/keys/keyset.json", maxBytes: 1 << 20))
        return try RevocationList(verifying: SecureFile.read(path, maxBytes: 1 << 26), keys: keys)
    }

    @Test("SIGKILL at random points of create, revoke and publish never corrupts state")
    func randomKills() throws {
        let pat = try PatRunner()
        try pat.ok(["keys", "generate"])
        var ids: [String] = []
        for i in 0..<5 {
            ids.append(try pat.issue(["create", "--owner", "o", "--name", "seed-\(i)", "--scope", "clients:view", "--expires-in", "1d"]).id)
        }
        try pat.ok(["publish"])
        var lastSequence = try #require(try loadList(pat)).sequence
        var generator = SystemRandomNumberGenerator()
        for round in 0..<24 {
            let delay = UInt32.random(in: 0...60_000, using: &generator)
            let command: [String]
            switch round % 3 {
            case 0: command = ["create", "--owner", "o", "--name", "k-\(round)", "--scope", "clients:view", "--expires-in", "1d"]
            case 1: command = ["revoke", ids[round % ids.count]]
            default: command = ["publish"]
            }
            try killed(pat, command, after: delay)

            // The registry opens and answers.
            let records = try pat.list(["--status", "all"])
            #expect(records.count >= ids.count)
            // The list in place is complete and valid, and never went backwards.
            let list = try #require(try loadList(pat))
            #expect(list.sequence >= lastSequence)
            lastSequence = list.sequence
        }
        // Afterwards everything still works: publish succeeds and leaves no temporary files.
        try pat.ok(["publish"])
        let published = try FileManager.default.contentsOfDirectory(atPath: pat.home + "/published")
        #expect(!published.contains { $0.contains(".tmp-") })
        #expect(try #require(try loadList(pat)).sequence > lastSequence)
    }
}
