import ArgumentParser
import Logging
import PATKit
import PATManagement
import PATRegistry
#if Server
import PATRegistryPostgres // else LightRegistryDatabase.swift
#endif
import PATStore
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Shared by the registry-backed commands (create, list, show, scope, revoke, regenerate,
// delete, publish).

/// The current time: `$PAT_NOW` when set (an RFC 3339 UTC time, a testing aid for
/// time travel), else the system clock.
func currentTime() throws -> Timestamp {
    guard let raw = getenv("PAT_NOW"), let text = String(validatingCString: raw), !text.isEmpty else {
        return Timestamp.now()
    }
    guard let now = Timestamp(rfc3339: text) else {
        throw CLIFailure(message: "PAT_NOW=\(text.prefix(64)) is not an RFC 3339 UTC time like 2026-01-31T12:00:00Z "
                         + "(PAT_NOW is a testing aid: unset it to use the system clock)", status: 2)
    }
    return now
}

/// A clock for the libraries: fixed at `$PAT_NOW` when set, else the system clock.
func currentClock() throws -> @Sendable () -> Timestamp {
    guard let raw = getenv("PAT_NOW"), let text = String(validatingCString: raw), !text.isEmpty else {
        return { Timestamp.now() }
    }
    let now = try currentTime()
    return { now }
}

/// Parses an RFC 3339 `YYYY-MM-DDTHH:MM:SSZ` option value, or says how to write one.
func parseInstant(_ text: String, option: String) throws -> Timestamp {
    guard let instant = Timestamp(rfc3339: text) else {
        throw ValidationError("\(option) \"\(text.prefix(64))\" is not an RFC 3339 UTC time: write YYYY-MM-DDTHH:MM:SSZ, "
                              + "e.g. 2027-01-31T12:00:00Z")
    }
    return instant
}

/// Parses a duration option value (45s, 90m, 12h, 30d, 2w, 1y), or says how to write one.
func parseSpan(_ text: String, option: String) throws -> TimeSpan {
    if text.hasPrefix("-") {
        throw ValidationError("\(option) must be positive, not \"\(text.prefix(32))\": write e.g. 45s, 90m, 12h, 30d, 2w, 1y")
    }
    do { return try TimeSpan(parsing: text) } catch {
        throw ValidationError("\(option): \(error)")
    }
}

/// Parses one scope option or argument (`@Option(transform:)`): a malformed scope is a usage
/// error (exit 2) that says how to write one.
func parseScope(_ text: String) throws -> Scope {
    do { return try Scope(parsing: text) } catch {
        throw ValidationError("\(error); write scopes as ENTITY:OPERATION[:ID], e.g. clients:view or channels:publish:ch-42")
    }
}

/// `--catalog NAME|FILE` (`@Option(transform:)`): a built-in catalog's name, `management`, or
/// an existing file; anything else is a usage error (exit 2).
func parseCatalogName(_ text: String) throws -> String {
    guard text == PATHome.managementCatalogName || ScopeCatalog.builtIn[text] != nil || SecureFile.exists(text) else {
        throw ValidationError("unknown scope catalog \"\(text.prefix(64))\": use magistrala, generic, management, or the path of a JSON catalog file")
    }
    return text
}

/// A key id argument (`@Argument(transform:)`): a malformed one is a usage error (exit 2).
func parseKeyID(_ text: String) throws -> KeyID {
    do { return try KeyID(text) } catch {
        throw ValidationError("\(error): key ids look like k4.pid.… (`pat keys list` shows them)")
    }
}

extension StatusFilter: ExpressibleByArgument {} // completes and checks --status values

/// `--expires-in DURATION | --expires-at DATE`, exactly one.
struct ExpiryOptions: ParsableArguments {
    @Option(name: .customLong("expires-in"), parsing: .unconditional, help: ArgumentHelp("Lifetime from now: 45s, 90m, 12h, 30d, 2w, 1y.", valueName: "DURATION"))
    var expiresIn: String?
    @Option(name: .customLong("expires-at"), help: ArgumentHelp("Expiry instant, RFC 3339 UTC: 2027-01-31T12:00:00Z.", valueName: "DATE"))
    var expiresAt: String?

    func validate() throws {
        switch (expiresIn, expiresAt) {
        case (nil, nil): throw ValidationError("pass --expires-in DURATION (e.g. 30d) or --expires-at DATE (e.g. 2027-01-31T12:00:00Z)")
        case (.some, .some): throw ValidationError("pass either --expires-in or --expires-at, not both")
        case (.some(let text), nil): _ = try parseSpan(text, option: "--expires-in")
        case (nil, .some(let text)): _ = try parseInstant(text, option: "--expires-at")
        }
    }

    var expiry: Expiry {
        get throws {
            if let expiresIn { return .after(try parseSpan(expiresIn, option: "--expires-in")) }
            return .at(try parseInstant(expiresAt ?? "", option: "--expires-at"))
        }
    }
}

/// `--max-lifetime DURATION` (default 1y).
struct LifetimePolicyOption: ParsableArguments {
    @Option(name: .customLong("max-lifetime"), parsing: .unconditional,
            help: ArgumentHelp("The longest lifetime a token may be issued with (policy).", valueName: "DURATION"))
    var maxLifetime: String = "1y"

    func validate() throws { _ = try parseSpan(maxLifetime, option: "--max-lifetime") }

    var span: TimeSpan { get throws { try parseSpan(maxLifetime, option: "--max-lifetime") } }
}

/// The management service over the registry (`--database`, else `$PAT_DATABASE_URL`, else
/// HOME/pat.db), for the local operator. It does not publish: verifiers learn of changes from
/// `pat publish` (or a running `pat serve`, which learns of them from the registry).
///
/// `readingOnly` (list, show, policy list): the home must exist and the registry is opened
/// read-only, so a mistyped home creates nothing and a read-only home can be read.
func openService(_ home: PATHome, _ database: DatabaseOption, catalog: ScopeCatalog = .magistrala,
                 maxLifetime: TimeSpan = ManagementPolicy.defaultMaxLifetime, readingOnly: Bool = false) async throws -> PATManagement {
    if readingOnly, database.database == nil, !databaseFromEnvironment { try requireExistingHome(home) }
    return PATManagement(store: try await database.open(home, readingOnly: readingOnly), keyStore: home.keyStore,
                  policy: ManagementPolicy(catalog: catalog, maxLifetime: maxLifetime), clock: try currentClock())
}

/// Whether $PAT_DATABASE_URL names the registry.
var databaseFromEnvironment: Bool {
    guard let raw = getenv("PAT_DATABASE_URL"), let value = String(validatingCString: raw) else { return false }
    return !value.isEmpty
}

/// For the commands that only read a home: a home that does not exist is a mistake (a typo in
/// --home or $PAT_HOME), not an empty home.
func requireExistingHome(_ home: PATHome) throws {
    var info = stat()
    guard stat(home.path, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else {
        throw CLIFailure(message: "the PATKit home \(home.path) does not exist: check --home / $PAT_HOME, or create a home there "
                         + "with `pat keys generate --home \(home.path)`", status: 1, code: "not_found")
    }
}

/// `--database URL`: which registry a command uses.
struct DatabaseOption: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "The registry: a postgres:// URL (several pat serve nodes on one PostgreSQL) or an SQLite file "
            + "(default: $PAT_DATABASE_URL, else HOME/pat.db). Keep a password out of the command line: use PAT_DATABASE_URL or PGPASSWORD.",
        valueName: "URL"))
    var database: String?

    func validate() throws {
        do { _ = try RegistryDatabase(option: database, home: PATHome.resolve(nil)) } catch {
            throw ValidationError("--database / PAT_DATABASE_URL: \(error)")
        }
    }

    func location(_ home: PATHome) throws -> RegistryDatabase {
        do { return try RegistryDatabase(option: database, home: home) } catch {
            throw CLIFailure(message: "--database / PAT_DATABASE_URL: \(error)", status: 2)
        }
    }

    /// Opens the registry; it is closed when `pat` exits (`OpenStores`).
    func open(_ home: PATHome, readingOnly: Bool = false) async throws -> any PATRegistryStore {
        var logger = Logger(label: "patkit.registry")
        logger.logLevel = .warning // a command prints its own result; the store speaks up only when something is wrong
        let store = try await location(home).open(home: home, readingOnly: readingOnly, logger: logger)
        OpenStores.shared.add(store)
        return store
    }
}

