internal import CSodium

/// Thin, safe wrappers over the libsodium calls PATKit uses. Every cryptographic
/// operation in PATKit goes through this file.
enum Sodium {
    /// `sodium_init` is idempotent and thread-safe; a global `let` runs it once.
    static let ready: Bool = sodium_init() >= 0

    static func requireReady() throws(PATKitError) {
        guard ready else { throw PATKitError.crypto("libsodium failed to initialise (sodium_init)") }
    }

    // MARK: base64url (RFC 4648 §5, no padding), strict

    static func base64URLEncode(_ bytes: some ContiguousBytes) -> String {
        bytes.withUnsafeBytes { raw in
            let cap = sodium_base64_encoded_len(raw.count, Int32(sodium_base64_VARIANT_URLSAFE_NO_PADDING))
            return String(unsafeUninitializedCapacity: cap) { out in
                out.withMemoryRebound(to: CChar.self) { chars -> Int in
                    guard let base = chars.baseAddress else { return 0 }
                    return Sodium.withBytePointer(raw) { input in
                        sodium_bin2base64(base, cap, input, raw.count, Int32(sodium_base64_VARIANT_URLSAFE_NO_PADDING))
                    } == nil ? 0 : cap - 1 // drop the NUL terminator
                }
            }
        }
    }

    /// Decodes strict base64url: no padding, no whitespace, no other alphabet,
    /// and non-zero trailing bits rejected (libsodium checks them). Returns nil on any defect.
    static func base64URLDecode(_ text: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        if text.isEmpty { return [] }
        if text.count % 4 == 1 { return nil }
        // libsodium (1.0.18) reads bytes >= 0x80 as sign-extended chars and decodes them as '_'
        // instead of rejecting them. Refuse any such byte first, without branching on the
        // (possibly secret) characters, so this decoder stays constant-time.
        var high: UInt8 = 0
        for b in text { high |= b }
        guard high & 0x80 == 0 else { return nil }
        let maxLen = text.count * 3 / 4 + 1
        var binLen = 0
        var endPtr: UnsafePointer<CChar>? = nil
        var ok = false
        let out = [UInt8](unsafeUninitializedCapacity: maxLen) { buf, count in
            guard let outBase = buf.baseAddress else { count = 0; return }
            let rc = text.withMemoryRebound(to: CChar.self) { chars -> Int32 in
                guard let inBase = chars.baseAddress else { return -1 }
                return sodium_base642bin(outBase, maxLen, inBase, chars.count, nil, &binLen, &endPtr,
                                         Int32(sodium_base64_VARIANT_URLSAFE_NO_PADDING))
            }
            ok = rc == 0
            count = ok ? binLen : 0
        }
        // The whole input must have been consumed.
        guard ok, let endPtr, let base = text.baseAddress,
              UnsafeRawPointer(base).distance(to: UnsafeRawPointer(endPtr)) == text.count else { return nil }
        return out
    }

    static func base64URLDecode(_ text: some StringProtocol) -> [UInt8]? {
        var s = String(text)
        return s.withUTF8 { base64URLDecode($0) }
    }

    // MARK: hashing, randomness, memory

    /// BLAKE2b with an output of `length` bytes (16...64).
    static func blake2b(_ input: UnsafeRawBufferPointer, length: Int) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: length) { out, count in
            guard let base = out.baseAddress else { count = 0; return }
            _ = withBytePointer(input) { crypto_generichash(base, length, $0, UInt64(input.count), nil, 0) }
            count = length
        }
    }

    static func blake2b(_ input: [UInt8], length: Int) -> [UInt8] {
        input.withUnsafeBytes { blake2b($0, length: length) }
    }

    static func randomBytes(_ count: Int) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: count) { out, n in
            guard let base = out.baseAddress else { n = 0; return }
            randombytes_buf(base, count)
            n = count
        }
    }

    /// Constant-time equality for secrets (`sodium_memcmp`).
    static func constantTimeEqual(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        guard a.count == b.count else { return false }
        if a.isEmpty { return true }
        return sodium_memcmp(a.baseAddress, b.baseAddress, a.count) == 0
    }

    static func zero(_ buffer: UnsafeMutableRawBufferPointer) {
        if let base = buffer.baseAddress { sodium_memzero(base, buffer.count) }
    }

    // MARK: Ed25519

    static func verifyDetached(signature: UnsafeRawBufferPointer, message: UnsafeRawBufferPointer,
                               publicKey: UnsafeRawBufferPointer) -> Bool {
        guard signature.count == Int(crypto_sign_BYTES),
              publicKey.count == Int(crypto_sign_PUBLICKEYBYTES) else { return false }
        return withBytePointer(signature) { sig in
            withBytePointer(message) { msg in
                withBytePointer(publicKey) { pk in crypto_sign_verify_detached(sig, msg, UInt64(message.count), pk) == 0 }
            }
        }
    }

    /// Ed25519 detached signature of `message` with a 64-byte secret key.
    static func signDetached(_ message: UnsafeRawBufferPointer, secretKey: UnsafePointer<UInt8>) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: Int(crypto_sign_BYTES)) { out, count in
            guard let base = out.baseAddress else { count = 0; return }
            _ = withBytePointer(message) { crypto_sign_detached(base, nil, $0, UInt64(message.count), secretKey) }
            count = Int(crypto_sign_BYTES)
        }
    }

    /// Calls `body` with a non-null byte pointer to `buffer` (a valid dummy when it is empty,
    /// as libsodium's non-null parameters require).
    @inline(__always)
    static func withBytePointer<R>(_ buffer: UnsafeRawBufferPointer, _ body: (UnsafePointer<UInt8>) -> R) -> R {
        if let base = buffer.baseAddress { return body(base.assumingMemoryBound(to: UInt8.self)) }
        var zero: UInt8 = 0
        return withUnsafePointer(to: &zero) { body($0) }
    }
}

