import PATKit
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The two documents an edge holds: the public key set and the signed revocation list.
public enum PATDocument: String, Sendable, CaseIterable, CustomStringConvertible {
    /// The public key set (`keys.json`, `KeySet(json:)`).
    case keys
    /// The signed revocation list (`revocations.bin`, `RevocationList(verifying:keys:)`).
    case revocations

    public var description: String { rawValue }
}

/// What one conditional fetch returned.
public enum PATFetchResult: Sendable, Equatable {
    /// The document is unchanged since `ifNoneMatch` (HTTP 304).
    case notModified
    /// A (possibly) new document and its entity tag, if the source gave one.
    case modified(bytes: [UInt8], etag: String?)
}

/// What one fetch of the revocation list returned.
public struct PATRevocationsFetch: Sendable, Equatable {
    /// A whole list, or — when the source was asked `since` a sequence — possibly a chain of
    /// signed deltas from it (told apart by their magic: `RevocationDelta.looksLikeDelta`).
    public var result: PATFetchResult
    /// The sequence the source serves now (`X-PAT-Sequence`), when it says: then it answers
    /// `since` with deltas and holds `wait` as a long poll. Nil: a source that does neither
    /// (an older issuer, a file, a plain web server), to be polled.
    public var sequence: UInt64?

    public init(result: PATFetchResult, sequence: UInt64? = nil) {
        self.result = result
        self.sequence = sequence
    }
}

/// Where a refresher gets its documents. Implementations fetch one document, conditionally
/// on an entity tag, and must never return more than `maxBytes` bytes. The refresher verifies
/// what they return; a source only transports.
public protocol PATDocumentSource: Sendable {
    func fetch(_ document: PATDocument, ifNoneMatch etag: String?, maxBytes: Int) async throws -> PATFetchResult
    /// Fetches the revocation list for an edge holding list `since`: the source may answer with
    /// deltas from it, and, given `wait`, hold the request until a newer list exists (a long
    /// poll; `.notModified` when none came within `wait`). The default ignores both and fetches
    /// the whole list conditionally.
    func fetchRevocations(since: UInt64?, wait: Duration?, ifNoneMatch etag: String?, maxBytes: Int) async throws -> PATRevocationsFetch
    /// Where the documents come from, for status and logs (URLs or paths; never secrets).
    var location: String { get }
}

extension PATDocumentSource {
    public func fetchRevocations(since: UInt64?, wait: Duration?, ifNoneMatch etag: String?, maxBytes: Int) async throws -> PATRevocationsFetch {
        PATRevocationsFetch(result: try await fetch(.revocations, ifNoneMatch: etag, maxBytes: maxBytes))
    }
}

/// A failure of the edge side: transport, size, status. `description` says what happened.
public struct PATEdgeError: Error, Sendable, Equatable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Reads the documents from local files (e.g. an issuer's `HOME/published/`). The entity tag
/// is derived from the file's identity, size and modification time, so an unchanged file is
/// not read again.
public struct FileDocumentSource: PATDocumentSource {
    public let keysPath: String
    public let revocationsPath: String

    public init(keysPath: String, revocationsPath: String) {
        self.keysPath = keysPath
        self.revocationsPath = revocationsPath
    }

    public var location: String { "files \(keysPath), \(revocationsPath)" }

    public func fetch(_ document: PATDocument, ifNoneMatch etag: String?, maxBytes: Int) async throws -> PATFetchResult {
        let path = document == .keys ? keysPath : revocationsPath
        guard let before = FileDocumentSource.fileTag(path) else {
            throw PATEdgeError("\(path): cannot stat: \(String(cString: strerror(errno)))")
        }
        if before == etag { return .notModified }
        let bytes = try SecureFile.read(path, maxBytes: maxBytes)
        // A file replaced while being read is picked up by the next fetch (its tag differs).
        return .modified(bytes: bytes, etag: before)
    }

    /// `"dev-inode-size-mtime"` as a quoted entity tag, or nil when the file cannot be stat'ed.
    static func fileTag(_ path: String) -> String? {
        guard let file = (try? SecureFile.identity(path)) ?? nil else { return nil }
        return "\"\(file.device)-\(file.inode)-\(file.size)-\(file.modified)\""
    }
}
