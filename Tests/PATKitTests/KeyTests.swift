import Testing
@testable import PATKit

@Suite("Keys, key sets and rotation")
struct KeyTests {
    @Test("generated keys sign tokens their public key verifies")
    func generate() throws {
        let a = try SecretKey.generate()
        let b = try SecretKey.generate()
        #expect(a.publicKey != b.publicKey)
        #expect(a.id != b.id)
        let token = PASETOv4Public.sign(message: Array("m".utf8), with: a)
        #expect(try PASETOv4Public.verify(token, key: a.publicKey).message == Array("m".utf8))
        #expect(validationCode { try PASETOv4Public.verify(token, key: b.publicKey) } == .badSignature)
        // PASERK round trip of a random key.
        let restored = try SecretKey.fromPASERK(a.exportPASERK())
        #expect(restored.publicKey == a.publicKey)
        #expect(try PublicKey(paserk: a.publicKey.paserk) == a.publicKey)
    }

    @Test("a secret key never prints its material")
    func secretDescription() throws {
        let key = try Fixture.key(5)
        let text = "\(key) \(String(describing: key)) \(String(reflecting: key))"
        let material = String(key.exportPASERK().dropFirst("k4.secret.".count))
        #expect(!text.contains(material))
        #expect(!text.contains(material.prefix(20)))
        #expect("\(key)".contains(key.id.rawValue))
    }

    @Test("PASERK parsing refuses other types and versions without echoing the key", arguments: [
        "k4.secret.", "k3.public.", "k4.local.", "k4.pid.", "v4.public.", "",
    ])
    func paserkTypes(_ prefix: String) throws {
        let key = try Fixture.key(6)
        let body = Base64URL.encode(key.publicKey.bytes)
        let error = patError { try PublicKey(paserk: prefix + body) }
        #expect(error?.isInvalidKey == true)
        #expect(error?.message.contains(body) == false)
        let secretError = patError { try SecretKey.fromPASERK(prefix.replacingSecret() + String(key.exportPASERK().dropFirst(10))) }
        #expect(secretError?.isInvalidKey == true)
        #expect(secretError?.message.contains(String(key.exportPASERK().dropFirst(10))) == false)
    }

    @Test("PASERK strings: whitespace around is trimmed, inside or wrong length refused")
    func paserkForms() throws {
        let key = try Fixture.key(7)
        #expect(try PublicKey(paserk: " \(key.publicKey.paserk)\n") == key.publicKey)
        #expect(try SecretKey.fromPASERK("\(key.exportPASERK())\n").publicKey == key.publicKey)
        #expect(patError { try PublicKey(paserk: key.publicKey.paserk + "A") }?.isInvalidKey == true)
        #expect(patError { try PublicKey(paserk: String(key.publicKey.paserk.dropLast())) }?.isInvalidKey == true)
        let p = key.publicKey.paserk
        let spaced = String(p.prefix(20)) + " " + String(p.dropFirst(21))
        #expect(patError { try PublicKey(paserk: spaced) }?.isInvalidKey == true)
        // A k4.secret whose public half does not match its seed.
        let other = try Fixture.key(8)
        var raw = try #require(Base64URL.decode(String(key.exportPASERK().dropFirst(10))))
        raw.replaceSubrange(32..<64, with: other.publicKey.bytes)
        #expect(patError { try SecretKey.fromPASERK("k4.secret." + Base64URL.encode(raw)) }?.isInvalidKey == true)
        #expect(patError { try SecretKey.fromSeed([UInt8](repeating: 1, count: 31)) }?.isInvalidKey == true)
    }

    @Test("key ids: only well-formed k4.pid strings")
    func keyIDs() throws {
        let key = try Fixture.key(1)
        #expect(try KeyID(key.id.rawValue) == key.id)
        for bad in ["", "k4.pid.", "k3.pid." + key.id.rawValue.dropFirst(7), key.id.rawValue + "A",
                    String(key.id.rawValue.dropLast()), "k4.lid." + key.id.rawValue.dropFirst(7), key.publicKey.paserk] {
            #expect(patError { try KeyID(String(bad)) }?.isInvalidKey == true, "\(bad)")
        }
    }

    // MARK: rotation

    @Test("rotation: both keys verify until the old one is retired")
    func rotation() throws {
        let old = try Fixture.key(1)
        let new = try Fixture.key(2)
        var keys = KeySet(keys: [old.publicKey])
        keys.add(new.publicKey, created: Fixture.now)
        #expect(keys.newest == new.publicKey)
        #expect(keys.activeKeys == [old.publicKey, new.publicKey])

        let validator = Validator(keys: keys, policy: { var p = Validator.Policy(); p.requireRevocationList = false; return p }(),
                                  clock: { Fixture.now })
        let oldToken = try Issuer(key: old).issue(try Fixture.claims())
        let newToken = try Issuer(key: new).issue(try Fixture.claims())
        #expect(try validator.validate(oldToken).keyID == old.id)
        #expect(try validator.validate(newToken).keyID == new.id)

        var rotated = validator.keys
        try rotated.retire(old.id)
        #expect(rotated.verificationKey(for: old.id) == nil)
        #expect(rotated.entries.map(\.status) == [.retired, .active])
        validator.replaceKeys(rotated)
        #expect(validator.keys == rotated)
        #expect(validationCode { try validator.validate(oldToken) } == .unknownKey)
        #expect(validationCode { try validator.validate(newToken) } == nil)

        // Removing the key altogether has the same effect.
        validator.replaceKeys(KeySet(keys: [new.publicKey]))
        #expect(validationCode { try validator.validate(oldToken) } == .unknownKey)
        // And bringing it back restores it.
        validator.replaceKeys(KeySet(keys: [old.publicKey, new.publicKey]))
        #expect(validationCode { try validator.validate(oldToken) } == nil)
    }

