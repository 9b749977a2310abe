import Foundation
import PATKit
import PATStore
import Testing

/// The PAT lifecycle through the real `pat` binary, each test in a fresh home, with
/// `PAT_NOW` as the clock.
@Suite("pat lifecycle end to end")
struct LifecycleEndToEndTests {
    static let t0 = "2027-03-01T10:00:00Z"

    @Test("create → verify → scope add → revoke → regenerate → expire → regenerate → delete")
    func fullLifecycle() throws {
        let pat = try PatRunner(now: Self.t0)
        try pat.ok(["keys", "generate"])

        // create → verify OK
        let created = try pat.issue(["create", "--owner", "alice", "--name", "deploy", "--description", "CI deploys",
                                     "--scope", "clients:view", "--expires-in", "30d", "--domain", "d1"])
        try pat.ok(["publish"])
        #expect(try pat.verify(created.token) == nil)
        #expect(try pat.verify(created.token, extra: ["--require", "channels:view"])?.code == "scope_missing")

        // scope add → old token rejected after publish, new one accepted with the new scope
        let rescoped = try pat.issue(["scope", "add", created.id, "channels:view"])
        #expect(rescoped.id == created.id)
        #expect(try pat.verify(created.token) == nil, "nothing changes for verifiers before publish")
        try pat.ok(["publish"])
        #expect(try pat.verify(created.token)?.code == "revoked")
        #expect(try pat.verify(rescoped.token, extra: ["--require", "channels:view", "--require", "clients:view"]) == nil)
        let shown = try pat.ok(["show", created.id, "--json"]).object()
        #expect(shown["generation"] as? Int == 2)
        #expect(shown["scopes"] as? [String] == ["clients:view:*", "channels:view:*"])
        #expect(shown["expiresAt"] as? String == "2027-03-31T10:00:00Z", "a scope change keeps the expiry")
        #expect(shown["token"] == nil)

        // revoke → rejected with reason "revoked"
        try pat.ok(["revoke", created.id])
        try pat.ok(["publish"])
        let revoked = try #require(try pat.verify(rescoped.token))
        #expect(revoked.code == "revoked")
        #expect(revoked.reason.contains("revoked"))
        #expect(try pat.list(["--status", "revoked"]).map { $0["id"] as? String } == [created.id])
        let plain = try pat.run(["verify", rescoped.token])
        #expect(plain.status == 1 && plain.stderr.contains("revoked"))

        // regenerate → new token OK, old ones still rejected
        let regenerated = try pat.issue(["regenerate", created.id, "--expires-in", "7d"])
        try pat.ok(["publish"])
        #expect(try pat.verify(regenerated.token) == nil)
        #expect(try pat.verify(rescoped.token)?.code == "revoked")
        #expect(try pat.verify(created.token)?.code == "revoked")

        // expire: eight days later the 7-day token has expired and is listed as such
        pat.now = "2027-03-09T10:00:00Z"
        #expect(try pat.verify(regenerated.token)?.code == "expired")
        let expired = try pat.list(["--status", "expired"])
        #expect(expired.map { $0["id"] as? String } == [created.id])
        #expect(expired.first?["status"] as? String == "expired")
        #expect(try pat.list(["--status", "active"]).isEmpty)
        let table = try pat.ok(["list", "--status", "expired"]).stdout
        #expect(table.contains("NAME") && table.contains("LAST ROTATED") && table.contains("deploy") && table.contains("expired"))

        // regenerate the expired one
        let renewed = try pat.issue(["regenerate", created.id, "--expires-at", "2027-04-01T00:00:00Z"])
        try pat.ok(["publish"])
        #expect(try pat.verify(renewed.token) == nil)
        #expect(try pat.list(["--status", "active"]).count == 1)

        // delete → rejected
        try pat.ok(["delete", created.id])
        try pat.ok(["publish"])
        let deleted = try #require(try pat.verify(renewed.token))
        #expect(deleted.code == "revoked" && deleted.reason.contains("deleted"))
        let show = try pat.run(["show", created.id])
        #expect(show.status == 1 && show.stderr.contains("was deleted"))
        #expect(try pat.list().isEmpty)
    }

