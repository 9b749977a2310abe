import Foundation
import PATTestSupport
import Testing
@testable import PATKit

/// The candidate finder of `pat scan`: it finds exactly what the documented regular expression
/// matches, in any chunking, with lines and columns, in bounded memory.
@Suite("Token scanner")
struct TokenScannerTests {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    // MARK: the documented shape is the shape Issuer writes

    @Test("the footer Footer.encode writes is always 82 base64url characters: eyJraWQiOiJrNC5waWQu, 59 more, ifQ")
    func footerShape() throws {
        for _ in 0..<256 {
            let key = try SecretKey.generate()
            let text = Base64URL.encode(Footer.encode(key.id))
            #expect(text.utf8.count == TokenScanner.footerLength)
            #expect(text.hasPrefix(TokenScanner.footerPrefix))
            #expect(text.hasSuffix("ifQ"))
            #expect(text.utf8.allSatisfy { TokenScanner.isBase64URL[Int($0)] })
        }
        // The prefix is exactly the encoding of {"kid":"k4.pid. (15 bytes: no bits shared with the id).
        #expect(Base64URL.encode(Array(#"{"kid":"k4.pid."#.utf8)) == TokenScanner.footerPrefix)
    }

    @Test("every token Issuer issues, short or near the 8 KiB limit, matches the regex whole and is found whole")
    func issuedTokensMatch() throws {
        let regex = try Regex(TokenScanner.pattern).matchingSemantics(.unicodeScalar)
        let key = try SecretKey.generate()
        var scopes: [String] = []
        var longest = 0
        for n in [0, 1, 5, 40, 100] {
            while scopes.count < n { scopes.append("channels:publish:channel-\(scopes.count)-abcdefghij") }
            var extra = JSONObject()
            if n == 100 { extra.set("note", .string(String(repeating: "x", count: 1100))) }
            let claims = try Fixture.claims(subject: "owner-\(n)", scopes: scopes, extra: extra)
            let token = try Issuer(key: key).issue(claims)
            longest = max(longest, token.utf8.count)
            #expect(token.wholeMatch(of: regex) != nil, "a token of \(token.utf8.count) bytes does not match the regex")
            let found = TokenScanner.matches(in: Array(("x " + token + "\n").utf8))
            #expect(found.map(\.token) == [token])
            #expect(found.first?.offset == 2 && found.first?.line == 1 && found.first?.column == 3)
        }
        #expect(longest > 7000, "the long case should come near the 8 KiB limit, got \(longest) bytes")
    }

    // MARK: scanner == regex

    @Test("on generated text the scanner finds exactly the regex's matches, in every chunking")
    func agreesWithRegex() throws {
        let regex = try Regex(TokenScanner.pattern).matchingSemantics(.unicodeScalar)
        let seed = UInt64.random(in: 1...UInt64.max)
        var rng = SplitMix64(seed: seed)
        var total = 0
        for round in 0..<25 {
            let text = generatedText(&rng)
            let bytes = Array(text.utf8)
            let expected = text.matches(of: regex).map { match in
                (offset: text.utf8.distance(from: text.startIndex, to: match.range.lowerBound), token: String(text[match.range]))
            }
            total += expected.count
            let whole = TokenScanner.matches(in: bytes)
            #expect(whole.map(\.offset) == expected.map(\.offset), "seed \(seed) round \(round)")
            #expect(whole.map(\.token) == expected.map(\.token), "seed \(seed) round \(round)")
            for match in whole {
                let before = bytes[..<match.offset]
                #expect(match.line == before.filter { $0 == 0x0A }.count + 1)
                #expect(match.column == match.offset - (before.lastIndex(of: 0x0A).map { $0 + 1 } ?? 0) + 1)
            }
            for chunk in [1, 2, 7, 10, 93, 4096, 8193] + [Int.random(in: 1...20_000, using: &rng)] {
                #expect(scanInChunks(bytes, size: chunk) == whole, "chunks of \(chunk), seed \(seed) round \(round)")
            }
        }
        #expect(total > 40, "the generator should produce many real matches (seed \(seed))")
    }

    @Test("a token split at any byte between two chunks is found once, at the same place")
    func everySplit() throws {
        let token = try Issuer(key: Fixture.key(1)).issue(Fixture.claims())
        let text = Array("line one\nsay v4.public. then \(token) end\n".utf8)
        let whole = TokenScanner.matches(in: text)
        #expect(whole.count == 1 && whole.first?.line == 2)
        for split in 0...text.count {
            var scanner = TokenScanner()
            var found: [TokenScanner.Match] = []
            text[..<split].withUnsafeBytes { scanner.scan($0) { found.append($0) } }
            text[split...].withUnsafeBytes { scanner.scan($0) { found.append($0) } }
            scanner.finish { found.append($0) }
            #expect(found == whole, "split at \(split)")
        }
    }

