import Foundation
import PATTestSupport
import Testing

/// The README runs as written: every fenced block carries a `<!-- doctest: … -->` line right
/// above it saying how it is checked, and this suite checks it that way.
///
/// - `transcript`: a `console` block. Its `$ ` commands (with `\` continuation lines) run in
///   order in one sandbox (a fresh `PAT_HOME` with a signing key, `pat` on the PATH, variables
///   assigned by a command kept for the next ones). Each command must exit 0 unless its shown
///   output starts with `invalid token:` or `error:`, and its shown output lines must appear in
///   order in what it printed (stdout and stderr together), where `…` stands for anything, a
///   timestamp for any timestamp, and a PAT id for the id that run created (bound at first sight
///   and substituted in every later command).
/// - `script`: an `sh` block run with `bash -euo pipefail` in such a sandbox; it must exit 0.
/// - `json`: the block parses as JSON.
/// - `file PATH`: the block appears verbatim in the repository file PATH (which other tests or CI
///   compile or run).
/// - `skip: REASON`: not run (a sketch with placeholders, a fragment of a foreign config); the
///   reason is required, so nothing escapes this suite unnoticed.
/// Anything after the kind (`setup: CMD`) runs in the sandbox before a transcript or script.
@Suite("the README runs as written", .timeLimit(.minutes(5)))
struct ReadmeDocTests {
    struct Block: CustomTestStringConvertible, Sendable {
        let line: Int
        let language: String
        let annotation: String?
        let body: String

        var testDescription: String { "README line \(line) (\(language.isEmpty ? "text" : language)): \(annotation ?? "no doctest line")" }
        var kind: String { annotation.map { String($0.split(separator: " ", maxSplits: 1).first ?? "") } ?? "" }
        var argument: String {
            guard let annotation, let space = annotation.firstIndex(of: " ") else { return "" }
            return annotation[annotation.index(after: space)...].trimmingCharacters(in: .whitespaces)
        }
        /// `setup: CMD` in the annotation, run before the block.
        var setup: String? {
            guard let annotation, let range = annotation.range(of: "setup: ") else { return nil }
            return String(annotation[range.upperBound...])
        }
    }

    static let readme = TestPaths.packageRoot.appendingPathComponent("README.md")

    /// Every fenced block of the README, with the doctest line above it.
    static func blocks(of text: String) -> [Block] {
        let lines = text.components(separatedBy: "\n")
        var blocks: [Block] = []
        var index = 0
        while index < lines.count {
            let trimmed = lines[index].trimmingCharacters(in: .whitespaces)
            guard trimmed.hasPrefix("```") else { index += 1; continue }
            let indent = lines[index].prefix { $0 == " " }.count
            let language = String(trimmed.dropFirst(3)).trimmingCharacters(in: .whitespaces)
            var annotation: String?
            if index > 0 {
                let above = lines[index - 1].trimmingCharacters(in: .whitespaces)
                if above.hasPrefix("<!-- doctest:"), above.hasSuffix("-->") {
                    annotation = String(above.dropFirst("<!-- doctest:".count).dropLast(3)).trimmingCharacters(in: .whitespaces)
                }
            }
            var body: [String] = []
            var end = index + 1
            while end < lines.count, !lines[end].trimmingCharacters(in: .whitespaces).hasPrefix("```") {
                body.append(String(lines[end].dropFirst(min(indent, lines[end].prefix { $0 == " " }.count))))
                end += 1
            }
            blocks.append(Block(line: index + 1, language: language, annotation: annotation, body: body.joined(separator: "\n")))
            index = end + 1
        }
        return blocks
    }

    static var allBlocks: [Block] {
        (try? String(contentsOf: readme, encoding: .utf8)).map(blocks(of:)) ?? []
    }

