import Foundation
import PATTestSupport
import Synchronization
import Testing
@testable import PATKit

// MARK: - Fixed times

enum Fixture {
    /// 2026-01-31T12:00:00Z, the "now" of most tests.
    static let now = Timestamp(seconds: 1_769_860_800)
    static let hour: Int64 = 3600
    static let day: Int64 = 86_400

    /// A fixed, well-formed PAT id (22 URL-safe characters).
    static let patID = "AAAAAAAAAAAAAAAAAAAAAA"

    /// A deterministic signing key; different `n` give different keys.
    static func key(_ n: UInt8) throws -> SecretKey {
        try SecretKey.fromSeed([UInt8](repeating: n, count: 32))
    }

    /// Claims that validate at `Fixture.now`: issued an hour ago, valid for 30 days.
    static func claims(id: String = PATClaims.newID(), subject: String = "user-1", generation: UInt64 = 1,
                       issuedAt: Timestamp = now.adding(seconds: -hour),
                       expiresAt: Timestamp = now.adding(seconds: 30 * day),
                       notBefore: Timestamp? = nil, domain: String? = "dom-1",
                       scopes: [String] = ["clients:view:*"], extra: JSONObject = JSONObject()) throws -> PATClaims {
        PATClaims(id: id, subject: subject, generation: generation, issuedAt: issuedAt, expiresAt: expiresAt,
                  notBefore: notBefore, domain: domain, scopes: try ScopeSet(parsing: scopes), extra: extra)
    }

    /// A validator over `keys` whose clock reads `now`. By default no revocation list is required.
    static func validator(keys: [PublicKey], list: RevocationList? = nil, now: Timestamp = Fixture.now,
                          configure: (inout Validator.Policy) -> Void = { $0.requireRevocationList = false }) -> Validator {
        var policy = Validator.Policy()
        configure(&policy)
        return Validator(keys: KeySet(keys: keys), revocations: list, policy: policy, clock: { now })
    }

    /// The footer PATKit puts on its tokens.
    static func footer(for key: SecretKey) -> [UInt8] { Array(#"{"kid":"\#(key.id.rawValue)"}"#.utf8) }

    /// Signs arbitrary claim text as a v4.public token with a proper `kid` footer.
    static func signRaw(_ claimsJSON: String, with key: SecretKey, footer: [UInt8]? = nil) -> String {
        PASETOv4Public.sign(message: Array(claimsJSON.utf8), footer: footer ?? Fixture.footer(for: key), with: key)
    }
}

/// A clock tests can move while a validator uses it.
final class TestClock: Sendable {
    private let value: Mutex<Int64>
    init(_ t: Timestamp) { value = Mutex(t.seconds) }
    var now: Timestamp { Timestamp(seconds: value.withLock { $0 }) }
    func set(_ t: Timestamp) { value.withLock { $0 = t.seconds } }
}


// MARK: - Error helpers

/// The validation code `body` failed with, or nil when it succeeded or threw something else.
func validationCode(_ body: () throws -> Any) -> PATValidationError.Code? {
    do {
        _ = try body()
        return nil
    } catch let error as PATValidationError {
        return error.code
    } catch {
        return nil
    }
}

/// The PATKitError `body` failed with, or nil when it succeeded or threw something else.
func patError(_ body: () throws -> Any) -> PATKitError? {
    do {
        _ = try body()
        return nil
    } catch let error as PATKitError {
        return error
    } catch {
        return nil
    }
}

extension PATKitError {
    var isInvalidDocument: Bool { if case .invalidDocument = self { true } else { false } }
    var isInvalidKey: Bool { if case .invalidKey = self { true } else { false } }
    var isInvalidScope: Bool { if case .invalidScope = self { true } else { false } }
    var isInvalidArgument: Bool { if case .invalidArgument = self { true } else { false } }
    var isInvalidClaims: Bool { if case .invalidClaims = self { true } else { false } }
    var isIO: Bool { if case .io = self { true } else { false } }
    var message: String {
        switch self {
        case .invalidKey(let s), .invalidScope(let s), .invalidClaims(let s), .invalidDocument(let s),
             .crypto(let s), .invalidArgument(let s): return s
        case .io(_, let s): return s
        case .insecureKeyFile, .rollback, .keySetRollback: return description
        }
    }
}

// MARK: - Bytes

func hexBytes(_ text: String?) -> [UInt8]? {
    guard let text, text.utf8.count % 2 == 0 else { return nil }
    var out: [UInt8] = []
    out.reserveCapacity(text.utf8.count / 2)
    var iterator = text.utf8.makeIterator()
    func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x61...0x66: return c - 0x61 + 10
        case 0x41...0x46: return c - 0x41 + 10
        default: return nil
        }
    }
    while let hi = iterator.next() {
        guard let lo = iterator.next(), let h = nibble(hi), let l = nibble(lo) else { return nil }
        out.append(h << 4 | l)
    }
    return out
}

