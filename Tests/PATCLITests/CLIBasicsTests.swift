import Foundation
import Testing

/// The stateless commands: keys, issue, verify — exit codes, standard input, key-file safety.
@Suite struct CLIBasicsTests {
    let pat: PatRunner

    init() throws {
        pat = try PatRunner()
        try pat.ok(["keys", "generate"])
        try pat.ok(["publish"]) // an (empty) revocation list: `pat verify` refuses to decide without one
    }

    func issue(_ extra: [String] = []) throws -> String {
        try pat.ok(["issue", "--subject", "alice", "--scope", "clients:view", "--expires-in", "1h"] + extra).output
    }

    /// Runs `pat ARGS` with `input` on standard input.
    func run(_ arguments: [String], input: String) throws -> PatResult {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: pat.binary)
        process.arguments = arguments
        process.environment = pat.environment()
        let stdin = Pipe(), stdout = Pipe(), stderr = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        stdin.fileHandleForWriting.write(Data(input.utf8))
        try stdin.fileHandleForWriting.close()
        let out = stdout.fileHandleForReading.readDataToEndOfFile()
        let err = stderr.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return PatResult(status: process.terminationStatus, stdout: String(decoding: out, as: UTF8.self),
                         stderr: String(decoding: err, as: UTF8.self))
    }

    @Test func verifyReadsTheTokenFromStandardInputIgnoringSurroundingWhitespace() throws {
        let token = try issue()
        let result = try run(["verify", "--json"], input: "\n  \(token) \r\n")
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains(#""valid":true"#))
    }

    @Test func whitespaceInsideTheTokenIsNotIgnored() throws {
        let token = try issue()
        let middle = token.index(token.startIndex, offsetBy: 40)
        let broken = String(token[..<middle]) + " " + String(token[middle...])
        let result = try run(["verify", "--json"], input: broken)
        #expect(result.status == 1)
        #expect(result.stdout.contains(#""code":"malformed""#))
    }

    @Test func exitCodesAreZeroValidOneInvalidTwoUsage() throws {
        let token = try issue()
        #expect(try pat.run(["verify", token]).status == 0)
        #expect(try pat.run(["verify", token, "--require", "clients:update"]).status == 1)
        #expect(try pat.run(["verify", String(token.dropLast(3))]).status == 1)
        #expect(try pat.run(["verify", "--no-such-flag"]).status == 2)
        #expect(try pat.run(["verify", token, "--require", "not a scope"]).status == 2)
        #expect(try pat.run(["issue", "--subject", "a", "--expires-in", "1h", "--generation", "0"]).status == 2)
    }

    @Test func invalidTokenSaysWhy() throws {
        let token = try issue(["--domain", "d1"])
        let result = try pat.run(["verify", token, "--domain", "d2"])
        #expect(result.status == 1)
        #expect(result.stderr.contains("wrong_domain"))
    }

    @Test func issueChecksScopesAgainstTheCatalogAndListsValidOperations() throws {
        let refused = try pat.run(["issue", "--subject", "a", "--scope", "channels:publish", "--expires-in", "1h"])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("connect_client"))
        #expect(try pat.run(["issue", "--subject", "a", "--scope", "channels:publish:ch-42", "--expires-in", "1h",
                             "--catalog", "generic"]).status == 0)
    }

    @Test func extraClaimsTravelAndStayReadable() throws {
        let token = try issue(["--claim", "ignore_2fa=true", "--claim", "team=blue"])
        let object = try pat.ok(["verify", token, "--json"]).object()
        let claims = try #require(object["claims"] as? [String: Any])
        #expect(claims["ignore_2fa"] as? Bool == true)
        #expect(claims["team"] as? String == "blue")
    }

    @Test func secretKeysAreCreatedPrivateAndLooseOnesAreRefused() throws {
        let keysDir = pat.home + "/keys"
        let secret = try #require(try FileManager.default.contentsOfDirectory(atPath: keysDir).first { $0.hasSuffix(".secret") })
        let path = keysDir + "/" + secret
        let mode = try #require(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int)
        #expect(mode & 0o777 == 0o600)
        #expect(chmod(path, 0o640) == 0)
        let refused = try pat.run(["issue", "--subject", "a", "--expires-in", "1h"])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("chmod 600"))
        #expect(!refused.stdout.contains("k4.secret"))
    }

    @Test func exportPrintsNoSecretMaterial() throws {
        let exported = try pat.ok(["keys", "export"]).output
        #expect(exported.contains("k4.public."))
        #expect(!exported.contains("k4.secret"))
        let list = try pat.ok(["keys", "list"]).output
        #expect(!list.contains("k4.secret"))
    }

    @Test func verifyWithAnExportedKeySetAndNoHome() throws {
        let token = try issue()
        let keysFile = pat.home + "/exported.json"
        try pat.ok(["keys", "export"]).stdout.write(toFile: keysFile, atomically: true, encoding: .utf8)
        let other = try PatRunner()
        let list = pat.home + "/published/revocations.bin"
        #expect(try other.run(["verify", token, "--keys", keysFile, "--revocations", list]).status == 0)
        #expect(try other.run(["verify", token]).status == 1) // no keys in that home
    }
}