    @Test("every fenced block says how it is checked")
    func everyBlockIsAnnotated() throws {
        let text = try String(contentsOf: Self.readme, encoding: .utf8)
        let blocks = Self.blocks(of: text)
        #expect(blocks.count > 20, "the README's blocks were found")
        for block in blocks {
            let known = ["transcript", "script", "json", "file", "skip:"]
            #expect(known.contains(block.kind), "README line \(block.line): a fenced block needs a `<!-- doctest: KIND -->` line above it (\(known))")
            if block.kind == "skip:" { #expect(block.argument.count > 10, "README line \(block.line): say why it is not run") }
        }
    }

    @Test("the block runs or matches as its doctest line says", arguments: allBlocks.filter { $0.kind != "skip:" && $0.annotation != nil })
    func block(_ block: Block) async throws {
        switch block.kind {
        case "json":
            #expect(throws: Never.self, "README line \(block.line) is JSON") {
                _ = try JSONSerialization.jsonObject(with: Data(block.body.utf8), options: [.fragmentsAllowed])
            }
        case "file":
            let path = block.argument
            let file = try String(contentsOf: TestPaths.packageRoot.appendingPathComponent(path), encoding: .utf8)
            #expect(file.contains(block.body), "README line \(block.line) is not verbatim in \(path): the README drifted")
        case "script":
            let sandbox = try await Sandbox()
            // The setup runs in the same shell, so the variables it sets are the block's.
            let result = try await sandbox.bash("set -euo pipefail\n" + (block.setup ?? "") + "\n" + block.body)
            #expect(result.status == 0, "README line \(block.line) failed (\(result.status)):\n\(result.stdout)\(result.stderr)")
        case "transcript":
            try await runTranscript(block)
        default:
            Issue.record("README line \(block.line): unknown doctest kind \(block.kind)")
        }
    }

