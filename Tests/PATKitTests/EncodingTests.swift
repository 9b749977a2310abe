import Testing
@testable import PATKit

@Suite("Base64URL")
struct Base64URLTests {
    @Test("round-trips every length from 0 to 70 bytes")
    func roundTrip() {
        for length in 0...70 {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            let text = Base64URL.encode(bytes)
            #expect(!text.contains("=") && !text.contains("+") && !text.contains("/"))
            #expect(text.utf8.count == (length * 4 + 2) / 3)
            #expect(Base64URL.decode(text) == bytes, "length \(length)")
        }
    }

    @Test("known encodings", arguments: [
        ("", [UInt8]()), ("AA", [0]), ("AAA", [0, 0]), ("AAAA", [0, 0, 0]),
        ("-_8", [0xFB, 0xFF]), ("_w", [0xFF]), ("Zm9vYmFy", Array("foobar".utf8)),
    ])
    func known(_ text: String, _ bytes: [UInt8]) {
        #expect(Base64URL.decode(text) == bytes)
        #expect(Base64URL.encode(bytes) == text)
    }

    @Test("non-canonical or foreign input is rejected", arguments: [
        "AA==", "AAA=", "AA=",          // padding
        "+w", "/w", "ab+c", "ab/c",      // standard alphabet
        "AB", "AAB", "_x", "-_9",        // non-zero trailing bits
        "A", "AAAAA", "AAAAAAAAA",       // length % 4 == 1
        " AAA", "AAA ", "AA AA", "AAAA\n", "AA\tA", "AA\r\nAA", // whitespace
        "AA.A", "AA*A", "ÄÄ", "AA\0A",  // other characters
    ])
    func rejects(_ text: String) {
        #expect(Base64URL.decode(text) == nil)
    }

    @Test("non-ASCII bytes are never read as base64url characters")
    func nonASCII() {
        // Every byte outside the alphabet, alone and inside otherwise valid text.
        let alphabet = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
        for byte in UInt8.min...UInt8.max where !alphabet.contains(byte) {
            for text in [[byte, byte, byte, byte], [0x41, 0x41, 0x41, byte], [byte, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41]] {
                let decoded = text.withUnsafeBufferPointer { Sodium.base64URLDecode($0) }
                #expect(decoded == nil, "byte \(byte)")
                // The fast decoder used for token payloads and footers agrees.
                #expect(text.withUnsafeBufferPointer { PublicBase64URL.decode($0) } == nil, "byte \(byte)")
            }
        }
        // Multi-byte characters standing in for "__" / "____".
        #expect(Base64URL.decode("é") == nil)
        #expect(Base64URL.decode("ÄÄ") == nil)
        #expect(Base64URL.decode("AAé") == nil)
    }

    @Test("a token cannot be re-spelled with non-ASCII characters")
    func tokenMalleability() throws {
        let key = try Fixture.key(1)
        // 0xFF 0xFF 0xFF encodes as "____", which non-ASCII bytes must not imitate.
        let token = PASETOv4Public.sign(message: [0xFF, 0xFF, 0xFF] + Array("hello".utf8), with: key)
        #expect(token.hasPrefix("v4.public.____"))
        #expect(try PASETOv4Public.verify(token, key: key.publicKey).message.count == 8)
        for stand_in in ["ÄÄ", "éé", "\u{10348}", "水Ä"] where stand_in.utf8.count == 4 {
            let respelled = "v4.public." + stand_in + token.dropFirst("v4.public.____".count)
            #expect(validationCode { try PASETOv4Public.verify(respelled, key: key.publicKey) } == .malformed, "\(stand_in)")
        }
        // The same for PASERK strings: a key of 0xFF bytes is "k4.public.__…_w".
        let ones = try PublicKey(rawBytes: [UInt8](repeating: 0xFF, count: 32))
        #expect(ones.paserk.hasPrefix("k4.public.____"))
        let respelledKey = "k4.public.é" + ones.paserk.dropFirst("k4.public.__".count)
        #expect(respelledKey.utf8.count == ones.paserk.utf8.count)
        #expect(patError { try PublicKey(paserk: respelledKey) }?.isInvalidKey == true)
        let respelledID = String(ones.id.rawValue.map { $0 == "_" ? "ÿ" : $0 }) // only if the id has a '_'
        if respelledID != ones.id.rawValue {
            #expect(patError { try KeyID(respelledID) }?.isInvalidKey == true)
        }
    }
}

