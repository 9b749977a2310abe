// Fuzz target "scan": TokenScanner over untrusted text, fed whole and in chunks whose size the
// first input byte picks, and TokenInspector on every match.
// Invariants: the chunked scan finds exactly what the whole scan finds, which is exactly what a
// plain model of the documented regular expression finds (leftmost, non-overlapping); every match
// has the documented shape, at most 8 KiB, and the line and column its offset implies; the
// scanner never holds more than one token's worth of bytes between chunks; an inspection holds
// claims exactly when a key of the set signed the token, and says "live (valid)" exactly when a
// validator holding the same keys and list accepts it.

private let header = Array("v4.public.".utf8)
private let footerPrefix = Array("eyJraWQiOiJrNC5waWQu".utf8)
private let footerSuffix = Array("ifQ".utf8)

private func isBase64URL(_ b: UInt8) -> Bool {
    (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39) || b == 0x2D || b == 0x5F
}

/// The regular expression, position by position, without the scanner's buffering.
private func modelMatch(_ b: [UInt8], at i: Int) -> Int? {
    guard b.count - i >= header.count, Array(b[i..<(i + header.count)]) == header else { return nil }
    var j = i + header.count
    while j < b.count, isBase64URL(b[j]) { j += 1 }
    let payload = j - i - header.count
    guard payload >= 86, payload <= 8099, j < b.count, b[j] == UInt8(ascii: ".") else { return nil }
    let start = j + 1, end = start + 82
    guard end <= b.count, Array(b[start..<(start + 20)]) == footerPrefix, Array(b[(end - 3)..<end]) == footerSuffix,
          b[(start + 20)..<(end - 3)].allSatisfy(isBase64URL) else { return nil }
    if end < b.count, isBase64URL(b[end]) { return nil }
    return end
}

private func model(_ b: [UInt8]) -> [(offset: Int, end: Int)] {
    var out: [(Int, Int)] = []
    var i = 0
    while i < b.count {
        if let end = modelMatch(b, at: i) { out.append((i, end)); i = end } else { i += 1 }
    }
    return out
}

private let inspector = TokenInspector(keys: FuzzFixture.keys, revocations: FuzzFixture.list, leeway: FuzzFixture.leeway,
                                       clock: { FuzzFixture.now })

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let raw = input(data, size)
    guard let selector = raw.first else { return 0 }
    let text = Array(raw.dropFirst())
    // Tiny chunks re-read a cut candidate from its start each time (documented): only on short texts.
    let sizes = text.count <= 2048 ? [1, 2, 3, 7, 10, 64, 93, 4096, 8192, 8193] : [64, 93, 1000, 4096, 8192, 8193]
    let chunk = sizes[Int(selector) % sizes.count]

    let whole = TokenScanner.matches(in: text)
    var scanner = TokenScanner()
    var chunked: [TokenScanner.Match] = []
    var at = 0
    while at < text.count {
        let end = min(text.count, at + chunk)
        text[at..<end].withUnsafeBytes { scanner.scan($0) { chunked.append($0) } }
        invariant(scanner.heldBytes <= PASETOv4Public.defaultMaxTokenBytes + 1, "held \(scanner.heldBytes) bytes between chunks")
        at = end
    }
    scanner.finish { chunked.append($0) }
    invariant(chunked == whole, "chunks of \(chunk) found \(chunked.count) tokens, the whole text \(whole.count)")
    invariant(scanner.bytesScanned == text.count, "counted \(scanner.bytesScanned) of \(text.count) bytes")

    let expected = model(text)
    invariant(whole.map(\.offset) == expected.map(\.offset), "offsets \(whole.map(\.offset)) but the model says \(expected.map(\.offset))")
    for (match, modelled) in zip(whole, expected) {
        let bytes = Array(match.token.utf8)
        invariant(bytes == Array(text[modelled.offset..<modelled.end]), "match at \(match.offset) is not the text there")
        invariant(bytes.count <= PASETOv4Public.defaultMaxTokenBytes, "a match of \(bytes.count) bytes")
        let before = text[..<match.offset]
        invariant(match.line == before.filter { $0 == 0x0A }.count + 1, "line \(match.line) at offset \(match.offset)")
        invariant(match.column == match.offset - (before.lastIndex(of: 0x0A).map { $0 + 1 } ?? 0) + 1, "column \(match.column)")

        let inspection = inspector.inspect(match.token)
        invariant(inspection.fingerprint == TokenInspection.fingerprint(of: match.token), "fingerprint differs")
        switch inspection.status {
        case .forged, .foreign: invariant(inspection.claims == nil, "claims reported for a \(inspection.status) token")
        case .live, .expired, .revoked: invariant(inspection.claims != nil, "no claims for a \(inspection.status) token")
        }
        let accepted = (try? FuzzFixture.uncached.validate(match.token)) != nil
        let valid = inspection.status == .live && inspection.reason == "valid"
        invariant(accepted == valid, "validator accepted: \(accepted), inspection: \(inspection.status) \(inspection.reason)")
    }
    return 0
}
