import Foundation
import PATTestSupport
import Testing
@testable import PATKit

/// The test vectors of FORMATS.md (`vectors/patkit-formats.json`): key sets, lists and deltas,
/// valid and expected-failure cases, for edges in other languages. Everything in them is
/// deterministic (keys from fixed seeds, fixed times, Ed25519 signatures are deterministic), so
/// this test rebuilds the file and requires it to be unchanged — and checks PATKit's own answer
/// on every case. `PATKIT_WRITE_FORMAT_VECTORS=1 swift test --filter FormatVectorTests` rewrites
/// it after a deliberate format change. `scripts/patkit_formats.py` checks the same file from
/// the specification alone (InteropTests runs it).
@Suite("Format test vectors")
struct FormatVectorTests {
    static let path = TestPaths.packageRoot.appendingPathComponent("vectors/patkit-formats.json").path

    struct Case {
        var name: String
        var kind: String
        var anchors: [PublicKey] = []
        var keys: [PublicKey] = []
        var document: [UInt8]
        var base: [UInt8]? = nil
        var valid: Bool
        var sequence: UInt64? = nil
        var activeKids: [String]? = nil
        /// (jti, sub, gen, iat, now, expected refusal or nil)
        var checks: [(String, String, UInt64, Int64, Int64, String?)] = []
        var list: [UInt8]? = nil
    }