    @Test("lengths are bounded: a payload of 86 to 8,099 characters (a token of at most 8 KiB) matches, one more does not")
    func lengthBounds() {
        let footer = TokenScanner.footerPrefix + String(repeating: "A", count: 59) + "ifQ"
        func candidate(_ payload: Int) -> [UInt8] { Array(("v4.public." + String(repeating: "B", count: payload) + "." + footer).utf8) }
        #expect(TokenScanner.matches(in: candidate(85)).isEmpty)
        #expect(TokenScanner.matches(in: candidate(86)).count == 1)
        #expect(TokenScanner.matches(in: candidate(8099)).first?.token.utf8.count == PASETOv4Public.defaultMaxTokenBytes)
        #expect(TokenScanner.matches(in: candidate(8100)).isEmpty)
        // The footer is exactly 82 characters and must not run on.
        #expect(TokenScanner.matches(in: candidate(200) + Array("x".utf8)).isEmpty)
        #expect(TokenScanner.matches(in: candidate(200) + Array("\"".utf8)).count == 1)
        #expect(TokenScanner.matches(in: Array(candidate(200).dropLast())).isEmpty)
        // Text before the header does not matter (`TOKEN=v4.public…`, `xv4.public…`).
        #expect(TokenScanner.matches(in: Array("TOKEN=xv4.public.".utf8) + candidate(200).dropFirst(10)).count == 1)
    }

    @Test("memory stays bounded: an endless payload-like run is never held beyond one token's worth")
    func boundedCarry() {
        var scanner = TokenScanner()
        var held = 0
        var found = 0
        let header = Array("v4.public.".utf8)
        let run = [UInt8](repeating: UInt8(ascii: "A"), count: 4096)
        header.withUnsafeBytes { scanner.scan($0) { _ in found += 1 } }
        for _ in 0..<256 { // 1 MiB of one run
            run.withUnsafeBytes { scanner.scan($0) { _ in found += 1 } }
            held = max(held, scanner.heldBytes)
        }
        scanner.finish { _ in found += 1 }
        #expect(found == 0)
        #expect(held <= PASETOv4Public.defaultMaxTokenBytes + 1, "held \(held) bytes")
        #expect(scanner.bytesScanned == header.count + 256 * 4096)
    }

    @Test("lines end at \\n (CRLF counts once), columns count bytes")
    func linesAndColumns() throws {
        let token = try Issuer(key: Fixture.key(1)).issue(Fixture.claims())
        let text = Array("a\r\nbé \(token)\n\n\t\(token)".utf8)
        let found = TokenScanner.matches(in: text)
        #expect(found.map(\.line) == [2, 4])
        #expect(found.map(\.column) == [5, 2], "é is two bytes")
    }

    // MARK: helpers

    func scanInChunks(_ bytes: [UInt8], size: Int) -> [TokenScanner.Match] {
        var scanner = TokenScanner()
        var found: [TokenScanner.Match] = []
        var at = 0
        while at < bytes.count {
            let end = min(bytes.count, at + size)
            bytes[at..<end].withUnsafeBytes { scanner.scan($0) { found.append($0) } }
            at = end
        }
        scanner.finish { found.append($0) }
        return found
    }

    /// Text mixing prose, real-shaped tokens and near misses of every kind.
    func generatedText(_ rng: inout SplitMix64) -> String {
        func b64(_ n: Int) -> String {
            String(decoding: (0..<n).map { _ in Self.alphabet[Int.random(in: 0..<64, using: &rng)] }, as: UTF8.self)
        }
        func footer() -> String { TokenScanner.footerPrefix + b64(59) + "ifQ" }
        func token() -> String {
            let length = Bool.random(using: &rng) ? Int.random(in: 86...700, using: &rng) : Int.random(in: 80...8110, using: &rng)
            return "v4.public." + b64(length) + "." + footer()
        }
        let separators = [" ", "\n", "", "\"", ".", "=", "A", "\r\n", "v", "v4", "-"]
        var text = ""
        for _ in 0..<Int.random(in: 5...40, using: &rng) {
            switch Int.random(in: 0..<13, using: &rng) {
            case 0, 1: text += token()
            case 2: let t = token(); text += String(t.prefix(Int.random(in: 0..<t.count, using: &rng))) // truncated
            case 3: text += "v4.public." + b64(Int.random(in: 0...200, using: &rng)) + "." + TokenScanner.footerPrefix + b64(59) + "ifR"
            case 4: text += "v4.public." + b64(120) + "." + "eyJraWQiOiJrNC5waWQv" + b64(59) + "ifQ"   // wrong footer prefix
            case 5: text += token() + b64(Int.random(in: 1...3, using: &rng))                           // runs on
            case 6: text += "v4.public.v4.public." + b64(100) + "." + footer()
            case 7: text += "v4.local." + b64(150) + "." + footer()
            case 8: text += "v4.public." + b64(120) + ".." + footer()
            case 9: text += "v4.public." + b64(120) + "." + footer() + "." + footer()
            case 10: text += "the quick brown fox, version v4 (public). vivid values\n"
            case 11: text += "v4.public" + b64(90) + "." + footer()
            default: text += b64(Int.random(in: 1...300, using: &rng))
            }
            text += separators[Int.random(in: 0..<separators.count, using: &rng)]
        }
        return text
    }
}
