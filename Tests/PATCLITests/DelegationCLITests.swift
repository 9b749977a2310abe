import Foundation
import Testing

/// Issue 9 through the real `pat` binary: byte-exact identities (H1), terminal-safe output (L3)
/// and the one JSON shape of a PAT record.
@Suite("pat: identities, output safety, JSON shape", .timeLimit(.minutes(5)))
struct DelegationCLITests {
    static let t0 = "2027-03-01T10:00:00Z"
    static let nfc = "\u{e9}ve", nfd = "e\u{301}ve"

    /// H1: two spellings of one name must never be two identities in one place and one in another.
    @Test func nonNFCIdentitiesAreRefusedNamingTheOption() async throws {
        let pat = try await PatRunner(now: Self.t0)
        try await pat.ok(["keys", "generate"])
        let base = ["create", "--scope", "clients:view", "--expires-in", "1d"]
        for (option, arguments) in [("--owner", ["--owner", Self.nfd, "--name", "n"]),
                                    ("--name", ["--owner", "alice", "--name", "caf" + "e\u{301}"]),
                                    ("--domain", ["--owner", "alice", "--name", "n", "--domain", Self.nfd]),
                                    ("--name", ["--owner", "alice", "--name", "\u{212A}elvin"])] {
            let refused = try await pat.run(base + arguments)
            #expect(refused.status == 2, "\(arguments): \(refused.stderr)")
            #expect(refused.stderr.contains("error: \(option): is not in Unicode NFC"), "\(refused.stderr)")
        }
        #expect(try await pat.list().isEmpty, "nothing was created")
        let victim = try await pat.issue(base + ["--owner", Self.nfc, "--name", "victim", "--domain", Self.nfc])
        #expect(try await pat.list(["--owner", Self.nfc]).map { $0["id"] as? String } == [victim.id])
        let listed = try await pat.run(["list", "--owner", Self.nfd])
        #expect(listed.status == 2 && listed.stderr.contains("--owner: is not in Unicode NFC"), "\(listed.stderr)")
        // The owner is stored byte for byte.
        let shown = try await pat.ok(["show", victim.id, "--json"]).object()
        #expect((shown["owner"] as? String).map { Array($0.utf8) } == Array(Self.nfc.utf8))

        // The Validator compares the domain as bytes: `pat verify --domain e\u{301}ve` refuses a
        // token of \u{e9}ve (Swift's String == calls them equal).
        try await pat.ok(["publish"])
        #expect(try await pat.verify(victim.token, extra: ["--domain", Self.nfc]) == nil)
        #expect(try await pat.verify(victim.token, extra: ["--domain", Self.nfd])?.code == "wrong_domain")
    }

    /// L3: a description with ESC, CR and BEL was printed raw by `pat show` (and could clear the
    /// screen, set the window title, fake a line). Tables and `show` escape; JSON stays exact.
    @Test func controlCharactersAreEscapedForTerminalsAndExactInJSON() async throws {
        let pat = try await PatRunner(now: Self.t0)
        try await pat.ok(["keys", "generate"])
        let description = "\u{1b}[2J\r\nfake: line\u{1b}]0;pwned\u{07}"
        let created = try await pat.issue(["create", "--owner", "alice", "--name", "right\u{202E}txt.exe", "--description", description,
                                     "--scope", "clients:view", "--expires-in", "1d"])
        for output in [try await pat.ok(["show", created.id]).stdout, try await pat.ok(["list"]).stdout] {
            for byte: UInt8 in [0x1B, 0x07, 0x0D] { #expect(!output.utf8.contains(byte), "raw control byte \(byte) in \(output)") }
            #expect(!output.unicodeScalars.contains("\u{202E}"), "a bidi override reaches the terminal")
            #expect(output.contains("right\\u202etxt.exe"), "\(output)")
        }
        let show = try await pat.ok(["show", created.id]).stdout
        #expect(show.contains(#"\u001b[2J\u000d\u000afake: line\u001b]0;pwned\u0007"#), "\(show)")
        #expect(!show.contains("\nfake: line"), "no line can be faked")
        let json = try await pat.ok(["show", created.id, "--json"]).object()
        #expect(json["description"] as? String == description, "JSON stays exact")
        #expect(json["name"] as? String == "right\u{202E}txt.exe")
    }

    /// One JSON shape for a PAT record: `pat show --json`, `pat list --json`, the API and webhooks;
    /// a freshly issued token is `accessToken` everywhere (before: `token` in the CLI).
    @Test func oneJSONShapeWithAccessToken() async throws {
        let pat = try await PatRunner(now: Self.t0)
        try await pat.ok(["keys", "generate"])
        let created = try await pat.ok(["create", "--owner", "alice", "--name", "n", "--scope", "clients:view", "--expires-in", "1d", "--json"]).object()
        let record: Set<String> = ["id", "owner", "name", "description", "domain", "scopes", "status", "generation", "validFromGeneration",
                                   "lineage", "revokedAncestor", "createdAt", "updatedAt", "expiresAt", "maxExpiresAt", "lastRotatedAt",
                                   "previousGenerationValidUntil", "revokedAt", "revokedBy",
                                   "lastUsedAt", "lastUsedFrom", "lastUseOutcome", "uses"]
        #expect(Set(created.keys) == record.union(["accessToken", "issuedAt"]))
        #expect(created["token"] == nil)
        let id = try #require(created["id"] as? String)
        #expect(Set(try await pat.ok(["show", id, "--json"]).object().keys) == record.union(["usageByDay"]))
        #expect(try await pat.list().allSatisfy { Set($0.keys) == record })
        let regenerated = try await pat.ok(["regenerate", id, "--expires-in", "2d", "--json"]).object()
        #expect(Set(regenerated.keys) == record.union(["accessToken", "issuedAt"]))
        // Who revoked is recorded: the operator, here.
        try await pat.ok(["revoke", id])
        let revoked = try await pat.ok(["show", id, "--json"]).object()
        #expect((revoked["revokedBy"] as? [String: Any])?["type"] as? String == "cli")
        #expect(try await pat.ok(["show", id]).stdout.contains("revoked by:             the operator (pat CLI)"))
    }
}
