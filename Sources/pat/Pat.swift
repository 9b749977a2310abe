import ArgumentParser
import PATStore
import PATKit
import PATManagement
import PATRegistry
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@main
struct Pat: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pat",
        abstract: "Issue, manage and verify offline-checkable personal access tokens (PASETO v4.public).",
        discussion: """
            State lives in the PATKit home: --home (before or after the command), else $PAT_HOME, else the \
            current directory. Commands that only read (list, show, policy list, keys list, keys export) \
            refuse a home that does not exist and never create one.
            Registry-backed commands (create, list, show, scope, revoke, regenerate, delete, publish, policy, serve) \
            record PATs in HOME/pat.db, or in the registry --database (else $PAT_DATABASE_URL) names: a \
            postgres:// URL (several pat serve nodes on one PostgreSQL) or an SQLite file; verifiers learn of \
            changes from `pat publish` or a running `pat serve`.
            Exit status: 0 success (also a repeat that changes nothing), 1 the operation failed (e.g. an \
            invalid token, no such PAT), 2 usage error (e.g. a bad duration, scope, catalog or key id). Errors \
            are `error: …` on standard error; with --json, {"error":{"code":…,"message":…}} on standard output.
            Testing aid: PAT_NOW=YYYY-MM-DDTHH:MM:SSZ makes issue, create, scope, revoke, regenerate, delete, \
            list, show, publish and verify take that instant as the current time.
            """,
        version: "pat \(PATKitVersion.string) (libsodium \(PATKitVersion.libsodium))" + (ServerTrait.isEnabled ? "" : ", without the server"),
        subcommands: [KeysCommand.self, IssueCommand.self, VerifyCommand.self,
                      CreateCommand.self, ListCommand.self, ShowCommand.self, ScopeCommand.self, RevokeCommand.self,
                      RegenerateCommand.self, DeleteCommand.self, PublishCommand.self, ServeCommand.self,
                      ScanCommand.self, InspectCommand.self, PolicyCommand.self]
    )

    /// Runs the command; usage errors exit 2, failures exit 1 (`CLIFailure.report`).
    static func main() async {
        FaultPoint.armFromEnvironment() // PAT_TEST_PAUSE_AT: crash tests only
        do {
            var command = try await asyncParseAsRoot(try homeBeforeCommand(Array(CommandLine.arguments.dropFirst())))
            if var asynchronous = command as? any AsyncParsableCommand {
                try await asynchronous.run()
            } else {
                try command.run()
            }
            await OpenStores.shared.closeAll()
        } catch {
            await OpenStores.shared.closeAll()
            fail(error)
        }
    }

    /// `pat --home DIR COMMAND …`: a home named before the command is the command's home, as if
    /// given as $PAT_HOME (a `--home` after the command still wins). Returns the other arguments.
    static func homeBeforeCommand(_ arguments: [String]) throws -> [String] {
        var rest = arguments[...]
        while let first = rest.first, first == "--home" || first.hasPrefix("--home=") {
            rest = rest.dropFirst()
            let value: String
            if first == "--home" {
                guard let next = rest.first, !next.hasPrefix("-") else {
                    throw ValidationError("Missing value for '--home <DIR>'")
                }
                value = next
                rest = rest.dropFirst()
            } else {
                value = String(first.dropFirst("--home=".count))
            }
            guard !value.isEmpty else { throw ValidationError("--home: the home folder must not be empty") }
            setenv("PAT_HOME", value, 1)
        }
        return Array(rest)
    }

    /// Whether the command line asks for JSON output (`--json` before any `--`): errors are
    /// then reported as JSON too, even those found while parsing the command line.
    static var wantsJSON: Bool {
        CommandLine.arguments.dropFirst().prefix { $0 != "--" }.contains("--json")
    }

    /// Reports `error` (`CLIFailure.report`) and exits with its status; --help and --version
    /// print their text and exit 0.
    static func fail(_ error: any Error) -> Never {
        if !(error is CLIFailure), exitCode(for: error) == .success {
            self.exit(withError: error) // --help, --version
        }
        let failure = CLIFailure.describing(error)
        failure.report(json: wantsJSON)
        Glibc.exit(failure.status)
    }
}

/// A failure of a command: what went wrong, the exit status (1 the operation failed, 2 usage
/// error) and a code for JSON output. Every error of every command is reported through
/// `report(json:)`: `error: MESSAGE` on stderr, or with --json the management API's error shape
/// `{"error":{"code":…,"message":…}}` on stdout.
struct CLIFailure: Error {
    /// What was wrong and what to do, without the `error: ` prefix. Empty when the command has
    /// already printed its result (e.g. `pat verify` of an invalid token).
    let message: String
    var status: Int32 = 1
    /// The JSON error code; by default `invalid_input` for usage errors, else `failed`.
    var code: String?
    /// For people only (stderr, after the message): the usage of the command.
    var usage: String = ""

    init(message: String, status: Int32 = 1, code: String? = nil) {
        self.message = message
        self.status = status
        self.code = code
    }

    var jsonCode: String { code ?? (status == 2 ? "invalid_input" : "failed") }

