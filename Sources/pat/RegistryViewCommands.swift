import ArgumentParser
import PATKit
import PATManagement
import PATRegistry
import PATStore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Reading the registry (list, show) and publishing it (publish). What users typed (names,
// owners, descriptions, domains) is shown escaped (`Printable`): a name cannot drive the
// terminal. `--json` prints it exactly.

struct ListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List PATs: name, id, status, scope count, expiry, time left, last use, last rotation.",
        discussion: """
            Status is derived: active, expired (past its expiry), revoked. Deleted PATs are not listed. \
            LAST USED is the last use an edge reported (a gate or service reporting usage to `pat serve`), \
            "never" when none did. --expiring-within 7d lists active PATs expiring within 7 days; --unused-for 90d \
            lists PATs not used for 90 days (never used ones created more than 90 days ago included). \
            --json prints an array of objects with every detail except the token (never stored).
            """)

    @OptionGroup var home: HomeOption
    @OptionGroup var database: DatabaseOption
    @Option(help: "Only this owner's PATs.") var owner: String?
    @Option(help: "active (the default, like GitHub's and GitLab's lists), expired, revoked (also through an ancestor) or all.")
    var status: StatusFilter = .active
    @Option(name: .customLong("expiring-within"), parsing: .unconditional, help: ArgumentHelp("Only active PATs expiring within this span.", valueName: "DURATION"))
    var expiringWithin: String?
    @Option(name: .customLong("unused-for"), parsing: .unconditional, help: ArgumentHelp("Only PATs not used for at least this span.", valueName: "DURATION"))
    var unusedFor: String?
    @Flag(help: "Print a JSON array.") var json = false

    func validate() throws {
        if let expiringWithin { _ = try parseSpan(expiringWithin, option: "--expiring-within") }
        if let unusedFor { _ = try parseSpan(unusedFor, option: "--unused-for") }
    }

    func run() async throws {
        let filter = status
        let service = try await openService(home.resolved, database, readingOnly: true)
        let now = service.clock()
        let expiring = try expiringWithin.map { try parseSpan($0, option: "--expiring-within") }
        let unused = try unusedFor.map { try parseSpan($0, option: "--unused-for") }
        let records = try await operatorCall {
            try await service.list(owner: owner, status: filter, unusedFor: unused, expiringWithin: expiring, by: .localOperator)
        }
        if json {
            emit(JSONValue.array(records.map { .object($0.json(at: now)) }).description)
            return
        }
        let ofOwner = owner.map { " of owner \(Printable.escaped($0))" } ?? ""
        guard !records.isEmpty else {
            var what = filter == .all ? "PATs" : "\(filter.rawValue) PATs"
            if let expiringWithin { what += " expiring within \(expiringWithin)" }
            if let unusedFor { what += " unused for \(unusedFor)" }
            printError("no \(what)\(ofOwner)")
            return
        }
        var header = ["NAME", "ID", "STATUS", "SCOPES", "EXPIRES", "EXPIRES IN", "LAST USED", "LAST ROTATED"]
        if owner == nil { header.insert("OWNER", at: 0) }
        var rows = [header]
        for r in records {
            let status = r.status(at: now)
            let left = status == .active ? formatDuration(r.expiresAt.seconds - now.seconds) : status == .expired ? "expired" : "-"
            var row = [Printable.clip(r.name, 40), r.id, status.rawValue, String(r.scopes.count), r.expiresAt.rfc3339, left,
                       r.usage?.lastUsedAt.rfc3339 ?? "never", r.lastRotatedAt?.rfc3339 ?? "-"]
            if owner == nil { row.insert(Printable.clip(r.owner, 32), at: 0) }
            rows.append(row)
        }
        emit(table(rows))
    }
}

