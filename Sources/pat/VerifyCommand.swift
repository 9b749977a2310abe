import ArgumentParser
import PATStore
import PATKit

struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check a PAT offline: signature, times, revocation, domain and scopes.",
        discussion: """
            The token is read from standard input when not given, so it need not appear in shell
            history; surrounding whitespace is ignored. Keys default to HOME/keys/keyset.json; the
            revocation list defaults to HOME/published/revocations.bin when present.
            Exit status: 0 valid (claims printed), 1 invalid (reason printed), 2 usage error.
            Testing aid: PAT_NOW=YYYY-MM-DDTHH:MM:SSZ checks as if that were the current time.
            """)

    @OptionGroup var home: HomeOption
    @Argument(help: "The token (default: read from standard input).") var token: String?
    @Option(help: "Public key set JSON (as printed by `pat keys export`).") var keys: String?
    @Option(help: "Signed revocation list file.") var revocations: String?
    @Option(name: .customLong("require"), help: "A scope the PAT must grant, ENTITY:OPERATION[:ID]; repeat for more.") var required: [String] = []
    @Option(help: "The domain the PAT must act in.") var domain: String?
    @Option(help: "Clock-skew leeway in seconds.") var leeway: Int64 = 60
    @Flag(help: "Print the result as JSON.") var json = false

    func run() throws {
        let home = self.home.resolved
        let requiredScopes: [Scope]
        do { requiredScopes = try required.map { try Scope(parsing: $0) } } catch {
            throw CLIFailure(message: "error: --require: \(error)", status: 2)
        }
        let keySet: KeySet
        if let keys {
            keySet = try KeySet(json: SecureFile.read(keys, maxBytes: KeySet.maxDocumentBytes))
        } else {
            keySet = try home.keyStore.keySet()
            guard !keySet.isEmpty else {
                throw CLIFailure(message: "error: no keys in \(home.keysDirectory): pass --keys FILE or run `pat keys generate`")
            }
        }
        var policy = Validator.Policy()
        policy.leeway = leeway
        let clock = try currentClock() // $PAT_NOW (a testing aid) or the system clock
        let validator = Validator(keys: keySet, policy: policy, clock: clock)
        let listPath = revocations ?? (SecureFile.exists(home.publishedRevocationsPath) ? home.publishedRevocationsPath : nil)
        if let listPath {
            try validator.installRevocations(SecureFile.read(listPath, maxBytes: RevocationList.defaultMaxBytes))
        }
        let checker: Validator
        if listPath == nil {
            var relaxed = policy
            relaxed.requireRevocationList = false
            checker = Validator(keys: keySet, policy: relaxed, clock: clock)
            if !json { printError("note: no revocation list (pass --revocations FILE or run `pat publish`): revocation was not checked") }
        } else {
            checker = validator
        }

        let text = try token.map(trimSurroundingWhitespace) ?? readTokenFromStandardInput()
        do {
            let pat = try checker.validate(text, domain: domain)
            for scope in requiredScopes where !pat.scopes.allows(scope) {
                throw PATValidationError(.scopeMissing, "PAT \(pat.id) lacks scope \(scope)")
            }
            if json {
                var out = JSONObject()
                out.set("valid", .bool(true))
                out.set("kid", .string(pat.keyID.rawValue))
                out.set("claims", .object(pat.claims.json))
                emit(JSONValue.object(out).description)
            } else {
                emit(prettyJSON(pat.claims.json))
            }
        } catch let error as PATValidationError {
            if json {
                var out = JSONObject()
                out.set("valid", .bool(false))
                out.set("code", .string(error.code.rawValue))
                out.set("reason", .string(error.reason))
                emit(JSONValue.object(out).description)
            } else {
                printError("invalid token: \(error.code.rawValue): \(error.reason)")
            }
            throw CLIFailure(message: "", status: 1)
        }
    }
}
