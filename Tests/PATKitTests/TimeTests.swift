import Testing
@testable import PATKit

@Suite("Timestamp and TimeSpan")
struct TimeTests {
    @Test("strict RFC 3339 parses to Unix seconds", arguments: [
        ("2026-01-31T12:00:00Z", Int64(1_769_860_800)),
        ("1970-01-01T00:00:00Z", 0),
        ("1969-12-31T23:59:59Z", -1),
        ("2000-02-29T00:00:00Z", 951_782_400),
        ("0001-01-01T00:00:00Z", -62_135_596_800),
        ("9999-12-31T23:59:59Z", 253_402_300_799),
    ] as [(String, Int64)])
    func parses(_ text: String, _ seconds: Int64) throws {
        let t = try #require(Timestamp(rfc3339: text))
        #expect(t.seconds == seconds)
        #expect(t.rfc3339 == text)
        #expect(t.description == text)
    }

    @Test("the fixture's now is 2026-01-31T12:00:00Z")
    func fixtureNow() {
        #expect(Timestamp(rfc3339: "2026-01-31T12:00:00Z") == Fixture.now)
    }

    @Test("anything but YYYY-MM-DDTHH:MM:SSZ is rejected", arguments: [
        "2026-01-31t12:00:00Z", "2026-01-31T12:00:00z", "2026-01-31 12:00:00Z",   // case, separator
        "2026-01-31T12:00:00+00:00", "2026-01-31T12:00:00-01:00", "2026-01-31T12:00:00", // offsets / none
        "2026-01-31T12:00:00.5Z", "2026-01-31T12:00:00.000Z",                       // fractions
        "2026-02-30T00:00:00Z", "2026-02-29T00:00:00Z", "2026-04-31T00:00:00Z",     // impossible days
        "2026-01-31T24:00:00Z", "2026-01-31T12:60:00Z", "2026-01-31T12:00:60Z",     // 24:00, 60 min/sec
        "2026-00-10T00:00:00Z", "2026-13-10T00:00:00Z", "2026-01-00T00:00:00Z",     // month/day 0, month 13
        "0000-01-01T00:00:00Z", "+2026-01-31T12:00:00Z", "2026-1-31T12:00:00Z",     // year 0, sign, short
        " 2026-01-31T12:00:00Z", "2026-01-31T12:00:00Z ", "2026-01-31", "",        // padding, date only, empty
        "2026-01-3aT12:00:00Z", "2026-01-31T1 :00:00Z", "２０２６-01-31T12:00:00Z",     // non-digits
        "1900-02-29T00:00:00Z", "2100-02-29T00:00:00Z",                             // century non-leap years
    ])
    func rejects(_ text: String) {
        #expect(Timestamp(rfc3339: text) == nil, "\(text.debugDescription)")
    }

    @Test("leap years", arguments: [
        (2024, true), (2000, true), (2400, true), (1600, true), (4, true),
        (2026, false), (1900, false), (2100, false), (2023, false),
    ])
    func leapYears(_ year: Int, _ leap: Bool) throws {
        let y = String(repeating: "0", count: 4 - String(year).count) + String(year)
        #expect((Timestamp(rfc3339: "\(y)-02-29T00:00:00Z") != nil) == leap)
        let feb28 = try #require(Timestamp(rfc3339: "\(y)-02-28T00:00:00Z"))
        let mar1 = try #require(Timestamp(rfc3339: "\(y)-03-01T00:00:00Z"))
        #expect(mar1.seconds - feb28.seconds == (leap ? 2 : 1) * 86_400)
    }

    @Test("rfc3339 round-trips across the whole range")
    func roundTripRange() throws {
        // A stride that lands on many different times of day, months and years (including before 1970).
        var s = Timestamp.minimum.seconds
        var checked = 0
        while s <= Timestamp.maximum.seconds {
            let t = Timestamp(seconds: s)
            let parsed = try #require(Timestamp(rfc3339: t.rfc3339), "\(s)")
            #expect(parsed == t)
            s += 7_777_777_777 / 17 // ≈ 14.5 years plus odd seconds
            checked += 1
        }
        #expect(checked > 600)
        for s: Int64 in [-86_401, -86_400, -86_399, -1, 0, 1, 86_399, 86_400, 1_709_164_800 /* 2024-02-29 */] {
            #expect(Timestamp(rfc3339: Timestamp(seconds: s).rfc3339)?.seconds == s)
        }
    }

    @Test("times beyond years 0001–9999 are clamped when formatted; adding saturates")
    func clampingAndSaturation() {
        #expect(Timestamp(seconds: .max).rfc3339 == "9999-12-31T23:59:59Z")
        #expect(Timestamp(seconds: .min).rfc3339 == "0001-01-01T00:00:00Z")
        #expect(Timestamp(seconds: .max - 1).adding(seconds: 10).seconds == .max)
        #expect(Timestamp(seconds: .min + 1).adding(seconds: -10).seconds == .min)
        #expect(Timestamp(seconds: 5).adding(seconds: -7).seconds == -2)
        #expect(Timestamp(seconds: 1) < Timestamp(seconds: 2))
    }

    @Test("now() is a plausible current time")
    func now() {
        let t = Timestamp.now()
        #expect(t > Timestamp(rfc3339: "2024-01-01T00:00:00Z") ?? Timestamp.maximum)
        #expect(t < Timestamp.maximum)
    }

    // MARK: TimeSpan

    @Test("durations parse", arguments: [
        ("30d", Int64(2_592_000)), ("12h", 43_200), ("45s", 45), ("90m", 5400), ("2w", 1_209_600),
        ("1y", 31_536_000), ("100y", 3_153_600_000), ("1s", 1),
    ] as [(String, Int64)])
    func spans(_ text: String, _ seconds: Int64) throws {
        let span = try TimeSpan(parsing: text)
        #expect(span.seconds == seconds)
        #expect(span.description == text)
    }

    @Test("bad durations are rejected", arguments: [
        "0d", "d", "-1d", "1.5h", "10x", "", "10", "+1d", "1 d", " 1d", "1d ", "1D", "1dd", "٣d",
        "101y", "36501d", "99999999999999999999s", "9223372036854775807y",
    ])
    func badSpans(_ text: String) {
        #expect(patError { try TimeSpan(parsing: text) }?.isInvalidArgument == true, "\(text.debugDescription)")
    }
}