func hexString(_ bytes: [UInt8]) -> String {
    bytes.map { String(format: "%02x", $0) }.joined()
}

/// A token's three parts, split on '.' after the header.
struct TokenPieces {
    var payload: [UInt8]
    var footer: String?

    init?(_ token: String) {
        guard token.hasPrefix(PASETOv4Public.header) else { return nil }
        let rest = token.dropFirst(PASETOv4Public.header.count).split(separator: ".", omittingEmptySubsequences: false)
        guard rest.count == 1 || rest.count == 2, let payload = Base64URL.decode(String(rest[0])) else { return nil }
        self.payload = payload
        self.footer = rest.count == 2 ? String(rest[1]) : nil
    }

    var token: String {
        PASETOv4Public.header + Base64URL.encode(payload) + (footer.map { "." + $0 } ?? "")
    }
}

// MARK: - Temporary directories

/// A fresh private directory under /tmp, removed by `remove()`.
struct TempDirectory {
    let path: String

    init() throws {
        var template = Array("/tmp/patkit-tests-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { buf in buf.baseAddress.flatMap { mkdtemp($0) } }
        try #require(made != nil, "mkdtemp failed")
        path = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    func file(_ name: String) -> String { path + "/" + name }

    func contents() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: path).sorted()
    }

    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

// MARK: - Official vectors

/// One test of an official vector file, with its string fields (JSON nulls dropped).
struct VectorCase: Sendable, CustomTestStringConvertible {
    let file: String
    let name: String
    let expectFail: Bool
    let fields: [String: String]

    subscript(_ key: String) -> String? { fields[key] }
    var testDescription: String { "\(file) \(name)" }
}

enum Vectors {
    /// `$PATKIT_VECTORS`, else `<package root>/../shared/vectors` (the `Prerequisite.vectors` folder).
    static let directory: URL = TestPaths.vectorsDirectory

    /// True when the folder holds v4.json.
    static var available: Bool {
        FileManager.default.fileExists(atPath: directory.appendingPathComponent("v4.json").path)
    }

    static var skipMessage: Comment {
        "vectors not found at \(directory.path) (set PATKIT_VECTORS to the folder holding v4.json and the k4.*.json files)"
    }

    /// Every test of `file`, or [] when the folder or the file is missing or unreadable.
    /// (`vectorFilesAreComplete` fails loudly if a present folder yields too few cases.)
    static func load(_ file: String) -> [VectorCase] {
        guard available,
              let data = try? Data(contentsOf: directory.appendingPathComponent(file)),
              let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let tests = root["tests"] as? [[String: Any]] else { return [] }
        return tests.compactMap { test in
            guard let name = test["name"] as? String else { return nil }
            var fields: [String: String] = [:]
            for (key, value) in test { if let s = value as? String { fields[key] = s } }
            return VectorCase(file: file, name: name, expectFail: (test["expect-fail"] as? Bool) ?? false, fields: fields)
        }
    }

    /// The v4.json tests about public tokens: v4.public tokens and every 4-S / 4-F test.
    static let v4Public: [VectorCase] = load("v4.json").filter {
        ($0["token"] ?? "").hasPrefix("v4.public") || $0.name.hasPrefix("4-S") || $0.name.hasPrefix("4-F")
    }
    static var v4Success: [VectorCase] { v4Public.filter { !$0.expectFail } }
    static var v4Fail: [VectorCase] { v4Public.filter(\.expectFail) }

    static let k4Public: [VectorCase] = load("k4.public.json")
    static let k4Secret: [VectorCase] = load("k4.secret.json")
    static let k4PID: [VectorCase] = load("k4.pid.json")
}
