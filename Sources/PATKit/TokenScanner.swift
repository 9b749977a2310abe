#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Finds PATKit PATs in bytes: the candidate finder of `pat scan`, for any tool that wants to
/// look for leaked PATs (a pre-commit hook, a CI step, a log shipper) without the CLI. It does no
/// I/O and verifies nothing; `TokenInspector` says what a found token is (live, expired, revoked,
/// forged, foreign).
///
/// A candidate is exactly what `TokenScanner.pattern` matches: a PASETO v4.public token whose
/// footer is the one `Issuer` writes, `{"kid":"k4.pid.<44 base64url>"}` (61 bytes, so always
/// 82 base64url characters that start with `eyJraWQiOiJrNC5waWQu` and end with `ifQ`), at most
/// 8 KiB long, not followed by another base64url character.
///
/// Feed it bytes in chunks of any size (a token split across chunks is still found once), then
/// call `finish`:
/// ```swift
/// var scanner = TokenScanner()
/// for chunk in chunks { chunk.withUnsafeBytes { scanner.scan($0) { match in report(match) } } }
/// scanner.finish { match in report(match) }
/// ```
/// Memory is bounded: besides the caller's chunk it holds at most one token's worth of bytes.
/// Chunks of 8 KiB or more keep it linear (a candidate cut by a chunk's end is re-read from
/// its start with the next chunk); `pat scan` reads 1 MiB at a time.
public struct TokenScanner: Sendable {
    /// The regular expression (PCRE/RE2/Hyperscan/Swift `Regex` syntax) of a PATKit PAT, as
    /// documented in the README for secret-scanning rules. The scanner finds exactly its matches
    /// (leftmost first, never overlapping); `TokenScannerTests` checks that on generated text.
    public static let pattern =
        #"v4\.public\.[A-Za-z0-9_-]{86,8099}\.eyJraWQiOiJrNC5waWQu[A-Za-z0-9_-]{59}ifQ(?![A-Za-z0-9_-])"#

    /// A token found in the stream.
    public struct Match: Sendable, Equatable {
        /// The token itself. A secret: verify it, fingerprint it, never print or log it.
        public let token: String
        /// Byte offset of its first byte from the start of the stream.
        public let offset: Int
        /// 1-based line of its first byte (lines end at `\n`).
        public let line: Int
        /// 1-based byte column of its first byte within that line.
        public let column: Int
    }

    static let header: [UInt8] = Array("v4.public.".utf8)
    /// The base64url of `{"kid":"k4.pid.` (15 bytes, so it encodes on its own).
    public static let footerPrefix = "eyJraWQiOiJrNC5waWQu"
    static let footerPrefixBytes: [UInt8] = Array(footerPrefix.utf8)
    static let footerSuffixBytes: [UInt8] = Array("ifQ".utf8)
    /// base64url characters of the canonical 61-byte footer.
    static let footerLength = 82
    /// The longest payload text: a token is at most `PASETOv4Public.defaultMaxTokenBytes`.
    static let maxPayloadLength = PASETOv4Public.defaultMaxTokenBytes - header.count - 1 - footerLength
    /// The shortest: a bare 64-byte signature.
    static let minPayloadLength = 86

    /// base64url characters.
    static let isBase64URL: [Bool] = (0..<256).map { b in
        (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39) || b == 0x2D || b == 0x5F
    }

    /// Bytes of an unfinished candidate at the end of the last chunk (at most one token).
    private var carry: [UInt8] = []
    /// Stream offset of `carry[0]`.
    private var carryOffset = 0
    /// Everything before this stream offset has been counted into `line`/`lineStart`.
    private var countedTo = 0
    private var line = 1
    /// Stream offset of the first byte of line `line`.
    private var lineStart = 0

    /// Bytes fed so far.
    public private(set) var bytesScanned = 0
    /// Bytes held back from the last chunk (at most one token's worth).
    var heldBytes: Int { carry.count }

    public init() {}

    /// Scans the next chunk of the stream; calls `onMatch` for every token that ends in the
    /// bytes seen so far. A candidate cut by the chunk's end is kept for the next call.
    public mutating func scan(_ chunk: UnsafeRawBufferPointer, _ onMatch: (Match) throws -> Void) rethrows {
        defer { bytesScanned += chunk.count }
        if carry.isEmpty {
            try process(chunk, base: bytesScanned, final: false, onMatch)
        } else {
            // Rare: only when the previous chunk ended inside a candidate or a partial header.
            let joined = carry + UnsafeRawBufferPointer(chunk)
            carry = []
            try joined.withUnsafeBytes { try process($0, base: carryOffset, final: false, onMatch) }
        }
    }

    /// Scans the end of the stream: what `scan` kept back. Call once, after the last chunk.
    public mutating func finish(_ onMatch: (Match) throws -> Void) rethrows {
        guard !carry.isEmpty else { return }
        let rest = carry
        carry = []
        try rest.withUnsafeBytes { try process($0, base: carryOffset, final: true, onMatch) }
    }

