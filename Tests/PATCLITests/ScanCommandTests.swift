import Foundation
import PATKit
import PATStore
import PATTestSupport
import Testing

/// `pat scan` through the real binary, on trees and repositories made at test time with tokens
/// issued at test time (no secret is committed): live, expired, revoked, forged and foreign
/// tokens; binary files, .git, links; standard input; git history; exit codes; and the token
/// never printed.
@Suite("pat scan", .timeLimit(.minutes(5)))
struct ScanCommandTests {
    static let t0 = "2027-03-01T10:00:00Z"

    /// A home with one signing key and a published list, five tokens of every kind, and a tree
    /// holding them (and a binary file, a .git directory and a link holding the live one).
    struct Fixture {
        let pat: PatRunner
        let live: (id: String, token: String)
        let revoked: (id: String, token: String)
        let expired: (id: String, token: String)
        let forged: String
        let foreign: String
        let kid: String
        let foreignKid: String
        let tree: String
        /// Every token, for the never-printed checks.
        var tokens: [String] { [live.token, revoked.token, expired.token, forged, foreign] }

        static func make() async throws -> Fixture {
            let pat = try await PatRunner(now: ScanCommandTests.t0)
            try await pat.ok(["keys", "generate"])
            let live = try await pat.issue(["create", "--owner", "alice", "--name", "deploy", "--scope", "clients:view",
                                            "--expires-in", "30d", "--domain", "d1"])
            let revoked = try await pat.issue(["create", "--owner", "bob", "--name", "old", "--scope", "clients:view",
                                               "--expires-in", "30d", "--domain", "d2"])
            try await pat.ok(["revoke", revoked.id])
            pat.now = "2027-02-01T10:00:00Z"
            let expired = try await pat.issue(["create", "--owner", "carol", "--name", "short", "--scope", "clients:view",
                                               "--expires-in", "1d", "--domain", "d1"])
            pat.now = ScanCommandTests.t0
            try await pat.ok(["publish"])

            // Forged: one character of the live token's signed message changed.
            var bytes = Array(live.token.utf8)
            bytes[60] = bytes[60] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
            let forged = String(decoding: bytes, as: UTF8.self)

            // Foreign: a token of another issuer (its own home and key).
            let other = try await PatRunner(now: ScanCommandTests.t0)
            try await other.ok(["keys", "generate"])
            let foreign = try await other.ok(["issue", "--subject", "mallory", "--scope", "clients:view", "--expires-in", "30d"]).output
            let kid = try #require(try PATHome(path: pat.home).keyStore.keySet().newest?.id.rawValue)
            let foreignKid = try #require(try PATHome(path: other.home).keyStore.keySet().newest?.id.rawValue)

            let tree = pat.home + "/tree"
            let files: [(String, String)] = [
                ("app/config.env", "# settings\nAPI_TOKEN=\(live.token)\n"),
                ("docs/notes.md", "old: \(revoked.token)\nshort: \(expired.token)\n"),
                ("forged.txt", "Authorization: Bearer \(forged)"),
                ("vendor/other.json", "{\"token\":\"\(foreign)\"}\n"),
                ("image.bin", "\u{0}PNG\u{0}\(live.token)\n"),
                (".git/leak", "\(live.token)\n"),
            ]
            for (path, content) in files {
                let url = URL(fileURLWithPath: tree + "/" + path)
                try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
                try Data(content.utf8).write(to: url)
            }
            try FileManager.default.createSymbolicLink(atPath: tree + "/link", withDestinationPath: "app/config.env")
            return Fixture(pat: pat, live: live, revoked: revoked, expired: expired, forged: forged, foreign: foreign,
                           kid: kid, foreignKid: foreignKid, tree: tree)
        }

        func content(_ path: String) throws -> String { try String(contentsOfFile: tree + "/" + path, encoding: .utf8) }
    }

    // MARK: the fixture tree