    @Test("every option of every pat command is named in the README")
    func everyOptionIsDocumented() async throws {
        let binary = try await Prerequisite.patBinary.require()
        let dump = try await ChildProcess.run(binary, ["--experimental-dump-help"])
        let root = try #require(try JSONSerialization.jsonObject(with: Data(dump.stdout.utf8)) as? [String: Any])
        let readme = try String(contentsOf: Self.readme, encoding: .utf8)
        var missing: [String] = []
        var seen = 0
        func walk(_ command: [String: Any], _ path: String) {
            for argument in command["arguments"] as? [[String: Any]] ?? [] {
                for name in argument["names"] as? [[String: Any]] ?? [] where name["kind"] as? String == "long" {
                    guard let long = name["name"] as? String, !["help", "version", "experimental-dump-help"].contains(long) else { continue }
                    seen += 1
                    if !readme.contains("--" + long) { missing.append("\(path) --\(long)") }
                }
            }
            for sub in command["subcommands"] as? [[String: Any]] ?? [] {
                walk(sub, path + " " + (sub["commandName"] as? String ?? "?"))
            }
        }
        walk(try #require(root["command"] as? [String: Any]), "pat")
        #expect(seen > 50, "the options were found in pat's help dump")
        #expect(missing.isEmpty, "options the README never names: \(missing)")
    }

    /// One `$ ` command of a console block and the output shown under it.
    struct Step {
        var command: String
        var shown: [String]
    }

    static func steps(of body: String) -> [Step] {
        var steps: [Step] = []
        var continuing = false
        for line in body.components(separatedBy: "\n") {
            if continuing, var last = steps.popLast() {
                last.command += "\n" + line
                steps.append(last)
                continuing = line.hasSuffix("\\")
            } else if line.hasPrefix("$ ") {
                steps.append(Step(command: String(line.dropFirst(2)), shown: []))
                continuing = line.hasSuffix("\\")
            } else if var last = steps.popLast() {
                if !line.isEmpty { last.shown.append(line) }
                steps.append(last)
            }
        }
        return steps
    }

    func runTranscript(_ block: Block) async throws {
        let sandbox = try await Sandbox()
        if let setup = block.setup { try await sandbox.mustRun(setup, what: "setup of README line \(block.line)") }
        var ids: [String: String] = [:]
        for step in Self.steps(of: block.body) {
            var command = step.command
            for (shown, actual) in ids { command = command.replacingOccurrences(of: shown, with: actual) }
            let result = try await sandbox.session(command)
            let failureShown = step.shown.first.map { $0.hasPrefix("invalid token:") || $0.hasPrefix("error:") } ?? false
            let output = (result.stdout + result.stderr).components(separatedBy: "\n")
            if failureShown {
                #expect(result.status != 0, "README line \(block.line): `\(command)` should fail, as shown; it printed:\n\(output.joined(separator: "\n"))")
            } else {
                #expect(result.status == 0, "README line \(block.line): `\(command)` failed (\(result.status)):\n\(output.joined(separator: "\n"))")
            }
            // stdout and stderr are read apart, so shown lines are looked for anywhere in both.
            for shown in step.shown {
                let pattern = Template(shown, ids: ids)
                guard let bound = output.lazy.compactMap({ pattern.match($0) }).first else {
                    Issue.record("README line \(block.line): `\(command)` did not print a line like\n  \(shown)\nit printed:\n\(output.joined(separator: "\n"))")
                    break
                }
                ids.merge(bound) { old, _ in old }
            }
        }
    }

    /// A shown output line as a pattern: `…` is anything, timestamps any timestamp, runs of
    /// spaces any run of spaces, a 22-character id the id it stands for (bound when first seen).
    struct Template {
        let regex: NSRegularExpression?
        let names: [String]

        init(_ shown: String, ids: [String: String]) {
            let idPattern = try? NSRegularExpression(pattern: "(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{22}(?![A-Za-z0-9_-])")
            var pattern = "^"
            var names: [String] = []
            // Ids first (they may contain "-"), then the other wildcards in the text between them.
            let ns = shown as NSString
            let matches = idPattern?.matches(in: shown, range: NSRange(location: 0, length: ns.length)) ?? []
            var cursor = 0
            func literal(_ text: String) -> String {
                var out = ""
                // Timestamps and spans ("90d", "89d 23h": how long until then) depend on the clock.
                let timestamp = "\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ", span = "\\b\\d+d(?: \\d+h)?\\b"
                let clocked = try? NSRegularExpression(pattern: timestamp + "|" + span)
                let tns = text as NSString
                var c = 0
                for m in clocked?.matches(in: text, range: NSRange(location: 0, length: tns.length)) ?? [] {
                    out += Self.plain(tns.substring(with: NSRange(location: c, length: m.range.location - c)))
                    out += tns.substring(with: m.range).contains("T") ? timestamp : span
                    c = m.range.location + m.range.length
                }
                return out + Self.plain(tns.substring(from: c))
            }
            for m in matches {
                let id = ns.substring(with: m.range)
                // Words of 22 letters are ids only when they mix in digits, "-" or "_".
                guard id.contains(where: { $0.isNumber || $0 == "-" || $0 == "_" }) else { continue }
                pattern += literal(ns.substring(with: NSRange(location: cursor, length: m.range.location - cursor)))
                if let actual = ids[id] {
                    pattern += NSRegularExpression.escapedPattern(for: actual)
                } else {
                    pattern += "([A-Za-z0-9_-]{22})"
                    names.append(id)
                }
                cursor = m.range.location + m.range.length
            }
            pattern += literal(ns.substring(from: cursor)) + "$"
            regex = try? NSRegularExpression(pattern: pattern)
            self.names = names
        }

        static func plain(_ text: String) -> String {
            var out = ""
            var spaces = false
            for part in text.components(separatedBy: "…").enumerated() {
                if part.offset > 0 { out += ".*" }
                for ch in part.element {
                    if ch == " " {
                        if !spaces { out += " +" }
                        spaces = true
                    } else {
                        spaces = false
                        out += NSRegularExpression.escapedPattern(for: String(ch))
                    }
                }
            }
            return out
        }

        /// The ids first seen in `line` when it matches (empty when none), nil when it does not.
        func match(_ line: String) -> [String: String]? {
            guard let regex else { return nil }
            let ns = line as NSString
            guard let m = regex.firstMatch(in: line, range: NSRange(location: 0, length: ns.length)) else { return nil }
            var bound: [String: String] = [:]
            for (i, name) in names.enumerated() { bound[name] = ns.substring(with: m.range(at: i + 1)) }
            return bound
        }
    }

    @Test("the transcript matcher binds ids, skips …, and refuses what differs")
    func matcher() {
        let t = Template("created PAT \"ci\" of alice: id bYfniIXQX8fA-UnoHER9Jg, expires 2027-02-23T13:03:59Z; …", ids: [:])
        #expect(t.match("created PAT \"ci\" of alice: id AAAAAAAAAAAAAAAAAAAAA1, expires 2030-01-01T00:00:00Z; more")
                == ["bYfniIXQX8fA-UnoHER9Jg": "AAAAAAAAAAAAAAAAAAAAA1"])
        let bound = Template("id bYfniIXQX8fA-UnoHER9Jg", ids: ["bYfniIXQX8fA-UnoHER9Jg": "AAAAAAAAAAAAAAAAAAAAA1"])
        #expect(bound.match("id AAAAAAAAAAAAAAAAAAAAA1") == [:])
        #expect(bound.match("id BBBBBBBBBBBBBBBBBBBBB2") == nil)
        #expect(Template("published revocation list 1", ids: [:]).match("published revocation list 2") == nil)
        #expect(Template("OWNER  NAME", ids: [:]).match("OWNER NAME") != nil, "columns: any run of spaces")
        #expect(Template("x  89d 23h     never", ids: [:]).match("x  90d         never") != nil, "spans follow the clock")
        #expect(Self.steps(of: "$ a \\\n  b\nout\n$ c").map(\.command) == ["a \\\n  b", "c"])
    }
}

