/// The keys an edge pins out of band to decide which key sets it trusts: one or more Ed25519
/// public keys, separate from the keys that sign tokens and lists.
///
/// A signed key set (`SignedKeySet`) is accepted only when one of these keys signed it
/// (anchor-only rule: a key set never vouches for the next one). Rotating an anchor is an
/// out-of-band change of this file: add the new anchor, let edges pick it up, sign with it,
/// then remove the old one.
///
/// Text form (a file, e.g. the output of `pat keys export --anchors`): one PASERK
/// `k4.public.…` per line; blank lines and lines starting with `#` are ignored; surrounding
/// spaces and tabs and CR line endings are tolerated. Anything else is an error, and a line
/// holding key material of another type is refused without echoing it.
public struct TrustAnchors: Sendable, Equatable {
    /// The anchors, in file order, without duplicates.
    public let keys: [PublicKey]

    public static let maxAnchors = 64
    public static let maxFileBytes = 64 * 1024

    /// At least one key is required: an empty set of anchors trusts nothing.
    public init(_ keys: [PublicKey]) throws(PATKitError) {
        var seen = Set<KeyID>()
        let unique = keys.filter { seen.insert($0.id).inserted }
        guard !unique.isEmpty else { throw .invalidArgument("no trust anchor given: an edge needs at least one k4.public anchor key") }
        guard unique.count <= TrustAnchors.maxAnchors else {
            throw .invalidArgument("\(unique.count) trust anchors exceed the limit of \(TrustAnchors.maxAnchors)")
        }
        self.keys = unique
    }

    /// Parses the text form.
    public init(text bytes: [UInt8]) throws(PATKitError) {
        guard bytes.count <= TrustAnchors.maxFileBytes else {
            throw .invalidDocument("trust anchor file of \(bytes.count) bytes exceeds \(TrustAnchors.maxFileBytes) bytes")
        }
        var keys: [PublicKey] = []
        for (index, raw) in bytes.split(separator: 0x0A, omittingEmptySubsequences: false).enumerated() {
            let line = String(decoding: raw, as: UTF8.self).trimmingASCIIWhitespace()
            if line.isEmpty || line.hasPrefix("#") { continue }
            do { keys.append(try PublicKey(paserk: line)) } catch {
                throw .invalidDocument("trust anchors, line \(index + 1): expected one k4.public PASERK key, found \(PASERKType.describe(line))")
            }
        }
        guard !keys.isEmpty else { throw .invalidDocument("the trust anchor file holds no k4.public key") }
        try self.init(keys)
    }

    /// Reads the text form from a file (bounded; symbolic links refused).
    public init(contentsOfFile path: String) throws(PATKitError) {
        let bytes = try SecureFile.read(path, maxBytes: TrustAnchors.maxFileBytes)
        do { try self.init(text: bytes) } catch {
            if case .invalidDocument(let reason) = error { throw .invalidDocument("\(path): \(reason)") }
            throw error
        }
    }

    /// The anchor with this id, if pinned.
    public func key(for id: KeyID) -> PublicKey? { keys.first { $0.id == id } }

    /// The text form: one `k4.public` line per anchor.
    public var text: String { keys.map { $0.paserk + "\n" }.joined() }
}
