#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A whole-second instant on the UTC timeline (Unix seconds): the precision PATKit's
/// claims carry. Converts to and from the strict RFC 3339 form `YYYY-MM-DDTHH:MM:SSZ`.
public struct Timestamp: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var seconds: Int64

    public init(seconds: Int64) { self.seconds = seconds }

    /// The current time from the system's real-time clock.
    public static func now() -> Timestamp {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Timestamp(seconds: Int64(ts.tv_sec))
    }

    public static func < (a: Timestamp, b: Timestamp) -> Bool { a.seconds < b.seconds }

    public func adding(seconds delta: Int64) -> Timestamp {
        let (sum, overflow) = seconds.addingReportingOverflow(delta)
        return Timestamp(seconds: overflow ? (delta > 0 ? .max : .min) : sum)
    }

    /// Earliest and latest instants the RFC 3339 form here can express (years 0001–9999).
    public static let minimum = Timestamp(seconds: -62_135_596_800)
    public static let maximum = Timestamp(seconds: 253_402_300_799)

    /// Parses exactly `YYYY-MM-DDTHH:MM:SSZ` (uppercase T and Z, no fraction, no offset).
    public init?(rfc3339 text: String) {
        var text = text
        guard let value = text.withUTF8({ Timestamp.parse($0) }) else { return nil }
        self = value
    }

    static func parse(_ b: UnsafeBufferPointer<UInt8>) -> Timestamp? {
        guard b.count == 20, b[4] == 0x2D, b[7] == 0x2D, b[10] == UInt8(ascii: "T"),
              b[13] == 0x3A, b[16] == 0x3A, b[19] == UInt8(ascii: "Z") else { return nil }
        func num(_ from: Int, _ count: Int) -> Int64? {
            var v: Int64 = 0
            for i in from..<(from + count) {
                let c = b[i]
                guard c >= 0x30, c <= 0x39 else { return nil }
                v = v * 10 + Int64(c - 0x30)
            }
            return v
        }
        guard let y = num(0, 4), let mo = num(5, 2), let d = num(8, 2),
              let h = num(11, 2), let mi = num(14, 2), let s = num(17, 2) else { return nil }
        guard y >= 1, (1...12).contains(mo), d >= 1, d <= daysInMonth(year: y, month: mo),
              h <= 23, mi <= 59, s <= 59 else { return nil }
        return Timestamp(seconds: daysFromCivil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s)
    }

    public var rfc3339: String {
        let clamped = min(max(seconds, Timestamp.minimum.seconds), Timestamp.maximum.seconds)
        var days = clamped / 86_400
        var rem = clamped % 86_400
        if rem < 0 { rem += 86_400; days -= 1 }
        let (y, m, d) = civilFromDays(days)
        func pad(_ v: Int64, _ width: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))T\(pad(rem / 3600, 2)):\(pad(rem % 3600 / 60, 2)):\(pad(rem % 60, 2))Z"
    }

    public var description: String { rfc3339 }

    private static func isLeap(_ y: Int64) -> Bool { (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 }

    private static func daysInMonth(year: Int64, month: Int64) -> Int64 {
        switch month {
        case 2: return isLeap(year) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    // Howard Hinnant's days_from_civil / civil_from_days.
    private static func daysFromCivil(_ y0: Int64, _ m: Int64, _ d: Int64) -> Int64 {
        let y = m <= 2 ? y0 - 1 : y0
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    private func civilFromDays(_ z0: Int64) -> (Int64, Int64, Int64) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (m <= 2 ? y + 1 : y, m, d)
    }
}

/// A length of time written as a number and a unit: `45s`, `90m`, `12h`, `30d`, `2w`, `1y` (365 days).
public struct TimeSpan: Sendable, Hashable, CustomStringConvertible {
    public let seconds: Int64
    public let text: String

    public init(seconds: Int64) {
        self.seconds = seconds
        self.text = "\(seconds)s"
    }

    public init(parsing text: String) throws(PATKitError) {
        let units: [Character: Int64] = ["s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800, "y": 31_536_000]
        guard let unitChar = text.last, let unit = units[unitChar],
              let count = Int64(text.dropLast()), text.dropLast().allSatisfy(\.isWholeNumber), count > 0 else {
            throw .invalidArgument("invalid duration \"\(text)\": write a positive whole number and a unit, e.g. 45s, 90m, 12h, 30d, 2w, 1y")
        }
        let (total, overflow) = count.multipliedReportingOverflow(by: unit)
        guard !overflow, total <= 100 * 31_536_000 else {
            throw .invalidArgument("duration \"\(text)\" is longer than 100 years")
        }
        self.seconds = total
        self.text = text
    }

    public var description: String { text }
}
