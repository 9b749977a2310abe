import Foundation
import PATKit
import PATStore
import PATTestSupport
import Testing

/// Issue 11 through the `pat` binary: `pat scan --revoke`, `pat list --expiring-within /
/// --unused-for` with their columns, and `pat policy`.
@Suite("pat: token hygiene (issue 11)", .timeLimit(.minutes(5)))
struct TokenHygieneCLITests {
    @Test("pat scan --revoke revokes every live PAT found, once, publishes, and leaves dead, foreign and other PATs alone")
    func scanRevoke() async throws {
        let f = try await ScanCommandTests.Fixture.make()
        let pat = f.pat
        let bystander = try await pat.issue(["create", "--owner", "alice", "--name", "other", "--scope", "clients:view", "--expires-in", "30d"])
        #expect(try await pat.run(["scan", f.tree, "--database", pat.home + "/pat.db"]).status == 2, "--database needs --revoke")

        let result = try await pat.run(["scan", f.tree, "--revoke", "--json"])
        #expect(result.status == 1, "a live PAT was found (and must still be replaced where it is used): \(result.stderr)")
        for token in f.tokens + [bystander.token] {
            #expect(!result.stdout.contains(token) && !result.stderr.contains(token), "never prints a token")
        }
        let report = try result.object()
        let revocations = try #require(report["revocations"] as? [[String: Any]])
        #expect(revocations.count == 1, "the live token, once, though the tree holds it more than once")
        #expect(revocations.first?["id"] as? String == f.live.id && revocations.first?["outcome"] as? String == "revoked")
        #expect((report["published"] as? [String: Any])?["sequence"] != nil)

        // The published list now refuses it; nothing else changed.
        #expect(try await pat.verify(f.live.token)?.code == "revoked")
        #expect(try await pat.verify(bystander.token) == nil)
        let shown = try await pat.ok(["show", f.live.id, "--json"]).object()
        #expect(shown["status"] as? String == "revoked")

        // A second scan finds nothing live: exit 0, nothing revoked.
        let again = try await pat.run(["scan", f.tree, "--revoke", "--json"])
        #expect(again.status == 0, "\(again.stderr)")
        #expect((try again.object()["revocations"] as? [Any])?.isEmpty ?? true)
    }

    @Test("pat list --expiring-within and --unused-for filter; EXPIRES IN and LAST USED columns")
    func listFilters() async throws {
        let pat = try await PatRunner(now: "2027-03-01T10:00:00Z")
        try await pat.ok(["keys", "generate"])
        let soon = try await pat.issue(["create", "--owner", "ann", "--name", "soon", "--scope", "clients:view", "--expires-in", "3d"])
        let later = try await pat.issue(["create", "--owner", "ann", "--name", "later", "--scope", "clients:view", "--expires-in", "200d"])
        #expect(try await pat.list(["--expiring-within", "7d"]).compactMap { $0["id"] as? String } == [soon.id])
        #expect(try await pat.list(["--unused-for", "90d"]).isEmpty, "both created today")
        pat.now = "2027-06-10T10:00:00Z"
        let unused = Set(try await pat.list(["--unused-for", "90d"]).compactMap { $0["id"] as? String })
        #expect(unused == [soon.id, later.id], "never used, created 101 days ago (whatever their status)")
        #expect(try await pat.list(["--expiring-within", "7d"]).isEmpty, "only active PATs")
        let table = try await pat.ok(["list"]).stdout
        #expect(table.contains("EXPIRES IN") && table.contains("LAST USED") && table.contains("never"))
        #expect(try await pat.run(["list", "--unused-for", "soon"]).status == 2)
    }

    @Test("pat policy set bounds pat create in that domain; unset lifts it")
    func policy() async throws {
        let pat = try await PatRunner(now: "2027-03-01T10:00:00Z")
        try await pat.ok(["keys", "generate"])
        try await pat.ok(["policy", "set", "ci", "--max-lifetime", "7d"])
        let refused = try await pat.run(["create", "--owner", "ann", "--name", "a", "--scope", "clients:view", "--expires-in", "30d",
                                         "--domain", "ci"])
        #expect(refused.status == 2 && refused.stderr.contains("domain \"ci\"") && refused.stderr.contains("pat policy set"), "\(refused.stderr)")
        _ = try await pat.issue(["create", "--owner", "ann", "--name", "b", "--scope", "clients:view", "--expires-in", "7d", "--domain", "ci"])
        _ = try await pat.issue(["create", "--owner", "ann", "--name", "c", "--scope", "clients:view", "--expires-in", "30d", "--domain", "prod"])
        let listed = try await pat.ok(["policy", "list", "--json"]).stdout
        #expect(listed.contains("\"domain\":\"ci\""))
        try await pat.ok(["policy", "unset", "ci"])
        _ = try await pat.issue(["create", "--owner", "ann", "--name", "d", "--scope", "clients:view", "--expires-in", "30d", "--domain", "ci"])
    }
}
