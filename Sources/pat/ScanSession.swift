import PATKit
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One run of `pat scan`: streams in, findings out. Finds candidates with `TokenScanner`,
/// classifies them with `TokenInspector` (each distinct token once), walks directories, and
/// records what could not be read, then goes on.
final class ScanSession {
    struct Options {
        /// Scan files and blobs that look binary (a NUL byte in the first 8,000 bytes) too.
        var includeBinary = false
        /// Walk into directories named `.git` too.
        var includeDotGit = false
    }

    let inspector: TokenInspector
    let options: Options
    let report = ScanReport()
    /// Inspections by token, so a token pasted in many places is verified once. Bounded:
    /// emptied when full.
    private var inspected: [String: TokenInspection] = [:]
    private static let inspectedLimit = 65_536
    /// git cat-file and git itself treat a NUL in the first 8,000 bytes as "binary".
    static let binarySniffBytes = 8000

    init(inspector: TokenInspector, options: Options) {
        self.inspector = inspector
        self.options = options
    }

    func inspect(_ token: String) -> TokenInspection {
        if let known = inspected[token] { return known }
        if inspected.count >= ScanSession.inspectedLimit { inspected.removeAll(keepingCapacity: true) }
        let inspection = inspector.inspect(token)
        inspected[token] = inspection
        return inspection
    }

    /// Scans the next `limit` bytes of `reader` (to its end when nil) as one stream at
    /// `location`. With `skipBinary` (and not `--include-binary`), a stream that looks binary is
    /// consumed unread and false returned.
    @discardableResult
    func scan(_ reader: DescriptorReader, limit: Int? = nil, at location: ScanLocation, skipBinary: Bool) throws -> Bool {
        if skipBinary, !options.includeBinary {
            let head = try reader.peek(min(ScanSession.binarySniffBytes, limit ?? ScanSession.binarySniffBytes))
            if head.contains(0) {
                let skipped = try reader.consume(upTo: limit) { _ in }
                guard limit.map({ skipped == $0 }) ?? true else { throw truncated(location, limit) }
                report.skippedBinary += 1
                return false
            }
        }
        var scanner = TokenScanner()
        let read = try reader.consume(upTo: limit) { chunk in
            scanner.scan(chunk) { self.record($0, at: location) }
        }
        scanner.finish { record($0, at: location) }
        guard limit.map({ read == $0 }) ?? true else { throw truncated(location, limit) }
        report.scanned += 1
        report.bytes += read
        return true
    }

    private func record(_ match: TokenScanner.Match, at location: ScanLocation) {
        report.add(ScanFinding(location: location, line: match.line, column: match.column, inspection: inspect(match.token)))
    }

    private func truncated(_ location: ScanLocation, _ limit: Int?) -> DescriptorReader.ReadError {
        DescriptorReader.ReadError(description: "\(location.object ?? location.path): the stream ended before its \(limit ?? 0) bytes")
    }

    // MARK: files and directories

    /// Scans a path given on the command line: a directory is walked (skipping links, special
    /// files, `.git` and binary files); a file, FIFO or device named is read as it is.
    func scan(path: String) {
        var info = stat()
        guard stat(path, &info) == 0 else {
            report.addError(path: path, "cannot read: \(ScanSession.errnoText())")
            return
        }
        if info.st_mode & S_IFMT == S_IFDIR {
            walk(Array(path.utf8))
        } else {
            scanFile(Array(path.utf8), walked: false)
        }
    }

    /// Depth-first, in byte order of names, without recursion (deep trees cannot overflow the
    /// stack) and with one directory open at a time.
    private func walk(_ root: [UInt8]) {
        var pending: [[UInt8]] = [root]
        while let directory = pending.popLast() {
            guard let names = list(directory) else { continue }
            var subdirectories: [[UInt8]] = []
            for name in names {
                let path = ScanSession.join(directory, name)
                var info = stat()
                let status = path.withCString { lstat($0, &info) }
                guard status == 0 else {
                    report.addError(path: ScanSession.display(path), "cannot read: \(ScanSession.errnoText())")
                    continue
                }
                switch info.st_mode & S_IFMT {
                case S_IFDIR:
                    if name == ScanSession.dotGit, !options.includeDotGit { continue }
                    subdirectories.append(path)
                case S_IFREG:
                    if name == ScanSession.dotGit, !options.includeDotGit { continue } // a worktree's .git file
                    scanFile(path, walked: true)
                default:
                    report.skippedOther += 1
                }
            }
            // Files of a directory first, then its subdirectories in name order.
            pending.append(contentsOf: subdirectories.reversed())
        }
    }

