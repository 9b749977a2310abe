import Foundation
import PATKit
import PATStore
import PATTestSupport
import Testing

/// The PAT lifecycle through the real `pat` binary, each test in a fresh home, with
/// `PAT_NOW` as the clock.
@Suite("pat lifecycle end to end", .timeLimit(.minutes(5)))
struct LifecycleEndToEndTests {
    static let t0 = "2027-03-01T10:00:00Z"

    @Test("create → verify → scope add → revoke → regenerate → expire → regenerate → delete")
    func fullLifecycle() async throws {
        let pat = try await PatRunner(now: Self.t0)
        try await pat.ok(["keys", "generate"])

        // create → verify OK
        let created = try await pat.issue(["create", "--owner", "alice", "--name", "deploy", "--description", "CI deploys",
                                     "--scope", "clients:view", "--expires-in", "30d", "--domain", "d1"])
        try await pat.ok(["publish"])
        #expect(try await pat.verify(created.token) == nil)
        #expect(try await pat.verify(created.token, extra: ["--require", "channels:view"])?.code == "scope_missing")

        // scope add → old token rejected after publish, new one accepted with the new scope
        let rescoped = try await pat.issue(["scope", "add", created.id, "channels:view"])
        #expect(rescoped.id == created.id)
        #expect(try await pat.verify(created.token) == nil, "nothing changes for verifiers before publish")
        try await pat.ok(["publish"])
        #expect(try await pat.verify(created.token)?.code == "revoked")
        #expect(try await pat.verify(rescoped.token, extra: ["--require", "channels:view", "--require", "clients:view"]) == nil)
        let shown = try await pat.ok(["show", created.id, "--json"]).object()
        #expect(shown["generation"] as? Int == 2)
        #expect(shown["scopes"] as? [String] == ["clients:view:*", "channels:view:*"])
        #expect(shown["expiresAt"] as? String == "2027-03-31T10:00:00Z", "a scope change keeps the expiry")
        #expect(shown["token"] == nil && shown["accessToken"] == nil)

        // revoke → rejected with reason "revoked"
        try await pat.ok(["revoke", created.id])
        try await pat.ok(["publish"])
        let revoked = try #require(try await pat.verify(rescoped.token))
        #expect(revoked.code == "revoked")
        #expect(revoked.reason.contains("revoked"))
        #expect(try await pat.list(["--status", "revoked"]).map { $0["id"] as? String } == [created.id])
        let plain = try await pat.run(["verify", rescoped.token])
        #expect(plain.status == 1 && plain.stderr.contains("revoked"))

        // regenerate → new token OK, old ones still rejected
        let regenerated = try await pat.issue(["regenerate", created.id, "--expires-in", "7d"])
        try await pat.ok(["publish"])
        #expect(try await pat.verify(regenerated.token) == nil)
        #expect(try await pat.verify(rescoped.token)?.code == "revoked")
        #expect(try await pat.verify(created.token)?.code == "revoked")

        // expire: eight days later the 7-day token has expired and is listed as such
        pat.now = "2027-03-09T10:00:00Z"
        #expect(try await pat.verify(regenerated.token)?.code == "expired")
        let expired = try await pat.list(["--status", "expired"])
        #expect(expired.map { $0["id"] as? String } == [created.id])
        #expect(expired.first?["status"] as? String == "expired")
        #expect(try await pat.list(["--status", "active"]).isEmpty)
        let table = try await pat.ok(["list", "--status", "expired"]).stdout
        #expect(table.contains("NAME") && table.contains("LAST ROTATED") && table.contains("deploy") && table.contains("expired"))

        // regenerate the expired one
        let renewed = try await pat.issue(["regenerate", created.id, "--expires-at", "2027-04-01T00:00:00Z"])
        try await pat.ok(["publish"])
        #expect(try await pat.verify(renewed.token) == nil)
        #expect(try await pat.list(["--status", "active"]).count == 1)

        // delete → rejected
        try await pat.ok(["delete", created.id])
        try await pat.ok(["publish"])
        let deleted = try #require(try await pat.verify(renewed.token))
        #expect(deleted.code == "revoked" && deleted.reason.contains("deleted"))
        let show = try await pat.run(["show", created.id])
        #expect(show.status == 1 && show.stderr.contains("was deleted"))
        #expect(try await pat.list().isEmpty)
    }

