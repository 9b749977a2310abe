import Foundation
import PATKit
import PATStore
import Testing

/// The CLI fails closed (security review L2, L5, L6) and runs the trust-anchor workflows.
@Suite("the CLI fails closed", .timeLimit(.minutes(5)))
struct FailClosedCLITests {
    static let t0 = "2027-03-01T10:00:00Z"

    @Test("pat verify without a revocation list exits 1 with missing_revocation_list (L6)")
    func verifyWithoutAList() async throws {
        let pat = try await PatRunner()
        try await pat.ok(["keys", "generate"])
        let token = try await pat.ok(["issue", "--subject", "alice", "--scope", "clients:view", "--expires-in", "1h"]).output

        let plain = try await pat.run(["verify", token])
        #expect(plain.status == 1)
        #expect(plain.stderr.contains("missing_revocation_list") && plain.stderr.contains("pat publish"), "\(plain.stderr)")
        #expect(!plain.stdout.contains("alice"), "no claims printed")

        let json = try await pat.run(["verify", "--json", token])
        #expect(json.status == 1)
        let refused = try json.object()
        #expect(refused["valid"] as? Bool == false)
        #expect(refused["code"] as? String == "missing_revocation_list")
        #expect(refused["revocationChecked"] as? Bool == false)

        let skipped = try await pat.run(["verify", "--json", "--no-revocation-check", token])
        #expect(skipped.status == 0)
        #expect(try skipped.object()["valid"] as? Bool == true)
        #expect(try skipped.object()["revocationChecked"] as? Bool == false, "a script can tell revocation was not checked")
        #expect(try await pat.run(["verify", "--no-revocation-check", "--revocations", "x.bin", token]).status == 2)

        try await pat.ok(["publish"])
        let checked = try await pat.ok(["verify", "--json", token]).object()
        #expect(checked["revocationChecked"] as? Bool == true)
    }

    /// The new user's review (a) 2: the list `pat publish` wrote went stale after an hour, every
    /// token then failed, and neither `pat publish` nor the error said what republishes it.
    @Test("pat publish says when its list goes stale and what keeps it fresh; a stale list's error says to republish")
    func publishSaysWhenTheListGoesStale() async throws {
        let pat = try await PatRunner(now: Self.t0)
        try await pat.ok(["keys", "generate"])
        let issued = try await pat.issue(["create", "--owner", "una", "--name", "ci", "--scope", "clients:view", "--expires-in", "30d"])
        let published = try await pat.ok(["publish"])
        let stale = try #require(Timestamp(rfc3339: Self.t0)).adding(seconds: 3600)
        #expect(published.stderr.contains("goes stale at \(stale) (in 1h)"), "\(published.stderr)")
        #expect(published.stderr.contains("`pat serve`") && published.stderr.contains("cron") && published.stderr.contains("systemd timer"),
                "it names the two ways to keep it fresh: \(published.stderr)")
        #expect(published.stderr.contains("every 30m"))
        let shorter = try await pat.ok(["publish", "--next-update", "10m"])
        #expect(shorter.stderr.contains("(in 10m)") && shorter.stderr.contains("every 5m"), "\(shorter.stderr)")