    /// The entry names of a directory in byte order, or nil (recorded) when unreadable.
    private func list(_ directory: [UInt8]) -> [[UInt8]]? {
        guard let handle = directory.withCString({ opendir($0) }) else {
            report.addError(path: ScanSession.display(directory), "cannot read directory: \(ScanSession.errnoText())")
            return nil
        }
        defer { closedir(handle) }
        var names: [[UInt8]] = []
        errno = 0
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { Array($0.prefix(while: { $0 != 0 })) }
            if name == [0x2E] || name == [0x2E, 0x2E] { continue }
            names.append(name)
        }
        if errno != 0 {
            report.addError(path: ScanSession.display(directory), "cannot read directory: \(ScanSession.errnoText())")
        }
        return names.sorted { $0.lexicographicallyPrecedes($1) }
    }

    private func scanFile(_ path: [UInt8], walked: Bool) {
        let display = ScanSession.display(path)
        // Walked: never follow a link swapped in since lstat, never block on a FIFO.
        let flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | (walked ? O_NOFOLLOW | O_NONBLOCK : 0)
        let fd = path.withCString { open($0, flags) }
        guard fd >= 0 else {
            report.addError(path: display, "cannot read: \(ScanSession.errnoText())")
            return
        }
        defer { close(fd) }
        if walked {
            var info = stat()
            guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
                report.skippedOther += 1
                return
            }
        }
        do {
            try scan(DescriptorReader(fd: fd), at: .file(display), skipBinary: walked)
        } catch {
            report.addError(path: display, "\(error)")
        }
    }

    /// Standard input, read to its end.
    func scanStandardInput() {
        do {
            try scan(DescriptorReader(fd: 0), at: .standardInput, skipBinary: false)
        } catch {
            report.addError(path: "-", "\(error)")
        }
    }

    // MARK: git history

    /// Every blob, commit and tag reachable in the history of `repository` (trees hold only
    /// names); then, for blobs holding tokens, the commit that introduced them.
    func scanHistory(of repository: String) {
        let history = GitHistory(repository: repository)
        let first = report.findings.count
        do {
            try history.forEachObject { object, reader in
                var location = ScanLocation(source: .git, path: object.path, repository: repository,
                                            object: object.id, objectKind: object.kind.rawValue)
                if object.kind == .commit { location.commit = object.id }
                try scan(reader, limit: object.size, at: location, skipBinary: object.kind == .blob)
            }
            let blobs = Set(report.findings[first...].compactMap { $0.location.objectKind == "blob" ? $0.location.object : nil })
            let commits = try history.introducingCommits(of: blobs)
            for index in first..<report.findings.count {
                if let blob = report.findings[index].location.object, let commit = commits[blob],
                   report.findings[index].location.objectKind == "blob" {
                    report.setCommit(commit, forFindingAt: index)
                }
            }
        } catch {
            report.addError(path: repository, "\(error)")
        }
    }

    // MARK: paths

    static let dotGit: [UInt8] = Array(".git".utf8)

    static func join(_ directory: [UInt8], _ name: [UInt8]) -> [UInt8] {
        directory.last == 0x2F ? directory + name : directory + [0x2F] + name
    }

    /// A path for messages (bytes that are not UTF-8 shown as U+FFFD).
    static func display(_ path: [UInt8]) -> String { String(decoding: path, as: UTF8.self) }

    static func errnoText() -> String { String(cString: strerror(errno)) }
}

private extension Array where Element == UInt8 {
    /// The bytes as a NUL-terminated C string (a path for a system call).
    func withCString<R>(_ body: (UnsafePointer<CChar>) -> R) -> R {
        (map { CChar(bitPattern: $0) } + [0]).withUnsafeBufferPointer { buffer in
            buffer.baseAddress.map(body) ?? "".withCString(body)
        }
    }
}