    func report(json: Bool) {
        guard !message.isEmpty else { return }
        if json {
            var inner = JSONObject()
            inner.set("code", .string(jsonCode))
            inner.set("message", .string(message))
            var outer = JSONObject()
            outer.set("error", .object(inner))
            emit(JSONValue.object(outer).description)
        } else {
            printError("error: " + message + (usage.isEmpty ? "" : "\n" + usage))
        }
    }

    /// The one mapping from the errors of the libraries and of argument parsing to the CLI's
    /// statuses: invalid input (parsing, validation, a service `invalid_input`, a malformed
    /// scope) is a usage error, exit 2; everything else exit 1. Commands turn what they parse
    /// themselves into `ValidationError`s (exit 2) where it is read.
    static func describing(_ error: any Error) -> CLIFailure {
        switch error {
        case let failure as CLIFailure:
            return failure
        case let error as ManagementError:
            return CLIFailure(message: cliMessage(error), status: error.kind == .invalidInput ? 2 : 1, code: error.kind.name)
        case let error as PATKitError:
            switch error {
            case .invalidScope: return CLIFailure(message: "\(error)", status: 2, code: "invalid_scope")
            case .invalidArgument: return CLIFailure(message: "\(error)", status: 1) // state, e.g. a key set to sign first
            case .invalidKey: return CLIFailure(message: "\(error)", status: 1, code: "invalid_key")
            case .insecureKeyFile: return CLIFailure(message: "\(error)", status: 1, code: "insecure_key_file")
            case .io: return CLIFailure(message: "\(error)", status: 1, code: "io_error")
            case .invalidDocument, .rollback, .keySetRollback: return CLIFailure(message: "\(error)", status: 1, code: "invalid_document")
            case .invalidClaims, .crypto: return CLIFailure(message: "\(error)", status: 1)
            }
        case let error as PATValidationError:
            return CLIFailure(message: "\(error)", status: 1, code: error.code.rawValue)
        case let error as RegistryError:
            return CLIFailure(message: "\(error)", status: 1, code: error.kind == .unavailable ? "unavailable" : "registry_error")
        default:
            let status = Pat.exitCode(for: error)
            let message = Pat.message(for: error)
            var failure = CLIFailure(message: message.isEmpty ? "\(error)" : message,
                                     status: status == .validationFailure ? 2 : 1)
            if status == .validationFailure {
                // argument-parser's full text: "Error: MESSAGE\n", then help and usage lines.
                let full = Pat.fullMessage(for: error)
                if let end = full.range(of: message + "\n") {
                    var usage = String(full[end.upperBound...])
                    while usage.last == "\n" || usage.last == " " { usage.removeLast() }
                    failure.usage = usage
                }
            } else if status != .failure {
                failure.status = status.rawValue
            }
            return failure
        }
    }
}

struct HomeOption: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("PATKit home folder (default: $PAT_HOME, else the current directory).", valueName: "DIR"))
    var home: String?

    var resolved: PATHome { PATHome.resolve(home) }
}

func printError(_ message: String) {
    guard !message.isEmpty else { return }
    var line = message
    if !line.hasSuffix("\n") { line += "\n" }
    writeAll(2, line)
}

/// Prints to stdout and flushes (output may be piped into another program).
func emit(_ text: String) {
    writeAll(1, text + "\n")
}

func writeAll(_ fd: Int32, _ text: String) {
    var bytes = Array(text.utf8)
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeMutableBytes { buf in write(fd, buf.baseAddress.map { $0 + offset }, buf.count - offset) }
        if n < 0 { if errno == EINTR { continue }; return }
        offset += n
    }
}

/// Reads a token from standard input: bounded, surrounding whitespace ignored.
func readTokenFromStandardInput(limit: Int = 64 * 1024) throws -> String {
    if isatty(0) == 1 { // a person at a terminal would wait for nothing
        throw CLIFailure(message: "no token given: pass it as the argument, or on standard input (e.g. `printf '%s' \"$TOKEN\" | pat verify`)",
                         status: 2)
    }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = buffer.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            throw CLIFailure(message: "cannot read the token from standard input", status: 2)
        }
        if n == 0 { break }
        bytes += buffer[0..<n]
        guard bytes.count <= limit else {
            throw CLIFailure(message: "standard input exceeds \(limit) bytes; a PAT is at most 8 KiB", status: 1)
        }
    }
    return trimSurroundingWhitespace(String(decoding: bytes, as: UTF8.self))
}

func trimSurroundingWhitespace(_ text: String) -> String {
    let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\n" || $0 == "\r\n" || $0 == "\r" || $0 == "\t" }
    guard let start = text.firstIndex(where: { !isSpace($0) }), let end = text.lastIndex(where: { !isSpace($0) }) else { return "" }
    return String(text[start...end])
}

/// Pretty JSON for people: one member per line at the top level.
func prettyJSON(_ object: JSONObject) -> String {
    guard object.count > 0 else { return "{}" }
    let lines = object.members.map { member -> String in
        var key: [UInt8] = []
        JSONWriter.writeString(member.key, into: &key)
        return "  " + String(decoding: key, as: UTF8.self) + ": " + member.value.description
    }
    return "{\n" + lines.joined(separator: ",\n") + "\n}"
}
