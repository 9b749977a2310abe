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
            State lives in the PATKit home: --home, else $PAT_HOME, else the current directory.
            Registry-backed commands (create, list, show, scope, revoke, regenerate, delete, publish, serve) \
            record PATs in HOME/pat.db, or in the registry --database (else $PAT_DATABASE_URL) names: a \
            postgres:// URL (several pat serve nodes on one PostgreSQL) or an SQLite file; verifiers learn of \
            changes from `pat publish` or a running `pat serve`.
            Exit status: 0 success, 1 failure (e.g. an invalid token), 2 usage error.
            Testing aid: PAT_NOW=YYYY-MM-DDTHH:MM:SSZ makes issue, create, scope, revoke, regenerate, delete, \
            list, show, publish and verify take that instant as the current time.
            """,
        version: "pat \(PATKitVersion.string) (libsodium \(PATKitVersion.libsodium))",
        subcommands: [KeysCommand.self, IssueCommand.self, VerifyCommand.self,
                      CreateCommand.self, ListCommand.self, ShowCommand.self, ScopeCommand.self, RevokeCommand.self,
                      RegenerateCommand.self, DeleteCommand.self, PublishCommand.self, ServeCommand.self,
                      ScanCommand.self, InspectCommand.self]
    )

    /// Runs the command; usage errors exit 2, failures exit 1 with a message on stderr.
    static func main() async {
        FaultPoint.armFromEnvironment() // PAT_TEST_PAUSE_AT: crash tests only
        do {
            var command = try parseAsRoot()
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

    /// Reports `error` and exits: usage errors 2, failures 1, with a message on stderr.
    static func fail(_ error: any Error) -> Never {
        do { throw error } catch let failure as CLIFailure {
            printError(failure.message)
            Glibc.exit(failure.status)
        } catch let error as PATKitError {
            printError("error: \(error)")
            Glibc.exit(1)
        } catch let error as PATValidationError {
            printError("error: \(error)")
            Glibc.exit(1)
        } catch let error as RegistryError {
            printError("error: \(error)")
            Glibc.exit(1)
        } catch let error as ManagementError {
            printError(cliMessage(error))
            Glibc.exit(1)
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                self.exit(withError: error) // --help, --version
            }
            if code == .validationFailure {
                printError(fullMessage(for: error))
                Glibc.exit(2)
            }
            printError("error: \(fullMessage(for: error))")
            Glibc.exit(code == .failure ? 1 : code.rawValue)
        }
    }
}

/// A failure the CLI reports itself: the message says what was wrong and what to do.
struct CLIFailure: Error {
    let message: String
    var status: Int32 = 1
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
        throw CLIFailure(message: "error: no token given: pass it as the argument, or on standard input (e.g. `printf '%s' \"$TOKEN\" | pat verify`)",
                         status: 2)
    }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = buffer.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            throw CLIFailure(message: "error: cannot read the token from standard input", status: 2)
        }
        if n == 0 { break }
        bytes += buffer[0..<n]
        guard bytes.count <= limit else {
            throw CLIFailure(message: "error: standard input exceeds \(limit) bytes; a PAT is at most 8 KiB", status: 1)
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
