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

/// A document served as is (the signed key set): its current version, or why there is none.
protocol ServedFile: Sendable {
    func current() throws(PublishedFile.Failure) -> PublishedFile.Version
}

/// One published file served as is: re-read whenever its identity, size or modification
/// time changes (checked on every request, one `stat`), so what is served is never older
/// than what is on disk. Each version is loaded once with its strong entity tag and, when
/// smaller, a gzip form.
final class PublishedFile: ServedFile {
    struct Version: Sendable {
        let tag: SecureFile.Identity
        let bytes: ByteBuffer
        let etag: String
        let gzip: ByteBuffer?
        let gzipETag: String
        /// The document's sequence (`X-PAT-Sequence`), when it has one.
        let sequence: UInt64?
    }

    enum Failure: Error, Sendable {
        /// The file does not exist (nothing published yet).
        case absent
        case unreadable(String)
    }

    let path: String
    let maxBytes: Int
    private let cached: Mutex<Version?>
    /// Reads the sequence of a new version.
    private let inspect: @Sendable ([UInt8]) -> UInt64?

    init(path: String, maxBytes: Int, inspect: @escaping @Sendable ([UInt8]) -> UInt64? = { _ in nil }) {
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
            let version = PublishedFile.makeVersion(bytes, tag: before, sequence: inspect(bytes))
            cached.withLock { $0 = version }
            return version
        }
        throw .unreadable("\(path) keeps changing while being read")
    }

    private func fileTag() throws(Failure) -> SecureFile.Identity { try PublishedFile.fileTag(path) }

    /// The file's identity (`SecureFile.identity`), with this type's failures.
    static func fileTag(_ path: String) throws(Failure) -> SecureFile.Identity {
        let identity: SecureFile.Identity?
        do { identity = try SecureFile.identity(path) } catch {
            guard case .io(let path, let reason) = error else { throw .unreadable("\(error)") }
            throw .unreadable("\(path): \(reason)")
        }
        guard let identity else { throw .absent }
        return identity
    }

    static func makeVersion(_ bytes: [UInt8], tag: SecureFile.Identity, sequence: UInt64?) -> Version {
        let digest = ContentDigest.etag(bytes)
        var buffer = ByteBuffer(bytes: bytes)
        var gzip: ByteBuffer? = nil
        var input = buffer
        if let compressed = try? input.compress(with: .gzip()), compressed.readableBytes < bytes.count {
            gzip = compressed
        }
        buffer.moveReaderIndex(to: 0)
        return Version(tag: tag, bytes: buffer, etag: "\"\(digest)\"", gzip: gzip, gzipETag: "\"\(digest)-gzip\"",
                       sequence: sequence)
    }
}

/// Strong entity tags: BLAKE2b-128 of the content, base64url.
enum ContentDigest {
    static func etag(_ bytes: [UInt8]) -> String { Base64URL.encode(Digest.blake2b(bytes, length: 16)) }
}

/// The signed key set a relay verified and holds (`pat serve --verify-only --relay`), served as is.
final class HeldKeySet: ServedFile {
    let validator: Validator
    private let cached = Mutex<PublishedFile.Version?>(nil)

    init(validator: Validator) { self.validator = validator }

    func current() throws(PublishedFile.Failure) -> PublishedFile.Version {
        guard let keySet = validator.signedKeySet else { throw .absent }
        return cached.withLock { held in
            if let held, held.sequence == keySet.sequence, held.bytes.readableBytesView.elementsEqual(keySet.bytes) { return held }
            let version = PublishedFile.makeVersion(keySet.bytes, tag: .none,
                                                    sequence: keySet.sequence)
            held = version
            return version
        }
    }
}