/// Anything that exposes contiguous bytes (arrays, slices, buffers).
package protocol ContiguousBytes {
    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R
}
extension Array: ContiguousBytes where Element == UInt8 {}
extension ArraySlice: ContiguousBytes where Element == UInt8 {}
extension UnsafeRawBufferPointer: ContiguousBytes {
    package func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R { try body(self) }
}

/// Public helpers for the encoding PASETO and PASERK use.
package enum Base64URL {
    /// Unpadded base64url.
    package static func encode(_ bytes: [UInt8]) -> String { Sodium.base64URLEncode(bytes) }
    /// Strict unpadded base64url; nil when the text is not canonical.
    package static func decode(_ text: String) -> [UInt8]? { Sodium.base64URLDecode(text) }
}

/// Wiping of secret bytes that left guarded memory (e.g. a key file just read or written).
package enum SecureMemory {
    /// Overwrites the bytes with zeros in a way the compiler cannot elide (`sodium_memzero`).
    package static func wipe(_ bytes: inout [UInt8]) {
        bytes.withUnsafeMutableBytes { Sodium.zero($0) }
    }
}

/// A fast, strict base64url decoder for public data (token payloads and footers), where
/// constant-time decoding buys nothing and costs a tenth of a signature check. Same rules as
/// libsodium's URL-safe, unpadded variant: alphabet A–Z a–z 0–9 - _, no padding, no
/// whitespace, length ≢ 1 (mod 4), zero trailing bits. Secret keys keep using libsodium's
/// constant-time decoder. Tests check both agree.
enum PublicBase64URL {
    private static let table: [UInt8] = {
        var t = [UInt8](repeating: 0xFF, count: 256)
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
        for (i, c) in alphabet.enumerated() { t[Int(c)] = UInt8(i) }
        return t
    }()

    static func decode(_ text: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        let n = text.count
        let remainder = n % 4
        if remainder == 1 { return nil }
        let outLength = n / 4 * 3 + (remainder == 0 ? 0 : remainder - 1)
        return table.withUnsafeBufferPointer { t -> [UInt8]? in
            var ok = true
            let out = [UInt8](unsafeUninitializedCapacity: outLength) { out, count in
                var i = 0, o = 0
                while i + 4 <= n {
                    let a = t[Int(text[i])], b = t[Int(text[i + 1])], c = t[Int(text[i + 2])], d = t[Int(text[i + 3])]
                    if (a | b | c | d) & 0xC0 != 0 { ok = false; break }
                    out[o] = a << 2 | b >> 4
                    out[o + 1] = b << 4 | c >> 2
                    out[o + 2] = c << 6 | d
                    i += 4
                    o += 3
                }
                if ok, remainder >= 2 {
                    let a = t[Int(text[i])], b = t[Int(text[i + 1])]
                    if (a | b) & 0xC0 != 0 { ok = false }
                    else if remainder == 2 {
                        if b & 0x0F != 0 { ok = false } else { out[o] = a << 2 | b >> 4; o += 1 }
                    } else {
                        let c = t[Int(text[i + 2])]
                        if c & 0xC0 != 0 || c & 0x03 != 0 { ok = false } else {
                            out[o] = a << 2 | b >> 4
                            out[o + 1] = b << 4 | c >> 2
                            o += 2
                        }
                    }
                }
                count = ok ? o : 0
            }
            return ok ? out : nil
        }
    }
}

/// Hashes and MACs for the layers above the core (content tags, webhook signatures), so
/// that every use of libsodium stays in PATKit.
package enum Digest {
    /// BLAKE2b with a `length`-byte output (16...64).
    package static func blake2b(_ bytes: some ContiguousBytes, length: Int = 32) -> [UInt8] {
        bytes.withUnsafeBytes { Sodium.blake2b($0, length: max(16, min(64, length))) }
    }

    /// HMAC-SHA-256 of `message` under `key` (libsodium `crypto_auth_hmacsha256`).
    package static func hmacSHA256(key: [UInt8], message: some ContiguousBytes) -> [UInt8] {
        _ = Sodium.ready
        var state = crypto_auth_hmacsha256_state()
        var out = [UInt8](repeating: 0, count: Int(crypto_auth_hmacsha256_BYTES))
        key.withUnsafeBytes { k in
            Sodium.withBytePointer(k) { _ = crypto_auth_hmacsha256_init(&state, $0, k.count) }
        }
        message.withUnsafeBytes { m in
            Sodium.withBytePointer(m) { _ = crypto_auth_hmacsha256_update(&state, $0, UInt64(m.count)) }
        }
        out.withUnsafeMutableBufferPointer { o in
            if let base = o.baseAddress { _ = crypto_auth_hmacsha256_final(&state, base) }
        }
        withUnsafeMutableBytes(of: &state) { Sodium.zero($0) }
        return out
    }

    /// Constant-time comparison of two secrets or MACs (`sodium_memcmp`).
    package static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        a.withUnsafeBytes { x in b.withUnsafeBytes { y in Sodium.constantTimeEqual(x, y) } }
    }

    /// `count` random bytes from libsodium (`randombytes_buf`).
    package static func randomBytes(_ count: Int) -> [UInt8] { Sodium.randomBytes(count) }
}
