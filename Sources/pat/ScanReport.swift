import PATKit

/// Where `pat scan` found a token.
struct ScanLocation {
    enum Source: String {
        case file, stdin, git
    }

    var source: Source
    /// The file's path as given or walked; `-` for standard input; for git, the path a blob was
    /// reached by (empty for a commit or tag message).
    var path: String
    /// git: the repository as given.
    var repository: String? = nil
    /// git: the object holding the token (a blob, or a commit or tag whose message does).
    var object: String? = nil
    var objectKind: String? = nil
    /// git: the commit holding the token — a blob's oldest introducing commit, or the commit itself.
    var commit: String? = nil

    static func file(_ path: String) -> ScanLocation { ScanLocation(source: .file, path: path) }
    static let standardInput = ScanLocation(source: .stdin, path: "-")
}

struct ScanFinding {
    var location: ScanLocation
    let line: Int
    let column: Int
    let inspection: TokenInspection
}

/// What a scan found, counted and printed: one line per finding for people, one JSON document
/// for programs. Neither ever holds the token: only its id (when genuine) and fingerprint.
final class ScanReport {
    private(set) var findings: [ScanFinding] = []
    private(set) var errors: [(path: String, message: String)] = []
    /// Files, standard input and git objects scanned, and their bytes.
    var scanned = 0
    var bytes = 0
    /// Binary files and blobs not scanned (a NUL byte in their first 8,000 bytes).
    var skippedBinary = 0
    /// Symbolic links and special files met while walking a directory (never followed or read).
    var skippedOther = 0

    func add(_ finding: ScanFinding) { findings.append(finding) }
    func addError(path: String, _ message: String) { errors.append((path, message)) }
    func setCommit(_ commit: String, forFindingAt index: Int) { findings[index].location.commit = commit }

    func count(_ status: TokenInspection.Status) -> Int { findings.filter { $0.inspection.status == status }.count }
    var liveCount: Int { count(.live) }

    // MARK: text

    /// `LOCATION:LINE:COLUMN: STATUS …`, with every untrusted string made printable.
    static func text(_ finding: ScanFinding) -> String {
        let i = finding.inspection
        let where_ = "\(location(finding.location)):\(finding.line):\(finding.column)"
        var line: String
        if let claims = i.claims {
            line = "\(where_): \(i.status.rawValue) PAT \(printable(claims.id))"
            if i.reason != "valid", i.reason != i.status.rawValue { line += " (\(i.reason))" }
            line += " owner \(quoted(claims.subject)) generation \(claims.generation)"
            line += " domain \(claims.domain.map(quoted) ?? "(none)") expires \(claims.expiresAt.rfc3339)"
            line += " fingerprint \(i.fingerprint)"
        } else {
            let key = i.keyID.map { " \($0.rawValue)" } ?? ""
            line = "\(where_): \(i.status.rawValue) token (\(i.reason)\(key)) fingerprint \(i.fingerprint): "
            line += i.status == .foreign ? "signed by a key not in the key set, not a PAT of ours" : "not a PAT of these keys"
        }
        if finding.location.source == .git, let object = finding.location.object, finding.location.objectKind == "blob" {
            line += " (blob \(object))"
        }
        return line
    }

    /// `LOCATION:LINE:COLUMN` of a finding (git: `COMMIT:PATH:LINE:COLUMN`), printable.
    static func place(_ finding: ScanFinding) -> String {
        "\(location(finding.location)):\(finding.line):\(finding.column)"
    }

    private static func location(_ l: ScanLocation) -> String {
        switch l.source {
        case .file: return printable(l.path)
        case .stdin: return "(standard input)"
        case .git:
            let revision = l.commit ?? l.object ?? "?"
            let path = l.objectKind == "blob" ? printable(l.path) : "(\(l.objectKind ?? "object") message)"
            return "\(revision):\(path)"
        }
    }

