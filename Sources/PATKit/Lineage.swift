/// One ancestor in a PAT's lineage: a token (PAT id and generation) that minted this PAT,
/// directly or through other tokens.
///
/// A token minted by another token carries its whole chain in the registered claim `par`, root
/// first, the direct parent last: `"par": ["<jti>.<gen>", …]`, 1 to `maxDepth` entries. The
/// `Validator` refuses the token (`ancestor_revoked`) when any ancestor's generation is below
/// that ancestor's floor in the revocation list — so revoking, regenerating or deleting a parent
/// kills every descendant at the next list, with one O(1) lookup per ancestor. Tokens issued
/// by the CLI or by `pats:admin` directly have no `par`.
///
/// `par` is an ordinary PASETO claim: a stock PASETO verifier ignores it. Lineage is a
/// PATKit check.
public struct PATAncestor: Sendable, Hashable, CustomStringConvertible {
    /// The ancestor's PAT id (`jti`).
    public let id: String
    /// The ancestor's generation (`gen`) when it minted the chain below it.
    public let generation: UInt64

    /// The deepest lineage a token may carry: a token whose `par` already has this many
    /// entries cannot mint.
    public static let maxDepth = 4

    public init(id: String, generation: UInt64) throws(PATKitError) {
        guard PATClaims.isValidID(id) else {
            throw .invalidClaims("ancestor id \"\(id.prefix(80))\" must be 22–128 URL-safe characters (A–Z a–z 0–9 - _)")
        }
        guard (1...PATClaims.maxGeneration).contains(generation) else {
            throw .invalidClaims("ancestor generation must be from 1 to 2^53−1, not \(generation)")
        }
        self.id = id
        self.generation = generation
    }

    /// Parses `"<jti>.<gen>"`: the id, one dot, the generation in canonical decimal (no sign,
    /// no leading zero). What parses prints back byte for byte.
    public init(parsing text: some StringProtocol) throws(PATKitError) {
        let utf8 = Array(text.utf8)
        guard let dot = utf8.lastIndex(of: UInt8(ascii: ".")) else {
            throw .invalidClaims("a \"par\" entry must be \"<jti>.<gen>\"")
        }
        let digits = utf8[(dot + 1)...]
        guard (1...16).contains(digits.count), digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
              digits.first != UInt8(ascii: "0") else {
            throw .invalidClaims("a \"par\" entry must end in a generation from 1 to 2^53−1 without leading zeros")
        }
        let generation = digits.reduce(UInt64(0)) { $0 * 10 + UInt64($1 - 0x30) }
        try self.init(id: String(decoding: utf8[..<dot], as: UTF8.self), generation: generation)
    }

    /// `"<jti>.<gen>"`, the form in `par`.
    public var description: String { "\(id).\(generation)" }
}

extension PATClaims {
    /// Why `lineage` is not a valid `par`, or nil when it is: at most `PATAncestor.maxDepth`
    /// entries, each PAT at most once, never the token's own PAT.
    package static func lineageProblem(_ lineage: [PATAncestor], ownID: String) -> String? {
        guard lineage.count <= PATAncestor.maxDepth else {
            return "\"par\" holds \(lineage.count) ancestors; at most \(PATAncestor.maxDepth)"
        }
        for (index, ancestor) in lineage.enumerated() {
            if ancestor.id.utf8.elementsEqual(ownID.utf8) { return "\"par\" names the token's own PAT \(ownID)" }
            if lineage[..<index].contains(where: { $0.id.utf8.elementsEqual(ancestor.id.utf8) }) {
                return "\"par\" names PAT \(ancestor.id) twice"
            }
        }
        return nil
    }
}