@Suite("JSON parser")
struct JSONParserTests {
    func parse(_ text: String, limits: JSONLimits = JSONLimits()) throws(JSONError) -> JSONValue {
        try JSONParser.parse(text, limits: limits)
    }

    func parseError(_ text: String, limits: JSONLimits = JSONLimits()) -> JSONError? {
        do { _ = try parse(text, limits: limits); return nil } catch { return error }
    }

    @Test("parses values and keeps member order")
    func parsesValues() throws {
        let value = try parse(#" { "b" : [1, -2.5e3, true, false, null], "a" : "x", "c": {} } "#)
        guard case .object(let o) = value else { Issue.record("not an object"); return }
        #expect(o.keys == ["b", "a", "c"])
        #expect(o["b"] == .array([.number("1"), .number("-2.5e3"), .bool(true), .bool(false), .null]))
        #expect(o["a"] == .string("x"))
        #expect(o["c"] == .object(JSONObject()))
        #expect(o["zz"] == nil)
    }

    @Test("duplicate keys are rejected", arguments: [
        #"{"a":1,"a":2}"#,
        #"{"a":1,"b":2,"a":1}"#,
        #"{"x":{"k":1,"k":1}}"#,                     // nested object
        #"[{"ok":1},{"k":true,"k":false}]"#,         // object inside an array
        #"{"a":1,"\u0061":2}"#,                      // equal after unescaping
    ])
    func duplicateKeys(_ text: String) {
        let error = parseError(text)
        #expect(error?.reason.contains("duplicate key") == true, "\(text)")
    }

    @Test("duplicate keys are rejected in large objects too (hashed path)")
    func duplicateKeysLargeObject() {
        let members = (0..<20).map { "\"k\($0)\":\($0)" }
        #expect(parseError("{" + members.joined(separator: ",") + "}") == nil)
        // Duplicate of an early key, found after the object passed 16 members.
        let early = members + ["\"k3\":99"]
        #expect(parseError("{" + early.joined(separator: ",") + "}")?.reason.contains("duplicate key") == true)
        // Duplicate of a key added after the switch to hashing.
        let late = members + ["\"k18\":99"]
        #expect(parseError("{" + late.joined(separator: ",") + "}")?.reason.contains("duplicate key") == true)
        // Duplicate exactly at the switch (the 17th member repeats the 16th).
        let atSwitch = Array(members.prefix(16)) + ["\"k15\":0"]
        #expect(parseError("{" + atSwitch.joined(separator: ",") + "}")?.reason.contains("duplicate key") == true)
    }

    @Test("depth limit")
    func depthLimit() {
        func nested(_ n: Int) -> String { String(repeating: "[", count: n) + String(repeating: "]", count: n) }
        #expect(parseError(nested(16)) == nil)
        #expect(parseError(nested(17))?.reason.contains("nesting") == true)
        // Deep input is cut off at the limit, without exhausting the stack.
        #expect(parseError(nested(100_000), limits: JSONLimits(maxBytes: 1 << 20))?.reason.contains("nesting") == true)
        let objects = String(repeating: #"{"a":"#, count: 3) + "1" + String(repeating: "}", count: 3)
        #expect(parseError(objects, limits: JSONLimits(maxDepth: 3)) == nil)
        #expect(parseError(objects, limits: JSONLimits(maxDepth: 2))?.reason.contains("nesting") == true)
    }

    @Test("size, member and string limits")
    func otherLimits() {
        #expect(parseError("[1,2,3]", limits: JSONLimits(maxBytes: 6))?.reason.contains("exceeds") == true)
        #expect(parseError("[1,2,3]", limits: JSONLimits(maxBytes: 7)) == nil)
        #expect(parseError("[1,2,3]", limits: JSONLimits(maxMembers: 2)) != nil)
        #expect(parseError(#"{"a":1,"b":2,"c":3}"#, limits: JSONLimits(maxMembers: 2)) != nil)
        #expect(parseError(#""abcd""#, limits: JSONLimits(maxStringBytes: 3)) != nil)
        #expect(parseError(#""ab\nd""#, limits: JSONLimits(maxStringBytes: 3)) != nil)
        #expect(parseError(#""abc""#, limits: JSONLimits(maxStringBytes: 3)) == nil)
        #expect(parseError(String(repeating: "1", count: 65)) != nil) // over-long number
    }

    @Test("trailing garbage and truncation are rejected", arguments: [
        "{} x", "{}{}", "1 2", "[1]]", "\"a\"\"", "nul", "tru", "{", "[1,", "{\"a\"", "{\"a\":", "\"abc",
        "[1,]", "{\"a\":1,}", "{,}", "", "   ", "{'a':1}", "{a:1}", "NaN", "Infinity", "[1;2]", "\u{FEFF}{}",
    ])
    func garbage(_ text: String) {
        #expect(parseError(text) != nil, "\(text.debugDescription)")
    }

    @Test("surrounding JSON whitespace is allowed")
    func whitespace() throws {
        #expect(try parse(" \t\r\n{} \n") == .object(JSONObject()))
    }

    @Test("invalid UTF-8 is rejected", arguments: [
        [0x22, 0xC3, 0x28, 0x22],                   // bad continuation
        [0x22, 0xC0, 0x80, 0x22],                   // overlong NUL
        [0x22, 0xED, 0xA0, 0x80, 0x22],             // UTF-8-encoded surrogate
        [0x22, 0xFF, 0x22],                         // never valid
        [0x22, 0x5C, 0x6E, 0xE2, 0x82, 0x22],       // truncated sequence after an escape (slow path)
        [0x7B, 0x22, 0xF8, 0x22, 0x3A, 0x31, 0x7D], // in a key
    ] as [[UInt8]])
    func invalidUTF8(_ bytes: [UInt8]) {
        #expect(throws: JSONError.self) { try JSONParser.parse(bytes) }
    }

    @Test("valid multi-byte UTF-8 passes through unchanged")
    func validUTF8() throws {
        #expect(try JSONParser.parse(Array("\"zß水🀄\"".utf8)) == .string("zß水🀄"))
    }

    @Test("escapes and surrogate pairs decode")
    func escapes() throws {
        #expect(try parse(#""\"\\\/\b\f\n\r\t""#) == .string("\"\\/\u{08}\u{0C}\n\r\t"))
        #expect(try parse(#""\u00e9\u00C9\u6c34""#) == .string("éÉ水"))
        #expect(try parse(#""\ud83d\ude00""#) == .string("😀"))
        #expect(try parse(#""a\u0000b""#) == .string("a\u{0}b"))
        #expect(try parse(#""x\uD834\uDD1Ey""#) == .string("x𝄞y"))
    }

    @Test("bad escapes are rejected", arguments: [
        #""\ud83d""#, #""\ud83dx""#, #""\ud83d\u0041""#, #""\ude00""#, #""\ud83d\ud83d""#, // surrogates
        #""\x41""#, #""\u12""#, #""\u12G4""#, #""\'""#, #""\"#, "\"a\nb\"", "\"\u{01}\"",   // escapes, controls
    ])
    func badEscapes(_ text: String) {
        #expect(parseError(text) != nil, "\(text.debugDescription)")
    }

    @Test("number grammar", arguments: [
        ("0", true), ("-0", true), ("10", true), ("0.5", true), ("-1.25e-3", true), ("1E+2", true), ("9007199254740993", true),
        ("01", false), ("-01", false), ("00", false), ("1.", false), (".5", false), ("-", false), ("+1", false),
        ("1e", false), ("1e+", false), ("0x10", false), ("1.2.3", false), ("--1", false),
    ])
    func numbers(_ text: String, _ valid: Bool) {
        #expect((parseError(text) == nil) == valid, "\(text)")
        if valid { #expect((try? parse(text)) == .number(text)) }
    }

    @Test("integer accessor only for integer literals", arguments: [
        ("42", Int64(42)), ("-7", -7), ("0", 0), ("9223372036854775807", Int64.max),
        ("1.0", nil), ("1e3", nil), ("-0.0", nil), ("9223372036854775808", nil), ("1E0", nil),
    ] as [(String, Int64?)])
    func integerAccessor(_ text: String, _ expected: Int64?) throws {
        #expect(try parse(text).integer == expected)
    }

    @Test("integer accessor is nil for non-numbers")
    func integerOfNonNumbers() throws {
        #expect(try parse(#""1""#).integer == nil)
        #expect(try parse("true").integer == nil)
        #expect(try parse("[1]").integer == nil)
    }

    @Test("writer output parses back to the same value")
    func writerRoundTrip() throws {
        let text = #"{"s":"q\"b\\n\n\t\r\u0001é😀","n":[-1.5e3,0,true,null],"o":{"x":{}}}"#
        let value = try parse(text)
        let written = JSONWriter.encode(value)
        #expect(try JSONParser.parse(written) == value)
        #expect(String(decoding: written, as: UTF8.self).contains(#"\u0001"#))
    }
}

@Suite("PASETO v4.public primitives")
struct PASETOPrimitiveTests {
    @Test("PAE matches the PASETO specification examples")
    func pae() {
        let zero = [UInt8](repeating: 0, count: 7)
        #expect(PASETOv4Public.pae([]) == [0] + zero)
        #expect(PASETOv4Public.pae([[]]) == [1] + zero + [0] + zero)
        #expect(PASETOv4Public.pae([Array("test".utf8)]) == [1] + zero + [4] + zero + Array("test".utf8))
        let long = [UInt8](repeating: 7, count: 300)
        #expect(PASETOv4Public.pae([long, []]) == [2] + zero + [44, 1, 0, 0, 0, 0, 0, 0] + long + [0] + zero)
    }

    @Test("sign and parse: message, signature and footer travel as specified")
    func signAndParse() throws {
        let key = try Fixture.key(4)
        let message = Array(#"{"a":1}"#.utf8)
        let bare = PASETOv4Public.sign(message: message, with: key)
        #expect(bare.split(separator: ".").count == 3) // no footer part when the footer is empty
        let parts = try PASETOv4Public.parse(bare)
        #expect(parts.message == message)
        #expect(parts.signature.count == 64)
        #expect(parts.footer.isEmpty)

        let footer = Array(#"{"kid":"x"}"#.utf8)
        let withFooter = PASETOv4Public.sign(message: message, footer: footer, implicitAssertion: [1, 2], with: key)
        #expect(withFooter.hasSuffix("." + Base64URL.encode(footer)))
        let verified = try PASETOv4Public.verify(withFooter, key: key.publicKey, implicitAssertion: [1, 2])
        #expect(verified.message == message && verified.footer == footer)
        // Ed25519 is deterministic: the same input gives the same token.
        #expect(PASETOv4Public.sign(message: message, footer: footer, implicitAssertion: [1, 2], with: key) == withFooter)
        // Moving the footer into the implicit assertion (or back) breaks the signature.
        let moved = PASETOv4Public.sign(message: message, implicitAssertion: footer, with: key)
        #expect(validationCode { try PASETOv4Public.verify(moved + "." + Base64URL.encode(footer), key: key.publicKey) } == .badSignature)
        // An empty message is signable (the payload is then the bare signature).
        let empty = PASETOv4Public.sign(message: [], with: key)
        #expect(try PASETOv4Public.verify(empty, key: key.publicKey).message == [])
        #expect(validationCode { try PASETOv4Public.parse(withFooter, maxBytes: withFooter.utf8.count - 1) } == .tooLarge)
    }
}
