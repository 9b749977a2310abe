#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Every object reachable in a git repository's history, read through `git` as a subprocess
/// (`pat scan --git`): `git rev-list --objects --all` piped into `git cat-file --batch`, so each
/// object is streamed once, whatever the size of the history, through one fixed buffer.
struct GitHistory {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// One object of the history, its content next in the reader.
    struct Object {
        enum Kind: String {
            case blob, commit, tag, tree
        }
        let id: String
        let kind: Kind
        let size: Int
        /// The path `rev-list` reached a blob by first (empty for commits, tags and the root tree).
        let path: String
    }

    let repository: String

    /// Calls `visit` for every object reachable from any ref (blobs, commits, tags; trees are
    /// skipped); `visit` must consume exactly `object.size` bytes from the reader.
    func forEachObject(_ visit: (Object, DescriptorReader) throws -> Void) throws {
        let errors = try TemporaryFile()
        let list = try Pipe(), objects = try Pipe()
        var children: [Child] = []
        defer {
            for child in children { child.stop() }
        }
        children.append(try Child.spawn(["git", "-C", repository, "rev-list", "--objects", "--all"],
                                        stdout: list.write, stderr: errors.fd))
        list.closeWrite()
        children.append(try Child.spawn(["git", "-C", repository, "cat-file",
                                         "--batch=%(objectname) %(objecttype) %(objectsize) %(rest)"],
                                        stdin: list.read, stdout: objects.write, stderr: errors.fd))
        list.closeRead()
        objects.closeWrite()
        let reader = DescriptorReader(fd: objects.read)
        while let header = try reader.readLine() {
            let object = try parseHeader(header)
            if object.kind == .tree {
                try reader.consume(upTo: object.size) { _ in }
            } else {
                try visit(object, reader)
            }
            guard let separator = try reader.readLine(), separator.isEmpty else {
                throw Failure(description: "\(repository): unexpected output from git cat-file after object \(object.id)")
            }
        }
        objects.closeRead()
        let statuses = children.map { $0.wait() }
        children = []
        if let failed = statuses.firstIndex(where: { $0 != 0 }) {
            let command = failed == 0 ? "git rev-list" : "git cat-file"
            throw Failure(description: "\(repository): \(command) exited \(statuses[failed]): \(errors.text())")
        }
    }

    /// For each blob of `blobs`, the oldest commit (on any ref) that added or changed a path to
    /// it; blobs only a merge introduced are left out. One pass over `git log --raw`.
    func introducingCommits(of blobs: Set<String>) throws -> [String: String] {
        guard !blobs.isEmpty else { return [:] }
        let errors = try TemporaryFile()
        let output = try Pipe()
        var child: Child? = try Child.spawn(["git", "-C", repository, "log", "--all", "--no-abbrev", "--raw", "--no-renames",
                                             "--format=%H"], stdout: output.write, stderr: errors.fd)
        defer { child?.stop() }
        output.closeWrite()
        let reader = DescriptorReader(fd: output.read)
        var found: [String: String] = [:]
        var commit: String?
        while let line = try reader.readLine(maxBytes: 1 << 20) {
            if line.first == UInt8(ascii: ":") {
                // ":100644 100644 <old> <new> M\t<path>" (log order is newest first: the last hit is the oldest)
                let fields = line.split(separator: UInt8(ascii: " "), maxSplits: 4)
                if fields.count == 5, let commit {
                    let new = String(decoding: fields[3], as: UTF8.self)
                    if blobs.contains(new) { found[new] = commit }
                }
            } else if GitHistory.isObjectID(line) {
                commit = String(decoding: line, as: UTF8.self)
            }
        }
        output.closeRead()
        let status = child?.wait() ?? 0
        child = nil
        guard status == 0 else { throw Failure(description: "\(repository): git log exited \(status): \(errors.text())") }
        return found
    }

    private func parseHeader(_ line: [UInt8]) throws -> Object {
        let fields = line.split(separator: UInt8(ascii: " "), maxSplits: 3, omittingEmptySubsequences: false)
        guard fields.count >= 3, GitHistory.isObjectID(fields[0]),
              let kind = Object.Kind(rawValue: String(decoding: fields[1], as: UTF8.self)),
              let size = Int(String(decoding: fields[2], as: UTF8.self)), size >= 0 else {
            throw Failure(description: "\(repository): unexpected output from git cat-file: \(String(decoding: line.prefix(120), as: UTF8.self))")
        }
        return Object(id: String(decoding: fields[0], as: UTF8.self), kind: kind, size: size,
                      path: fields.count > 3 ? String(decoding: fields[3], as: UTF8.self) : "")
    }