    static func cases() throws -> [Case] {
        let anchor = try Fixture.key(1), signer = try Fixture.key(2), stranger = try Fixture.key(3)
        let now = Fixture.now
        let keys = KeySet(keys: [signer.publicKey])
        var out: [Case] = []

        // Key sets.
        let set5 = try SignedKeySet.sign(keys, with: anchor, sequence: 5, issuedAt: now, nextUpdate: now.adding(seconds: 86_400))
        let set6 = try SignedKeySet.sign(keys, with: anchor, sequence: 6, issuedAt: now, nextUpdate: now.adding(seconds: 86_400))
        out.append(Case(name: "key set: valid", kind: "key-set", anchors: [anchor.publicKey], document: set5, valid: true,
                        sequence: 5, activeKids: [signer.id.rawValue]))
        out.append(Case(name: "key set: signed by a key that is not a pinned anchor", kind: "key-set", anchors: [stranger.publicKey],
                        document: set5, valid: false))
        let f5 = String(decoding: set5, as: UTF8.self).split(separator: "\"", omittingEmptySubsequences: false)
        let f6 = String(decoding: set6, as: UTF8.self).split(separator: "\"", omittingEmptySubsequences: false)
        var swapped = f6
        swapped[11] = f5[11] // set 6's payload under set 5's signature
        out.append(Case(name: "key set: payload of another set under this signature", kind: "key-set", anchors: [anchor.publicKey],
                        document: Array(swapped.joined(separator: "\"").utf8), valid: false))
        out.append(Case(name: "key set: a revocation list given as a key set", kind: "key-set", anchors: [anchor.publicKey],
                        document: Array("{\"keys\":[]}".utf8), valid: false))

        // Lists.
        let later = now.adding(seconds: 7200)
        var builder = RevocationList.Builder()
        builder.revoke(id: "pat-superseded", below: 3, horizon: later)
        builder.delete(id: "pat-deleted", horizon: later)
        builder.revokeAll(subject: "mallory", issuedBefore: now, horizon: later)
        builder.revoke(id: "pat-rotated", below: 3, horizon: later)
        builder.keep(id: "pat-rotated", generation: 2, until: now.adding(seconds: 3600))
        let list7 = try builder.sign(with: signer, sequence: 7, issuedAt: now, nextUpdate: now.adding(seconds: 3600))
        let t = now.seconds
        out.append(Case(name: "list: valid, one entry of each kind", kind: "list", keys: [signer.publicKey], document: list7,
                        valid: true, sequence: 7, checks: [
                            ("pat-superseded", "alice", 2, t - 60, t, "superseded"),
                            ("pat-superseded", "alice", 3, t - 60, t, nil),
                            ("pat-deleted", "alice", 99, t - 60, t, "deleted"),
                            ("pat-any", "mallory", 1, t - 1, t, "owner-revoked"),
                            ("pat-any", "mallory", 1, t, t, nil),
                            ("pat-rotated", "alice", 2, t - 60, t + 3600, nil),
                            ("pat-rotated", "alice", 2, t - 60, t + 3601, "superseded"),
                            ("pat-rotated", "alice", 1, t - 60, t, "superseded"),
                            ("pat-rotated", "alice", 3, t - 60, t, nil),
                            ("pat-unknown", "alice", 1, t - 60, t, nil),
                        ]))
        out.append(Case(name: "list: signed by a key not in the key set", kind: "list", keys: [stranger.publicKey], document: list7,
                        valid: false))
        var v2 = list7
        v2[7] = UInt8(ascii: "2")
        out.append(Case(name: "list: version 2 magic", kind: "list", keys: [signer.publicKey], document: v2, valid: false))
        var flipped = list7
        flipped[flipped.count - 100] ^= 1
        out.append(Case(name: "list: an entry byte flipped", kind: "list", keys: [signer.publicKey], document: flipped, valid: false))
        out.append(Case(name: "list: truncated by one byte", kind: "list", keys: [signer.publicKey], document: Array(list7.dropLast()),
                        valid: false))

        // Deltas: 7 → 8 (a revocation), 8 → 9 (a regenerate during the overlap, a prune).
        builder.revoke(id: "pat-new", below: 2, horizon: later)
        let list8 = try builder.sign(with: signer, sequence: 8, issuedAt: now.adding(seconds: 10), nextUpdate: now.adding(seconds: 3610))
        builder.revoke(id: "pat-rotated", below: 4, horizon: later.adding(seconds: 86_400))
        builder.keep(id: "pat-rotated", generation: 3, until: later.adding(seconds: 3600))
        builder.prune(now: later.adding(seconds: 61), margin: 60)
        builder.revoke(id: "pat-after-prune", below: 2, horizon: later.adding(seconds: 86_400))
        let list9 = try builder.sign(with: signer, sequence: 9, issuedAt: now.adding(seconds: 20), nextUpdate: now.adding(seconds: 3620))
        let parsed = try [list7, list8, list9].map { try RevocationList(verifying: $0, keys: keys) }
        let d78 = try RevocationDelta.make(from: parsed[0], to: parsed[1], signedWith: signer)
        let d89 = try RevocationDelta.make(from: parsed[1], to: parsed[2], signedWith: signer)
        out.append(Case(name: "delta: 7 → 8, one revocation", kind: "delta", keys: [signer.publicKey], document: d78, base: list7,
                        valid: true, sequence: 8, list: list8))
        out.append(Case(name: "delta: 8 → 9, a rotation during an overlap, a prune, a revocation", kind: "delta", keys: [signer.publicKey],
                        document: d89, base: list8, valid: true, sequence: 9, list: list9))
        out.append(Case(name: "delta: a chain 7 → 8 → 9", kind: "delta", keys: [signer.publicKey], document: d78 + d89, base: list7,
                        valid: true, sequence: 9, list: list9))
        out.append(Case(name: "delta: for another base (8 → 9 on list 7)", kind: "delta", keys: [signer.publicKey], document: d89,
                        base: list7, valid: false))
        out.append(Case(name: "delta: a broken chain (8 → 9 then 7 → 8)", kind: "delta", keys: [signer.publicKey], document: d89 + d78,
                        base: list8, valid: false))
        out.append(Case(name: "delta: a delta given as a list", kind: "list", keys: [signer.publicKey], document: d78, valid: false))
        out.append(Case(name: "delta: a list given as a delta", kind: "delta", keys: [signer.publicKey], document: list8, base: list7,
                        valid: false))
        out.append(Case(name: "delta: signed by a key not in the key set", kind: "delta", keys: [stranger.publicKey], document: d78,
                        base: list7, valid: false))
        var tampered = d78
        tampered[tampered.count - 150] ^= 1
        out.append(Case(name: "delta: a byte flipped", kind: "delta", keys: [signer.publicKey], document: tampered, base: list7,
                        valid: false))
        return out
    }

