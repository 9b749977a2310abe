import ArgumentParser
import PATKit
import PATManagement
import PATRegistry
import PATStore

// The scan itself is synchronous (blocking reads); the CLI runs one command at a time, so it
// occupies the main task only.
struct ScanCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scan",
        abstract: "Find leaked PATs in files, directories, standard input or git history, and prove which are live.",
        discussion: """
            Finds every string shaped like a PATKit PAT (README, "Leak detection": the regular expression), \
            verifies its signature against the key set and checks it against the revocation list, offline, and \
            reports where it is (FILE:LINE:COLUMN; with --git COMMIT:PATH:LINE:COLUMN and the blob) with the PAT's id, \
            owner, generation, domain, expiry and status: live (a verifier accepts it: revoke it), expired, \
            revoked (or signed by a retired key), forged (bad signature or malformed: not ours) or foreign \
            (signed by a key not in the set: not ours). The token itself is never printed: only its id and \
            fingerprint (first 12 hex digits of BLAKE2b-256 of the token).

            Directories are walked in name order; symbolic links, special files, .git directories and binary \
            files (a NUL byte in the first 8,000 bytes) are skipped unless asked for. Files named on the command \
            line and standard input (-) are always read. --git reads every blob, commit and tag reachable from any \
            ref of each repository given (default .) through `git rev-list --objects --all | git cat-file --batch`, \
            so a token committed and later removed is still found.

            Keys default to HOME's keystore (HOME/keys/keyset.json), else HOME/published/keys.json; the list to \
            HOME/published/revocations.bin when present (without a list, "live" means not known to be revoked). \
            --keys URL and --revocations URL fetch the issuer's published documents (e.g. \
            https://issuer/.well-known/pat/keys): the key set must be signed by a trust anchor of --trust-anchor FILE \
            and current, or nothing is scanned (exit 2).

            --revoke (on the issuer's machine) revokes every live PAT found through the registry (--database, else \
            HOME/pat.db) as the operator, records personalAccessToken.leaked with where it was found, and publishes \
            (HOME/published, as `pat publish`). A live token issued outside the registry (`pat issue`) gets a \
            tombstone for its id until it expires: that id is refused, nothing else. Tokens signed by keys that are \
            not this home's are never revoked here.

            Exit status: 0 no live PAT found; 1 at least one live PAT found (also after --revoke: replace it where it \
            is used); 2 usage error or keys/list unusable; 3 no live PAT found but some paths could not be read (a scan \
            that missed files must not pass a CI gate).
            Testing aid: PAT_NOW=YYYY-MM-DDTHH:MM:SSZ judges expiry as if that were the current time.
            """)

    @OptionGroup var home: HomeOption
    @Argument(help: ArgumentHelp("Files or directories to scan, - for standard input (default: .); with --git, repositories.",
                                 valueName: "PATH"))
    var paths: [String] = []
    @Flag(help: "Scan the history of the git repositories given: every blob, commit and tag reachable from any ref.")
    var git = false
    @Option(help: ArgumentHelp("Key set JSON whose tokens count as ours: a plain one (`pat keys export`) or the signed keys.json "
                               + "(`pat publish`), checked against the trust anchors.", valueName: "FILE"))
    var keys: DocumentLocation?
    @Option(help: ArgumentHelp("Signed revocation list file.", valueName: "FILE")) var revocations: DocumentLocation?
    @Option(name: .customLong("trust-anchor"),
            help: ArgumentHelp("Trust anchors (k4.public lines) a signed key set must be signed by (default: HOME/keys/anchors).",
                               valueName: "FILE"))
    var trustAnchor: String?
    @Option(help: "Clock-skew leeway in seconds for expiry, as a verifier applies it.") var leeway: Int64 = 60
    @Flag(name: .customLong("include-binary"), help: "Also scan files and blobs that look binary.") var includeBinary = false
    @Flag(name: .customLong("include-dot-git"), help: "Also walk into .git directories (their objects are compressed: prefer --git).")
    var includeDotGit = false
    @Flag(help: "Print the report as one JSON document.") var json = false
    @Flag(help: "Revoke every live PAT found (through the registry, as the operator), then publish.") var revoke = false
    @OptionGroup var database: DatabaseOption

    /// Exit status when nothing live was found but some input could not be read.
    static let incompleteStatus: Int32 = 3

    func validate() throws {
        if git, paths.contains("-") { throw ValidationError("--git scans repositories; standard input (-) cannot be one") }
        if paths.filter({ $0 == "-" }).count > 1 { throw ValidationError("standard input (-) can be scanned only once") }
        if leeway < 0 { throw ValidationError("--leeway must be 0 or more seconds") }
        if database.database != nil, !revoke { throw ValidationError("--database names the registry --revoke uses: pass --revoke too") }
    }

    func run() async throws {
        let clock = try currentClock() // $PAT_NOW (a testing aid) or the system clock
        let trust = try await ScanTrust.load(keys: keys, revocations: revocations, trustAnchors: trustAnchor, home: home.resolved,
                                             now: clock())
        let inspector = TokenInspector(keys: trust.keys, revocations: trust.revocations, leeway: leeway, clock: clock)
        let session = ScanSession(inspector: inspector,
                                  options: ScanSession.Options(includeBinary: includeBinary, includeDotGit: includeDotGit))
        if let list = trust.revocations {
            if list.isStale(at: clock(), grace: 0) {
                printError("note: revocation list \(list.sequence) (\(trust.revocationsOrigin ?? "?")) was due for update at "
                           + "\(list.nextUpdate.rfc3339); PATs revoked since then may show as live")
            }
        } else {
            printError("note: no revocation list (pass --revocations FILE or run `pat publish`): revocation was not checked, "
                       + "so live means not known to be revoked")
        }

        let report = session.report
        var printedFindings = 0, printedErrors = 0
        for path in paths.isEmpty ? ["."] : paths {
            if git {
                session.scanHistory(of: path)
            } else if path == "-" {
                session.scanStandardInput()
            } else {
                session.scan(path: path)
            }
            // Findings and errors as each path is done (git findings once their commits are known).
            if !json {
                for finding in report.findings[printedFindings...] { emit(ScanReport.text(finding)) }
            }
            for error in report.errors[printedErrors...] {
                printError("pat scan: \(ScanReport.printable(error.path)): \(ScanReport.printable(error.message))")
            }
            printedFindings = report.findings.count
            printedErrors = report.errors.count
        }

        report.revokeRequested = revoke
        if revoke, report.liveCount > 0 { try await revokeLive(report) }
        if json {
            emit(report.json(revocations: trust.revocations, now: clock()))
        } else {
            printError(report.summary())
            if report.liveCount > 0 {
                printError(revoke ? "live PATs found and revoked as above: replace each where it is used"
                           : "live PATs found: revoke each (`pat revoke ID`, then `pat publish`, or `pat scan --revoke`) and replace it where it is used")
            }
        }
        if report.liveCount > 0 { throw CLIFailure(message: "", status: 1) }
        if !report.errors.isEmpty { throw CLIFailure(message: "", status: ScanCommand.incompleteStatus) }
    }

    /// `--revoke`: every live PAT generation found, once, through the management service as the
    /// operator; then a publish. Only tokens signed by this home's keys: another issuer's live
    /// token is reported, never tombstoned here.
    private func revokeLive(_ report: ScanReport) async throws {
        let home = self.home.resolved
        let ours = Set((try? home.keyStore.keySet().entries.map(\.id)) ?? [])
        var seen = Set<String>()
        var leaks: [LeakReport] = []
        for finding in report.findings where finding.inspection.status == .live {
            guard let claims = finding.inspection.claims, seen.insert("\(claims.id).\(claims.generation)").inserted else { continue }
            guard let kid = finding.inspection.keyID, ours.contains(kid) else {
                printError("not revoked: PAT \(ScanReport.printable(claims.id)) at \(ScanReport.place(finding)) is signed by a key that is "
                           + "not in \(home.keyStore.manifestPath): revoke it at its issuer")
                continue
            }
            leaks.append(LeakReport(claims: claims, url: String(ScanReport.place(finding).utf8.prefix(LeakReport.maxURLBytes)) ?? "",
                                    source: "pat_scan"))
        }
        guard !leaks.isEmpty else { return }
        let service = try await openService(home, database)
        let responses = try await operatorCall { try await service.respondToLeaks(leaks, action: .revoke, by: .localOperator) }
        for response in responses {
            var o = JSONObject()
            o.set("id", .string(response.id))
            o.set("generation", .number(String(response.generation)))
            o.set("outcome", .string(response.outcome.rawValue))
            o.set("reason", response.reason.map { .string($0) } ?? .null)
            report.revocations.append(.object(o))
            let what = "PAT \(ScanReport.printable(response.id)) generation \(response.generation)"
            switch response.outcome {
            case .revoked: printError("revoked \(what)")
            case .revokedUnregistered:
                printError("revoked \(what): issued outside the registry, so its id now has a tombstone (refused until it expires)")
            case .notLive: printError("\(what) is already dead in the registry (\(response.reason ?? "revoked")); the list had not caught up")
            case .notified, .reportedBefore: printError("\(what): announced, not revoked")
            }
        }
        let publisher = Publisher(store: service.store, keyStore: home.keyStore, outputDirectory: home.publishedDirectory, clock: service.clock)
        let result = try await publisher.publish()
        var published = JSONObject()
        published.set("sequence", .number(String(result.supersededBy ?? result.sequence)))
        published.set("path", .string(result.revocationsPath))
        report.published = .object(published)
        printError("published revocation list \(result.supersededBy ?? result.sequence) to \(result.revocationsPath): the revoked PATs are "
                   + "refused by every verifier that fetches it")
    }
}
