import Foundation
import PATKit
import PATStore
import PATTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Crashes inside writes: a `pat` process SIGKILLed while it writes the registry or publishes
/// leaves the registry readable with nothing half-applied, and a complete, valid list in place.
///
/// Each kill is aimed: `PAT_TEST_PAUSE_AT=POINT#N` makes `pat` stop at a named point inside a
/// write (`FaultPoint`: a registry transaction before commit, a temporary file half written, a
/// temporary file synced but not renamed) and say so on standard error; the test kills it
/// there. Which command, point and victim each round uses comes from a seeded generator; the
/// seed is printed (`PATKIT_FAULT_SEED=N` repeats a run).
@Suite(.timeLimit(.minutes(10)))
struct FaultTests {
    static let seed: UInt64 = {
        if let text = ProcessInfo.processInfo.environment["PATKIT_FAULT_SEED"], let seed = UInt64(text) { return seed }
        return UInt64.random(in: 0...UInt64(UInt32.max))
    }()

    /// Where each command can be stopped inside a write (publish writes keys.json, then revocations.bin).
    static let points: [String: [String]] = [
        "create": ["registry.uncommitted#1"],
        "revoke": ["registry.uncommitted#1"],
        "publish": ["registry.uncommitted#1", "file.partial#1", "file.partial#2", "file.synced#1", "file.synced#2"],
    ]

    /// Runs `pat ARGS` armed to pause at `point`, and SIGKILLs it once it says it got there.
    /// True when the kill landed at the point; false when the process ended without reaching it.
    func kill(_ pat: PatRunner, _ arguments: [String], at point: String) async throws -> Bool {
        let (landed, result) = try await ChildProcess.withRunning(
            pat.binary, arguments, environment: pat.environment(["PAT_TEST_PAUSE_AT": point]), timeLimit: .seconds(60)
        ) { child in
            guard await child.stderrLine(containing: "pat: test hook: paused at \(point)") != nil else { return false }
            try child.signal(SIGKILL)
            return true
        }
        if landed {
            #expect(result.terminatingSignal == SIGKILL, "\(result)")
        } else {
            Issue.record("pat \(arguments.joined(separator: " ")) never reached \(point) (seed \(Self.seed)): \(result)")
        }
        return landed
    }

    func loadList(_ pat: PatRunner) throws -> RevocationList {
        let keySet = try SignedKeySet(verifying: SecureFile.read(pat.home + "/published/keys.json", maxBytes: SignedKeySet.maxDocumentBytes),
                                      anchors: TrustAnchors(contentsOfFile: pat.home + "/keys/anchors"))
        return try RevocationList(verifying: SecureFile.read(pat.home + "/published/revocations.bin", maxBytes: 1 << 26), keys: keySet.keys)
    }

    func temporaryFiles(_ pat: PatRunner) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: pat.home + "/published").filter { $0.contains(".tmp-") }
    }

    @Test("SIGKILL inside the writes of create, revoke and publish never corrupts state")
    func killsInsideWrites() async throws {
        let seed = Self.seed
        print("FaultTests: seed \(seed) (PATKIT_FAULT_SEED=\(seed) repeats this run)")
        var random = SplitMix64(seed: seed)
        let pat = try await PatRunner()
        try await pat.ok(["keys", "generate"])
        var ids: [String] = []
        for i in 0..<5 {
            ids.append(try await pat.issue(["create", "--owner", "o", "--name", "seed-\(i)", "--scope", "clients:view", "--expires-in", "1d"]).id)
        }
        try await pat.ok(["publish"])
        let firstSequence = try loadList(pat).sequence
        let rounds = 24
        var landed = 0
        var committedPublishes = 0
        var log: [String] = []
        for round in 0..<rounds {
            let name = ["create", "revoke", "publish"][round % 3]
            let arguments: [String]
            switch name {
            case "create": arguments = ["create", "--owner", "o", "--name", "k-\(round)", "--scope", "clients:view", "--expires-in", "1d"]
            case "revoke": arguments = ["revoke", ids[Int(random.next() % UInt64(ids.count))]]
            default: arguments = ["publish"]
            }
            let options = Self.points[name] ?? []
            let point = options[Int(random.next() % UInt64(options.count))]
            let hit = try await kill(pat, arguments, at: point)
            if hit { landed += 1 }
            if hit, name == "publish", point.hasPrefix("file.") { committedPublishes += 1 }
            log.append("\(name)@\(point)\(hit ? "" : " (missed)")")

            // Nothing half-applied: the killed transaction left no trace, the registry answers.
            let records = try await pat.list(["--status", "all"])
            #expect(records.count == ids.count, "round \(round) (\(name)@\(point), seed \(seed)): \(records.count) records")
            #expect(records.allSatisfy { $0["status"] as? String == "active" }, "a killed revoke took effect (seed \(seed))")
            // The list in place is the last complete one and verifies; a killed publish never replaced it.
            let list = try loadList(pat)
            #expect(list.sequence == firstSequence, "round \(round) (\(name)@\(point), seed \(seed))")
            if hit, point.hasPrefix("file.synced") {
                #expect(try !temporaryFiles(pat).isEmpty, "killed after the temporary file was complete: it is still there")
            }
        }
        print("FaultTests: \(landed) of \(rounds) kills landed inside a write: \(log.joined(separator: ", "))")
        #expect(landed >= 20, "only \(landed) of \(rounds) kills landed inside a write (seed \(seed)): \(log)")

        // Afterwards everything works, and no sequence is reused: each publish killed after its
        // registry commit consumed one.
        let fresh = try await pat.issue(["create", "--owner", "o", "--name", "after", "--scope", "clients:view", "--expires-in", "1d"])
        try await pat.ok(["revoke", ids[0]])
        try await pat.ok(["publish"])
        #expect(try temporaryFiles(pat).isEmpty, "the next publish removes stale temporary files")
        let final = try loadList(pat)
        #expect(final.sequence == firstSequence + UInt64(committedPublishes) + 1, "seed \(seed)")
        #expect(try await pat.verify(fresh.token) == nil)
        #expect(try await pat.list(["--status", "revoked"]).count == 1)
    }
}
