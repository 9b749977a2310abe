// Fuzz target "token": the whole of Validator.validate with a fixed key set (one active,
// one retired key) and a small signed revocation list, at a fixed clock.
//
// The first byte picks how the input becomes a token:
//   '{'  the input is claims JSON, signed with the active key and a canonical footer, so that
//        claims parsing, the time rules and the revocation lookups are reached;
//   'F'  the rest is a footer; fixed valid claims are signed with it by the active key;
//   'R'  the rest is claims JSON signed by the retired key, and by a stranger under the
//        active key's kid: always refused;
//   'U'  the rest is up to 8 edits (u16 position, u8 choice) that re-spell characters of a
//        valid token — which is validated (and so cached) first — with look-alike or canonically
//        equivalent Unicode (KELVIN SIGN for K, OHM SIGN, combining marks, fullwidth letters…):
//        only the exact bytes of a verified token may ever be accepted;
//   else the input is the token text itself.
// Invariants: cached and uncached validators agree (also on a cache hit); an accepted token
// is canonical, re-signs to itself, names the signer byte for byte and its claims round-trip;
// the outcome of signed claims matches an independent model of the rules.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = input(data, size)
    switch bytes.first {
    case UInt8(ascii: "{"): fuzzSignedClaims(bytes)
    case UInt8(ascii: "F"): fuzzSignedFooter(Array(bytes.dropFirst()))
    case UInt8(ascii: "R"): fuzzForeignSigners(Array(bytes.dropFirst()))
    case UInt8(ascii: "U"): fuzzRespelled(Array(bytes.dropFirst()))
    default: fuzzRawToken(String(decoding: bytes, as: UTF8.self))
    }
    return 0
}

private let maxTokenBytes = PASETOv4Public.defaultMaxTokenBytes

private func fuzzRawToken(_ token: String) {
    let outcome = validateEverywhere(token)
    if token.utf8.count > maxTokenBytes { invariant(outcome == .rejected(.tooLarge), "oversized token: \(outcome)") }
    if case .accepted(let pat) = outcome { checkAccepted(token, pat) }
}

private func fuzzSignedClaims(_ json: [UInt8]) {
    let token = PASETOv4Public.sign(message: json, footer: FuzzFixture.footer(FuzzFixture.signer), with: FuzzFixture.signer)
    let outcome = validateEverywhere(token)
    guard token.utf8.count <= maxTokenBytes else {
        invariant(outcome == .rejected(.tooLarge), "oversized token: \(outcome)")
        return
    }
    let claims: PATClaims
    do { claims = try PATClaims(json: json) } catch {
        invariant(outcome == .rejected(.malformed), "claims refused by the parser (\(error)) but validation says \(outcome)")
        return
    }
    checkClaimsRoundTrip(claims)
    switch outcome {
    case .accepted(let pat):
        invariant(expectedOutcome(of: claims) == nil, "accepted; the model says \(expectedOutcome(of: claims)!)")
        checkAccepted(token, pat)
    case .rejected(let code):
        invariant(expectedOutcome(of: claims) == code, "rejected as \(code); the model says \(String(describing: expectedOutcome(of: claims)))")
    }
}

private func fuzzSignedFooter(_ footer: [UInt8]) {
    let token = PASETOv4Public.sign(message: FuzzFixture.validClaims, footer: footer, with: FuzzFixture.signer)
    let outcome = validateEverywhere(token)
    guard token.utf8.count <= maxTokenBytes else {
        invariant(outcome == .rejected(.tooLarge), "oversized token: \(outcome)")
        return
    }
    let kid: ArraySlice<UInt8>
    do { kid = try Footer.keyID(from: footer) } catch {
        invariant(outcome == .rejected(error.code), "footer refused as \(error.code) but validation says \(outcome)")
        return
    }
    if kid.elementsEqual(FuzzFixture.signer.id.rawValue.utf8) {
        guard case .accepted(let pat) = outcome else { fail("the signer's own footer is refused: \(outcome)") }
        checkAccepted(token, pat)
    } else {
        // Any other kid — the retired key's, a stranger's, or the signer's id spelled differently —
        // names no active key.
        invariant(outcome == .rejected(.unknownKey), "kid \(text(kid)) is not the signer's id, yet validation says \(outcome)")
    }
}

private func fuzzForeignSigners(_ json: [UInt8]) {
    let retired = PASETOv4Public.sign(message: json, footer: FuzzFixture.footer(FuzzFixture.retired), with: FuzzFixture.retired)
    let outcome = validateEverywhere(retired)
    let oversized = retired.utf8.count > maxTokenBytes
    invariant(outcome == .rejected(oversized ? .tooLarge : .unknownKey), "a retired key's token: \(outcome)")

    let forged = PASETOv4Public.sign(message: json, footer: FuzzFixture.footer(FuzzFixture.signer), with: FuzzFixture.stranger)
    let forgedOutcome = validateEverywhere(forged)
    invariant(forgedOutcome == .rejected(oversized ? .tooLarge : .badSignature), "a forged token: \(forgedOutcome)")
}

/// What a character of a token might be re-spelled as: canonically equivalent characters
/// (U+212A KELVIN SIGN is K under Unicode equivalence, which Swift's String == and hashing
/// use), look-alikes, the character with a combining mark, its fullwidth form, and a few
/// spaces and controls.
private func respellings(of c: Character) -> [String] {
    var out: [String] = []
    switch c {
    case "K": out += ["\u{212A}", "\u{039A}", "\u{041A}"]
    case "A": out += ["\u{0391}", "\u{0410}", "\u{212B}"]
    case "i": out += ["\u{0131}", "\u{0456}"]
    case "-": out += ["\u{2010}", "\u{2212}"]
    case ".": out += ["\u{2024}", "\u{FF0E}"]
    case "_": out += ["\u{FF3F}"]
    default: break
    }
    out.append(String(c) + "\u{0301}")
    if let scalar = c.unicodeScalars.first, c.isASCII, scalar.value > 0x20, let wide = Unicode.Scalar(scalar.value + 0xFEE0) {
        out.append(String(wide))
    }
    out += ["\u{00A0}", "\u{200B}", "\u{FEFF}", "\u{0000}", "\u{FFFD}"]
    return out
}

private func fuzzRespelled(_ edits: [UInt8]) {
    let original = FuzzFixture.validToken
    // The original is valid and now cached.
    guard case .accepted = validateEverywhere(original) else { fail("the fixture token is refused") }
    var chars = Array(original)
    var i = 0
    while i + 3 <= edits.count, i < 8 * 3 {
        let position = (Int(edits[i]) << 8 | Int(edits[i + 1])) % chars.count
        let options = respellings(of: chars[position])
        chars[position] = Character(options[Int(edits[i + 2]) % options.count])
        i += 3
    }
    let respelled = String(chars)
    let outcome = validateEverywhere(respelled)
    if !sameBytes(respelled, original) {
        invariant(outcome.code != nil, "a re-spelled token (\(respelled)) is accepted as \(original)")
    }
}
