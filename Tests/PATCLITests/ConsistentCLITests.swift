import Foundation
import PATTestSupport
import Testing

/// The CLI's contract (README "Exit codes and errors"): the same mistake gets the same exit code
/// in every command, every error is `error: …` on stderr, and with --json the API's error shape
/// on stdout; --home before or after the command; read commands create nothing.
@Suite("pat: one exit-code table, one error format, --json and --home everywhere", .timeLimit(.minutes(8)))
struct ConsistentCLITests {
    let pat: PatRunner
    let id: String
    let token: String

    init() async throws {
        pat = try await PatRunner()
        try await pat.ok(["keys", "generate"])
        (id, token) = try await pat.issue(["create", "--owner", "alice", "--name", "ci", "--scope", "clients:view", "--expires-in", "30d"])
    }

    /// One typical mistake: the command line, its exit code, and a phrase the message must hold.
    struct Mistake: Sendable {
        let arguments: [String]
        let status: Int32
        let says: String
        /// Whether the command has --json (all but `pat serve`).
        let json: Bool
        init(_ arguments: [String], _ status: Int32, _ says: String = "", json: Bool = true) {
            self.arguments = arguments
            self.status = status
            self.says = says
            self.json = json
        }
    }

    func mistakes(unknownKey: String) -> [Mistake] {
        let issue = ["issue", "--subject", "alice", "--scope", "clients:view"]
        let create = ["create", "--owner", "alice", "--name", "n2", "--scope", "clients:view"]
        return [
            // Usage errors: exit 2, whichever command.
            Mistake(issue + ["--expires-in", "30"], 2, "invalid duration"),
            Mistake(create + ["--expires-in", "30"], 2, "invalid duration"),
            Mistake(issue + ["--expires-in", "-5d"], 2, "must be positive"),
            Mistake(create + ["--expires-in", "-5d"], 2, "must be positive"),
            Mistake(["regenerate", id, "--expires-in", "-5d"], 2, "must be positive"),
            Mistake(["list", "--expiring-within", "-5d"], 2, "must be positive"),
            Mistake(["policy", "set", "d1", "--max-lifetime", "-1d"], 2, "must be positive"),
            Mistake(["verify", token, "--leeway", "-5"], 2, "--leeway"),
            Mistake(["publish", "--leeway", "-5"], 2, "--leeway"),
            Mistake(["issue", "--subject", "alice", "--scope", "clients:fly", "--expires-in", "1d"], 2, "\"fly\""),
            Mistake(["create", "--owner", "alice", "--name", "n2", "--scope", "clients:fly", "--expires-in", "1d"], 2, "fly"),
            Mistake(["create", "--owner", "alice", "--name", "n2", "--scope", "clients:view:a b", "--expires-in", "1d"], 2, "ENTITY:OPERATION"),
            Mistake(["scope", "add", id, "clients:fly"], 2, "fly"),
            Mistake(["verify", token, "--require", "clients"], 2, "ENTITY:OPERATION"),
            Mistake(["create", "--owner", "alice", "--name", "", "--scope", "clients:view", "--expires-in", "1d"], 2, "--name"),
            Mistake(["create", "--owner", "", "--name", "n2", "--scope", "clients:view", "--expires-in", "1d"], 2, "--owner"),
            Mistake(["issue", "--subject", "", "--scope", "clients:view", "--expires-in", "1d"], 2, "--subject"),
            Mistake(["issue", "--subject", "a", "--scope", "pats:create", "--expires-in", "1d", "--catalog", "management"], 2,
                    "pat create --catalog management"),
            Mistake(create + ["--expires-in", "1d", "--catalog", "nosuch"], 2, "unknown scope catalog"),
            Mistake(issue + ["--expires-in", "1d", "--catalog", "nosuch"], 2, "unknown scope catalog"),
            Mistake(["scope", "add", id, "clients:update", "--catalog", "nosuch"], 2, "unknown scope catalog"),
            Mistake(["keys", "retire", "nonsense"], 2, "k4.pid"),
            Mistake(["keys", "retire", unknownKey], 2, "pat keys list"),
            Mistake(["list", "--status", "gone"], 2, "gone"),
            Mistake(["revoke"], 2, "pat list"),
            Mistake(["delete", "--owner", "alice"], 2, "--all"),
            Mistake(["show"], 2, "id"),
            Mistake(["create", "--owner", "alice", "--name", "n2", "--expires-in", "1d"], 2, "--scope"),
            Mistake(["serve", "--refresh-interval", "5"], 2, "--refresh-interval", json: false),
            // The operation failed: exit 1.
            Mistake(["show", "nosuchid"], 1, "no PAT with id nosuchid"),
            Mistake(["revoke", "nosuchid"], 1, "no PAT with id nosuchid"),
            Mistake(["regenerate", "nosuchid", "--expires-in", "1d"], 1, "no PAT with id nosuchid"),
            Mistake(["scope", "remove", "nosuchid", "clients:view"], 1, "no PAT with id nosuchid"),
            Mistake(["create", "--owner", "alice", "--name", "ci", "--scope", "clients:view", "--expires-in", "1d"], 1, "already has a PAT named"),
            Mistake(["verify", "--keys", pat.home + "/no-such-keys.json", token], 1, "no-such-keys.json"),
        ]
    }