struct ShowCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Show every detail of a PAT except its token (which is never stored).")

    @OptionGroup var home: HomeOption
    @OptionGroup var database: DatabaseOption
    @Argument(help: "The PAT id.", completion: .custom(completePATIDs)) var id: String
    @Flag(help: "Print a JSON object.") var json = false

    func run() async throws {
        let service = try await openService(home.resolved, database, readingOnly: true)
        let now = service.clock()
        let r: PATRecord
        do { r = try await service.record(id: id, by: .localOperator) } catch where error.kind == .deleted {
            throw CLIFailure(message: "PAT \(Printable.escaped(id)) was deleted: only its tombstone is left, which keeps its tokens "
                             + "refused (`pat list` shows the PATs that exist)", code: error.kind.name)
        } catch {
            throw CLIFailure.describing(error)
        }
        let days = try await operatorCall { try await service.usageDays(id: id, by: .localOperator) }
        if json {
            var o = r.json(at: now)
            o.set("usageByDay", .array(days.map { day in
                var d = JSONObject()
                d.set("date", .string(day.date))
                d.set("uses", .number(String(day.uses)))
                return .object(d)
            }))
            emit(JSONValue.object(o).description)
            return
        }
        let revokedBy: String
        switch r.revokedBy {
        case nil: revokedBy = "-"
        case .localOperator?: revokedBy = "the operator (pat CLI)"
        case .token(let id, let generation, let subject, let admin)?:
            revokedBy = "PAT \(id) (generation \(generation)) of \(Printable.escaped(subject))\(admin ? ", pats:admin" : "")"
        case .secretScanner(let keyID)?:
            revokedBy = "a secret scanner's leak report (scanner key \(Printable.clip(keyID, 80)))"
        }
        let status = r.status(at: now)
        let expiresIn = status == .active ? formatDuration(r.expiresAt.seconds - now.seconds) : status == .expired ? "expired" : "-"
        let recent = days.suffix(14).map { "\($0.date) \($0.uses)" }.joined(separator: ", ")
        let fields: [(String, String)] = [
            ("id", r.id),
            ("name", Printable.escaped(r.name)),
            ("owner", Printable.escaped(r.owner)),
            ("description", r.description.map(Printable.escaped) ?? "-"),
            ("domain", r.domain.map(Printable.escaped) ?? "-"),
            ("status", r.revokedAncestor.map { "\(status.rawValue) (\($0) is revoked, regenerated or deleted)" } ?? status.rawValue),
            ("scopes", r.scopes.isEmpty ? "(none)" : r.scopes.claim),
            ("generation", String(r.generation)),
            ("valid from generation", String(r.floor)),
            ("created", r.createdAt.rfc3339),
            ("updated", r.updatedAt.rfc3339),
            ("expires", r.expiresAt.rfc3339),
            ("expires in", expiresIn),
            ("last used", r.usage.map { "\($0.lastUsedAt.rfc3339) (\($0.lastOutcome))" } ?? "never (no edge reported a use)"),
            ("last used from", r.usage?.lastUsedFrom.map { Printable.clip($0, 80) } ?? "-"),
            ("uses", r.usage.map { "\($0.uses) since \($0.firstUsedAt.rfc3339)" } ?? "0"),
            ("uses per day", recent.isEmpty ? "-" : recent),
            ("last rotated", r.lastRotatedAt?.rfc3339 ?? "-"),
            ("revoked", r.revokedAt?.rfc3339 ?? "-"),
            ("revoked by", revokedBy),
            ("issued by", r.lineage.isEmpty ? "-" : r.lineage.map(\.description).joined(separator: " → ")),
        ]
        let width = fields.map(\.0.count).max() ?? 0
        emit(fields.map { "\(($0.0 + ":").padding(width + 1))  \($0.1)" }.joined(separator: "\n"))
    }
}

