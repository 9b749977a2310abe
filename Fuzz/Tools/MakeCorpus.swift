// Writes the seed corpora of the fuzz targets into the folder given as the only argument
// (scripts/fuzz.sh --make-corpus writes Fuzz/corpus). Built with Sources/PATKit and
// Fuzz/Common.swift, so tokens and lists are signed by the fuzzers' own fixed keys; every key
// here is generated from a fixed seed for the fuzzers (no official vector material).
#if canImport(Glibc)
import Glibc
#endif

@main
struct MakeCorpus {
    static let root = CommandLine.arguments.count > 1 ? CommandLine.arguments[1] : "Fuzz/corpus"

    static func main() throws {
        let f = FuzzFixture.self
        let now = f.now
        let signer = f.signer

        func claims(id: String = "seedSeedSeedSeedSeed00", subject: String = "user-1", gen: UInt64 = 1,
                    iat: Timestamp = now.adding(seconds: -3600), exp: Timestamp = now.adding(seconds: 30 * 86_400),
                    nbf: Timestamp? = nil, domain: String? = "dom-1", scopes: [String] = ["clients:view:*"],
                    lineage: [String] = [], extra: JSONObject = JSONObject()) throws -> PATClaims {
            PATClaims(id: id, subject: subject, generation: gen, issuedAt: iat, expiresAt: exp, notBefore: nbf,
                      issuer: nil, audience: nil, domain: domain, scopes: try ScopeSet(parsing: scopes),
                      lineage: try lineage.map { entry in
                          let parts = entry.split(separator: ".")
                          return try PATAncestor(id: String(parts[0]), generation: UInt64(parts[1]) ?? 1)
                      }, extra: extra)
        }
        var flags = JSONObject()
        flags.set("ignore_2fa", .bool(true))
        flags.set("n", .number("-1.5e3"))
        flags.set("list", .array(["a", .null, 1]))
        let samples: [(String, PATClaims)] = [
            ("valid", try claims()),
            ("valid-scopes", try claims(gen: 12, nbf: now.adding(seconds: -60),
                                        scopes: ["clients:view:*", "channels:connect_client:ch-42", "domain:create_clients",
                                                 "groups:view:g.1~x", "channels:publish:ch_7"], extra: flags)),
            ("expired", try claims(iat: now.adding(seconds: -90 * 86_400), exp: now.adding(seconds: -61))),
            ("exp-edge", try claims(exp: now.adding(seconds: -60))),
            ("future", try claims(iat: now.adding(seconds: 61))),
            ("nbf-future", try claims(nbf: now.adding(seconds: 3600))),
            ("revoked", try claims(id: f.revokedID, gen: 2)),
            ("regenerated", try claims(id: f.revokedID, gen: 3)),
            ("deleted", try claims(id: f.deletedID, gen: 9)),
            ("owner-revoked", try claims(subject: f.revokedOwner, iat: now.adding(seconds: -3600))),
            ("owner-after", try claims(subject: f.revokedOwner, iat: now.adding(seconds: -60))),
            ("max-gen", try claims(gen: PATClaims.maxGeneration)),
            ("no-domain", try claims(domain: nil, scopes: [])),
            // Lineage (`par`): a live chain of four, and chains through a revoked or a deleted ancestor.
            ("lineage-4", try claims(lineage: ["rootRootRootRootRoot00.1", "teamTeamTeamTeamTeam00.3",
                                               "ciCiCiCiCiCiCiCiCiCi00.1", "jobJobJobJobJobJob0000.2"])),
            ("lineage-revoked", try claims(lineage: ["\(f.revokedID).2", "teamTeamTeamTeamTeam00.1"])),
            ("lineage-regenerated", try claims(lineage: ["\(f.revokedID).3"])),
            ("lineage-deleted", try claims(lineage: ["\(f.deletedID).9"])),
        ]

        // token: raw tokens, '{' claims to sign, 'F' footers, 'R' foreign signers.
        for (name, c) in samples {
            let token = try Issuer(key: signer).issue(c)
            write("token", "raw-\(name)", Array(token.utf8))
            write("token", "claims-\(name)", JSONWriter.encode(.object(c.json)))
        }
        let valid = try claims()
        let message = JSONWriter.encode(.object(valid.json))
        write("token", "raw-retired", Array(PASETOv4Public.sign(message: message, footer: f.footer(f.retired), with: f.retired).utf8))
        write("token", "raw-no-footer", Array(PASETOv4Public.sign(message: message, with: signer).utf8))
        write("token", "raw-v4-local", Array(("v4.local." + Base64URL.encode([UInt8](repeating: 7, count: 80))).utf8))
        write("token", "footer-canonical", Array("F".utf8) + f.footer(signer))
        write("token", "footer-spaced", Array("F".utf8) + Array(#"{ "kid" : "\#(signer.id.rawValue)" }"#.utf8))
        write("token", "footer-extra", Array("F".utf8) + Array(#"{"kid":"\#(signer.id.rawValue)","v":1}"#.utf8))
        write("token", "footer-retired", Array("F".utf8) + f.footer(f.retired))
        write("token", "foreign", Array("R".utf8) + message)
        write("token", "respell-one", Array("U".utf8) + [0, 40, 0])
        // Regression seed: the first 'K' of the fixture token re-spelled as U+212A KELVIN SIGN
        // (the validation cache once answered for it).
        if let k = Array(f.validToken).firstIndex(of: "K") {
            write("token", "respell-kelvin", Array("U".utf8) + [UInt8(k >> 8), UInt8(k & 0xFF), 0])
        }
        write("token", "respell-three", Array("U".utf8) + [0, 12, 6, 1, 0, 3, 0, 200, 8])
        write("token", "claims-dup", Array(#"{"jti":"seedSeedSeedSeedSeed00","jti":"seedSeedSeedSeedSeed01"}"#.utf8))

        // claims
        for (name, c) in samples { write("claims", name, JSONWriter.encode(.object(c.json))) }
        let team = RevocationList.tokenKey("teamTeamTeamTeamTeam00").base64URL
        write("claims", "par-escaped", Array(#"{"jti":"seedSeedSeedSeedSeed00","sub":"user-1","gen":1,"iat":"2026-01-31T11:00:00Z","exp":"2026-03-02T12:00:00Z","par":["\u00\#(String(team.utf8.first ?? 65, radix: 16))\#(team.dropFirst()).1"]}"#.utf8))
        let deep = ["a", "b", "c", "d", "e"].map { "\"" + RevocationList.tokenKey(String(repeating: $0, count: 22)).base64URL + ".1\"" }
        write("claims", "par-too-deep", Array(#"{"jti":"seedSeedSeedSeedSeed00","sub":"user-1","gen":1,"iat":"2026-01-31T11:00:00Z","exp":"2026-03-02T12:00:00Z","par":[\#(deep.joined(separator: ","))]}"#.utf8))
        write("claims", "escaped", Array(#"{"jti":"seed\u0053eedSeedSeedSeed00","sub":"\u00e9l\u00e8ve \ud83d\ude00","gen":1,"iat":"2026-01-31T11:00:00Z","exp":"2026-03-02T12:00:00Z","scope":"clients:view"}"#.utf8))
        // Regression seeds: a plain scope claim over the 4096-byte string limit; 129 members.
        let long = try claims(scopes: (0..<150).map { "clients:view:id-\($0)-" + String(repeating: "0", count: 12) })
        write("claims", "regression-long-scope", JSONWriter.encode(.object(long.json)))
        var wide = try claims()
        for i in 0..<122 { wide.extra.set("x\(i)", .number("0")) }
        write("claims", "regression-129-members", JSONWriter.encode(.object(wide.json)))
        write("claims", "wrong-types", Array(#"{"jti":1,"sub":["a"],"gen":"1","iat":1769860800,"exp":null}"#.utf8))

        // footer
        write("footer", "canonical", f.footer(signer))
        write("footer", "spaced", Array(#"{ "kid" : "\#(signer.id.rawValue)" }"#.utf8))
        write("footer", "extra-member", Array(#"{"kid":"\#(signer.id.rawValue)","note":"rotated 2026"}"#.utf8))
        write("footer", "escaped-kid", Array(#"{"kid":"k4\u002epid.\#(signer.id.rawValue.dropFirst(7))"}"#.utf8))
        write("footer", "key-material", Array(#"{"kid":"\#(signer.id.rawValue)","k":"\#(signer.publicKey.paserk)"}"#.utf8))
        write("footer", "not-json", Array("kid=k4.pid.x".utf8))

        // json
        write("json", "claims", message)
        write("json", "mixed", Array(#"{"a":[1,-0,2.5e-3,true,false,null,"\u00e9\n\"\\\/"],"b":{"c":{"d":[]}},"e":""}"#.utf8))
        write("json", "surrogates", Array(#"["\ud83d\ude00","\u0000\u001f\u007f"]"#.utf8))
        write("json", "numbers", Array("[0,-1,9007199254740993,1E+2,-0.0e-0,123456789012345678901234567890]".utf8))
        write("json", "keyset", f.keys.encoded())

        // paserk
        write("paserk", "public", Array(signer.publicKey.paserk.utf8))
        write("paserk", "public-nl", Array((" " + f.retired.publicKey.paserk + "\n").utf8))
        write("paserk", "secret", Array((f.stranger.exportPASERK() + "\n").utf8))
        write("paserk", "pid", Array(signer.id.rawValue.utf8))
        write("paserk", "k3-public", Array(("k3.public." + Base64URL.encode([UInt8](repeating: 2, count: 49))).utf8))
        write("paserk", "local", Array(("k4.local." + Base64URL.encode([UInt8](repeating: 3, count: 32))).utf8))

        // scope: single scopes, claims, lists, catalogs
        write("scope", "one", Array("clients:view".utf8))
        write("scope", "wildcard", Array("channels:connect_client:*".utf8))
        write("scope", "claim", Array("clients:view:* channels:connect_client:ch-42 domain:create_clients groups:view:g.1~x".utf8))
        write("scope", "catalog", Array(#"{"entities":{"clients":["view","update"],"*":["read","list"]}}"#.utf8))
        write("scope", "bad", Array("Clients:view  a:b:c:d".utf8))

        // revocation: the fixture list, an empty list, the 'S' body form
        write("revocation", "fixture", f.listBytes)
        write("revocation", "empty", try RevocationList.Builder().sign(with: signer, sequence: 1, issuedAt: now,
                                                                          nextUpdate: now.adding(seconds: 3600)))
        write("revocation", "retired-signer", try RevocationList.Builder().sign(with: f.retired, sequence: 2, issuedAt: now,
                                                                                   nextUpdate: now.adding(seconds: 3600)))
        write("revocation", "token-as-list", Array(try Issuer(key: signer).issue(valid).utf8))
        var body: [UInt8] = Array("S".utf8) + [3, 1] // 3 token entries, 1 owner entry, no overlap entries
        body.appendLE(UInt64(5))
        body.appendLE(UInt64(bitPattern: now.seconds))
        body.appendLE(UInt64(bitPattern: now.seconds + 3600))
        body.appendLE(UInt32(60))
        var b = RevocationList.Builder()
        for i in 0..<3 { b.revoke(id: "entry-\(i)-0000000000000000", below: UInt64(i + 2), horizon: now.adding(seconds: 86_400)) }
        b.revokeAll(subject: "owner", issuedBefore: now, horizon: now.adding(seconds: 86_400))
        let list = try b.sign(with: signer, sequence: 5, issuedAt: now, nextUpdate: now.adding(seconds: 3600))
        let entries = Array(list.dropLast(64).suffix(4 * 32))
        body += entries
        write("revocation", "signed-body", body)

        // delta: deltas from the delta fixture's base list (7) as received — the cases of the format
        // vectors (vectors/patkit-formats.json), signed by the fuzzers' key —, 'S' bodies, 'M' changes
        let d = DeltaFixture.self
        let later = now.adding(seconds: 86_400)
        var next = d.builder
        next.revoke(key: d.key(0x18), below: 2, horizon: later)                           // a revocation
        let list8 = try next.sign(with: signer, sequence: 8, issuedAt: now, nextUpdate: later)
        next.revoke(key: d.key(0x10), below: 5, horizon: later)                           // a rotation during an overlap
        next.overlapEntries[d.key(0x10)] = (4, now.adding(seconds: 600).seconds)
        next.tokenEntries[d.key(0x12)] = nil                                              // a prune
        next.ownerEntries[d.key(0x21)] = nil
        next.revokeAll(subject: "owner-9", issuedBefore: now, horizon: later)             // a revoke-all
        let list9 = try next.sign(with: signer, sequence: 9, issuedAt: now.adding(seconds: 60), nextUpdate: later)
        let l8 = try RevocationList(verifying: list8, keys: f.keys), l9 = try RevocationList(verifying: list9, keys: f.keys)
        let d78 = try RevocationDelta.make(from: d.base, to: l8, signedWith: signer)
        let d89 = try RevocationDelta.make(from: l8, to: l9, signedWith: signer)
        write("delta", "one-revocation", d78)
        write("delta", "rotation-prune-revocation", try RevocationDelta.make(from: d.base, to: l9, signedWith: signer))
        write("delta", "chain", d78 + d89)
        write("delta", "another-base", d89)
        write("delta", "broken-chain", d89 + d78)
        write("delta", "list-as-delta", list8)
        write("delta", "foreign-signer", try RevocationDelta.make(from: d.base, to: try RevocationList(
            verifying: next.sign(with: f.retired, sequence: 8, issuedAt: now, nextUpdate: later), keys: KeySet([KeySet.Entry(
                key: f.retired.publicKey, created: now)])), signedWith: f.retired))
        var flipped = d78
        flipped[flipped.count / 2] ^= 1
        write("delta", "byte-flipped", flipped)
        var sBody: [UInt8] = Array("S".utf8) + [3]                                        // fixture base, the model's counts
        sBody.appendLE(UInt64(d.sequence))
        sBody.appendLE(UInt64(8))
        sBody.appendLE(UInt64(bitPattern: now.seconds))
        sBody.appendLE(UInt64(bitPattern: later.seconds))
        sBody.appendLE(UInt32(60))
        for _ in 0..<3 { sBody.appendLE(UInt32(0)) }
        sBody += [1, 1, 1, 0, 0, 1]                                                       // T+ T- O+ O- V+ V-
        sBody += d.key(0x18).bytes + [2, 0, 0, 0, 0, 0, 0, 0] + [1, 2, 3, 4, 5, 6, 7, 8]  // upsert token 0x18
        sBody += d.key(0x13).bytes                                                        // remove token 0x13
        sBody += d.key(0x20).bytes + [9, 9, 9, 9, 0, 0, 0, 0] + [1, 2, 3, 4, 5, 6, 7, 8]  // change owner 0x20
        sBody += d.key(0x11).bytes                                                        // remove overlap 0x11
        write("delta", "signed-body", sBody)
        var changes: [UInt8] = Array("M".utf8)
        for (op, key, first, second) in [(UInt8(0), UInt8(0x18), UInt64(2), UInt64(bitPattern: later.seconds)),
                                         (4, 0x12, 0, 0), (2, 0x13, 3, UInt64(bitPattern: later.seconds)),
                                         (1, 0x23, UInt64(bitPattern: now.seconds), UInt64(bitPattern: later.seconds)),
                                         (6, 0x10, 0, 0), (5, 0x21, 0, 0)] {
            changes.append(op)
            changes += d.key(key).bytes
            changes.appendLE(first)
            changes.appendLE(second)
        }
        write("delta", "made", changes)

        // keyset
        write("keyset", "fixture", f.keys.encoded())
        write("keyset", "minimal", Array(#"{"keys":[{"kid":"\#(signer.id.rawValue)","key":"\#(signer.publicKey.paserk)"}]}"#.utf8))
        write("keyset", "empty", Array(#"{"keys":[]}"#.utf8))

        // signedkeyset: a signed set, a payload for the 'P' form, an anchors file for the 'A' form
        let signedSet = try SignedKeySet.sign(f.keys, with: f.anchor, sequence: 3, issuedAt: now, nextUpdate: now.adding(seconds: 86_400))
        write("signedkeyset", "fixture", signedSet)
        write("signedkeyset", "plain", f.keys.encoded())
        write("signedkeyset", "foreign-anchor", try SignedKeySet.sign(f.keys, with: f.stranger, sequence: 3, issuedAt: now,
                                                                      nextUpdate: now.adding(seconds: 86_400)))
        var payload = JSONObject()
        payload.set("sequence", .number("3"))
        payload.set("issuedAt", .string(now.rfc3339))
        payload.set("nextUpdate", .string(now.adding(seconds: 86_400).rfc3339))
        payload.set("keys", f.keys.json["keys"] ?? .array([]))
        write("signedkeyset", "payload", Array("P".utf8) + JSONWriter.encode(.object(payload)))
        write("signedkeyset", "anchors", Array(("A# anchors\n" + f.anchor.publicKey.paserk + "\r\n\n" + f.signer.publicKey.paserk + "\n").utf8))
        write("signedkeyset", "anchors-secret", Array(("A" + f.stranger.exportPASERK() + "\n").utf8))

        // time: timestamps and durations
        for (i, t) in ["2026-01-31T12:00:00Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2024-02-29T23:59:59Z",
                       "2026-02-30T00:00:00Z", "2026-01-31T12:00:00+00:00", "30d", "90m", "100y", "0s"].enumerated() {
            write("time", "seed-\(i)", Array(t.utf8))
        }
        // scan: a chunk-size selector byte, then text with tokens of every kind and near misses
        let live = try Issuer(key: signer).issue(valid)
        var scanText = "# config\nAPI_TOKEN=\(live)\n"
        for (name, c) in samples where ["revoked", "deleted", "expired", "owner-revoked", "nbf-future"].contains(name) {
            scanText += "\(name): \"\(try Issuer(key: signer).issue(c))\"\n"
        }
        scanText += "retired=" + (try Issuer(key: f.retired).issue(valid)) + "\n"
        scanText += "stranger=" + (try Issuer(key: f.stranger).issue(valid)) + "\n"
        write("scan", "one-token", [3] + Array("Authorization: Bearer \(live)\r\n".utf8))
        write("scan", "every-kind", [9] + Array(scanText.utf8))
        write("scan", "glued", [5] + Array((live + live + " " + live + "x").utf8))
        write("scan", "near-misses", [0] + Array(("v4.public. v4.public.\(live.dropFirst(10).prefix(90)).eyJraWQiOiJrNC5waWQu "
                                                   + "v4.publi v4.public.\(String(repeating: "A", count: 8100)).\(live.suffix(82))").utf8))
        let forged = String(live.prefix(50)) + (live.dropFirst(50).first == "A" ? "B" : "A") + String(live.dropFirst(51))
        write("scan", "forged", [6] + Array("forged: \(forged)\n".utf8))

        print("seed corpora written to \(root)")
    }

    static func write(_ target: String, _ name: String, _ bytes: [UInt8]) {
        let dir = "\(root)/\(target)"
        _ = mkdir(root, 0o755)
        _ = mkdir(dir, 0o755)
        let path = "\(dir)/\(name)"
        guard let file = fopen(path, "wb") else { fatalError("cannot write \(path)") }
        _ = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
        fclose(file)
    }
}