/// A temporary PATKit home with a signing key, the working directory of a shell whose PATH finds `pat`.
final class Sandbox: @unchecked Sendable {
    /// The home, its clean environment and its removal: `PatRunner`'s.
    private let runner: PatRunner
    var directory: URL { URL(fileURLWithPath: runner.home) }

    init() async throws {
        runner = try await PatRunner()
        try Data().write(to: URL(fileURLWithPath: runner.home).appendingPathComponent(".session.sh"))
        try await mustRun("pat keys generate >/dev/null 2>&1", what: "a signing key for the sandbox")
    }

    /// The working directory is the home too: `published/keys.json` is the home's.
    var environment: [String: String] {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return runner.environment(["PATH": URL(fileURLWithPath: runner.binary).deletingLastPathComponent().path + ":" + path])
    }

    func bash(_ script: String) async throws -> ProcessResult {
        try await ChildProcess.run("/bin/bash", ["-c", "cd \"$0\" && " + script, directory.path], environment: environment,
                                   timeLimit: .seconds(90))
    }

    func mustRun(_ script: String, what: String) async throws {
        let result = try await bash(script)
        if result.status != 0 { throw PatRunnerError("\(what) failed: \(result.stdout)\(result.stderr)") }
    }

    /// Runs one command in the session: the variables earlier commands assigned are set, and
    /// the ones this command assigns (`NAME=…` at its start) are kept for the next.
    func session(_ command: String) async throws -> ProcessResult {
        let assigned = command.prefix { $0.isLetter || $0.isNumber || $0 == "_" }
        let keep = command.dropFirst(assigned.count).hasPrefix("=") && !assigned.isEmpty
            ? "printf '%s=%q\\n' \(assigned) \"$\(assigned)\" >> \"$0/.session.sh\"; " : ""
        let script = "cd \"$0\" && source .session.sh\n" + command + "\nstatus=$?; \(keep)exit $status"
        return try await ChildProcess.run("/bin/bash", ["-c", script, directory.path], environment: environment, timeLimit: .seconds(90))
    }
}
