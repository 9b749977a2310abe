import ArgumentParser
import PATKit
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
            HOME/published/revocations.bin when present (without a list, "live" means not known to be revoked).

            Exit status: 0 no live PAT found; 1 at least one live PAT found; 2 usage error or keys/list unusable; \
            3 no live PAT found but some paths could not be read (a scan that missed files must not pass a CI gate).
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

    /// Exit status when nothing live was found but some input could not be read.
    static let incompleteStatus: Int32 = 3

    func validate() throws {
        if git, paths.contains("-") { throw ValidationError("--git scans repositories; standard input (-) cannot be one") }
        if paths.filter({ $0 == "-" }).count > 1 { throw ValidationError("standard input (-) can be scanned only once") }
        if leeway < 0 { throw ValidationError("--leeway must be 0 or more seconds") }
    }

    func run() async throws {
        let trust = try ScanTrust.load(keys: keys, revocations: revocations, trustAnchors: trustAnchor, home: home.resolved)
        let clock = try currentClock() // $PAT_NOW (a testing aid) or the system clock
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

        if json {
            emit(report.json(revocations: trust.revocations, now: clock()))
        } else {
            printError(report.summary())
            if report.liveCount > 0 {
                printError("live PATs found: revoke each (`pat revoke ID`, then `pat publish`) and replace it where it is used")
            }
        }
        if report.liveCount > 0 { throw CLIFailure(message: "", status: 1) }
        if !report.errors.isEmpty { throw CLIFailure(message: "", status: ScanCommand.incompleteStatus) }
    }
}