    @Test("every command's typical mistakes: the table's exit code, `error: ` on stderr, with --json {\"error\":{code,message}} on stdout")
    func exitCodesAndErrorFormat() async throws {
        let other = try await PatRunner()
        let unknownKey = try await other.ok(["keys", "generate"]).output
        for mistake in mistakes(unknownKey: unknownKey) {
            let shown = mistake.arguments.joined(separator: " ")
            let plain = try await pat.run(mistake.arguments)
            #expect(plain.status == mistake.status, "pat \(shown): exit \(plain.status)\n\(plain.stderr)")
            #expect(plain.stderr.hasPrefix("error: "), "pat \(shown): \(plain.stderr)")
            #expect(plain.stderr.contains(mistake.says), "pat \(shown): \(plain.stderr)")
            #expect(!plain.stderr.contains("Error:"), "pat \(shown): one prefix: \(plain.stderr)")

            guard mistake.json else { continue }
            let json = try await pat.run(mistake.arguments + ["--json"])
            #expect(json.status == mistake.status, "pat \(shown) --json: exit \(json.status)")
            let error = (try? json.object())?["error"] as? [String: Any]
            #expect(error?["code"] is String && error?["message"] is String,
                    "pat \(shown) --json: \(json.stdout) / \(json.stderr)")
            #expect((error?["message"] as? String)?.contains(mistake.says) == true, "pat \(shown) --json: \(json.stdout)")
            if mistake.status == 2 { #expect(error?["code"] as? String == "invalid_input", "pat \(shown) --json: \(json.stdout)") }
        }
        #expect(try await pat.list().count == 1, "no mistake created anything")

        // Another issuer's keys with this home's list: the message names the list and --revocations.
        try await pat.ok(["publish"])
        let foreignKeys = other.home + "/keyset.json"
        try await other.ok(["keys", "export"]).stdout.write(toFile: foreignKeys, atomically: true, encoding: .utf8)
        let mixed = try await pat.run(["verify", "--keys", foreignKeys, token])
        #expect(mixed.status == 1 && mixed.stderr.hasPrefix("error: \(pat.home)/published/revocations.bin: ")
                && mixed.stderr.contains("--revocations FILE"), "\(mixed.stderr)")
    }

    @Test("--home before or after the command; a missing home is an error for read commands, and they create nothing")
    func homeOption() async throws {
        let elsewhere = ["PAT_HOME": pat.home + "/not-this-one"]
        let before = try await pat.run(["--home", pat.home, "list", "--json"], environment: elsewhere)
        #expect(before.status == 0 && before.stdout.contains(id), "\(before.stdout) \(before.stderr)")
        let after = try await pat.run(["list", "--home", pat.home, "--json"], environment: elsewhere)
        #expect(after.status == 0 && after.stdout.contains(id), "\(after.stdout) \(after.stderr)")
        let equals = try await pat.run(["--home=" + pat.home, "show", id], environment: elsewhere)
        #expect(equals.status == 0, "\(equals.stderr)")

        let typo = pat.home + "/typo/nope"
        for arguments in [["list"], ["show", id], ["keys", "list"], ["keys", "export"], ["policy", "list"]] {
            for (args, env) in [(arguments + ["--home", typo], [String: String]()), (arguments, ["PAT_HOME": typo]),
                                (["--home", typo] + arguments, [:])] {
                let result = try await pat.run(args, environment: env)
                #expect(result.status == 1, "\(args) \(env): exit \(result.status)")
                #expect(result.stderr.hasPrefix("error: ") && result.stderr.contains(typo) && result.stderr.contains("pat keys generate"),
                        "\(args): \(result.stderr)")
            }
        }
        #expect(!FileManager.default.fileExists(atPath: pat.home + "/typo"), "a read command created the mistyped home")

        // An existing home with keys but no registry yet: list says so, and creates no pat.db.
        let keysOnly = try await PatRunner()
        try await keysOnly.ok(["keys", "generate"])
        let listed = try await keysOnly.run(["list"])
        #expect(listed.status == 1 && listed.stderr.hasPrefix("error: ") && listed.stderr.contains("pat.db"), "\(listed.stderr)")
        #expect(!FileManager.default.fileExists(atPath: keysOnly.home + "/pat.db"), "pat list created a registry")
    }

    @Test("read commands work on a read-only home (list, show, policy list, keys list); a change says why it cannot")
    func readOnlyHome() async throws {
        // A read-only view of the home: a read-only bind mount in a private mount namespace
        // (root in a container may write through mode bits, so a chmod would prove nothing).
        let view = pat.home + "-ro"
        try FileManager.default.createDirectory(atPath: view, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: view) }
        let script = """
            mount --bind "$HOME_RW" "$VIEW" && mount -o remount,ro,bind "$VIEW" || exit 77
            touch "$VIEW/probe" 2>/dev/null && exit 78
            export PAT_HOME="$VIEW"
            "$PAT" list --json && "$PAT" show "$ID" --json && "$PAT" policy list && "$PAT" keys list || exit 1
            "$PAT" revoke "$ID"; test $? -eq 1 || exit 3
            """
        let result = try await ChildProcess.run("/usr/bin/unshare", ["-m", "sh", "-c", script],
                                                environment: pat.environment(["HOME_RW": pat.home, "VIEW": view, "PAT": pat.binary, "ID": id]))
        if result.status == 77 || result.status == 78 || (result.status != 0 && result.stderr.contains("unshare")) {
            print("note: skipped the read-only home check: no private read-only bind mount here (\(result.stderr.prefix(200)))")
            return
        }
        #expect(result.status == 0, "exit \(result.status)\n\(result.stdout)\n\(result.stderr)")
        #expect(result.stdout.contains(id), "\(result.stdout)")
        #expect(!result.stderr.contains("for writing") || result.stderr.contains("lock"), "\(result.stderr)")
    }

    @Test("repeating a change is not a failure: scope add of a held scope exits 0, nothing changed, like revoke and delete")
    func repeatsChangeNothing() async throws {
        let held = try await pat.run(["scope", "add", id, "clients:view"])
        #expect(held.status == 0 && held.stdout.contains("nothing changed"), "\(held.stdout) \(held.stderr)")
        let heldJSON = try await pat.ok(["scope", "add", id, "clients:view", "--json"]).object()
        #expect(heldJSON["changed"] as? Bool == false && heldJSON["generation"] as? Int == 1, "\(heldJSON)")

        let revoked = try await pat.ok(["revoke", id, "--json"]).object()
        #expect(revoked["changed"] as? Bool == true && revoked["status"] as? String == "revoked", "\(revoked)")
        #expect(try await pat.ok(["revoke", id, "--json"]).object()["changed"] as? Bool == false)
        let deleted = try await pat.ok(["delete", id, "--json"]).object()
        #expect(deleted["deleted"] as? [String] == [id] && deleted["changed"] as? Bool == true, "\(deleted)")
        #expect(try await pat.ok(["delete", id, "--json"]).object()["changed"] as? Bool == false)
        let shown = try await pat.run(["show", id])
        #expect(shown.status == 1 && shown.stderr.hasPrefix("error: PAT \(id) was deleted") && !shown.stderr.contains("restored"),
                "\(shown.stderr)")
        let nobody = try await pat.run(["revoke", "--owner", "typo", "--all", "--yes"])
        #expect(nobody.status == 0 && nobody.stdout.contains("owner typo has no PATs in the registry"), "\(nobody.stdout)")
    }

    @Test("--json on the key and publish commands")
    func jsonEverywhere() async throws {
        let keys = try await pat.ok(["keys", "list", "--json"]).objects()
        #expect(keys.count == 1 && keys.first?["signing"] as? Bool == true && keys.first?["secret"] as? Bool == true, "\(keys)")
        let rotated = try await pat.ok(["keys", "rotate", "--json"]).object()
        let first = try #require(keys.first?["kid"] as? String)
        #expect((rotated["kid"] as? String)?.hasPrefix("k4.pid.") == true && rotated["kid"] as? String != first)
        #expect(try await pat.ok(["keys", "retire", first, "--json"]).object()["changed"] as? Bool == true)
        #expect(try await pat.ok(["keys", "retire", first, "--json"]).object()["changed"] as? Bool == false)
        let published = try await pat.ok(["publish", "--json"]).object()
        #expect(published["sequence"] is Int && published["written"] as? Bool == true, "\(published)")
        #expect((published["keySet"] as? [String: Any])?["sequence"] is Int, "\(published)")
        let anchors = try await pat.ok(["keys", "export", "--anchors", "--json"]).object()
        #expect((anchors["anchors"] as? [String])?.first?.hasPrefix("k4.public.") == true, "\(anchors)")
        let issued = try await pat.ok(["issue", "--subject", "bob", "--scope", "clients:view", "--expires-in", "1d", "--json"]).object()
        #expect((issued["accessToken"] as? String)?.hasPrefix("v4.public.") == true, "\(issued)")
    }

    @Test("shell completions: the script completes --status values, PAT ids and key ids")
    func completions() async throws {
        let script = try await pat.ok(["--generate-completion-script", "bash"]).stdout
        #expect(script.contains("'active'") && script.contains("'revoked'"), "the --status values")
        #expect(script.contains("---completion keys retire") && script.contains("---completion show"), "ids are completed by asking pat")
        // What the script asks pat for (argument-parser's protocol): the ids of this home.
        let ids = try await pat.ok(["---completion", "show", "--", "positional@0", "2", "0", "pat", "show", ""]).output
        #expect(ids == id, "\(ids)")
        let kids = try await pat.ok(["---completion", "keys", "retire", "--", "positional@0", "3", "0"]).output
        #expect(kids.hasPrefix("k4.pid."), "\(kids)")
    }
}
