#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Explicit, careful file helpers for the few files PATKit reads and writes: keys, key sets,
/// revocation lists. Reads are bounded; secret files must be private; writes are atomic
/// (temporary file, fsync, rename, fsync of the directory).
package enum SecureFile {
    /// Reads at most `maxBytes` from `path`. With `requirePrivate`, refuses a file that
    /// group or others may read or write (secret keys).
    package static func read(_ path: String, maxBytes: Int, requirePrivate: Bool = false) throws(PATKitError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { throw .io(path: path, reason: "cannot open: \(errnoText())") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .io(path: path, reason: "cannot stat: \(errnoText())") }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw .io(path: path, reason: "not a regular file") }
        if requirePrivate, info.st_mode & 0o077 != 0 {
            throw .insecureKeyFile(path: path, mode: UInt32(info.st_mode))
        }
        guard Int(info.st_size) <= maxBytes else {
            throw .io(path: path, reason: "file of \(info.st_size) bytes exceeds the limit of \(maxBytes) bytes")
        }
        var out = [UInt8](repeating: 0, count: Int(info.st_size))
        var total = 0
        while total < out.count {
            let n = out.withUnsafeMutableBytes { buf in Glibc.read(fd, buf.baseAddress.map { $0 + total }, buf.count - total) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .io(path: path, reason: "read failed: \(errnoText())")
            }
            if n == 0 { break }
            total += n
        }
        guard total == out.count else { throw .io(path: path, reason: "file changed while being read (truncated)") }
        return out
    }

    /// Writes `bytes` to `path` atomically with `mode`: a temporary file in the same
    /// directory, fsync, rename over the target, fsync of the directory. Readers see the
    /// old file or the new one, never a mix; a crash leaves the old file intact.
    /// - Parameter beforeRename: runs after the temporary file is complete and synced, just
    ///   before the rename (a test seam for crashes at the worst moment).
    package static func writeAtomically(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o644,
                                       beforeRename: () -> Void = {}) throws(PATKitError) {
        let directory = parentDirectory(of: path)
        var template = Array("\(path).tmp-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { buf in buf.baseAddress.map { mkstemp($0) } ?? -1 }
        guard fd >= 0 else { throw .io(path: path, reason: "cannot create a temporary file: \(errnoText())") }
        let tmpPath = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var committed = false
        defer {
            if !committed { unlink(tmpPath) }
        }
        do {
            defer { close(fd) }
            guard fchmod(fd, mode) == 0 else { throw PATKitError.io(path: tmpPath, reason: "chmod failed: \(errnoText())") }
            var written = 0
            // In two halves, with a crash-test point between them (FaultPoint).
            for end in [bytes.count / 2, bytes.count] {
                while written < end {
                    let n = bytes.withUnsafeBytes { buf in write(fd, buf.baseAddress.map { $0 + written }, end - written) }
                    if n < 0 {
                        if errno == EINTR { continue }
                        throw PATKitError.io(path: tmpPath, reason: "write failed: \(errnoText())")
                    }
                    written += n
                }
                if end < bytes.count { FaultPoint.reached("file.partial", path) }
            }
            guard fsync(fd) == 0 else { throw PATKitError.io(path: tmpPath, reason: "fsync failed: \(errnoText())") }
        } catch let error as PATKitError {
            throw error
        } catch {
            throw .io(path: path, reason: "\(error)")
        }
        FaultPoint.reached("file.synced", path)
        beforeRename()
        guard rename(tmpPath, path) == 0 else { throw .io(path: path, reason: "rename failed: \(errnoText())") }
        committed = true
        let dfd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 {
            _ = fsync(dfd)
            close(dfd)
        }
    }

    /// Creates `path` and missing parents with `mode` (existing directories keep theirs).
    package static func createDirectory(_ path: String, mode: mode_t = 0o755) throws(PATKitError) {
        var current = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            current += "/" + component
            if mkdir(current, mode) != 0, errno != EEXIST {
                throw .io(path: current, reason: "cannot create directory: \(errnoText())")
            }
        }
    }

    /// Creates an empty file with `mode` unless something exists at `path` (never follows a
    /// link). For files another library then opens, e.g. a database that must not be created
    /// with the process umask.
    package static func createIfAbsent(_ path: String, mode: mode_t) throws(PATKitError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode)
        if fd < 0 {
            if errno == EEXIST { return }
            throw .io(path: path, reason: "cannot create: \(errnoText())")
        }
        defer { close(fd) }
        // The umask may have narrowed the mode further, never widened it; set it exactly.
        guard fchmod(fd, mode) == 0 else { throw .io(path: path, reason: "chmod failed: \(errnoText())") }
    }

    /// Which file is at a path, and which version of it: a file replaced (renamed over) or
    /// rewritten in place gets another identity.
    package struct Identity: Sendable, Equatable {
        package let device: UInt64
        package let inode: UInt64
        package let size: Int64
        /// Modification time, nanoseconds since 1970.
        package let modified: Int64
        /// Status-change time, nanoseconds since 1970.
        package let changed: Int64

        /// No file: the identity of a document held in memory.
        package static let none = Identity(device: 0, inode: 0, size: 0, modified: 0, changed: 0)
    }

    /// The identity of the file at `path` (following links); nil when there is none (no such
    /// file or directory). Throws `.io` when it cannot be looked at otherwise.
    package static func identity(_ path: String) throws(PATKitError) -> Identity? {
        var info = stat()
        guard stat(path, &info) == 0 else {
            if errno == ENOENT || errno == ENOTDIR { return nil }
            throw .io(path: path, reason: "cannot stat: \(errnoText())")
        }
        #if canImport(Darwin)
        let (modified, changed) = (info.st_mtimespec, info.st_ctimespec)
        #else
        let (modified, changed) = (info.st_mtim, info.st_ctim)
        #endif
        return Identity(device: UInt64(info.st_dev), inode: UInt64(info.st_ino), size: Int64(info.st_size),
                        modified: Int64(modified.tv_sec) * 1_000_000_000 + Int64(modified.tv_nsec),
                        changed: Int64(changed.tv_sec) * 1_000_000_000 + Int64(changed.tv_nsec))
    }

    package static func exists(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0
    }

    static func parentDirectory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    static func errnoText() -> String { String(cString: strerror(errno)) }
}

/// An exclusive advisory lock (flock) on a file, held for the duration of a closure:
/// serialises concurrent CLI processes that change the same state.
package struct FileLock: Sendable {
    package let path: String

    package init(path: String) { self.path = path }

    /// Opens (creating it 0600 if missing) and locks the file. A symbolic link or anything but a
    /// regular file at `path` is refused: a planted link must not make the lock create or
    /// truncate a file elsewhere.
    package func withLock<R>(_ body: () throws -> R) throws -> R {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else {
            let reason = errno == ELOOP ? "it is a symbolic link; remove it (lock files are plain files PATKit creates)"
                : SecureFile.errnoText()
            throw PATKitError.io(path: path, reason: "cannot open lock file: \(reason)")
        }
        defer { close(fd) } // closing releases the lock
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            throw PATKitError.io(path: path, reason: "the lock file is not a regular file; remove it")
        }
        while flock(fd, LOCK_EX) != 0 {
            if errno != EINTR { throw PATKitError.io(path: path, reason: "cannot lock: \(SecureFile.errnoText())") }
        }
        return try body()
    }
}