    /// A full SHA-1 or SHA-256 object id in lowercase hexadecimal.
    static func isObjectID<C: Collection<UInt8>>(_ bytes: C) -> Bool {
        (bytes.count == 40 || bytes.count == 64) && bytes.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
    }
}

/// A child process started with posix_spawn (no shell), its standard streams given.
private struct Child {
    let pid: pid_t
    let command: String

    /// Starts `arguments[0]` (looked up in PATH). A nil stream reads from or writes to /dev/null.
    static func spawn(_ arguments: [String], stdin: Int32? = nil, stdout: Int32? = nil, stderr: Int32? = nil) throws -> Child {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for (fd, target, flags) in [(stdin, Int32(0), O_RDONLY), (stdout, Int32(1), O_WRONLY), (stderr, Int32(2), O_WRONLY)] {
            if let fd {
                posix_spawn_file_actions_adddup2(&actions, fd, target)
            } else {
                posix_spawn_file_actions_addopen(&actions, target, "/dev/null", flags, 0)
            }
        }
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) }
        argv.append(nil)
        defer { for pointer in argv { free(pointer) } }
        var pid = pid_t()
        let status = posix_spawnp(&pid, arguments[0], &actions, nil, argv, environ)
        guard status == 0 else {
            let reason = String(cString: strerror(status))
            throw GitHistory.Failure(description: status == ENOENT
                ? "cannot run \(arguments[0]): it is not installed or not in PATH (\(reason))"
                : "cannot run \(arguments[0]): \(reason)")
        }
        return Child(pid: pid, command: arguments.prefix(4).joined(separator: " "))
    }

    /// Waits for the exit; the exit status, or 128 + the signal that ended it.
    func wait() -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            if errno != EINTR { return -1 }
        }
        let signal = status & 0x7F
        return signal == 0 ? (status >> 8) & 0xFF : 128 + signal
    }

    /// Ends a child still running (a scan stopped early) and reaps it.
    func stop() {
        kill(pid, SIGTERM)
        _ = wait()
    }
}

/// A pipe whose ends are closed on exec (children get only what `posix_spawn` dups for them).
private final class Pipe {
    private(set) var read: Int32
    private(set) var write: Int32

    init() throws {
        var fds: [Int32] = [-1, -1]
        // pipe + FD_CLOEXEC (pipe2 is not in the Glibc module); scans spawn from one thread.
        guard pipe(&fds) == 0, fcntl(fds[0], F_SETFD, FD_CLOEXEC) == 0, fcntl(fds[1], F_SETFD, FD_CLOEXEC) == 0 else {
            throw GitHistory.Failure(description: "cannot create a pipe: \(String(cString: strerror(errno)))")
        }
        read = fds[0]
        write = fds[1]
    }

    func closeRead() { if read >= 0 { close(read); read = -1 } }
    func closeWrite() { if write >= 0 { close(write); write = -1 } }
    deinit { closeRead(); closeWrite() }
}

/// An anonymous temporary file (unlinked at once) collecting the children's standard error.
private final class TemporaryFile {
    let fd: Int32

    init() throws {
        let directory = getenv("TMPDIR").flatMap { String(validatingCString: $0) }.flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        var template = Array("\(directory)/pat-scan-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { buffer in buffer.baseAddress.map { mkstemp($0) } ?? -1 }
        guard fd >= 0, fcntl(fd, F_SETFD, FD_CLOEXEC) == 0 else {
            throw GitHistory.Failure(description: "cannot create a temporary file in \(directory): \(String(cString: strerror(errno)))")
        }
        template.withUnsafeBufferPointer { buffer in _ = buffer.baseAddress.map { unlink($0) } }
        self.fd = fd
    }

    deinit { close(fd) }

    /// The first 2 KiB written, as one line.
    func text() -> String {
        var bytes = [UInt8](repeating: 0, count: 2048)
        let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        let text = String(decoding: bytes.prefix(max(0, n)), as: UTF8.self)
        let lines = text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }).map { $0.trimmingCharacters() }
        return lines.isEmpty ? "(no message)" : lines.joined(separator: "; ")
    }
}

private extension Substring {
    func trimmingCharacters() -> String {
        String(drop(while: { $0 == " " || $0 == "\t" }))
    }
}
