import PATTestSupport
import Testing
@testable import PATKit

/// The official PASETO v4 / PASERK k4 vectors, read at run time from `Vectors.directory`.
@Suite("Official vectors")
struct VectorTests {
    /// In CI (CI=true) a missing vectors folder fails here; elsewhere this and the vector tests are skipped.
    @Test("vector files are present and complete")
    func vectorFilesAreComplete() async throws {
        try await Prerequisite.vectors.require()
        // Guards against a folder that exists but yields no cases (every parameterised test would pass vacuously).
        #expect(Vectors.v4Success.map(\.name) == ["4-S-1", "4-S-2", "4-S-3"])
        #expect(Vectors.v4Fail.map(\.name) == ["4-F-1", "4-F-2", "4-F-3", "4-F-4", "4-F-5"])
        #expect(Vectors.k4Public.count == 4)
        #expect(Vectors.k4Secret.count == 5)
        #expect(Vectors.k4PID.count == 5)
    }

    // MARK: v4.public

    @Test("4-S: verify returns the payload and footer", .enabled(if: Vectors.available, Vectors.skipMessage),
          arguments: Vectors.v4Success)
    func v4PublicVerifies(_ v: VectorCase) throws {
        let key = try PublicKey(rawBytes: try #require(hexBytes(v["public-key"])))
        let token = try #require(v["token"])
        let payload = try #require(v["payload"])
        let footer = try #require(v["footer"])
        let assertion = Array(try #require(v["implicit-assertion"]).utf8)

        let result = try PASETOv4Public.verify(token, key: key, implicitAssertion: assertion)
        #expect(result.message == Array(payload.utf8))
        #expect(result.footer == Array(footer.utf8))
    }

    @Test("4-S: signing with the seed reproduces the token", .enabled(if: Vectors.available, Vectors.skipMessage),
          arguments: Vectors.v4Success)
    func v4PublicSignReproducesToken(_ v: VectorCase) throws {
        let seed = try #require(hexBytes(v["secret-key-seed"]))
        let key = try SecretKey.fromSeed(seed)
        #expect(key.publicKey.bytes == hexBytes(v["public-key"]))
        // The 64-byte secret key of the vector is seed ‖ public key and is accepted as such.
        let raw = try #require(hexBytes(v["secret-key"]))
        let fromRaw = try raw.withUnsafeBytes { buffer in try SecretKey.fromRawBytes(buffer) }
        #expect(fromRaw.publicKey == key.publicKey)

        let token = PASETOv4Public.sign(message: Array(try #require(v["payload"]).utf8),
                                        footer: Array(try #require(v["footer"]).utf8),
                                        implicitAssertion: Array(try #require(v["implicit-assertion"]).utf8),
                                        with: key)
        #expect(token == v["token"])
    }

    @Test("4-S: a different implicit assertion breaks the signature", .enabled(if: Vectors.available, Vectors.skipMessage),
          arguments: Vectors.v4Success)
    func v4PublicWrongAssertion(_ v: VectorCase) throws {
        let key = try PublicKey(rawBytes: try #require(hexBytes(v["public-key"])))
        let token = try #require(v["token"])
        let assertion = Array(try #require(v["implicit-assertion"]).utf8)
        let wrong = assertion.isEmpty ? Array("x".utf8) : []
        #expect(validationCode { try PASETOv4Public.verify(token, key: key, implicitAssertion: wrong) } == .badSignature)
    }

    @Test("4-F: expect-fail tokens are refused", .enabled(if: Vectors.available, Vectors.skipMessage),
          arguments: Vectors.v4Fail)
    func v4ExpectFail(_ v: VectorCase) throws {
        // Use the vector's public key; when it only has a 32-byte symmetric "key", use those bytes as a public key.
        let keyBytes = try #require(hexBytes(v["public-key"] ?? v["key"]))
        let key = try PublicKey(rawBytes: keyBytes)
        let token = try #require(v["token"])
        let assertion = Array((v["implicit-assertion"] ?? "").utf8)

        let code = validationCode { try PASETOv4Public.verify(token, key: key, implicitAssertion: assertion) }
        // v4.local / v3.local tokens are not even parsed; the v4.public one fails its signature.
        let expected: PATValidationError.Code = token.hasPrefix("v4.public.") ? .badSignature : .malformed
        #expect(code == expected)

        // A validator trusting that key refuses them too.
        let validator = Fixture.validator(keys: [key])
        #expect(validationCode { try validator.validate(token) } != nil)
    }

    // MARK: PASERK k4.public

    @Test("k4.public vectors", .enabled(if: Vectors.available, Vectors.skipMessage), arguments: Vectors.k4Public)
    func k4Public(_ v: VectorCase) throws {
        let raw = try #require(hexBytes(v["key"]))
        if v.expectFail {
            #expect(patError { try PublicKey(rawBytes: raw) }?.isInvalidKey == true)
            // Nor does any PASERK built from those bytes parse.
            #expect(patError { try PublicKey(paserk: "k4.public." + Base64URL.encode(raw)) }?.isInvalidKey == true)
            #expect(patError { try PublicKey(paserk: "k3.public." + Base64URL.encode(raw)) }?.isInvalidKey == true)
        } else {
            let expected = try #require(v["paserk"])
            let key = try PublicKey(rawBytes: raw)
            #expect(key.paserk == expected)
            let parsed = try PublicKey(paserk: expected)
            #expect(parsed == key)
            #expect(parsed.bytes == raw)
            #expect(parsed.paserk == expected)
        }
    }

    // MARK: PASERK k4.secret

    @Test("k4.secret vectors", .enabled(if: Vectors.available, Vectors.skipMessage), arguments: Vectors.k4Secret)
    func k4Secret(_ v: VectorCase) throws {
        let raw = try #require(hexBytes(v["key"]))
        if v.expectFail {
            let error = patError { try raw.withUnsafeBytes { buffer in try SecretKey.fromRawBytes(buffer) } }
            #expect(error?.isInvalidKey == true)
            #expect(patError { try SecretKey.fromPASERK("k4.secret." + Base64URL.encode(raw)) }?.isInvalidKey == true)
        } else {
            let paserk = try #require(v["paserk"])
            let publicHex = try #require(v["public-key"])
            let key = try SecretKey.fromPASERK(paserk)
            #expect(key.exportPASERK() == paserk)
            #expect(hexString(key.publicKey.bytes) == publicHex)

            let fromSeed = try SecretKey.fromSeed(try #require(hexBytes(v["secret-key-seed"])))
            #expect(fromSeed.exportPASERK() == paserk)
            #expect(fromSeed.publicKey == key.publicKey)

            let fromRaw = try raw.withUnsafeBytes { buffer in try SecretKey.fromRawBytes(buffer) }
            #expect(fromRaw.exportPASERK() == paserk)
            // The key never prints its material.
            #expect(!"\(key)".contains(paserk.dropFirst(10)))
        }
    }

    // MARK: PASERK k4.pid

    @Test("k4.pid vectors", .enabled(if: Vectors.available, Vectors.skipMessage), arguments: Vectors.k4PID)
    func k4PID(_ v: VectorCase) throws {
        let raw = try #require(hexBytes(v["key"]))
        if v.expectFail {
            #expect(patError { try PublicKey(rawBytes: raw) }?.isInvalidKey == true)
        } else {
            let expected = try #require(v["paserk"])
            let key = try PublicKey(rawBytes: raw)
            #expect(key.id.rawValue == expected)
            #expect(try KeyID(expected) == key.id)
        }
    }
}
