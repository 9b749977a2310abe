import Foundation
import Testing

/// The stateless commands: keys, issue, verify — exit codes, standard input, key-file safety.
@Suite(.timeLimit(.minutes(5))) struct CLIBasicsTests {
    let pat: PatRunner

    init() async throws {
        pat = try await PatRunner()
        try await pat.ok(["keys", "generate"])
        try await pat.ok(["publish"]) // an (empty) revocation list: `pat verify` refuses to decide without one
    }

    func issue(_ extra: [String] = []) async throws -> String {
        try await pat.ok(["issue", "--subject", "alice", "--scope", "clients:view", "--expires-in", "1h"] + extra).output
    }

    @Test func verifyReadsTheTokenFromStandardInputIgnoringSurroundingWhitespace() async throws {
        let token = try await issue()
        let result = try await pat.run(["verify", "--json"], input: "\n  \(token) \r\n")
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains(#""valid":true"#))
    }

    @Test func whitespaceInsideTheTokenIsNotIgnored() async throws {
        let token = try await issue()
        let middle = token.index(token.startIndex, offsetBy: 40)
        let broken = String(token[..<middle]) + " " + String(token[middle...])
        let result = try await pat.run(["verify", "--json"], input: broken)
        #expect(result.status == 1)
        #expect(result.stdout.contains(#""code":"malformed""#))
    }

    @Test func exitCodesAreZeroValidOneInvalidTwoUsage() async throws {
        let token = try await issue()
        #expect(try await pat.run(["verify", token]).status == 0)
        #expect(try await pat.run(["verify", token, "--require", "clients:update"]).status == 1)
        #expect(try await pat.run(["verify", String(token.dropLast(3))]).status == 1)
        #expect(try await pat.run(["verify", "--no-such-flag"]).status == 2)
        #expect(try await pat.run(["verify", token, "--require", "not a scope"]).status == 2)
        #expect(try await pat.run(["issue", "--subject", "a", "--expires-in", "1h", "--generation", "0"]).status == 2)
    }

    @Test func invalidTokenSaysWhy() async throws {
        let token = try await issue(["--domain", "d1"])
        let result = try await pat.run(["verify", token, "--domain", "d2"])
        #expect(result.status == 1)
        #expect(result.stderr.contains("wrong_domain"))
    }

    @Test func issueChecksScopesAgainstTheCatalogAndListsValidOperations() async throws {
        let refused = try await pat.run(["issue", "--subject", "a", "--scope", "channels:publish", "--expires-in", "1h"])
        #expect(refused.status == 2, "a scope outside the catalog: a usage error, as in pat create")
        #expect(refused.stderr.contains("connect_client"))
        #expect(try await pat.run(["issue", "--subject", "a", "--scope", "channels:publish:ch-42", "--expires-in", "1h",
                             "--catalog", "generic"]).status == 0)
    }

    /// Issue 14 §1: `pat issue --catalog management` minted `pats:*` tokens the registry never
    /// recorded (so nothing could list, revoke or bound them). They belong to `pat create`.
    @Test func issueRefusesManagementScopes() async throws {
        for extra in [["--catalog", "management"], []] {
            let refused = try await pat.run(["issue", "--subject", "a", "--scope", "clients:view", "--scope", "pats:create",
                                             "--expires-in", "1h"] + extra)
            #expect(refused.status == 2, "\(refused.stderr)")
            #expect(refused.stderr.contains("pats:create:*") && refused.stderr.contains("pat create --catalog management"), "\(refused.stderr)")
            #expect(refused.stdout.isEmpty, "no token")
        }
        #expect(try await pat.run(["issue", "--subject", "a", "--scope", "clients:view", "--expires-in", "1h",
                                   "--catalog", "management"]).status == 0, "other scopes of the management catalog still issue")
    }

    @Test func extraClaimsTravelAndStayReadable() async throws {
        let token = try await issue(["--claim", "ignore_2fa=true", "--claim", "team=blue"])
        let object = try await pat.ok(["verify", token, "--json"]).object()
        let claims = try #require(object["claims"] as? [String: Any])
        #expect(claims["ignore_2fa"] as? Bool == true)
        #expect(claims["team"] as? String == "blue")
    }

    @Test func secretKeysAreCreatedPrivateAndLooseOnesAreRefused() async throws {
        let keysDir = pat.home + "/keys"
        let secret = try #require(try FileManager.default.contentsOfDirectory(atPath: keysDir).first { $0.hasSuffix(".secret") })
        let path = keysDir + "/" + secret
        let mode = try #require(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int)
        #expect(mode & 0o777 == 0o600)
        #expect(chmod(path, 0o640) == 0)
        let refused = try await pat.run(["issue", "--subject", "a", "--expires-in", "1h"])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("chmod 600"))
        #expect(!refused.stdout.contains("k4.secret"))
    }

    @Test func exportPrintsNoSecretMaterial() async throws {
        let exported = try await pat.ok(["keys", "export"]).output
        #expect(exported.contains("k4.public."))
        #expect(!exported.contains("k4.secret"))
        let list = try await pat.ok(["keys", "list"]).output
        #expect(!list.contains("k4.secret"))
    }

    @Test func verifyWithAnExportedKeySetAndNoHome() async throws {
        let token = try await issue()
        let keysFile = pat.home + "/exported.json"
        try await pat.ok(["keys", "export"]).stdout.write(toFile: keysFile, atomically: true, encoding: .utf8)
        let other = try await PatRunner()
        let list = pat.home + "/published/revocations.bin"
        #expect(try await other.run(["verify", token, "--keys", keysFile, "--revocations", list]).status == 0)
        #expect(try await other.run(["verify", token]).status == 1) // no keys in that home
    }
}
