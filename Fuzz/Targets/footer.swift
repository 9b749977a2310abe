// Fuzz target "footer": Footer.keyID(from:) on untrusted footer bytes.
// Invariants: an accepted footer is 1–512 bytes, names a k4.pid id, carries no key material
// either as written or once its JSON strings are unescaped; the canonical fast path and the
// full JSON parse agree; a footer PATKit writes is always accepted, on the fast path.

private let limits = JSONLimits(maxBytes: Footer.maxBytes, maxDepth: 2, maxMembers: 8, maxStringBytes: 256)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let footer = input(data, size)
    let fast = Footer.canonicalKeyID(footer)
    let kid: ArraySlice<UInt8>
    do { kid = try Footer.keyID(from: footer) } catch {
        invariant(fast == nil, "a canonical footer was refused: \(error)")
        invariant(!error.reason.isEmpty, "an error without a reason")
        return 0
    }
    invariant(!footer.isEmpty && footer.count <= Footer.maxBytes, "accepted a footer of \(footer.count) bytes")
    invariant(kid.starts(with: KeyID.prefixBytes), "accepted kid \(text(kid))")
    invariant(!Footer.containsKeyMaterial(footer), "accepted a footer with key material")
    guard let value = try? JSONParser.parse(footer, limits: limits) else {
        fail("accepted a footer that is not JSON within the footer limits")
    }
    // Unescaped, the footer carries no key material either (e.g. "k4\u002esecret.…").
    invariant(!Footer.containsKeyMaterial(JSONWriter.encode(value)),
              "accepted a footer whose decoded strings carry key material: \(text(footer))")
    guard case .object(let o) = value, case .string(let parsedKid)? = o["kid"] else { fail("accepted footer has no string kid") }
    invariant(parsedKid.utf8.elementsEqual(kid), "keyID returned \(text(kid)), the JSON says \(parsedKid)")
    if let fast { invariant(fast.elementsEqual(kid), "fast path \(text(fast)) disagrees with the full parse \(text(kid))") }
    if let id = try? KeyID(text(kid)) {
        let written = Footer.encode(id)
        invariant(Footer.canonicalKeyID(written)?.elementsEqual(kid) == true, "PATKit's own footer misses the fast path")
    }
    return 0
}