/// The registries this process opened, closed before it exits (a PostgreSQL store ends its
/// connections cleanly instead of leaving the server to notice them drop).
final class OpenStores: Sendable {
    static let shared = OpenStores()
    private let stores = Mutex<[any PATRegistryStore]>([])

    func add(_ store: any PATRegistryStore) { stores.withLock { $0.append(store) } }

    func closeAll() async {
        let all = stores.withLock { stores in defer { stores = [] }; return stores }
        for store in all { await store.close() }
    }
}

/// A service error in the CLI's words: the input named as its option, a hint where the CLI
/// has one. The operator is trusted with internal details (paths, database messages).
func cliMessage(_ error: ManagementError, options: [String: String] = [:]) -> String {
    if error.kind == .internalFailure || error.kind == .unavailable { return error.underlying ?? error.reason }
    let defaults = ["owner": "--owner", "name": "--name", "description": "--description", "domain": "--domain",
                    "scopes": "--scope", "duration": "--expires-in", "expiresAt": "--expires-at", "status": "--status"]
    let field = error.field.map { $0.hasPrefix("scopes[") ? "scopes" : $0 }
    let option = field.flatMap { options[$0] ?? defaults[$0] }
    var message = (option.map { "\($0): " } ?? "") + error.reason
    switch error.kind {
    case .notFound: message += ": check the id with `pat list`"
    case .deleted: message += "; create a new one with `pat create`"
    case .invalidInput where error.reason.contains("(its lifetime policy)"):
        message += "; choose an earlier expiry, or change the domain's policy with `pat policy set DOMAIN --max-lifetime DURATION`"
    case .invalidInput where error.reason.contains("maximum lifetime"): message += "; choose an earlier expiry, or raise the policy with --max-lifetime"
    case .conflict where error.reason.contains("regenerate it first"): message += " (`pat regenerate ID --expires-in 30d`)"
    default: break
    }
    return message
}

