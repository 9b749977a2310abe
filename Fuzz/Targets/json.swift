// Fuzz target "json": JSONParser.parse on untrusted bytes.
// Invariants: JSONWriter's output of a parsed value parses back to an equal value and is a
// fixed point (byte for byte); tighter limits only ever refuse more, never parse differently.

private let unbounded = JSONLimits(maxBytes: .max, maxDepth: 64, maxMembers: .max, maxStringBytes: .max)
private let footerLimits = JSONLimits(maxBytes: 512, maxDepth: 2, maxMembers: 8, maxStringBytes: 256)
private let claimsLimits = JSONLimits(maxBytes: 8 * 1024, maxDepth: 8, maxMembers: 128, maxStringBytes: 4096)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = input(data, size)
    let value: JSONValue
    do { value = try JSONParser.parse(bytes) } catch {
        invariant(error.offset >= 0 && error.offset <= bytes.count, "error offset \(error.offset) outside the input")
        for limits in [footerLimits, claimsLimits] {
            invariant((try? JSONParser.parse(bytes, limits: limits)) == nil, "a tighter limit accepts what the default refuses")
        }
        return 0
    }
    for limits in [footerLimits, claimsLimits] {
        if let tight = try? JSONParser.parse(bytes, limits: limits) {
            invariant(JSONWriter.encode(tight) == JSONWriter.encode(value), "limits change the parsed value")
        }
    }
    let encoded = JSONWriter.encode(value)
    let again: JSONValue
    do { again = try JSONParser.parse(encoded, limits: unbounded) } catch {
        fail("writer output does not parse: \(error): \(String(decoding: encoded, as: UTF8.self))")
    }
    invariant(again == value, "round-trip changes the value")
    invariant(JSONWriter.encode(again) == encoded, "writer output is not a fixed point")
    checkNumbers(value)
    return 0
}

/// `integer` is exactly the Int64 of an integer literal.
private func checkNumbers(_ value: JSONValue) {
    switch value {
    case .number(let text):
        if let i = value.integer {
            invariant(Int64(text) == i || (text == "-0" && i == 0), "integer \(i) from \(text)")
        } else {
            invariant(!text.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D }) || Int64(text) == nil,
                      "integer is nil for \(text)")
        }
    case .array(let items): items.forEach(checkNumbers)
    case .object(let o): o.members.forEach { checkNumbers($0.value) }
    default: break
    }
}