    @Test("revoke-all for an owner; delete-all; confirmation required without a terminal")
    func revokeAllForOwner() throws {
        let pat = try PatRunner(now: Self.t0)
        try pat.ok(["keys", "generate"])
        let a1 = try pat.issue(["create", "--owner", "alice", "--name", "a1", "--scope", "clients:view", "--expires-in", "1d"])
        let a2 = try pat.issue(["create", "--owner", "alice", "--name", "a2", "--scope", "clients:view", "--expires-in", "1d"])
        let b1 = try pat.issue(["create", "--owner", "bob", "--name", "b1", "--scope", "clients:view", "--expires-in", "1d"])
        try pat.ok(["publish"])

        let refused = try pat.run(["revoke", "--owner", "alice", "--all"])
        #expect(refused.status == 2)
        #expect(refused.stderr.contains("--yes"))
        #expect(try pat.list(["--status", "revoked"]).isEmpty, "nothing changed without confirmation")
        #expect(try pat.run(["revoke", "--owner", "alice"]).status == 2)

        let done = try pat.ok(["revoke", "--owner", "alice", "--all", "--yes"])
        #expect(done.stdout.contains("revoked 2 PATs of owner alice"))
        try pat.ok(["publish"])
        #expect(try pat.verify(a1.token)?.code == "revoked")
        #expect(try pat.verify(a2.token)?.code == "revoked")
        #expect(try pat.verify(b1.token) == nil)
        #expect(try pat.list(["--owner", "alice", "--status", "revoked"]).count == 2)

        // A PAT created in the same second after the revoke-all is valid.
        let a3 = try pat.issue(["create", "--owner", "alice", "--name", "a3", "--scope", "clients:view", "--expires-in", "1d"])
        try pat.ok(["publish"])
        #expect(try pat.verify(a3.token) == nil)

        #expect(try pat.run(["delete", "--owner", "alice", "--all"]).status == 2)
        let deleted = try pat.ok(["delete", "--owner", "alice", "--all", "--yes"])
        #expect(deleted.stdout.contains("deleted 3 PATs of owner alice"))
        try pat.ok(["publish"])
        #expect(try pat.verify(a3.token)?.code == "revoked")
        #expect(try pat.list(["--owner", "alice"]).isEmpty)
        #expect(try pat.list().count == 1)
    }

    @Test("create prints the token alone on stdout and the id on stderr")
    func createOutput() throws {
        let pat = try PatRunner(now: Self.t0)
        try pat.ok(["keys", "generate"])
        let result = try pat.ok(["create", "--owner", "alice", "--name", "n", "--scope", "clients:view", "--expires-in", "1h"])
        let lines = result.output.split(separator: "\n")
        #expect(lines.count == 1)
        #expect(result.output.hasPrefix("v4.public."))
        let idLine = try #require(result.stderr.split(separator: "\n").first { $0.hasPrefix("id: ") })
        let id = String(idLine.dropFirst(4))
        #expect(try pat.list().first?["id"] as? String == id)
        #expect(result.stderr.contains("shown only once"))
    }

    @Test("errors say what was wrong: usage errors exit 2, failures exit 1")
    func errors() throws {
        let pat = try PatRunner(now: Self.t0)
        try pat.ok(["keys", "generate"])
        let base = ["create", "--owner", "alice", "--name", "n", "--scope", "clients:view"]

        let noExpiry = try pat.run(base)
        #expect(noExpiry.status == 2 && noExpiry.stderr.contains("--expires-in"))
        let both = try pat.run(base + ["--expires-in", "1d", "--expires-at", "2027-04-01T00:00:00Z"])
        #expect(both.status == 2)
        let badDate = try pat.run(base + ["--expires-at", "2027-04-01"])
        #expect(badDate.status == 2 && badDate.stderr.contains("YYYY-MM-DDTHH:MM:SSZ"))
        let badScope = try pat.run(["create", "--owner", "alice", "--name", "n", "--scope", "clients", "--expires-in", "1d"])
        #expect(badScope.status == 2 && badScope.stderr.contains("ENTITY:OPERATION"))
        let unknownScope = try pat.run(["create", "--owner", "alice", "--name", "n", "--scope", "rockets:launch", "--expires-in", "1d"])
        #expect(unknownScope.status == 1 && unknownScope.stderr.contains("unknown entity type"))
        let generic = try pat.run(["create", "--owner", "alice", "--name", "g", "--scope", "rockets:read", "--expires-in", "1d",
                                   "--catalog", "generic"])
        #expect(generic.status == 0)

        let tooLong = try pat.run(base + ["--expires-in", "2y"])
        #expect(tooLong.status == 1 && tooLong.stderr.contains("maximum lifetime of 1y"))
        #expect(try pat.run(base + ["--expires-in", "2y", "--max-lifetime", "3y"]).status == 0)
        let duplicate = try pat.run(base + ["--expires-in", "1d"])
        #expect(duplicate.status == 1 && duplicate.stderr.contains("already has a PAT named \"n\""))

        for command in [["show", "nosuchid"], ["revoke", "nosuchid"], ["delete", "nosuchid"],
                        ["regenerate", "nosuchid", "--expires-in", "1d"], ["scope", "add", "nosuchid", "clients:view"]] {
            let result = try pat.run(command)
            #expect(result.status == 1, "\(command)")
            #expect(result.stderr.contains("no PAT with id nosuchid"), "\(command): \(result.stderr)")
        }
        #expect(try pat.run(["list", "--status", "gone"]).status == 2)
        let badNow = try pat.run(["list"], environment: ["PAT_NOW": "tomorrow"])
        #expect(badNow.status == 2 && badNow.stderr.contains("PAT_NOW"))

        let keyless = try PatRunner(now: Self.t0)
        let noKey = try keyless.run(base + ["--expires-in", "1d"])
        #expect(noKey.status == 1 && noKey.stderr.contains("pat keys generate"))
    }

