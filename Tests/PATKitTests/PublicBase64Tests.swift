import Testing
@testable import PATKit

/// The fast decoder used for public token bytes must agree exactly with libsodium's strict
/// URL-safe, unpadded decoder: same accepted inputs, same bytes, same rejections.
struct PublicBase64Tests {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
    static let hostile = Array("=+/ .\n\0é".utf8)

    func both(_ text: [UInt8]) -> ([UInt8]?, [UInt8]?) {
        text.withUnsafeBufferPointer { (PublicBase64URL.decode($0), Sodium.base64URLDecode($0)) }
    }

    @Test func agreesWithLibsodiumOnEncodedRandomBytes() {
        var generator = SystemRandomNumberGenerator()
        for length in 0..<200 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let text = Array(Base64URL.encode(bytes).utf8)
            let (fast, sodium) = both(text)
            #expect(fast == bytes)
            #expect(sodium == bytes)
        }
    }

    @Test func agreesWithLibsodiumOnArbitraryStrings() {
        var generator = SystemRandomNumberGenerator()
        var accepted = 0, rejected = 0
        for _ in 0..<20_000 {
            let length = Int.random(in: 0...12, using: &generator)
            let text: [UInt8] = (0..<length).map { _ in
                Int.random(in: 0..<10, using: &generator) == 0
                    ? Self.hostile.randomElement(using: &generator) ?? 0x3D
                    : Self.alphabet.randomElement(using: &generator) ?? 0x41
            }
            let (fast, sodium) = both(text)
            #expect(fast == sodium, "disagree on \(String(decoding: text, as: UTF8.self))")
            if fast == nil { rejected += 1 } else { accepted += 1 }
        }
        // Both outcomes were exercised.
        #expect(accepted > 1000 && rejected > 1000)
    }

    @Test(arguments: ["AB", "AAB", "AA=", "AA==", "A", "AAAAA", "AA AA", "AA+A", "AA/A", "AAA\n"])
    func rejectsNonCanonicalInput(_ text: String) {
        let (fast, sodium) = both(Array(text.utf8))
        #expect(fast == nil)
        #expect(sodium == nil)
    }
}
