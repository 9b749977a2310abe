import ArgumentParser
import PATStore
import PATKit

struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check a PAT offline: signature, times, revocation, domain and scopes.",
        discussion: """
            The token is read from standard input when not given, so it need not appear in shell \
            history; surrounding whitespace is ignored. Keys default to HOME/keys/keyset.json; with \
            --trust-anchor FILE they come from a signed key set (--keys, else HOME/published/keys.json) \
            that one of the anchors signed. The revocation list defaults to HOME/published/revocations.bin; \
            without one the token is refused (missing_revocation_list) unless --no-revocation-check.
            Exit status: 0 valid (claims printed), 1 invalid (reason printed), 2 usage error.
            Testing aid: PAT_NOW=YYYY-MM-DDTHH:MM:SSZ checks as if that were the current time.
            """)

    @OptionGroup var home: HomeOption
    @Argument(help: "The token (default: read from standard input).") var token: String?
    @Option(help: "Key set JSON: a signed key set (published keys.json) or a plain one (`pat keys export`).") var keys: String?
    @Option(name: .customLong("trust-anchor"),
            help: ArgumentHelp("Trust anchors (k4.public lines, `pat keys export --anchors`): the key set must be signed by one. "
                               + "Without --keys, HOME/published/keys.json is used.", valueName: "FILE"))
    var trustAnchor: String?
    @Option(help: "Signed revocation list file (default: HOME/published/revocations.bin).") var revocations: String?
    @Flag(name: .customLong("no-revocation-check"), help: "Check without a revocation list (revoked tokens pass). Never for access decisions.")
    var noRevocationCheck = false
    @Option(name: .customLong("require"), help: "A scope the PAT must grant, ENTITY:OPERATION[:ID]; repeat for more.",
            transform: parseScope) var required: [Scope] = []
    @Option(help: "The domain the PAT must act in.") var domain: String?
    @Option(parsing: .unconditional, help: "Clock-skew leeway in seconds (at most the list's prune margin, 60 s by default).") var leeway: Int64 = 60
    @Flag(help: "Print the result as JSON.") var json = false

    func validate() throws {
        if noRevocationCheck, revocations != nil { throw ValidationError("--revocations and --no-revocation-check exclude each other") }
        guard leeway >= 0 else { throw ValidationError("--leeway must be 0 or more seconds") }
    }

    func run() throws {
        let home = self.home.resolved
        let requiredScopes = required
        var policy = Validator.Policy()
        policy.leeway = leeway
        policy.requireRevocationList = !noRevocationCheck
        let clock = try currentClock() // $PAT_NOW (a testing aid) or the system clock
        let validator = try loadKeys(home: home, policy: policy, clock: clock)
        let listPath = noRevocationCheck ? nil
            : revocations ?? (SecureFile.exists(home.publishedRevocationsPath) ? home.publishedRevocationsPath : nil)
        if let listPath {
            let bytes = try SecureFile.read(listPath, maxBytes: RevocationList.defaultMaxBytes)
            do { try validator.installRevocations(bytes) } catch {
                // Keys from elsewhere, list from the home: say which list it was and how to pass the right one.
                let hint = switch (revocations, keys) {
                case (nil, .some): " (this is the home's revocation list, used because --revocations was not given: pass the list "
                    + "of the issuer of --keys with --revocations FILE)"
                case (nil, nil): " (the home's published list; e.g. after `pat keys retire` of the key that signed it, "
                    + "`pat publish` re-signs it with an active key)"
                default: ""
                }
                throw CLIFailure(message: "\(listPath): \(error)" + hint)
            }
        }

        let text = try token.map(trimSurroundingWhitespace) ?? readTokenFromStandardInput()
        do {
            let pat = try validate(validator, text, explainMissingList: listPath == nil ? home.publishedRevocationsPath : nil)
            for scope in requiredScopes where !pat.scopes.allows(scope) {
                throw PATValidationError(.scopeMissing, "PAT \(pat.id) lacks scope \(scope)")
            }
            if json {
                var out = JSONObject()
                out.set("valid", .bool(true))
                out.set("revocationChecked", .bool(!noRevocationCheck))
                out.set("kid", .string(pat.keyID.rawValue))
                out.set("claims", .object(pat.claims.json))
                emit(JSONValue.object(out).description)
            } else {
                if noRevocationCheck { printError("note: --no-revocation-check: revocation was not checked") }
                emit(prettyJSON(pat.claims.json))
            }
        } catch let error as PATValidationError {
            if json {
                var out = JSONObject()
                out.set("valid", .bool(false))
                out.set("revocationChecked", .bool(!noRevocationCheck && listPath != nil))
                out.set("code", .string(error.code.rawValue))
                out.set("reason", .string(error.reason))
                emit(JSONValue.object(out).description)
            } else {
                printError("error: invalid token: \(error.code.rawValue): \(error.reason)")
            }
            throw CLIFailure(message: "", status: 1)
        }
    }

    /// Validates; a missing list is explained in CLI terms when `explainMissingList` (the default path) is given, and a
    /// stale list or key set says what republishes it.
    private func validate(_ validator: Validator, _ text: String, explainMissingList defaultPath: String?) throws(PATValidationError) -> VerifiedPAT {
        do {
            return try validator.validate(text, domain: domain)
        } catch {
            switch error.code {
            case .staleRevocationList:
                throw PATValidationError(.staleRevocationList, error.reason + "; the issuer must publish a newer list: `pat publish` "
                                         + "(from cron or a systemd timer, more often than its --next-update) or a running `pat serve`")
            case .staleKeySet:
                throw PATValidationError(.staleKeySet, error.reason + "; the issuer must sign the key set again: `pat publish` "
                                         + "(online anchor) or `pat keys sign-set` (offline anchor)")
            default:
                break
            }
            guard error.code == .missingRevocationList, let defaultPath else { throw error }
            throw PATValidationError(.missingRevocationList,
                                     "no revocation list, so revocation cannot be checked: pass --revocations FILE or run `pat publish` "
                                     + "(which writes \(defaultPath)); --no-revocation-check skips the check")
        }
    }

    /// The validator with the trusted keys: a signed key set checked against the trust anchors
    /// (`--trust-anchor`, else the home's anchors), or — without anchors — a plain key set the
    /// user vouches for (`--keys FILE`, else the home's keystore).
    private func loadKeys(home: PATHome, policy: Validator.Policy, clock: @escaping @Sendable () -> Timestamp) throws -> Validator {
        let anchors = try trustAnchor.map { try TrustAnchors(contentsOfFile: $0) }
        let path = keys ?? (anchors != nil ? home.publishedKeysPath : nil)
        guard let path else {
            let keySet = try home.keyStore.keySet()
            guard !keySet.isEmpty else {
                throw CLIFailure(message: "no keys in \(home.keysDirectory): pass --keys FILE (with --trust-anchor FILE) or run `pat keys generate`")
            }
            return Validator(keys: keySet, policy: policy, clock: clock)
        }
        let bytes = try SecureFile.read(path, maxBytes: SignedKeySet.maxDocumentBytes)
        guard SignedKeySet.looksSigned(bytes) else {
            if anchors != nil {
                throw CLIFailure(message: "\(path) is a plain key set, not one signed by a trust anchor: with --trust-anchor, "
                                 + "pass the published keys.json (written by `pat publish` or `pat keys sign-set`)")
            }
            return Validator(keys: try KeySet(json: bytes), policy: policy, clock: clock)
        }
        guard let trusted = try anchors ?? home.keyStore.trustAnchors() else {
            throw CLIFailure(message: "\(path) is a signed key set: pass --trust-anchor FILE (the issuer's `pat keys export --anchors`) to check it")
        }
        let validator = Validator(keys: KeySet(), policy: policy, clock: clock)
        do { try validator.install(try SignedKeySet(verifying: bytes, anchors: trusted)) } catch {
            throw CLIFailure(message: "\(path): \(error)")
        }
        return validator
    }
}
