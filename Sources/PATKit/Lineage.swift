/// One ancestor in a PAT's lineage: a token (a PAT and its generation) that minted this PAT,
/// directly or through other tokens.
///
/// A token minted by another token carries its whole chain in the registered claim `par`,
/// root first, the direct parent last: `"par": ["<key>.<gen>", …]`, 1 to `maxDepth` entries,
/// where `<key>` is the ancestor's revocation-list lookup key — BLAKE2b-128("patkit.jti\0" ‖
/// jti), the 16 bytes a list entry is indexed by — in unpadded base64url (22 characters), and
/// `<gen>` the ancestor's generation in canonical decimal. The `Validator` refuses the token
/// (`ancestor_revoked`) when any ancestor's generation is below that ancestor's floor in the
/// revocation list — so revoking, regenerating or deleting a parent kills every descendant at
/// the next list, with one O(1) lookup per ancestor. Tokens issued by the CLI or by `pats:admin`
/// directly have no `par`.
///
/// Why the key rather than the jti: the lookup needs no hashing (a fresh validation of a
/// depth-4 token would otherwise spend four BLAKE2b computations, about 2 % of it), and a token
/// does not disclose the ids of the other PATs above it (the list is public and names none).
///
/// `par` is an ordinary PASETO claim: a stock PASETO verifier ignores it. Lineage is a
/// PATKit check.
public struct PATAncestor: Sendable, Hashable, CustomStringConvertible {
    /// The ancestor's revocation-list lookup key (`RevocationList.tokenKey(jti)`).
    public let key: EntryKey
    /// The ancestor's generation (`gen`) when it minted the chain below it.
    public let generation: UInt64

    /// The deepest lineage a token may carry: a token whose `par` already has this many
    /// entries cannot mint.
    public static let maxDepth = 4

    /// The ancestor that is generation `generation` of PAT `id`.
    public init(id: String, generation: UInt64) throws(PATKitError) {
        guard PATClaims.isValidID(id) else {
            throw .invalidClaims("ancestor id \"\(id.prefix(80))\" must be 22–128 URL-safe characters (A–Z a–z 0–9 - _)")
        }
        try self.init(key: RevocationList.tokenKey(id), generation: generation)
    }

    public init(key: EntryKey, generation: UInt64) throws(PATKitError) {
        guard (1...PATClaims.maxGeneration).contains(generation) else {
            throw .invalidClaims("ancestor generation must be from 1 to 2^53−1, not \(generation)")
        }
        self.key = key
        self.generation = generation
    }

    /// Parses `"<key>.<gen>"`: 22 canonical base64url characters, one dot, the generation in
    /// canonical decimal (no sign, no leading zero). What parses prints back byte for byte.
    public init(parsing text: some StringProtocol) throws(PATKitError) {
        var copy = String(text)
        let result = copy.withUTF8 { bytes in
            Result { () throws(PATKitError) -> PATAncestor in try PATAncestor(bytes: bytes) }
        }
        self = try result.get()
    }

    /// The same over UTF-8 bytes, without allocating (the claims parser's fast path).
    init(bytes: UnsafeBufferPointer<UInt8>) throws(PATKitError) {
        guard bytes.count >= 24, bytes.count <= 39, bytes[22] == UInt8(ascii: "."),
              let key = EntryKey(base64URL: UnsafeBufferPointer(rebasing: bytes[..<22])) else {
            throw .invalidClaims("a \"par\" entry must be \"<key>.<gen>\": 22 base64url characters (a 16-byte key), a dot, a generation")
        }
        let digits = UnsafeBufferPointer(rebasing: bytes[23...])
        guard digits.count <= 16, digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), digits[0] != UInt8(ascii: "0") else {
            throw .invalidClaims("a \"par\" entry must end in a generation from 1 to 2^53−1 without leading zeros")
        }
        try self.init(key: key, generation: digits.reduce(UInt64(0)) { $0 * 10 + UInt64($1 - 0x30) })
    }

    /// `"<key>.<gen>"`, the form in `par`.
    public var description: String { "\(key.base64URL).\(generation)" }
}

extension PATClaims {
    /// Why `lineage` is not a valid `par`, or nil when it is: 1…`PATAncestor.maxDepth` entries
    /// (none is no `par`), each PAT at most once.
    package static func lineageProblem(_ lineage: [PATAncestor]) -> String? {
        guard lineage.count <= PATAncestor.maxDepth else {
            return "\"par\" holds \(lineage.count) ancestors; at most \(PATAncestor.maxDepth)"
        }
        for (index, ancestor) in lineage.enumerated() where lineage[..<index].contains(where: { $0.key == ancestor.key }) {
            return "\"par\" names one PAT twice (\(ancestor.key.base64URL))"
        }
        return nil
    }
}

extension EntryKey {
    /// The 16 bytes in unpadded base64url (22 characters), as in `par`.
    public var base64URL: String { Sodium.base64URLEncode(bytes) }

    /// Decodes exactly 22 canonical base64url characters (the last one carrying 2 bits and 4
    /// zero bits) into a key; nil otherwise. No allocation (the claims parser's fast path).
    init?(base64URL text: UnsafeBufferPointer<UInt8>) {
        guard text.count == 22 else { return nil }
        let decoded = EntryKey.sextets.withUnsafeBufferPointer { table -> (UInt64, UInt64)? in
            var high: UInt64 = 0, low: UInt64 = 0, invalid: UInt8 = 0
            for i in 0..<21 { // 126 bits
                let v = table[Int(text[i])]
                invalid |= v
                high = high << 6 | low >> 58
                low = low << 6 | UInt64(v & 0x3F)
            }
            let last = table[Int(text[21])]
            // Invalid characters map to 0xFF; the last one carries 2 bits and 4 zero bits.
            guard (invalid | last) & 0xC0 == 0, last & 0x0F == 0 else { return nil }
            return (high << 2 | low >> 62, low << 2 | UInt64(last >> 4))
        }
        guard let (high, low) = decoded else { return nil }
        self.init(high: high, low: low)
    }

    /// base64url character → its 6-bit value; 0xFF for anything else.
    static let sextets: [UInt8] = (0...255).map { sextet(UInt8($0)) ?? 0xFF }

    @inline(__always)
    static func sextet(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): return c - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): return c - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0") + 52
        case UInt8(ascii: "-"): return 62
        case UInt8(ascii: "_"): return 63
        default: return nil
        }
    }
}