    @Test("newest is the last active key; add ignores duplicates; retire needs a known key")
    func keySetBasics() throws {
        let a = try Fixture.key(1), b = try Fixture.key(2), c = try Fixture.key(3)
        var keys = KeySet()
        #expect(keys.isEmpty && keys.newest == nil)
        keys.add(a.publicKey)
        keys.add(b.publicKey)
        keys.add(a.publicKey)
        #expect(keys.entries.count == 2)
        #expect(keys.newest == b.publicKey)
        try keys.retire(b.id)
        #expect(keys.newest == a.publicKey)
        #expect(keys.verificationKey(for: b.id) == nil)
        #expect(keys.verificationKey(for: a.id) == a.publicKey)
        #expect(patError { try keys.retire(c.id) }?.isInvalidArgument == true)
        // Duplicates passed to init are dropped.
        #expect(KeySet(keys: [a.publicKey, a.publicKey, c.publicKey]).entries.count == 2)
    }

    @Test("key set JSON round-trip")
    func keySetJSON() throws {
        let a = try Fixture.key(1), b = try Fixture.key(2)
        var keys = KeySet([KeySet.Entry(key: a.publicKey, created: Fixture.now.adding(seconds: -Fixture.day))])
        keys.add(b.publicKey, created: Fixture.now)
        try keys.retire(a.id)
        let bytes = keys.encoded()
        #expect(bytes.last == 0x0A)
        let parsed = try KeySet(json: bytes)
        #expect(parsed == keys)
        #expect(parsed.entries.map(\.created) == [Fixture.now.adding(seconds: -Fixture.day), Fixture.now])
        #expect(parsed.newest == b.publicKey)
        #expect(parsed.verificationKey(for: a.id) == nil)
        // Status and created are optional.
        let minimal = #"{"keys":[{"kid":"\#(a.id.rawValue)","key":"\#(a.publicKey.paserk)"}]}"#
        let m = try KeySet(json: Array(minimal.utf8))
        #expect(m.entries.first?.status == .active)
        #expect(m.entries.first?.created == nil)
        #expect(try KeySet(json: Array(#"{"keys":[]}"#.utf8)).isEmpty)
    }

    @Test("key set documents with a mismatched kid or other defects are refused")
    func keySetRejects() throws {
        let a = try Fixture.key(1), b = try Fixture.key(2)
        func entry(_ kid: String, _ key: String, extra: String = "") -> String {
            #"{"kid":"\#(kid)","key":"\#(key)"\#(extra)}"#
        }
        let ka = a.publicKey.paserk, ia = a.id.rawValue
        let documents = [
            #"{"keys":[\#(entry(b.id.rawValue, ka))]}"#,                         // kid of another key
            #"{"keys":[\#(entry(ia, ka)),\#(entry(ia, ka))]}"#,                  // listed twice
            #"{"keys":[\#(entry(ia, ka, extra: #","status":"revoked""#))]}"#,    // unknown status
            #"{"keys":[\#(entry(ia, ka, extra: #","status":1"#))]}"#,
            #"{"keys":[\#(entry(ia, ka, extra: #","created":"2026-01-31T12:00:00+00:00""#))]}"#,
            #"{"keys":[{"kid":"\#(ia)"}]}"#,                                     // no key
            #"{"keys":[{"kid":"\#(ia)","key":"\#(ka)","kid":"\#(ia)"}]}"#,       // duplicate member
            #"{"keys":{}}"#, #"{}"#, "[]", "", #"{"keys":[]} x"#,
        ]
        for document in documents {
            let error = patError { try KeySet(json: Array(document.utf8)) }
            #expect(error?.isInvalidDocument == true, "\(document)")
        }
        // A key that is not a k4.public key at all.
        #expect(patError { try KeySet(json: Array(#"{"keys":[\#(entry(ia, "k4.public.short"))]}"#.utf8)) } != nil)
        #expect(patError { try KeySet(json: [UInt8](repeating: 0x20, count: KeySet.maxDocumentBytes + 1)) }?.isInvalidDocument == true)
    }
}

private extension String {
    /// Maps a public-key PASERK prefix to the one a secret-key parser must refuse.
    func replacingSecret() -> String { self == "k4.secret." ? "k4.public." : self }
}
