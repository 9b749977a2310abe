// Fuzz target "time": Timestamp(rfc3339:) and TimeSpan(parsing:) on untrusted text, and the
// formatting of arbitrary instants.
// Invariants: an accepted time is the input byte for byte when formatted, re-parses to the same
// value, lies in years 0001–9999 and agrees with glibc's timegm/gmtime_r (the reference);
// every Int64 formats to a parseable string of the clamped instant; an accepted duration is
// exactly its digits times its unit, positive and at most 100 years.
#if canImport(Glibc)
import Glibc
#endif

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = input(data, size)
    let text = String(decoding: bytes, as: UTF8.self)

    let parsed = Timestamp(rfc3339: text)
    let reference = referenceParse(bytes)
    invariant(parsed?.seconds == reference, "\(text): PATKit \(String(describing: parsed?.seconds)), reference \(String(describing: reference))")
    if let parsed {
        invariant(sameBytes(parsed.rfc3339, text), "\(text) formats back as \(parsed.rfc3339)")
        invariant(parsed >= Timestamp.minimum && parsed <= Timestamp.maximum, "out of range")
    }

    // Any instant formats to a string that parses back to it, clamped to the range.
    if bytes.count >= 8 {
        let seconds = bytes.prefix(8).reversed().reduce(Int64(0)) { $0 << 8 | Int64($1) }
        let t = Timestamp(seconds: seconds)
        let clamped = min(max(seconds, Timestamp.minimum.seconds), Timestamp.maximum.seconds)
        invariant(Timestamp(rfc3339: t.rfc3339)?.seconds == clamped, "\(seconds) formats as \(t.rfc3339)")
        let delta = bytes.dropFirst(8).prefix(8).reversed().reduce(Int64(0)) { $0 << 8 | Int64($1) }
        let (sum, overflow) = seconds.addingReportingOverflow(delta)
        invariant(t.adding(seconds: delta).seconds == (overflow ? (delta > 0 ? .max : .min) : sum), "adding does not saturate")
    }

    // Durations.
    if let span = try? TimeSpan(parsing: text) {
        let units: [UInt8: Int64] = [0x73: 1, 0x6D: 60, 0x68: 3600, 0x64: 86_400, 0x77: 604_800, 0x79: 31_536_000]
        guard let unit = bytes.last.flatMap({ units[$0] }) else { fail("duration \(text) without a unit") }
        let digits = bytes.dropLast()
        invariant(!digits.isEmpty && digits.allSatisfy { $0 >= 0x30 && $0 <= 0x39 }, "duration \(text) is not ASCII digits")
        guard let count = Int64(String(decoding: digits, as: UTF8.self)) else { fail("duration count overflows") }
        invariant(span.seconds == count * unit, "\(text) is \(span.seconds) s")
        invariant(span.seconds > 0 && span.seconds <= 100 * 31_536_000, "\(text) out of range")
        invariant(sameBytes(span.text, text), "duration text")
    } else {
        // Refused: it is not ASCII digits and a unit, or zero, or longer than 100 years.
        let units: [UInt8: Int64] = [0x73: 1, 0x6D: 60, 0x68: 3600, 0x64: 86_400, 0x77: 604_800, 0x79: 31_536_000]
        if let unit = bytes.last.flatMap({ units[$0] }), bytes.count >= 2, bytes.dropLast().allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
           let count = Int64(String(decoding: bytes.dropLast(), as: UTF8.self)), count > 0 {
            let (total, overflow) = count.multipliedReportingOverflow(by: unit)
            invariant(overflow || total > 100 * 31_536_000, "\(text) refused")
        }
    }
    return 0
}

/// Strict `YYYY-MM-DDTHH:MM:SSZ` through glibc: fields checked by a timegm/gmtime_r round trip.
private func referenceParse(_ b: [UInt8]) -> Int64? {
    guard b.count == 20 else { return nil }
    let shape = Array("dddd-dd-ddTdd:dd:ddZ".utf8)
    for (c, s) in zip(b, shape) {
        if s == UInt8(ascii: "d") { guard c >= 0x30 && c <= 0x39 else { return nil } } else if c != s { return nil }
    }
    func num(_ r: Range<Int>) -> Int32 { r.reduce(Int32(0)) { $0 * 10 + Int32(b[$1] - 0x30) } }
    let year = num(0..<4), month = num(5..<7), day = num(8..<10), hour = num(11..<13), minute = num(14..<16), second = num(17..<19)
    guard year >= 1, hour <= 23, minute <= 59, second <= 59 else { return nil }
    var tm = Glibc.tm()
    tm.tm_year = year - 1900
    tm.tm_mon = month - 1
    tm.tm_mday = day
    tm.tm_hour = hour
    tm.tm_min = minute
    tm.tm_sec = second
    let t = timegm(&tm)
    var back = Glibc.tm()
    var tt = t
    guard gmtime_r(&tt, &back) != nil, back.tm_year == year - 1900, back.tm_mon == month - 1, back.tm_mday == day else { return nil }
    return Int64(t)
}