    @Test("keys rotate keeps old tokens valid; keys retire drops a key's tokens")
    func keyRotation() throws {
        let pat = try PatRunner(now: Self.t0)
        let first = try pat.ok(["keys", "generate"]).output
        let old = try pat.issue(["create", "--owner", "alice", "--name", "old", "--scope", "clients:view", "--expires-in", "1d"])
        let second = try pat.ok(["keys", "rotate"]).output
        #expect(second.hasPrefix("k4.pid.") && second != first)
        let new = try pat.issue(["create", "--owner", "alice", "--name", "new", "--scope", "clients:view", "--expires-in", "1d"])
        try pat.ok(["publish"])
        #expect(try pat.verify(old.token) == nil)
        #expect(try pat.verify(new.token) == nil)

        try pat.ok(["keys", "retire", first])
        try pat.ok(["publish"])
        let published = try SignedKeySet(verifying: SecureFile.read(pat.home + "/published/keys.json", maxBytes: SignedKeySet.maxDocumentBytes),
                                         anchors: TrustAnchors(contentsOfFile: pat.home + "/keys/anchors"))
        #expect(published.keys.entries.first { $0.id.rawValue == first }?.status == .retired)
        #expect(try pat.verify(old.token)?.code == "unknown_key")
        #expect(try pat.verify(new.token) == nil)
        let last = try pat.run(["keys", "retire", second])
        #expect(last.status == 1 && last.stderr.contains("pat keys rotate"))
    }

    @Test("several pat processes creating and revoking at once lose nothing")
    func concurrentProcesses() throws {
        let pat = try PatRunner(now: Self.t0)
        try pat.ok(["keys", "generate"])
        var victims: [String] = []
        for i in 0..<10 {
            victims.append(try pat.issue(["create", "--owner", "victim", "--name", "v\(i)", "--scope", "clients:view",
                                          "--expires-in", "1d"]).id)
        }
        func quoted(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }
        var scripts: [String] = []
        for worker in 0..<4 {
            scripts.append("set -e; for i in 0 1 2 3 4 5 6 7 8 9; do \(quoted(pat.binary)) create --owner w\(worker) "
                           + "--name p$i --scope clients:view --expires-in 1d > /dev/null; done")
        }
        // `--`: an id may start with "-" (base64url), which would otherwise read as an option.
        scripts.append("set -e; " + victims.map { "\(quoted(pat.binary)) revoke -- \($0) > /dev/null" }.joined(separator: "; "))
        scripts.append("set -e; for i in 1 2 3; do \(quoted(pat.binary)) publish > /dev/null; done")
        let processes = try scripts.enumerated().map { index, script -> (Process, String) in
            let errPath = pat.home + "/.worker-\(index).err"
            guard FileManager.default.createFile(atPath: errPath, contents: nil),
                  let err = FileHandle(forWritingAtPath: errPath) else { throw PatRunnerError("cannot create \(errPath)") }
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = ["-c", script]
            process.environment = pat.environment()
            process.standardInput = FileHandle.nullDevice
            process.standardError = err
            try process.run()
            return (process, errPath)
        }
        for (process, errPath) in processes {
            process.waitUntilExit()
            let stderr = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
            #expect(process.terminationStatus == 0, "a worker failed: \(stderr.suffix(2000))")
        }
        let all = try pat.list()
        #expect(all.count == 50)
        for worker in 0..<4 {
            #expect(try pat.list(["--owner", "w\(worker)"]).count == 10)
        }
        #expect(try pat.list(["--status", "revoked"]).count == 10)
        let published = try pat.ok(["publish"]).stdout
        #expect(published.contains("published revocation list 4 "))
        #expect(published.contains("10 PAT entries"))
    }
}