struct PublishCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "publish",
        abstract: "Write the signed revocation list and the public key set for verifiers.",
        discussion: """
            Writes DIR/keys.json (every key, retired ones marked retired, signed by the home's online \
            trust anchor — created on first use — with a strictly increasing sequence) and \
            DIR/revocations.bin (signed by the newest active key, with a strictly increasing sequence \
            number), each atomically, under a lock on DIR/.lock. With only an offline anchor, the key \
            set signed by `pat keys sign-set` is kept. Entries whose every killed token has expired \
            more than --leeway ago are pruned; the list declares that margin, and verifiers refuse it \
            when their own leeway is larger. DIR defaults to HOME/published. Running it again without \
            changes is harmless. Verifiers refuse every token once the list passes its --next-update \
            (stale): keep `pat serve` running (it republishes), or run `pat publish` from cron or a \
            systemd timer more often than --next-update.
            """)

    @OptionGroup var home: HomeOption
    @OptionGroup var database: DatabaseOption
    @Option(help: ArgumentHelp("Output folder (default: HOME/published).", valueName: "DIR")) var out: String?
    @Option(name: .customLong("next-update"), parsing: .unconditional,
            help: ArgumentHelp("When verifiers should expect the next list.", valueName: "DURATION"))
    var nextUpdate: String = "1h"
    @Option(parsing: .unconditional, help: "Keep entries this many seconds past their horizon: the largest leeway verifiers may use with the list.")
    var leeway: Int64 = 60
    @Flag(help: "Print the result as one JSON object.") var json = false

    func validate() throws {
        _ = try parseSpan(nextUpdate, option: "--next-update")
        guard leeway >= 0, leeway <= 86_400 else { throw ValidationError("--leeway must be 0–86400 seconds") }
    }

    func run() async throws {
        let home = self.home.resolved
        var publisher = Publisher(store: try await database.open(home), keyStore: home.keyStore,
                                  outputDirectory: out ?? home.publishedDirectory,
                                  nextUpdateInterval: try parseSpan(nextUpdate, option: "--next-update"),
                                  leeway: leeway, clock: try currentClock())
        // Test seam (tests only): write the new list's temporary file, then exit 99 before the rename.
        publisher.crashBeforeRename = environmentFlag("PAT_TEST_CRASH_BEFORE_RENAME")
        let result = try await publisher.publish()
        if json {
            var out = JSONObject()
            out.set("sequence", .number(String(result.sequence)))
            out.set("written", .bool(result.supersededBy == nil))
            if let newer = result.supersededBy { out.set("supersededBy", .number(String(newer))) }
            out.set("path", .string(result.revocationsPath))
            out.set("tokenEntries", .number(String(result.tokenEntries)))
            out.set("ownerEntries", .number(String(result.ownerEntries)))
            out.set("pruned", .number(String(result.pruned)))
            out.set("signer", .string("\(result.signer)"))
            out.set("nextUpdate", .string("\(result.nextUpdate)"))
            if let keySet = result.keySet {
                var k = JSONObject()
                k.set("sequence", .number(String(keySet.sequence)))
                k.set("path", .string(result.keysPath))
                k.set("signer", .string("\(keySet.signer)"))
                k.set("signedNow", .bool(result.keySetSignedNow))
                k.set("nextUpdate", .string("\(keySet.nextUpdate)"))
                out.set("keySet", .object(k))
            }
            if let warning = result.keySetWarning { out.set("warning", .string(warning)) }
            emit(JSONValue.object(out).description)
            return
        }
        if let newer = result.supersededBy {
            emit("revocation list \(result.sequence) was not written: list \(newer), published meanwhile, already holds every change")
            return
        }
        emit("published revocation list \(result.sequence) to \(result.revocationsPath): "
             + "\(result.tokenEntries) PAT entr\(result.tokenEntries == 1 ? "y" : "ies"), "
             + "\(result.ownerEntries) owner entr\(result.ownerEntries == 1 ? "y" : "ies"), \(result.pruned) pruned; "
             + "signed by \(result.signer); next update due \(result.nextUpdate)")
        if let anchor = result.createdAnchor {
            printError("note: created the online trust anchor \(anchor); edges pin it: `pat keys export --anchors > anchors.txt`, "
                       + "then `--trust-anchor anchors.txt`")
        }
        if let keySet = result.keySet, result.keySetSignedNow {
            emit("published key set \(keySet.sequence) to \(result.keysPath), signed by trust anchor \(keySet.signer); "
                 + "next update due \(keySet.nextUpdate)")
        } else if let keySet = result.keySet {
            emit("kept the key set \(keySet.sequence) signed by trust anchor \(keySet.signer) in \(result.keysPath) "
                 + "(offline anchor); next update due \(keySet.nextUpdate)")
        }
        if let warning = result.keySetWarning { printError("warning: \(warning)") }
        let left = result.nextUpdate.seconds - result.issuedAt.seconds
        printError("note: this list goes stale at \(result.nextUpdate) (in \(formatDuration(left))): from then on verifiers refuse "
                   + "every token (stale_revocation_list) until a newer list arrives. Keep it fresh: run `pat serve` (it "
                   + "republishes after every change and every \(formatDuration(max(1, left / 2)))), or run `pat publish` "
                   + "from cron or a systemd timer more often than --next-update, e.g. every \(formatDuration(max(1, left / 2)))")
    }
}

func environmentFlag(_ name: String) -> Bool {
    guard let raw = getenv(name), let value = String(validatingCString: raw) else { return false }
    return value == "1" || value == "true"
}

/// Left-aligned columns separated by two spaces.
func table(_ rows: [[String]]) -> String {
    guard let columns = rows.first?.count else { return "" }
    var widths = [Int](repeating: 0, count: columns)
    for row in rows { for (i, cell) in row.enumerated() where i < columns { widths[i] = max(widths[i], cell.count) } }
    return rows.map { row in
        row.enumerated().map { i, cell in i == row.count - 1 ? cell : cell.padding(widths[i]) }.joined(separator: "  ")
    }.joined(separator: "\n")
}