        // Three hours later, without a new publish: the error says who must do what.
        let later = ["PAT_NOW": stale.adding(seconds: 3 * 3600).rfc3339]
        let refused = try await pat.run(["verify", issued.token], environment: later)
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("stale_revocation_list") && refused.stderr.contains("`pat publish`")
                && refused.stderr.contains("`pat serve`"), "\(refused.stderr)")
        try await pat.ok(["publish"], environment: later)
        #expect(try await pat.run(["verify", issued.token], environment: later).status == 0, "republishing is the fix")
    }

    @Test("a verifier leeway above the list's prune margin cannot revive a pruned revocation (L2)")
    func leewayAbovePruneMargin() async throws {
        let pat = try await PatRunner(now: Self.t0)
        try await pat.ok(["keys", "generate"])
        let issued = try await pat.issue(["create", "--owner", "ivan", "--name", "ci", "--scope", "clients:view", "--expires-in", "1h"])
        try await pat.ok(["revoke", "--", issued.id])
        // Published 120 s after expiry: the entry is pruned (margin 60 s) and the list says so.
        let expiry = try #require(Timestamp(rfc3339: Self.t0)).adding(seconds: 3600)
        let publish = try await pat.ok(["publish"], environment: ["PAT_NOW": expiry.adding(seconds: 120).rfc3339])
        #expect(publish.stdout.contains("1 pruned"))
        let later = ["PAT_NOW": expiry.adding(seconds: 121).rfc3339]
        let wide = try await pat.run(["verify", "--json", "--leeway", "3600", issued.token], environment: later)
        #expect(wide.status == 1, "the revoked token must not validate: \(wide.stdout)")
        #expect(wide.stderr.contains("prune margin") || wide.stdout.contains("prune margin"), "\(wide.stdout) \(wide.stderr)")
        let normal = try await pat.run(["verify", "--json", issued.token], environment: later)
        #expect(try normal.object()["code"] as? String == "expired")
        // Publishing with a wider margin keeps the entry, and the wide leeway is then allowed.
        try await pat.ok(["publish", "--leeway", "3600"], environment: later)
        let covered = try await pat.run(["verify", "--json", "--leeway", "3600", issued.token], environment: later)
        #expect(covered.status == 1)
        #expect(try covered.object()["code"] as? String == "revoked")
    }

    @Test("a planted list header with a huge sequence neither crashes nor wedges pat publish (L5)",
          arguments: ["PATKRL01", "PATKRL02", "PATKRL03"], [UInt64.max, UInt64(1) << 63])
    func plantedHeader(magic: String, sequence: UInt64) async throws {
        let pat = try await PatRunner()
        try await pat.ok(["keys", "generate"])
        try await pat.ok(["publish"])
        // The review's planted file: a header claiming `sequence`, followed by garbage.
        var planted = Array(magic.utf8) + [51] + Array("k4.pid.".utf8) + [UInt8](repeating: 0x41, count: 44)
        withUnsafeBytes(of: sequence.littleEndian) { planted += $0 }
        planted += [UInt8](repeating: 0, count: 200)
        try Data(planted).write(to: URL(fileURLWithPath: pat.home + "/published/revocations.bin"))
        for expected in 2...3 {
            let result = try await pat.run(["publish"])
            #expect(result.status == 0, "exit \(result.status): \(result.stderr)")
            #expect(result.stdout.contains("published revocation list \(expected) "), "\(result.stdout)")
        }
    }

    @Test("an offline trust anchor: sign-set, publish keeps the signed set, rotation needs a new signature")
    func offlineAnchor() async throws {
        let pat = try await PatRunner()
        let anchorFile = pat.home + "/../anchor-\(UUID().uuidString).secret"
        defer { try? FileManager.default.removeItem(atPath: anchorFile) }
        let anchorID = try await pat.ok(["keys", "anchor", "generate", "--out", anchorFile]).output
        #expect(anchorID.hasPrefix("k4.pid."))
        let mode = try #require(try FileManager.default.attributesOfItem(atPath: anchorFile)[.posixPermissions] as? Int)
        #expect(mode & 0o777 == 0o600)
        #expect(!FileManager.default.fileExists(atPath: pat.home + "/keys/anchor"), "no online anchor was created")
        try await pat.ok(["keys", "generate"])
        let anchors = try await pat.ok(["keys", "export", "--anchors"]).output
        #expect(anchors.hasPrefix("k4.public.") && !anchors.contains("secret"))
        let anchorsFile = pat.home + "/anchors.txt"
        try anchors.write(toFile: anchorsFile, atomically: true, encoding: .utf8)

        let unsigned = try await pat.run(["publish"])
        #expect(unsigned.status == 1 && unsigned.stderr.contains("pat keys sign-set"), "\(unsigned.stderr)")
        let signed = try await pat.ok(["keys", "sign-set", "--anchor-key", anchorFile, "--next-update", "30d"])
        #expect(signed.stdout.contains("signed key set") && signed.stdout.contains(anchorID))
        let kept = try await pat.ok(["publish"])
        #expect(kept.stdout.contains("kept the key set"), "\(kept.stdout)")

        let token = try await pat.ok(["issue", "--subject", "alice", "--scope", "clients:view", "--expires-in", "1h"]).output
        #expect(try await pat.run(["verify", "--trust-anchor", anchorsFile, token]).status == 0)
        // An edge pinning another anchor refuses the set.
        let stranger = try SecretKey.generate()
        let otherAnchors = pat.home + "/other-anchors.txt"
        try (stranger.publicKey.paserk + "\n").write(toFile: otherAnchors, atomically: true, encoding: .utf8)
        let refused = try await pat.run(["verify", "--trust-anchor", otherAnchors, token])
        #expect(refused.status == 1 && refused.stderr.contains("not a pinned trust anchor"), "\(refused.stderr)")

        // A rotation: the new key is not in the signed set, so lists it signs would be refused.
        try await pat.ok(["keys", "rotate"])
        let stale = try await pat.run(["publish"])
        #expect(stale.status == 1 && stale.stderr.contains("sign-set"), "\(stale.stderr)")
        try await pat.ok(["keys", "sign-set", "--anchor-key", anchorFile])
        try await pat.ok(["publish"])
        let rotated = try await pat.ok(["issue", "--subject", "bob", "--scope", "clients:view", "--expires-in", "1h"]).output
        #expect(try await pat.run(["verify", "--trust-anchor", anchorsFile, rotated]).status == 0)

        // The anchor's secret must be private, and must be one of the home's anchors.
        #expect(chmod(anchorFile, 0o644) == 0)
        let loose = try await pat.run(["keys", "sign-set", "--anchor-key", anchorFile])
        #expect(loose.status == 1 && loose.stderr.contains("chmod 600"))
        let foreignFile = pat.home + "/foreign.secret"
        try (stranger.exportPASERK() + "\n").write(toFile: foreignFile, atomically: true, encoding: .utf8)
        #expect(chmod(foreignFile, 0o600) == 0)
        let foreign = try await pat.run(["keys", "sign-set", "--anchor-key", foreignFile])
        #expect(foreign.status == 1 && foreign.stderr.contains("not a trust anchor"), "\(foreign.stderr)")
    }

    @Test("the quick path: keys generate creates an online anchor and publish signs the key set with it")
    func onlineAnchor() async throws {
        let pat = try await PatRunner()
        let generated = try await pat.ok(["keys", "generate"])
        #expect(generated.stderr.contains("trust anchor"))
        let published = try await pat.ok(["publish"])
        #expect(published.stdout.contains("signed by trust anchor"))
        let anchors = try TrustAnchors(contentsOfFile: pat.home + "/keys/anchors")
        let set = try SignedKeySet(verifying: SecureFile.read(pat.home + "/published/keys.json", maxBytes: SignedKeySet.maxDocumentBytes),
                                   anchors: anchors)
        let again = try await pat.ok(["publish"])
        #expect(again.status == 0)
        let next = try SignedKeySet(verifying: SecureFile.read(pat.home + "/published/keys.json", maxBytes: SignedKeySet.maxDocumentBytes),
                                    anchors: anchors)
        #expect(next.sequence > set.sequence, "every publish re-signs the set under a higher sequence")
        // A plain key set file with --trust-anchor is refused: anchors vouch only for signed sets.
        let plain = pat.home + "/plain.json"
        try await pat.ok(["keys", "export"]).stdout.write(toFile: plain, atomically: true, encoding: .utf8)
        let token = try await pat.ok(["issue", "--subject", "a", "--scope", "clients:view", "--expires-in", "1h"]).output
        let refused = try await pat.run(["verify", "--keys", plain, "--trust-anchor", pat.home + "/keys/anchors", token])
        #expect(refused.status == 1 && refused.stderr.contains("plain key set"))
    }
}
