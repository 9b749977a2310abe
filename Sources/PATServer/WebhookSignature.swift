import PATKit

/// The `X-PAT-Signature` of a webhook delivery, Stripe-style:
///
///     X-PAT-Signature: t=1764582000,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd
///
/// `t` is when the attempt was made (Unix seconds, decimal); `v1` is the lowercase hex
/// HMAC-SHA-256, under the endpoint's secret, of the ASCII `t`, a `.`, and the exact body bytes.
/// Signing the time with the body lets a receiver refuse a replay: it recomputes `v1`, compares
/// in constant time, and rejects a `t` more than a few minutes from its own clock
/// (`defaultTolerance`, 5 minutes). Every attempt — retries included — is signed afresh with its
/// own `t`; `X-PAT-Delivery` stays the same, for de-duplication. Receivers should accept any of
/// several `v1` values (a future secret rotation may send two) and ignore unknown keys.
public enum WebhookSignature {
    /// How far from the receiver's clock `t` may be, by default.
    public static let defaultTolerance: Int64 = 300

    /// The header value for `body` signed with `secret` at `timestamp` (Unix seconds).
    public static func header(for body: [UInt8], secret: [UInt8], timestamp: Int64) -> String {
        "t=\(timestamp),v1=\(hex(mac(body, secret: secret, timestamp: timestamp)))"
    }

    /// What a receiver does: true when `header` carries a `t` within `tolerance` seconds of `now`
    /// and a `v1` that is the HMAC of `t.body` under `secret` (compared in constant time).
    public static func verify(_ header: String, body: [UInt8], secret: [UInt8], now: Int64,
                              tolerance: Int64 = defaultTolerance) -> Bool {
        var timestamp: Int64? = nil
        var signatures: [String] = []
        for item in header.split(separator: ",", omittingEmptySubsequences: false) {
            let pair = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard pair.count == 2 else { return false }
            let value = String(pair[1]).trimmingSpacesAndTabs()
            switch String(pair[0]).trimmingSpacesAndTabs() {
            case "t":
                guard timestamp == nil, value.count <= 19, value.allSatisfy({ $0.isASCII && $0.isNumber }),
                      let parsed = Int64(value) else { return false }
                timestamp = parsed
            case "v1":
                signatures.append(value)
            default:
                continue
            }
        }
        guard let timestamp, abs(now - timestamp) <= tolerance else { return false }
        let expected = Array(hex(mac(body, secret: secret, timestamp: timestamp)).utf8)
        var matched = false
        for signature in signatures where Digest.constantTimeEqual(Array(signature.utf8), expected) { matched = true }
        return matched
    }

    private static func mac(_ body: [UInt8], secret: [UInt8], timestamp: Int64) -> [UInt8] {
        Digest.hmacSHA256(key: secret, message: Array("\(timestamp).".utf8) + body)
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

private extension String {
    func trimmingSpacesAndTabs() -> String {
        let scalars = unicodeScalars
        guard let start = scalars.firstIndex(where: { $0 != " " && $0 != "\t" }),
              let end = scalars.lastIndex(where: { $0 != " " && $0 != "\t" }) else { return "" }
        return String(scalars[start...end])
    }
}
