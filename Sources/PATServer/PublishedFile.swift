import CompressNIO
import Hummingbird
import PATKit
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// One published file served as is: re-read whenever its identity, size or modification
/// time changes (checked on every request, one `stat`), so what is served is never older
/// than what is on disk. Each version is loaded once with its strong entity tag and, when
/// smaller, a gzip form.
final class PublishedFile: Sendable {
    struct Version: Sendable {
        let tag: FileTag
        let bytes: ByteBuffer
        let etag: String
        let gzip: ByteBuffer?
        let gzipETag: String
        /// For a revocation list: its next-update (nil when it could not be read).
        let nextUpdate: Timestamp?
    }

    struct FileTag: Sendable, Equatable {
        let device: UInt64
        let inode: UInt64
        let size: Int64
        let mtimeNanoseconds: Int64
    }

    enum Failure: Error, Sendable {
        /// The file does not exist (nothing published yet).
        case absent
        case unreadable(String)
    }

    let path: String
    let maxBytes: Int
    private let cached: Mutex<Version?>
    /// Reads extra metadata of a new version (the list's next-update).
    private let inspect: @Sendable ([UInt8]) -> Timestamp?

    init(path: String, maxBytes: Int, inspect: @escaping @Sendable ([UInt8]) -> Timestamp? = { _ in nil }) {
        self.path = path
        self.maxBytes = maxBytes
        self.inspect = inspect
        self.cached = Mutex(nil)
    }

    /// The current version of the file.
    func current() throws(Failure) -> Version {
        for _ in 0..<3 {
            let before = try fileTag()
            if let version = cached.withLock({ $0 }), version.tag == before { return version }
            let bytes: [UInt8]
            do { bytes = try SecureFile.read(path, maxBytes: maxBytes) } catch {
                if !SecureFile.exists(path) { throw .absent }
                throw .unreadable("\(error)")
            }
            // Replaced while being read: read again so the bytes and the tag agree.
            guard try fileTag() == before else { continue }
            let version = PublishedFile.makeVersion(bytes, tag: before, nextUpdate: inspect(bytes))
            cached.withLock { $0 = version }
            return version
        }
        throw .unreadable("\(path) keeps changing while being read")
    }

    private func fileTag() throws(Failure) -> FileTag {
        var info = stat()
        guard stat(path, &info) == 0 else {
            if errno == ENOENT || errno == ENOTDIR { throw .absent }
            throw .unreadable("\(path): cannot stat: \(String(cString: strerror(errno)))")
        }
        return FileTag(device: UInt64(info.st_dev), inode: UInt64(info.st_ino), size: Int64(info.st_size),
                       mtimeNanoseconds: Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec))
    }

    static func makeVersion(_ bytes: [UInt8], tag: FileTag, nextUpdate: Timestamp?) -> Version {
        let digest = ContentDigest.etag(bytes)
        var buffer = ByteBuffer(bytes: bytes)
        var gzip: ByteBuffer? = nil
        var input = buffer
        if let compressed = try? input.compress(with: .gzip()), compressed.readableBytes < bytes.count {
            gzip = compressed
        }
        buffer.moveReaderIndex(to: 0)
        return Version(tag: tag, bytes: buffer, etag: "\"\(digest)\"", gzip: gzip, gzipETag: "\"\(digest)-gzip\"",
                       nextUpdate: nextUpdate)
    }
}

/// Strong entity tags: BLAKE2b-128 of the content, base64url.
enum ContentDigest {
    static func etag(_ bytes: [UInt8]) -> String { Base64URL.encode(Digest.blake2b(bytes, length: 16)) }
}
