#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Testing
@testable import PATKit

@Suite("SecureFile")
struct SecureFileTests {
    func fileMode(_ path: String) throws -> mode_t {
        var info = stat()
        try #require(stat(path, &info) == 0, "stat \(path)")
        return info.st_mode & 0o7777
    }

    func makeFile(_ path: String, _ bytes: [UInt8], mode: mode_t) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        try #require(fd >= 0)
        defer { close(fd) }
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        try #require(written == bytes.count)
        try #require(fchmod(fd, mode) == 0)
    }

    @Test("a private file reads back; group- or other-accessible secret files are refused",
          arguments: [0o644, 0o640, 0o604, 0o620, 0o602, 0o660, 0o666] as [mode_t])
    func requirePrivate(_ mode: mode_t) throws {
        let dir = try TempDirectory()
        defer { dir.remove() }
        let path = dir.file("secret.key")
        let content = Array("k4.secret.example\n".utf8)
        try makeFile(path, content, mode: mode)
        let error = patError { try SecureFile.read(path, maxBytes: 1024, requirePrivate: true) }
        guard case .insecureKeyFile(let reportedPath, let reportedMode)? = error else {
            Issue.record("expected insecureKeyFile, got \(String(describing: error))")
            return
        }
        #expect(reportedPath == path)
        #expect(reportedMode & 0o777 == UInt32(mode))
        #expect(error?.description.contains("chmod 600") == true)
        // Without the requirement the same file reads.
        #expect(try SecureFile.read(path, maxBytes: 1024) == content)
        // After chmod 600 it reads with the requirement too.
        #expect(chmod(path, 0o600) == 0)
        #expect(try SecureFile.read(path, maxBytes: 1024, requirePrivate: true) == content)
        #expect(chmod(path, 0o400) == 0)
        #expect(try SecureFile.read(path, maxBytes: 1024, requirePrivate: true) == content)
    }

    @Test("size limit, empty files, missing files, directories and symlinks")
    func readLimits() throws {
        let dir = try TempDirectory()
        defer { dir.remove() }
        let path = dir.file("data")
        let content = [UInt8](repeating: 0x61, count: 100)
        try makeFile(path, content, mode: 0o600)
        #expect(try SecureFile.read(path, maxBytes: 100) == content)
        #expect(patError { try SecureFile.read(path, maxBytes: 99) }?.isIO == true)

        let empty = dir.file("empty")
        try makeFile(empty, [], mode: 0o600)
        #expect(try SecureFile.read(empty, maxBytes: 10) == [])

        #expect(patError { try SecureFile.read(dir.file("missing"), maxBytes: 10) }?.isIO == true)
        #expect(patError { try SecureFile.read(dir.path, maxBytes: 10) }?.isIO == true)

        let link = dir.file("link")
        #expect(symlink(path, link) == 0)
        #expect(patError { try SecureFile.read(link, maxBytes: 1000) }?.isIO == true)
    }

    @Test("writeAtomically writes the content with the given mode and leaves no temporary file",
          arguments: [0o600, 0o644, 0o640, 0o400] as [mode_t])
    func writeAtomically(_ mode: mode_t) throws {
        let dir = try TempDirectory()
        defer { dir.remove() }
        let path = dir.file("keys.json")
        let content = Array("{\"keys\":[]}\n".utf8)
        try SecureFile.writeAtomically(path, content, mode: mode)
        #expect(try fileMode(path) == mode)
        #expect(try SecureFile.read(path, maxBytes: 1 << 20) == content)
        #expect(try dir.contents() == ["keys.json"])
    }

    @Test("writeAtomically replaces an existing file whole, taking the new mode")
    func overwrite() throws {
        let dir = try TempDirectory()
        defer { dir.remove() }
        let path = dir.file("list.bin")
        try SecureFile.writeAtomically(path, [UInt8](repeating: 1, count: 10_000), mode: 0o644)
        let replacement = (0..<300_000).map { UInt8(truncatingIfNeeded: $0) }
        try SecureFile.writeAtomically(path, replacement, mode: 0o600)
        #expect(try SecureFile.read(path, maxBytes: 1 << 20, requirePrivate: true) == replacement)
        #expect(try fileMode(path) == 0o600)
        try SecureFile.writeAtomically(path, [], mode: 0o600)
        #expect(try SecureFile.read(path, maxBytes: 10) == [])
        #expect(try dir.contents() == ["list.bin"])
    }

    @Test("a failed write leaves neither the target nor a temporary file")
    func failedWrite() throws {
        let dir = try TempDirectory()
        defer { dir.remove() }
        // The target is a non-empty directory: rename fails after the temporary file was written.
        let target = dir.file("occupied")
        #expect(mkdir(target, 0o755) == 0)
        try makeFile(target + "/inside", [1], mode: 0o600)
        #expect(patError { try SecureFile.writeAtomically(target, [1, 2, 3]) }?.isIO == true)
        #expect(try dir.contents() == ["occupied"])
        // Missing parent directory.
        #expect(patError { try SecureFile.writeAtomically(dir.file("no/such/file"), [1]) }?.isIO == true)
        #expect(try dir.contents() == ["occupied"])
    }

    @Test("createDirectory makes missing parents and tolerates existing ones")
    func createDirectory() throws {
        let dir = try TempDirectory()
        defer { dir.remove() }
        let nested = dir.file("a/b/c")
        try SecureFile.createDirectory(nested, mode: 0o700)
        #expect(SecureFile.exists(nested))
        #expect(try fileMode(nested) == 0o700)
        try SecureFile.createDirectory(nested, mode: 0o700)
        #expect(!SecureFile.exists(dir.file("a/b/d")))
        try makeFile(dir.file("file"), [], mode: 0o600)
        #expect(patError { try SecureFile.createDirectory(dir.file("file/sub")) }?.isIO == true)
    }

    @Test("FileLock runs the body and returns its value")
    func fileLock() throws {
        let dir = try TempDirectory()
        defer { dir.remove() }
        let lock = FileLock(path: dir.file("lock"))
        let value = try lock.withLock { 42 }
        #expect(value == 42)
        #expect(try lock.withLock { lock.path.count } > 0)
        #expect(SecureFile.exists(lock.path))
    }
}