    @Test("a tree with live, expired, revoked, forged and foreign tokens: the exact JSON report, exit 1")
    func treeJSON() async throws {
        let f = try await Fixture.make()
        let result = try await f.pat.run(["scan", f.tree, "--json"])
        expectNoToken(result, f)
        #expect(result.status == 1, "a live PAT was found: \(result.stderr)")

        let list = try #require(RevocationList.UnverifiedHeader(Array(try Data(contentsOf: URL(fileURLWithPath: f.pat.home + "/published/revocations.bin")))))
        let scanned = ["forged.txt", "app/config.env", "docs/notes.md", "vendor/other.json"]
        let bytes = try scanned.reduce(0) { $0 + (try f.content($1)).utf8.count }
        let findings = [
            try entry(f, "forged.txt", f.forged, status: "forged", reason: "bad_signature", kid: f.kid),
            try entry(f, "app/config.env", f.live.token, status: "live", reason: "valid", id: f.live.id, owner: "alice",
                      domain: "d1", expires: "2027-03-31T10:00:00Z", kid: f.kid),
            try entry(f, "docs/notes.md", f.revoked.token, status: "revoked", reason: "superseded", id: f.revoked.id, owner: "bob",
                      domain: "d2", expires: "2027-03-31T10:00:00Z", kid: f.kid),
            try entry(f, "docs/notes.md", f.expired.token, status: "expired", reason: "expired", id: f.expired.id, owner: "carol",
                      domain: "d1", expires: "2027-02-02T10:00:00Z", kid: f.kid),
            try entry(f, "vendor/other.json", f.foreign, status: "foreign", reason: "unknown_key", kid: f.foreignKid),
        ]
        let expected = #"{"findings":["# + findings.joined(separator: ",") + #"],"errors":[],"#
            + #""summary":{"scanned":4,"bytes":\#(bytes),"skippedBinary":1,"skippedOther":1,"unreadable":0,"#
            + #""live":1,"expired":1,"revoked":1,"forged":1,"foreign":1},"#
            + #""revocationList":{"sequence":\#(list.sequence),"nextUpdate":"\#(list.nextUpdate.rfc3339)","stale":false}}"#
        #expect(result.output == expected)
    }