    static func json(_ cases: [Case]) -> String {
        func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }
        func keys(_ list: [PublicKey]) -> String { "[" + list.map { "\"\($0.paserk)\"" }.joined(separator: ", ") + "]" }
        var lines = ["{", "  \"description\": \"PATKit key set, revocation list v3 and delta test vectors (FORMATS.md). Times are Unix seconds.\",",
                     "  \"cases\": ["]
        for (index, c) in cases.enumerated() {
            var fields = ["\"name\": \"\(c.name)\"", "\"kind\": \"\(c.kind)\""]
            if !c.anchors.isEmpty { fields.append("\"anchors\": \(keys(c.anchors))") }
            if !c.keys.isEmpty { fields.append("\"keys\": \(keys(c.keys))") }
            if let base = c.base { fields.append("\"base\": \"\(hex(base))\"") }
            fields.append("\"document\": \"\(hex(c.document))\"")
            if !c.checks.isEmpty {
                let checks = c.checks.map { ch in
                    "{\"jti\": \"\(ch.0)\", \"sub\": \"\(ch.1)\", \"gen\": \(ch.2), \"iat\": \(ch.3), \"now\": \(ch.4)}"
                }
                fields.append("\"checks\": [" + checks.joined(separator: ", ") + "]")
            }
            var expected = ["\"valid\": \(c.valid)"]
            if let sequence = c.sequence { expected.append("\"sequence\": \(sequence)") }
            if let kids = c.activeKids { expected.append("\"activeKids\": [" + kids.map { "\"\($0)\"" }.joined(separator: ", ") + "]") }
            if !c.checks.isEmpty {
                expected.append("\"checks\": [" + c.checks.map { $0.5.map { "\"\($0)\"" } ?? "null" }.joined(separator: ", ") + "]")
            }
            if let list = c.list { expected.append("\"list\": \"\(hex(list))\"") }
            fields.append("\"expected\": {" + expected.joined(separator: ", ") + "}")
            lines.append("    {" + fields.joined(separator: ", ") + "}" + (index == cases.count - 1 ? "" : ","))
        }
        lines += ["  ]", "}", ""]
        return lines.joined(separator: "\n")
    }

    @Test("the checked-in vectors are what PATKit makes, and PATKit agrees with every expected result")
    func vectors() throws {
        let cases = try Self.cases()
        let text = Self.json(cases)
        if ProcessInfo.processInfo.environment["PATKIT_WRITE_FORMAT_VECTORS"] == "1" {
            try FileManager.default.createDirectory(atPath: (Self.path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try text.write(toFile: Self.path, atomically: true, encoding: .utf8)
        }
        let stored = try String(contentsOfFile: Self.path, encoding: .utf8)
        #expect(stored == text, "vectors/patkit-formats.json differs from what PATKit makes; after a deliberate change rewrite it with PATKIT_WRITE_FORMAT_VECTORS=1")
        for c in cases {
            let keys = KeySet(keys: c.keys)
            switch c.kind {
            case "key-set":
                let result = Result { try SignedKeySet(verifying: c.document, anchors: try TrustAnchors(c.anchors)) }
                #expect((try? result.get()) != nil ? c.valid : !c.valid, "\(c.name)")
                if let set = try? result.get() {
                    #expect(set.sequence == c.sequence)
                    #expect(set.keys.activeKeys.map(\.id.rawValue) == c.activeKids)
                }
            case "list":
                let list = try? RevocationList(verifying: c.document, keys: keys)
                #expect((list != nil) == c.valid, "\(c.name)")
                if let list {
                    #expect(list.sequence == c.sequence)
                    for check in c.checks {
                        let claims = try Fixture.claims(id: check.0, subject: check.1, generation: check.2,
                                                        issuedAt: Timestamp(seconds: check.3))
                        let got: String?
                        switch list.check(claims, at: Timestamp(seconds: check.4)) {
                        case nil: got = nil
                        case .superseded?: got = "superseded"
                        case .deleted?: got = "deleted"
                        case .ownerRevoked?: got = "owner-revoked"
                        case .ancestorRevoked?: got = "ancestor"
                        }
                        #expect(got == check.5, "\(c.name): \(check)")
                    }
                }
            default:
                let applied = Result { () throws -> RevocationList in
                    var list = try RevocationList(verifying: c.base ?? [], keys: keys)
                    for delta in try RevocationDelta.chain(verifying: c.document, keys: keys) { list = try list.applying(delta) }
                    return list
                }
                #expect((try? applied.get()) != nil ? c.valid : !c.valid, "\(c.name)")
                if let list = try? applied.get() {
                    #expect(list.sequence == c.sequence && list.bytes == c.list)
                }
            }
        }
    }
}
