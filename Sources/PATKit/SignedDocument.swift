/// What PATKit's signed documents (the revocation list, the key set) have in common.
///
/// Each is signed with Ed25519 over PASETO's Pre-Authentication Encoding (PAE) whose first
/// piece is a domain string naming the document type and version. A token's PAE has four
/// pieces and starts with `v4.public.`; a list's has two and a key set's three, each with its
/// own domain string, so no signature made for one kind can ever verify as another. A delta
/// (two pieces, like a list) has a domain string of its own.
public enum SignedDocument {
    /// The largest sequence number a document may carry: 2^53 − 1, so that every sequence is
    /// exact as a JSON number in any language and an issuer hits a clear error long before
    /// 64-bit arithmetic could overflow.
    public static let maxSequence: UInt64 = 9_007_199_254_740_991

    /// PAE domain strings. A new document type or format version takes a new string.
    static let revocationListDomain: [UInt8] = Array("patkit.revocation-list.v3".utf8)
    static let revocationDeltaDomain: [UInt8] = Array("patkit.revocation-delta.v1".utf8)
    static let keySetDomain: [UInt8] = Array("patkit.key-set.v1".utf8)

    /// Checks a sequence number a signer is about to use.
    static func checkSequence(_ sequence: UInt64, _ document: String) throws(PATKitError) {
        guard sequence >= 1 else { throw .invalidArgument("\(document) sequence must be at least 1") }
        guard sequence <= maxSequence else {
            throw .invalidArgument("\(document) sequence \(sequence) exceeds the largest allowed, 2^53 − 1 (\(maxSequence))")
        }
    }

    /// `previous + 1`, or a clear error when that would pass `maxSequence`.
    public static func nextSequence(after previous: UInt64, _ document: String) throws(PATKitError) -> UInt64 {
        guard previous < maxSequence else {
            throw .invalidArgument("the \(document) sequence \(previous) has reached the largest allowed, 2^53 − 1 (\(maxSequence)); "
                                   + "it cannot increase further (edges would refuse a lower one)")
        }
        return previous + 1
    }
}