    @Test("scope remove and scope clear re-issue through the binary; old generations die on publish")
    func scopeRemoveAndClear() async throws {
        let pat = try await PatRunner(now: Self.t0)
        try await pat.ok(["keys", "generate"])
        let created = try await pat.issue(["create", "--owner", "alice", "--name", "tools", "--scope", "clients:view",
                                           "--scope", "channels:view", "--expires-in", "30d"])
        try await pat.ok(["publish"])

        let missing = try await pat.run(["scope", "remove", created.id])
        #expect(missing.status == 2, "no scope named: a usage error")
        let absent = try await pat.run(["scope", "remove", created.id, "groups:view"])
        #expect(absent.status == 2 && absent.stderr.contains("does not have groups:view"), "\(absent.stderr)")

        let narrowed = try await pat.issue(["scope", "remove", created.id, "channels:view"])
        #expect(narrowed.id == created.id)
        #expect(narrowed.token != created.token)
        #expect(try await pat.verify(created.token) == nil, "verifiers learn of it only on publish")
        try await pat.ok(["publish"])
        #expect(try await pat.verify(created.token)?.code == "revoked")
        #expect(try await pat.verify(narrowed.token, extra: ["--require", "clients:view"]) == nil)
        #expect(try await pat.verify(narrowed.token, extra: ["--require", "channels:view"])?.code == "scope_missing")
        let afterRemove = try await pat.ok(["show", created.id, "--json"]).object()
        #expect(afterRemove["generation"] as? Int == 2)
        #expect(afterRemove["scopes"] as? [String] == ["clients:view:*"])

        let cleared = try await pat.issue(["scope", "clear", created.id])
        try await pat.ok(["publish"])
        #expect(try await pat.verify(narrowed.token)?.code == "revoked")
        #expect(try await pat.verify(cleared.token) == nil, "a token without scopes is still a valid token")
        #expect(try await pat.verify(cleared.token, extra: ["--require", "clients:view"])?.code == "scope_missing")
        let afterClear = try await pat.ok(["show", created.id, "--json"]).object()
        #expect(afterClear["generation"] as? Int == 3)
        #expect(afterClear["scopes"] as? [String] == [])
        let again = try await pat.run(["scope", "clear", created.id])
        #expect(again.status == 1 && again.stderr.contains("no scopes"), "\(again.stderr)")
        #expect(try await pat.ok(["show", created.id, "--json"]).object()["generation"] as? Int == 3, "nothing re-issued")
    }

    @Test("revoke-all for an owner; delete-all; confirmation required without a terminal")
    func revokeAllForOwner() async throws {
        let pat = try await PatRunner(now: Self.t0)
        try await pat.ok(["keys", "generate"])
        let a1 = try await pat.issue(["create", "--owner", "alice", "--name", "a1", "--scope", "clients:view", "--expires-in", "1d"])
        let a2 = try await pat.issue(["create", "--owner", "alice", "--name", "a2", "--scope", "clients:view", "--expires-in", "1d"])
        let b1 = try await pat.issue(["create", "--owner", "bob", "--name", "b1", "--scope", "clients:view", "--expires-in", "1d"])
        try await pat.ok(["publish"])

        let refused = try await pat.run(["revoke", "--owner", "alice", "--all"])
        #expect(refused.status == 2)
        #expect(refused.stderr.contains("--yes"))
        #expect(try await pat.list(["--status", "revoked"]).isEmpty, "nothing changed without confirmation")
        #expect(try await pat.run(["revoke", "--owner", "alice"]).status == 2)

        let done = try await pat.ok(["revoke", "--owner", "alice", "--all", "--yes"])
        #expect(done.stdout.contains("revoked 2 PATs of owner alice"))
        try await pat.ok(["publish"])
        #expect(try await pat.verify(a1.token)?.code == "revoked")
        #expect(try await pat.verify(a2.token)?.code == "revoked")
        #expect(try await pat.verify(b1.token) == nil)
        #expect(try await pat.list(["--owner", "alice", "--status", "revoked"]).count == 2)

        // A PAT created in the same second after the revoke-all is valid.
        let a3 = try await pat.issue(["create", "--owner", "alice", "--name", "a3", "--scope", "clients:view", "--expires-in", "1d"])
        try await pat.ok(["publish"])
        #expect(try await pat.verify(a3.token) == nil)

        #expect(try await pat.run(["delete", "--owner", "alice", "--all"]).status == 2)
        let deleted = try await pat.ok(["delete", "--owner", "alice", "--all", "--yes"])
        #expect(deleted.stdout.contains("deleted 3 PATs of owner alice"))
        try await pat.ok(["publish"])
        #expect(try await pat.verify(a3.token)?.code == "revoked")
        #expect(try await pat.list(["--owner", "alice"]).isEmpty)
        #expect(try await pat.list().count == 1)
    }

