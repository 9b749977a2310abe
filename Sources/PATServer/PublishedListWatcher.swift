import Logging
import PATKit
import PATRegistry
import PATStore
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Feeds a `RevocationFeed` from `HOME/published`, for lists written by another process (`pat
/// publish`, another tool): whenever `revocations.bin` changes (one `stat` a call), reads it and
/// the delta beside it (`revocations.delta`) and offers both. A list the feed already holds (the
/// republisher offered it the moment it published) is recognised from its header and signature
/// alone, without reading a million entries again.
///
/// The list's next-update — what `Cache-Control: max-age` is derived from — is read by verifying
/// the list against the published key set, itself verified with the home's trust anchors; a
/// list that does not verify is still served, with `no-cache`.
final class PublishedListWatcher: Sendable {
    let listPath: String
    let deltaPath: String
    let maxBytes: Int
    let feed: RevocationFeed
    private let verify: @Sendable ([UInt8]) -> Timestamp?
    /// The file version last looked at; nil while a look is under way (others skip meanwhile).
    private let seen = Mutex<(tag: SecureFile.Identity?, busy: Bool)>((nil, false))

    init(home: PATHome, feed: RevocationFeed, keys: PublishedFile, maxBytes: Int = RevocationList.defaultMaxBytes,
         logger: Logger) {
        listPath = home.publishedRevocationsPath
        deltaPath = home.publishedDirectory + "/" + Publisher.deltaFileName
        self.maxBytes = maxBytes
        self.feed = feed
        let keyStore = home.keyStore
        verify = { bytes in
            do {
                guard let anchors = try keyStore.trustAnchors() else {
                    throw PATKitError.invalidArgument("no trust anchor in \(keyStore.anchorsPath)")
                }
                let keySet = try SignedKeySet(verifying: Array(keys.current().bytes.readableBytesView), anchors: anchors)
                return try RevocationList(verifying: bytes, keys: keySet.keys).nextUpdate
            } catch {
                logger.warning("the published revocation list does not verify with the published keys; serving it with no-cache",
                               metadata: ["error": "\(error)"])
                return nil
            }
        }
    }

    /// Looks at the file once; offers a new version to the feed. Never waits for another look.
    func check() {
        guard let tag = try? PublishedFile.fileTag(listPath) else { return }
        let proceed = seen.withLock { state -> Bool in
            if state.busy || state.tag == tag { return false }
            state.busy = true
            return true
        }
        guard proceed else { return }
        var looked: SecureFile.Identity? = nil
        defer { seen.withLock { $0 = (looked ?? $0.tag, false) } }

        // The header and the signature tell whether the feed holds this list already.
        guard let (header, signature) = PublishedListWatcher.peek(listPath, size: Int(tag.size)) else { return }
        if let current = feed.current, current.sequence > header.sequence
            || (current.sequence == header.sequence && current.signature == signature) {
            looked = tag
            return
        }
        guard let bytes = try? SecureFile.read(listPath, maxBytes: maxBytes), (try? PublishedFile.fileTag(listPath)) == tag,
              let sequence = RevocationList.unverifiedSequence(header: Array(bytes.prefix(RevocationList.maxHeaderBytes))) else {
            return // replaced while being read, or unreadable: the next look tries again
        }
        let delta = SecureFile.exists(deltaPath) ? try? SecureFile.read(deltaPath, maxBytes: RevocationDelta.defaultMaxBytes) : nil
        feed.offer(ServedList(bytes: bytes, sequence: sequence, nextUpdate: verify(bytes)), deltas: delta.map { [$0] } ?? [])
        looked = tag
    }

    /// The unverified header and the last 64 bytes of the list file, without reading the rest.
    static func peek(_ path: String, size: Int) -> (RevocationList.UnverifiedHeader, [UInt8])? {
        guard size >= 64 else { return nil }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var head = [UInt8](repeating: 0, count: min(size, RevocationList.maxHeaderBytes))
        var tail = [UInt8](repeating: 0, count: 64)
        let headRead = head.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        let tailRead = tail.withUnsafeMutableBytes { pread(fd, $0.baseAddress, 64, off_t(size - 64)) }
        guard headRead == head.count, tailRead == 64, let header = RevocationList.UnverifiedHeader(head) else { return nil }
        return (header, tail)
    }
}