    @Test("text: one line a finding (PATH:LINE:COLUMN: status …), a summary on stderr; binary files, .git and links skipped unless asked")
    func treeText() async throws {
        let f = try await Fixture.make()
        let result = try await f.pat.run(["scan", f.tree])
        expectNoToken(result, f)
        #expect(result.status == 1)
        let lines = result.output.split(separator: "\n").map(String.init)
        let (liveLine, liveColumn) = try position(of: f.live.token, in: f.content("app/config.env"))
        #expect(lines.count == 5)
        #expect(lines.first?.hasPrefix("\(f.tree)/forged.txt:1:23: forged token (bad_signature \(f.kid)) fingerprint ") == true)
        #expect(lines.dropFirst().first == "\(f.tree)/app/config.env:\(liveLine):\(liveColumn): live PAT \(f.live.id) owner \"alice\" "
                + "generation 1 domain \"d1\" expires 2027-03-31T10:00:00Z fingerprint \(TokenInspection.fingerprint(of: f.live.token))")
        #expect(lines.dropFirst(2).first?.contains(": revoked PAT \(f.revoked.id) (superseded) owner \"bob\"") == true)
        #expect(lines.dropFirst(3).first?.contains(": expired PAT \(f.expired.id) owner \"carol\"") == true)
        #expect(lines.last?.hasPrefix("\(f.tree)/vendor/other.json:1:11: foreign token (unknown_key \(f.foreignKid))") == true)
        #expect(result.stderr.contains("4 inputs scanned") && result.stderr.contains("1 binary skipped")
                && result.stderr.contains("1 live, 1 expired, 1 revoked, 1 forged, 1 foreign"))
        #expect(result.stderr.contains("pat revoke"), "says what to do about a live PAT")

        let everything = try await f.pat.run(["scan", f.tree, "--include-binary", "--include-dot-git"])
        expectNoToken(everything, f)
        let live = everything.output.split(separator: "\n").filter { $0.contains(": live PAT \(f.live.id)") }
        #expect(live.map { $0.split(separator: ":").first.map(String.init) ?? "" }.sorted()
                == ["\(f.tree)/.git/leak", "\(f.tree)/app/config.env", "\(f.tree)/image.bin"])
        // Named on the command line, a binary file is read.
        let named = try await f.pat.run(["scan", f.tree + "/image.bin"])
        #expect(named.status == 1 && named.output.contains("image.bin:1:6: live PAT"))
    }

    // MARK: exit codes and errors

    @Test("exit 0 without a live PAT, 1 with one, 3 when a path could not be read (and the rest was scanned), 2 on usage errors")
    func exitCodes() async throws {
        let f = try await Fixture.make()
        try FileManager.default.createDirectory(atPath: f.tree + "/broken/keys", withIntermediateDirectories: true)
        try Data("{\"keys\":[".utf8).write(to: URL(fileURLWithPath: f.tree + "/broken/keys/keyset.json"))
        let clean = try await f.pat.run(["scan", f.tree + "/docs", f.tree + "/forged.txt", f.tree + "/vendor"])
        expectNoToken(clean, f)
        #expect(clean.status == 0, "\(clean.stderr)")
        #expect(clean.output.split(separator: "\n").count == 4)

        let missing = f.tree + "/no-such-file"
        let partial = try await f.pat.run(["scan", missing, f.tree + "/docs"])
        #expect(partial.status == 3)
        #expect(partial.stderr.contains("pat scan: \(missing): cannot read: No such file or directory"))
        #expect(partial.output.contains(": revoked PAT \(f.revoked.id)"), "the other paths were still scanned")
        let partialJSON = try await f.pat.run(["scan", missing, f.tree + "/docs", "--json"]).object()
        #expect((partialJSON["errors"] as? [[String: String]]) == [["path": missing, "error": "cannot read: No such file or directory"]])

        let liveAndMissing = try await f.pat.run(["scan", missing, f.tree + "/app"])
        #expect(liveAndMissing.status == 1, "a live PAT outranks an unreadable path")

        for (arguments, message) in [
            (["scan", "--git", "-"], "--git scans repositories"),
            (["scan", "-", "-"], "only once"),
            (["scan", "--bogus"], "Unknown option"),
            (["scan", "--keys", "http://127.0.0.1:1/.well-known/pat/keys", f.tree], "nothing was scanned"),
            (["scan", "--keys", f.tree + "/nope.json", f.tree], "nope.json: cannot open"),
            (["scan", "--keys", f.tree + "/forged.txt", f.tree], "--keys"),
            (["scan", "--revocations", f.tree + "/forged.txt", f.tree], "--revocations"),
            (["scan", "--home", f.tree, f.tree], "no keys to check tokens against"),
            (["scan", "--home", f.tree + "/broken", f.tree], "keystore \(f.tree)/broken/keys/keyset.json: invalid document"),
        ] {
            let result = try await f.pat.run(arguments)
            expectNoToken(result, f)
            #expect(result.status == 2, "\(arguments): \(result.stderr)")
            #expect(result.stderr.contains(message), "\(arguments): \(result.stderr)")
        }
    }

    // MARK: standard input, other homes

    @Test("standard input (-): lines and columns, path \"-\" in JSON, mixed with files")
    func standardInput() async throws {
        let f = try await Fixture.make()
        let input = "first line\n\(f.revoked.token)\n  token: \(f.live.token)\n"
        let result = try await f.pat.run(["scan", "-", "--json"], input: input)
        expectNoToken(result, f)
        #expect(result.status == 1)
        let findings = try #require(try result.object()["findings"] as? [[String: Any]])
        #expect(findings.map { $0["source"] as? String } == ["stdin", "stdin"])
        #expect(findings.map { $0["path"] as? String } == ["-", "-"])
        #expect(findings.map { $0["line"] as? Int } == [2, 3])
        #expect(findings.map { $0["column"] as? Int } == [1, 10])
        #expect(findings.map { $0["status"] as? String } == ["revoked", "live"])

        let mixed = try await f.pat.run(["scan", f.tree + "/docs", "-"], input: input)
        #expect(mixed.status == 1)
        #expect(mixed.output.split(separator: "\n").map { $0.hasPrefix("(standard input):") } == [false, false, true, true])
    }

    @Test("--keys and --revocations: a machine holding only the published documents judges the same; without a list, revoked shows live")
    func publishedDocuments() async throws {
        let f = try await Fixture.make()
        let elsewhere = try await PatRunner(now: Self.t0) // an empty home: no keys of its own
        let published = f.pat.home + "/published"
        let anchors = f.pat.home + "/keys/anchors" // what `pat keys export --anchors` prints: pinned out of band
        let result = try await elsewhere.run(["scan", f.tree, "--json", "--keys", published + "/keys.json",
                                              "--trust-anchor", anchors, "--revocations", published + "/revocations.bin"])
        expectNoToken(result, f)
        let statuses = try #require(try result.object()["findings"] as? [[String: Any]]).map { $0["status"] as? String }
        #expect(statuses == ["forged", "live", "revoked", "expired", "foreign"])

        let unlisted = try await elsewhere.run(["scan", f.tree + "/docs", "--keys", published + "/keys.json", "--trust-anchor", anchors])
        // Without the anchors, the signed key set cannot be checked: refused, not trusted.
        let unanchored = try await elsewhere.run(["scan", f.tree + "/docs", "--keys", published + "/keys.json"])
        #expect(unanchored.status == 2 && unanchored.stderr.contains("--trust-anchor"), "\(unanchored.stderr)")
        expectNoToken(unlisted, f)
        #expect(unlisted.status == 1, "the revoked PAT is not known to be revoked without the list")
        #expect(unlisted.stderr.contains("no revocation list"))

        // Keys of another issuer: our tokens are all foreign, none is a leak of theirs.
        let other = try await PatRunner(now: Self.t0)
        try await other.ok(["keys", "generate"])
        let theirs = try await other.run(["scan", f.tree, "--json"])
        expectNoToken(theirs, f)
        #expect(theirs.status == 0)
        let kinds = try #require(try theirs.object()["findings"] as? [[String: Any]]).map { $0["status"] as? String }
        #expect(kinds == ["foreign", "foreign", "foreign", "foreign", "foreign"])
    }

    // MARK: git history

    static let git = Prerequisite(name: "git", hint: "apt-get install git (Debian)") {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/git" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    @Test("--git: a token committed then removed is still found, with its commit, blob, path and line; commit messages too")
    func gitHistory() async throws {
        let git = try await Self.git.require()
        let f = try await Fixture.make()
        let repo = f.pat.home + "/repo"
        try FileManager.default.createDirectory(atPath: repo, withIntermediateDirectories: true)
        func run(_ arguments: [String]) async throws -> String {
            let result = try await ChildProcess.run(git, ["-C", repo, "-c", "user.name=Test", "-c", "user.email=test@example.com",
                                                          "-c", "commit.gpgsign=false"] + arguments)
            #expect(result.succeeded, "\(result)")
            return result.output
        }
        _ = try await run(["init", "-q"])
        let secret = "# deploy\n\nexport TOKEN=\(f.live.token)\n"
        try Data(secret.utf8).write(to: URL(fileURLWithPath: repo + "/deploy.sh"))
        try Data("\u{0}\(f.live.token)".utf8).write(to: URL(fileURLWithPath: repo + "/blob.bin"))
        _ = try await run(["add", "deploy.sh", "blob.bin"])
        _ = try await run(["commit", "-q", "-m", "add deploy script"])
        let added = try await run(["rev-parse", "HEAD"])
        let blob = try await run(["rev-parse", "HEAD:deploy.sh"])
        _ = try await run(["rm", "-q", "deploy.sh", "blob.bin"])
        try Data("nothing here\n".utf8).write(to: URL(fileURLWithPath: repo + "/README"))
        _ = try await run(["add", "README"])
        _ = try await run(["commit", "-q", "-m", "remove the script\n\nThe old one was \(f.revoked.token)"])
        let removed = try await run(["rev-parse", "HEAD"])

        // The working tree holds nothing (and .git is skipped).
        let tree = try await f.pat.run(["scan", repo])
        expectNoToken(tree, f)
        #expect(tree.status == 0 && tree.output.isEmpty, "\(tree.stdout)\(tree.stderr)")

        let history = try await f.pat.run(["scan", "--git", repo, "--json"])
        expectNoToken(history, f)
        #expect(history.status == 1, "\(history.stderr)")
        let object = try history.object()
        let findings = try #require(object["findings"] as? [[String: Any]])
        let inBlob = try #require(findings.first { $0["objectType"] as? String == "blob" })
        #expect(inBlob["source"] as? String == "git")
        #expect(inBlob["repository"] as? String == repo)
        #expect(inBlob["commit"] as? String == added)
        #expect(inBlob["object"] as? String == blob)
        #expect(inBlob["path"] as? String == "deploy.sh")
        #expect(inBlob["line"] as? Int == 3 && inBlob["column"] as? Int == 14)
        #expect(inBlob["status"] as? String == "live" && inBlob["id"] as? String == f.live.id)
        let inMessage = try #require(findings.first { $0["objectType"] as? String == "commit" })
        #expect(inMessage["commit"] as? String == removed && inMessage["object"] as? String == removed)
        #expect(inMessage["status"] as? String == "revoked" && inMessage["id"] as? String == f.revoked.id)
        #expect(findings.count == 2, "the binary blob is skipped")
        let summary = try #require(object["summary"] as? [String: Int])
        #expect(summary["skippedBinary"] == 1)

        let text = try await f.pat.run(["scan", "--git", repo])
        expectNoToken(text, f)
        #expect(text.output.contains("\(added):deploy.sh:3:14: live PAT \(f.live.id)"))
        #expect(text.output.contains("(blob \(blob))"))
        #expect(text.output.contains("\(removed):(commit message):"))

        let binary = try await f.pat.run(["scan", "--git", repo, "--include-binary", "--json"])
        #expect(try #require(try binary.object()["findings"] as? [[String: Any]]).count == 3)

        let notARepository = try await f.pat.run(["scan", "--git", f.tree + "/docs"])
        #expect(notARepository.status == 3)
        #expect(notARepository.stderr.contains("git rev-list exited"), "\(notARepository.stderr)")
    }

    // MARK: helpers

    /// The JSON of one finding, written here independently of the code under test.
    func entry(_ f: Fixture, _ path: String, _ token: String, status: String, reason: String, id: String? = nil,
               owner: String? = nil, domain: String? = nil, expires: String? = nil, kid: String) throws -> String {
        let (line, column) = try position(of: token, in: f.content(path))
        let text: (String?) -> String = { $0.map { "\"\($0)\"" } ?? "null" }
        return #"{"source":"file","path":"\#(f.tree)/\#(path)","line":\#(line),"column":\#(column),"#
            + #""status":"\#(status)","reason":"\#(reason)","id":\#(text(id)),"owner":\#(text(owner)),"#
            + #""generation":\#(id == nil ? "null" : "1"),"domain":\#(text(domain)),"expiresAt":\#(text(expires)),"#
            + #""kid":"\#(kid)","fingerprint":"\#(TokenInspection.fingerprint(of: token))"}"#
    }

    /// The 1-based line and byte column of `token` in `content`.
    func position(of token: String, in content: String) throws -> (Int, Int) {
        let range = try #require(content.range(of: token))
        let before = content[..<range.lowerBound]
        let line = before.filter { $0 == "\n" }.count + 1
        let lineStart = before.lastIndex(of: "\n").map { content.index(after: $0) } ?? content.startIndex
        return (line, content.utf8.distance(from: lineStart, to: range.lowerBound) + 1)
    }

    /// No token, nor any long piece of one, appears in what the scan printed.
    func expectNoToken(_ result: PatResult, _ f: Fixture, sourceLocation: SourceLocation = #_sourceLocation) {
        for token in f.tokens {
            let payload = token.dropFirst("v4.public.".count)
            for piece in [String(payload.prefix(24)), String(payload.dropFirst(100).prefix(24)), String(token.suffix(24))]
            where result.stdout.contains(piece) || result.stderr.contains(piece) {
                Issue.record("a piece of a token was printed: \(result.stdout.prefix(300)) \(result.stderr.prefix(300))",
                             sourceLocation: sourceLocation)
            }
        }
    }
}