    @Test("create prints the token alone on stdout and the id on stderr")
    func createOutput() async throws {
        let pat = try await PatRunner(now: Self.t0)
        try await pat.ok(["keys", "generate"])
        let result = try await pat.ok(["create", "--owner", "alice", "--name", "n", "--scope", "clients:view", "--expires-in", "1h"])
        let lines = result.output.split(separator: "\n")
        #expect(lines.count == 1)
        #expect(result.output.hasPrefix("v4.public."))
        let idLine = try #require(result.stderr.split(separator: "\n").first { $0.hasPrefix("id: ") })
        let id = String(idLine.dropFirst(4))
        #expect(try await pat.list().first?["id"] as? String == id)
        #expect(result.stderr.contains("shown only once"))
    }

    @Test("errors say what was wrong: usage errors exit 2, failures exit 1")
    func errors() async throws {
        let pat = try await PatRunner(now: Self.t0)
        try await pat.ok(["keys", "generate"])
        let base = ["create", "--owner", "alice", "--name", "n", "--scope", "clients:view"]

        let noExpiry = try await pat.run(base)
        #expect(noExpiry.status == 2 && noExpiry.stderr.contains("--expires-in"))
        let both = try await pat.run(base + ["--expires-in", "1d", "--expires-at", "2027-04-01T00:00:00Z"])
        #expect(both.status == 2)
        let badDate = try await pat.run(base + ["--expires-at", "2027-04-01"])
        #expect(badDate.status == 2 && badDate.stderr.contains("YYYY-MM-DDTHH:MM:SSZ"))
        let badScope = try await pat.run(["create", "--owner", "alice", "--name", "n", "--scope", "clients", "--expires-in", "1d"])
        #expect(badScope.status == 2 && badScope.stderr.contains("ENTITY:OPERATION"))
        let unknownScope = try await pat.run(["create", "--owner", "alice", "--name", "n", "--scope", "rockets:launch", "--expires-in", "1d"])
        #expect(unknownScope.status == 2 && unknownScope.stderr.contains("unknown entity type"))
        let generic = try await pat.run(["create", "--owner", "alice", "--name", "g", "--scope", "rockets:read", "--expires-in", "1d",
                                   "--catalog", "generic"])
        #expect(generic.status == 0)

        let tooLong = try await pat.run(base + ["--expires-in", "2y"])
        #expect(tooLong.status == 2 && tooLong.stderr.contains("maximum lifetime of 1y"))
        #expect(try await pat.run(base + ["--expires-in", "2y", "--max-lifetime", "3y"]).status == 0)
        let duplicate = try await pat.run(base + ["--expires-in", "1d"])
        #expect(duplicate.status == 1 && duplicate.stderr.contains("already has a PAT named \"n\""))

        for command in [["show", "nosuchid"], ["revoke", "nosuchid"], ["delete", "nosuchid"],
                        ["regenerate", "nosuchid", "--expires-in", "1d"], ["scope", "add", "nosuchid", "clients:view"]] {
            let result = try await pat.run(command)
            #expect(result.status == 1, "\(command)")
            #expect(result.stderr.contains("no PAT with id nosuchid"), "\(command): \(result.stderr)")
        }
        #expect(try await pat.run(["list", "--status", "gone"]).status == 2)
        let badNow = try await pat.run(["list"], environment: ["PAT_NOW": "tomorrow"])
        #expect(badNow.status == 2 && badNow.stderr.contains("PAT_NOW"))

        let keyless = try await PatRunner(now: Self.t0)
        let noKey = try await keyless.run(base + ["--expires-in", "1d"])
        #expect(noKey.status == 1 && noKey.stderr.contains("pat keys generate"))
    }

