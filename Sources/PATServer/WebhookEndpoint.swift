import AsyncHTTPClient
import PATKit

/// One webhook receiver: where events go and the key its signatures are made with. Every
/// endpoint has a secret of its own, so no receiver can forge events to another.
///
/// The URL may carry credentials and a query (`https://user:pass@hooks.example/pat?key=…`):
///
/// - credentials in the URL are sent as HTTP Basic authentication (`Authorization: Basic …`,
///   user and password percent-decoded) and taken out of the URL the request goes to. Over
///   plain `http://` they are refused unless the host is loopback: they would cross the network
///   in clear text;
/// - the query is sent as given;
/// - logs and error messages show only `redacted`: scheme, host, port and path — never the
///   credentials, the query or the fragment.
public struct WebhookEndpoint: Sendable {
    /// `scheme://host[:port]/path`: what logs and errors show.
    public let redacted: String
    /// The URL requests go to: the given one without its credentials and fragment.
    let requestURL: String
    /// `Basic …` from the URL's credentials; nil without any. Secret: never logged.
    let authorization: String?
    /// The HMAC-SHA-256 key of this endpoint's signatures.
    let secret: [UInt8]

    /// The smallest key accepted, in bytes.
    public static let minimumSecretBytes = 16
    /// The longest URL accepted, in bytes.
    public static let maximumURLBytes = 2048

    /// Throws (naming the endpoint by its redacted form) when `url` is not an absolute http(s)
    /// URL, carries malformed credentials, or credentials over plain http to a host that is not
    /// loopback, or when `secret` is shorter than `minimumSecretBytes`.
    public init(url: String, secret: [UInt8]) throws(PATKitError) {
        let parts = try WebhookEndpoint.parse(url)
        guard secret.count >= WebhookEndpoint.minimumSecretBytes else {
            throw .invalidArgument("the secret of webhook endpoint \(parts.redacted) is \(secret.count) bytes; "
                                   + "use at least \(WebhookEndpoint.minimumSecretBytes) (e.g. `openssl rand -hex 32`)")
        }
        redacted = parts.redacted
        requestURL = parts.requestURL
        authorization = parts.authorization
        self.secret = secret
    }

    /// Throws what `init(url:secret:)` would about `url` (for checking arguments early).
    public static func check(_ url: String) throws(PATKitError) { _ = try parse(url) }

    /// True when the URL carried credentials (sent as Basic authentication).
    public var sendsBasicAuthentication: Bool { authorization != nil }

    /// `url` without credentials, query and fragment, for messages; "(not an http(s) URL)" when
    /// it cannot be read as one. Never returns any part of the credentials or the query.
    public static func redact(_ url: String) -> String {
        (try? parse(url).redacted) ?? "(not an http(s) URL)"
    }

    private struct Parts {
        var redacted: String
        var requestURL: String
        var authorization: String?
    }

    private static func parse(_ url: String) throws(PATKitError) -> Parts {
        let bytes = Array(url.utf8)
        let lower = url.lowercased()
        let scheme: String
        if lower.hasPrefix("https://") { scheme = "https" } else if lower.hasPrefix("http://") { scheme = "http" } else {
            throw .invalidArgument("a webhook endpoint must be an absolute http:// or https:// URL")
        }
        guard bytes.count <= maximumURLBytes else {
            throw .invalidArgument("a webhook endpoint URL is longer than \(maximumURLBytes) bytes")
        }
        // Visible ASCII only: no spaces, controls or raw non-ASCII (percent-encode them).
        guard bytes.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw .invalidArgument("a webhook endpoint URL must be visible ASCII without spaces (percent-encode the rest)")
        }
        let rest = bytes[(scheme.count + 3)...]
        let authorityEnd = rest.firstIndex { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") } ?? rest.endIndex
        let authority = rest[rest.startIndex..<authorityEnd]
        var hostPort = authority
        var userinfo: ArraySlice<UInt8>? = nil
        if let at = authority.lastIndex(of: UInt8(ascii: "@")) {
            userinfo = authority[authority.startIndex..<at]
            hostPort = authority[(at + 1)...]
        }
        let tail = bytes[authorityEnd...]
        let fragmentStart = tail.firstIndex(of: UInt8(ascii: "#")) ?? tail.endIndex
        let pathAndQuery = tail[tail.startIndex..<fragmentStart]
        let pathEnd = pathAndQuery.firstIndex(of: UInt8(ascii: "?")) ?? pathAndQuery.endIndex
        let path = pathAndQuery[pathAndQuery.startIndex..<pathEnd]
        let host = String(decoding: hostPort, as: UTF8.self)
        let redacted = "\(scheme)://\(host)\(String(decoding: path, as: UTF8.self))"
        guard !hostPort.isEmpty, hostPort.first != UInt8(ascii: ":") else {
            throw .invalidArgument("webhook endpoint \(redacted) has no host")
        }
        var authorization: String? = nil
        if let userinfo {
            let colon = userinfo.firstIndex(of: UInt8(ascii: ":"))
            guard let user = percentDecoded(userinfo[userinfo.startIndex..<(colon ?? userinfo.endIndex)]),
                  let password = percentDecoded(colon.map { userinfo[($0 + 1)...] } ?? []),
                  !user.isEmpty, !user.contains(UInt8(ascii: ":")),
                  (user + password).allSatisfy({ $0 >= 0x20 && $0 != 0x7F }),
                  let userText = String(validating: user, as: UTF8.self),
                  let passwordText = String(validating: password, as: UTF8.self) else {
                throw .invalidArgument("webhook endpoint \(redacted): the credentials in the URL are malformed "
                                       + "(write USER:PASSWORD@, percent-encoded, with a non-empty user)")
            }
            if scheme == "http", !isLoopback(host) {
                throw .invalidArgument("webhook endpoint \(redacted): credentials in an http:// URL would cross the network "
                                       + "in clear text; use https://")
            }
            authorization = HTTPClient.Authorization.basic(username: userText, password: passwordText).headerValue
        }
        let requestURL = "\(scheme)://\(host)\(String(decoding: pathAndQuery, as: UTF8.self))"
        return Parts(redacted: redacted, requestURL: requestURL, authorization: authorization)
    }

    /// `%XX` decoded; nil for a malformed escape.
    private static func percentDecoded(_ bytes: some Collection<UInt8>) -> [UInt8]? {
        var out: [UInt8] = []
        var iterator = bytes.makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else {
                out.append(byte)
                continue
            }
            guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else { return nil }
            out.append(high << 4 | low)
        }
        return out
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    /// `localhost`, an IPv4 address `127.x.x.x` or `[::1]`, with or without a port.
    static func isLoopback(_ hostPort: String) -> Bool {
        let lower = hostPort.lowercased()
        if lower.hasPrefix("[") { return lower == "[::1]" || lower.hasPrefix("[::1]:") }
        let host = lower.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? lower
        if host == "localhost" { return true }
        let octets = host.split(separator: ".", omittingEmptySubsequences: false)
        return octets.count == 4 && octets[0] == "127"
            && octets.allSatisfy { !$0.isEmpty && $0.count <= 3 && $0.allSatisfy(\.isASCII) && UInt8($0) != nil }
    }
}