    /// Every token in `bytes`, a whole stream.
    public static func matches(in bytes: some Sequence<UInt8>) -> [Match] {
        var scanner = TokenScanner()
        var found: [Match] = []
        let array = Array(bytes)
        array.withUnsafeBytes { scanner.scan($0) { found.append($0) } }
        scanner.finish { found.append($0) }
        return found
    }

    /// Finds the tokens of `buffer`, whose first byte is at stream offset `base`; keeps an
    /// unfinished candidate (unless `final`) in `carry`.
    private mutating func process(_ buffer: UnsafeRawBufferPointer, base: Int, final: Bool,
                                  _ onMatch: (Match) throws -> Void) rethrows {
        let n = buffer.count
        guard n > 0, let start = buffer.baseAddress else { return }
        let bytes = start.assumingMemoryBound(to: UInt8.self)
        var keepFrom = n
        var i = 0
        let v = Int32(UInt8(ascii: "v"))
        search: while i < n {
            // memchr: the C library's vectorised byte search; most text holds few 'v's.
            guard let hit = memchr(bytes + i, v, n - i) else { break }
            let p = UnsafeRawPointer(hit) - UnsafeRawPointer(bytes)
            switch candidate(at: p, in: bytes, count: n, final: final) {
            case .token(let end):
                try report(bytes, base: base, from: p, to: end, onMatch)
                i = end
            case .none:
                i = p + 1
            case .needMore:
                keepFrom = p
                break search
            }
        }
        countLines(bytes, base: base, upTo: keepFrom)
        if keepFrom < n {
            carry = Array(UnsafeRawBufferPointer(rebasing: buffer[keepFrom...]))
            carryOffset = base + keepFrom
        }
    }

    private enum Candidate {
        case token(end: Int)
        case none
        /// The buffer ends before the candidate at this position could be decided.
        case needMore
    }

    /// Whether the text at `p` (a 'v') is a token, ends it, or needs bytes past the buffer.
    private func candidate(at p: Int, in bytes: UnsafePointer<UInt8>, count n: Int, final: Bool) -> Candidate {
        let header = TokenScanner.header
        let table = TokenScanner.isBase64URL
        // The header.
        var k = 1
        while k < header.count {
            if p + k >= n { return final ? .none : .needMore }
            if bytes[p + k] != header[k] { return .none }
            k += 1
        }
        // The payload: base64url up to a '.', within the size bound.
        let payloadStart = p + header.count
        let runLimit = payloadStart + TokenScanner.maxPayloadLength + 1 // one past the longest payload
        var j = payloadStart
        let stop = min(n, runLimit)
        while j < stop, table[Int(bytes[j])] { j += 1 }
        if j == n, j < runLimit { return final ? .none : .needMore }
        let payloadLength = j - payloadStart
        guard payloadLength >= TokenScanner.minPayloadLength, payloadLength <= TokenScanner.maxPayloadLength,
              bytes[j] == UInt8(ascii: ".") else { return .none }
        // The footer: exactly 82 characters, then no base64url character.
        let footerStart = j + 1
        let end = footerStart + TokenScanner.footerLength
        if end > n { return final ? .none : .needMore }
        if end == n, !final { return .needMore } // the next byte decides
        let prefix = TokenScanner.footerPrefixBytes, suffix = TokenScanner.footerSuffixBytes
        for q in 0..<prefix.count where bytes[footerStart + q] != prefix[q] { return .none }
        for q in 0..<suffix.count where bytes[end - suffix.count + q] != suffix[q] { return .none }
        for q in (footerStart + prefix.count)..<(end - suffix.count) where !table[Int(bytes[q])] { return .none }
        if end < n, table[Int(bytes[end])] { return .none }
        return .token(end: end)
    }

    private mutating func report(_ bytes: UnsafePointer<UInt8>, base: Int, from p: Int, to end: Int,
                                 _ onMatch: (Match) throws -> Void) rethrows {
        countLines(bytes, base: base, upTo: p)
        let token = String(decoding: UnsafeBufferPointer(start: bytes + p, count: end - p), as: UTF8.self)
        try onMatch(Match(token: token, offset: base + p, line: line, column: base + p - lineStart + 1))
    }

    /// Counts the newlines of `bytes[countedTo - base ..< upTo]` into `line` and `lineStart`.
    private mutating func countLines(_ bytes: UnsafePointer<UInt8>, base: Int, upTo end: Int) {
        var i = countedTo - base
        guard i < end else { return }
        let newline = Int32(UInt8(ascii: "\n"))
        while i < end, let hit = memchr(bytes + i, newline, end - i) {
            let at = UnsafeRawPointer(hit) - UnsafeRawPointer(bytes)
            line += 1
            lineStart = base + at + 1
            i = at + 1
        }
        countedTo = base + end
    }
}