/// Runs a service call; its errors become CLI failures (invalid input exit 2, else 1) in the
/// CLI's words, `options` naming the service's fields as this command's options.
func operatorCall<T>(options: [String: String] = [:], _ body: () async throws -> T) async throws -> T {
    do { return try await body() } catch let error as ManagementError {
        throw CLIFailure(message: cliMessage(error, options: options), status: error.kind == .invalidInput ? 2 : 1, code: error.kind.name)
    }
}

/// Asks before a change to many PATs: on a terminal, the user types "yes"; otherwise
/// `--yes` must be given.
func confirm(_ question: String, yes: Bool) throws {
    if yes { return }
    guard isatty(0) == 1 else {
        throw CLIFailure(message: "\(question)? Refusing without confirmation: pass --yes (standard input is not a terminal)",
                         status: 2)
    }
    writeAll(2, "\(question)? Type yes to confirm: ")
    var line: [UInt8] = []
    var byte: UInt8 = 0
    while line.count < 64 {
        let n = read(0, &byte, 1)
        if n < 0, errno == EINTR { continue }
        if n <= 0 || byte == 0x0A { break }
        line.append(byte)
    }
    let answer = trimSurroundingWhitespace(String(decoding: line, as: UTF8.self)).lowercased()
    guard answer == "yes" || answer == "y" else {
        throw CLIFailure(message: "aborted: nothing was changed", status: 1)
    }
}

/// Prints a freshly issued token: the token alone on stdout (so `TOKEN=$(pat create …)` works),
/// the id and a reminder on stderr; or, with `--json`, the PAT's one JSON shape (`accessToken`
/// first) on stdout.
func emitIssued(_ issued: IssuedPAT, json: Bool, verb: String, now: Timestamp) {
    let record = issued.record
    if json {
        emit(JSONValue.object(issued.json(at: now)).description)
        return
    }
    if let token = issued.token { emit(token) }
    var lines = ["id: \(record.id)",
                 "\(verb) \"\(Printable.escaped(record.name))\" of \(Printable.escaped(record.owner)): generation \(record.generation), expires \(record.expiresAt)"]
    if let overlap = record.overlap(at: now) {
        lines.append("generation \(overlap.generation) stays valid until \(overlap.until) (overlap); older tokens stop validating once `pat publish` runs")
    } else if record.generation > 1 {
        lines.append("earlier tokens of this PAT stop validating once `pat publish` runs")
    }
    lines.append("note: the token above is shown only once; store it now (`pat regenerate \(record.id)` issues a new one)")
    printError(lines.joined(separator: "\n"))
}

/// Which of `pat revoke ID` / `pat revoke --owner U --all` was asked for.
enum Target {
    case one(String)
    case owner(String)
}

/// Checks `ID` versus `--owner U --all` for revoke and delete.
func target(id: String?, owner: String?, all: Bool, command: String) throws -> Target {
    switch (id, owner, all) {
    case (.some(let id), nil, false): return .one(id)
    case (nil, .some(let owner), true): return .owner(owner)
    case (.some, _, _) where owner != nil || all:
        throw ValidationError("pass either a PAT id or --owner USER --all, not both")
    case (nil, .some, false):
        throw ValidationError("--owner needs --all: `pat \(command) --owner USER --all` \(command)s every PAT of USER")
    case (nil, nil, true):
        throw ValidationError("--all needs --owner USER")
    default:
        throw ValidationError("pass the id of the PAT to \(command) (see `pat list`), or --owner USER --all")
    }
}

/// Shell completion of PAT ids: those in the SQLite registry of the home on the command line
/// (else $PAT_HOME, else the current directory), opened read-only; none when there is none.
@Sendable func completePATIDs(_ words: [String], _ index: Int, _ prefix: String) async -> [String] {
    var given: String?
    for (i, word) in words.enumerated() where word == "--home" && i + 1 < words.count { given = words[i + 1] }
    let home = PATHome.resolve(given)
    guard let store = try? SQLiteRegistry(readingOnly: SQLiteRegistry.defaultPath(in: home)) else { return [] }
    let service = PATManagement(store: store, keyStore: home.keyStore, policy: ManagementPolicy(catalog: .magistrala),
                                clock: { Timestamp.now() })
    let records = (try? await service.list(owner: nil, by: .localOperator)) ?? []
    await store.close()
    return records.map(\.id).filter { $0.hasPrefix(prefix) }
}