    @Test("keys rotate keeps old tokens valid; keys retire drops a key's tokens")
    func keyRotation() async throws {
        let pat = try await PatRunner(now: Self.t0)
        let first = try await pat.ok(["keys", "generate"]).output
        let old = try await pat.issue(["create", "--owner", "alice", "--name", "old", "--scope", "clients:view", "--expires-in", "1d"])
        let second = try await pat.ok(["keys", "rotate"]).output
        #expect(second.hasPrefix("k4.pid.") && second != first)
        let new = try await pat.issue(["create", "--owner", "alice", "--name", "new", "--scope", "clients:view", "--expires-in", "1d"])
        try await pat.ok(["publish"])
        #expect(try await pat.verify(old.token) == nil)
        #expect(try await pat.verify(new.token) == nil)

        try await pat.ok(["keys", "retire", first])
        try await pat.ok(["publish"])
        let published = try SignedKeySet(verifying: SecureFile.read(pat.home + "/published/keys.json", maxBytes: SignedKeySet.maxDocumentBytes),
                                         anchors: TrustAnchors(contentsOfFile: pat.home + "/keys/anchors"))
        #expect(published.keys.entries.first { $0.id.rawValue == first }?.status == .retired)
        #expect(try await pat.verify(old.token)?.code == "unknown_key")
        #expect(try await pat.verify(new.token) == nil)
        let last = try await pat.run(["keys", "retire", second])
        #expect(last.status == 1 && last.stderr.contains("pat keys rotate"))
    }

    @Test("several pat processes creating and revoking at once lose nothing")
    func concurrentProcesses() async throws {
        let pat = try await PatRunner(now: Self.t0)
        try await pat.ok(["keys", "generate"])
        var victims: [String] = []
        for i in 0..<10 {
            victims.append(try await pat.issue(["create", "--owner", "victim", "--name", "v\(i)", "--scope", "clients:view",
                                          "--expires-in", "1d"]).id)
        }
        func quoted(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }
        var scripts: [String] = []
        for worker in 0..<4 {
            scripts.append("set -e; for i in 0 1 2 3 4 5 6 7 8 9; do \(quoted(pat.binary)) create --owner w\(worker) "
                           + "--name p$i --scope clients:view --expires-in 1d > /dev/null; done")
        }
        scripts.append("set -e; " + victims.map { "\(quoted(pat.binary)) revoke \($0) > /dev/null" }.joined(separator: "; "))
        scripts.append("set -e; for i in 1 2 3; do \(quoted(pat.binary)) publish > /dev/null; done")
        // Six workers at once, each awaited off the cooperative pool and bounded in time.
        let environment = pat.environment()
        let results = try await withThrowingTaskGroup(of: ProcessResult.self) { group in
            for script in scripts {
                group.addTask { try await ChildProcess.run("/bin/sh", ["-c", script], environment: environment) }
            }
            return try await group.reduce(into: [ProcessResult]()) { $0.append($1) }
        }
        for result in results {
            #expect(result.status == 0, "a worker failed: \(result.stderr.suffix(2000))")
        }
        let all = try await pat.list()
        #expect(all.count == 50)
        for worker in 0..<4 {
            #expect(try await pat.list(["--owner", "w\(worker)"]).count == 10)
        }
        #expect(try await pat.list(["--status", "revoked"]).count == 10)
        let published = try await pat.ok(["publish"]).stdout
        #expect(published.contains("published revocation list 4 "))
        #expect(published.contains("10 PAT entries"))
    }
}
