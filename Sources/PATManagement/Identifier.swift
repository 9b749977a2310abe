import Foundation // NFC: `precomposedStringWithCanonicalMapping` (ICU on Linux); PATKit stays libsodium-only
import PATKit

/// The one rule for identities — owners, PAT names, domains, PAT ids: **identity is bytes**.
///
/// Swift's `==` on `String` is canonical equivalence (`"\u{e9}ve" == "e\u{301}ve"`), while
/// SQLite, the revocation list and every verifier compare bytes. Two spellings that look alike
/// must never be one identity in one place and two in another, so:
/// - the service compares identities with `same(_:_:)` (UTF-8 bytes), never `==`;
/// - input that is not in Unicode NFC is refused, naming the field: of all the spellings of
///   one text, only one (the precomposed one) can enter the registry.
package enum Identifier {
    /// Byte equality of two identities.
    package static func same(_ a: String, _ b: String) -> Bool { a.utf8.elementsEqual(b.utf8) }

    /// Byte equality of two optional identities (both absent counts as equal).
    package static func same(_ a: String?, _ b: String?) -> Bool {
        switch (a, b) {
        case (nil, nil): return true
        case (let a?, let b?): return same(a, b)
        default: return false
        }
    }

    /// True when `text` is in Unicode Normalization Form C.
    package static func isNFC(_ text: String) -> Bool {
        // ASCII is always NFC; skip the normalizer for it.
        if text.utf8.allSatisfy({ $0 < 0x80 }) { return true }
        return text.precomposedStringWithCanonicalMapping.utf8.elementsEqual(text.utf8)
    }

    /// Checks an owner (`sub`), a domain (`dom`) or a name: 1…`maxBytes` bytes (names: also at
    /// most `maxCharacters` characters), no control characters, NFC.
    package static func check(_ text: String, field: String, maxBytes: Int = 256, maxCharacters: Int? = nil) throws(ManagementError) {
        let bytes = text.utf8.count
        if let maxCharacters {
            guard bytes > 0, text.count <= maxCharacters, bytes <= maxBytes else {
                throw ManagementError(.invalidInput, field: field, "must be 1–\(maxCharacters) characters without control characters")
            }
        } else {
            guard bytes > 0, bytes <= maxBytes else {
                throw ManagementError(.invalidInput, field: field, "must be 1–\(maxBytes) bytes without control characters")
            }
        }
        guard !text.unicodeScalars.contains(where: { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) }) else {
            let limit = maxCharacters.map { "1–\($0) characters" } ?? "1–\(maxBytes) bytes"
            throw ManagementError(.invalidInput, field: field, "must be \(limit) without control characters")
        }
        guard isNFC(text) else {
            throw ManagementError(.invalidInput, field: field,
                                  "is not in Unicode NFC form (e.g. \"e\" followed by a combining accent instead of \"é\"): "
                                  + "send its precomposed (NFC) spelling; look-alike spellings are refused so that one "
                                  + "name is never two identities")
        }
    }

    /// A PAT id: the `jti` form (22–128 URL-safe ASCII characters). Anything else names no PAT.
    package static func checkPATID(_ id: String) throws(ManagementError) {
        guard PATClaims.isValidID(id) else { throw ManagementError.notFound(id) }
    }
}
