// Fuzz target "paserk": PublicKey(paserk:), SecretKey.fromPASERK and KeyID(_:) on untrusted text.
// Invariants: an accepted key re-serialises to the (trimmed) input byte for byte and its id
// is consistent; a secret key signs what its public key verifies; errors never echo the body
// of a k4.secret; libsodium's constant-time base64url decoder and PATKit's fast public one agree.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = input(data, size)
    let text = String(decoding: bytes, as: UTF8.self)
    let trimmed = text.trimmingASCIIWhitespace()

    // The two base64url decoders agree on every input.
    let slow = bytes.withUnsafeBufferPointer { Sodium.base64URLDecode($0) }
    let fast = bytes.withUnsafeBufferPointer { PublicBase64URL.decode($0) }
    invariant(slow == fast, "base64url decoders disagree: libsodium \(String(describing: slow)), fast \(String(describing: fast))")
    if let slow { invariant(Base64URL.encode(slow).utf8.elementsEqual(bytes), "accepted non-canonical base64url") }

    do {
        let key = try PublicKey(paserk: text)
        invariant(sameBytes(key.paserk, trimmed), "k4.public \(trimmed) re-serialises as \(key.paserk)")
        invariant(key.bytes.count == 32, "public key of \(key.bytes.count) bytes")
        invariant((try? PublicKey(rawBytes: key.bytes)) == key, "raw bytes give another key")
        invariant((try? KeyID(key.id.rawValue)) == key.id, "a key's id is not a valid KeyID")
    } catch {
        invariant(error.isInvalidKey, "PublicKey refused with \(error)")
    }

    do {
        let key = try SecretKey.fromPASERK(text)
        invariant(sameBytes(key.exportPASERK(), trimmed), "k4.secret does not re-serialise to its input")
        let token = PASETOv4Public.sign(message: bytes, with: key)
        invariant((try? PASETOv4Public.verify(token, key: key.publicKey)) != nil, "a secret key's signature does not verify")
    } catch {
        invariant(error.isInvalidKey, "SecretKey refused with \(error)")
        // Never echo secret material: the body after "k4.secret." must not appear in the error.
        if trimmed.hasPrefix("k4.secret."), trimmed.utf8.count >= 26 {
            let body = String(trimmed.dropFirst(10).prefix(16))
            invariant(!error.description.contains(body), "error echoes secret material: \(error)")
        }
    }

    do {
        let id = try KeyID(text)
        invariant(sameBytes(id.rawValue, text), "KeyID changes its text")
        invariant(text.utf8.count == 51 && text.hasPrefix("k4.pid."), "accepted id \(text)")
        invariant(Base64URL.decode(String(text.dropFirst(7)))?.count == 33, "k4.pid body is not 33 bytes")
    } catch {
        invariant(error.isInvalidKey, "KeyID refused with \(error)")
    }
    return 0
}

extension PATKitError {
    var isInvalidKey: Bool { if case .invalidKey = self { true } else { false } }
}