    /// One line for standard error: what was scanned and found.
    func summary() -> String {
        var parts = ["\(scanned) \(scanned == 1 ? "input" : "inputs") scanned (\(bytes) bytes)"]
        if skippedBinary > 0 { parts.append("\(skippedBinary) binary skipped") }
        if skippedOther > 0 { parts.append("\(skippedOther) links or special files skipped") }
        if !errors.isEmpty { parts.append("\(errors.count) unreadable") }
        let counts = TokenInspection.Status.allCases.map { "\(count($0)) \($0.rawValue)" }.joined(separator: ", ")
        return "pat scan: " + parts.joined(separator: ", ") + "; tokens: " + counts
    }

    // MARK: JSON

    /// Whether `--revoke` was asked for (then the JSON has `revocations` and `published`).
    var revokeRequested = false
    /// What `--revoke` did, one object per live PAT generation found (JSON `revocations`).
    var revocations: [JSONValue] = []
    /// The list `--revoke` published afterwards (JSON `published`).
    var published: JSONValue?

    /// The whole report as one JSON document (see the README for its fields).
    func json(revocations: RevocationList?, now: Timestamp) -> String {
        var root = JSONObject()
        root.set("findings", .array(findings.map { .object(ScanReport.json($0)) }))
        root.set("errors", .array(errors.map { error in
            var o = JSONObject()
            o.set("path", .string(error.path))
            o.set("error", .string(error.message))
            return .object(o)
        }))
        var summary = JSONObject()
        summary.set("scanned", .number(String(scanned)))
        summary.set("bytes", .number(String(bytes)))
        summary.set("skippedBinary", .number(String(skippedBinary)))
        summary.set("skippedOther", .number(String(skippedOther)))
        summary.set("unreadable", .number(String(errors.count)))
        for status in TokenInspection.Status.allCases { summary.set(status.rawValue, .number(String(count(status)))) }
        root.set("summary", .object(summary))
        if let revocations {
            var list = JSONObject()
            list.set("sequence", .number(String(revocations.sequence)))
            list.set("nextUpdate", .string(revocations.nextUpdate.rfc3339))
            list.set("stale", .bool(revocations.isStale(at: now, grace: 0)))
            root.set("revocationList", .object(list))
        } else {
            root.set("revocationList", .null)
        }
        if revokeRequested {
            root.set("revocations", .array(self.revocations))
            root.set("published", published ?? .null)
        }
        return JSONValue.object(root).description
    }

    static func json(_ finding: ScanFinding) -> JSONObject {
        let l = finding.location, i = finding.inspection
        let optional: (String?) -> JSONValue = { $0.map { .string($0) } ?? .null }
        var o = JSONObject()
        o.set("source", .string(l.source.rawValue))
        if l.source == .git {
            o.set("repository", optional(l.repository))
            o.set("commit", optional(l.commit))
            o.set("object", optional(l.object))
            o.set("objectType", optional(l.objectKind))
        }
        o.set("path", .string(l.path))
        o.set("line", .number(String(finding.line)))
        o.set("column", .number(String(finding.column)))
        o.set("status", .string(i.status.rawValue))
        o.set("reason", .string(i.reason))
        o.set("id", optional(i.claims?.id))
        o.set("owner", optional(i.claims?.subject))
        o.set("generation", i.claims.map { .number(String($0.generation)) } ?? .null)
        o.set("domain", optional(i.claims?.domain))
        o.set("expiresAt", optional(i.claims?.expiresAt.rfc3339))
        o.set("kid", optional(i.keyID?.rawValue))
        o.set("fingerprint", .string(i.fingerprint))
        return o
    }

    // MARK: printing untrusted strings

    /// A JSON string literal: quoted, with control characters escaped.
    static func quoted(_ text: String) -> String {
        var out: [UInt8] = []
        JSONWriter.writeString(text, into: &out)
        return printable(String(decoding: out, as: UTF8.self))
    }

    /// `text` with control characters (C0, DEL, C1) written as `\u{…}`, so that a path or an
    /// owner cannot move the cursor or fake a line of output.
    static func printable(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: isControl) else { return text }
        var out = ""
        for scalar in text.unicodeScalars {
            if isControl(scalar) { out += "\\u{\(String(scalar.value, radix: 16))}" } else { out.unicodeScalars.append(scalar) }
        }
        return out
    }

    private static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (scalar.value >= 0x7F && scalar.value < 0xA0)
    }
}
