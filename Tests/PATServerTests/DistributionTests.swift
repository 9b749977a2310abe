import CompressNIO
import Foundation
import Hummingbird
import PATKit
import PATServer
import PATStore
import Testing

@Suite("distribution endpoints", .timeLimit(.minutes(5)))
struct DistributionTests {
    /// A key set with several keys (compressible JSON) and a list with a few entries.
    static func published() throws -> (TempDir, Issuing, [UInt8]) {
        let dir = try TempDir()
        let issuing = try Issuing()
        var keys = issuing.keySet
        for _ in 0..<4 { keys.add(try SecretKey.generate().publicKey) }
        let list = try issuing.list(sequence: 3, revoked: [PATClaims.newID(), PATClaims.newID()])
        try dir.publish(keys: try issuing.signedKeys(keys), list: list)
        try dir.pin(issuing.anchors)
        return (dir, issuing, list)
    }

    @Test func keysAreServedWithETagAndRevalidation() async throws {
        let (dir, issuing, _) = try Self.published()
        let onDisk = try SecureFile.read(dir.home.publishedKeysPath, maxBytes: 1 << 20)
        try await withPATServer(PATServerConfiguration(home: dir.home)) { port, _ in
            let url = "http://127.0.0.1:\(port)/.well-known/pat/keys"
            let first = try await http(url)
            #expect(first.status == 200)
            #expect(first.body == onDisk)
            #expect(first.header("Content-Type") == "application/json")
            #expect(first.header("Cache-Control") == "public, no-cache")
            let etag = try #require(first.header("ETag"))
            #expect(etag.hasPrefix("\"") && etag.hasSuffix("\"") && !etag.hasPrefix("W/"), "a strong entity tag")
            #expect(try SignedKeySet(verifying: first.body, anchors: issuing.anchors).keys.activeKeys.count == 5)

            let again = try await http(url, headers: [("If-None-Match", etag)])
            #expect(again.status == 304)
            #expect(again.body.isEmpty)
            #expect(again.header("ETag") == etag)

            let listed = try await http(url, headers: [("If-None-Match", "\"other\", W/\(etag)")])
            #expect(listed.status == 304, "a list of tags, compared weakly")
            let star = try await http(url, headers: [("If-None-Match", "*")])
            #expect(star.status == 304)
            let stale = try await http(url, headers: [("If-None-Match", "\"other\"")])
            #expect(stale.status == 200)

            let head = try await http(url, method: .HEAD)
            #expect(head.status == 200)
            #expect(head.header("ETag") == etag)
            #expect(head.body.isEmpty)
        }
    }

    @Test func revocationsCarryCacheControlUpToNextUpdate() async throws {
        let dir = try TempDir()
        let issuing = try Issuing()
        let now = Timestamp.now()
        let list = try issuing.list(sequence: 7, revoked: [PATClaims.newID()], nextUpdate: now.adding(seconds: 600))
        try dir.publish(keys: try issuing.signedKeys(), list: list)
        try dir.pin(issuing.anchors)
        try await withPATServer(PATServerConfiguration(home: dir.home)) { port, _ in
            let url = "http://127.0.0.1:\(port)/.well-known/pat/revocations"
            // The server reads its clock while answering, between these two readings: max-age is
            // next-update minus that time, however long the request took on a loaded machine.
            let sent = Timestamp.now()
            let first = try await http(url)
            let answered = Timestamp.now()
            #expect(first.status == 200)
            #expect(first.body == list)
            #expect(first.header("Content-Type") == "application/octet-stream")
            let cacheControl = try #require(first.header("Cache-Control"))
            let maxAge = try #require(Self.maxAge(cacheControl))
            let nextUpdate = now.adding(seconds: 600).seconds
            #expect(maxAge <= nextUpdate - sent.seconds && maxAge >= nextUpdate - answered.seconds,
                    "max-age is the time left until next-update: \(cacheControl), asked \(sent), answered by \(answered)")
            let etag = try #require(first.header("ETag"))
            #expect(try RevocationList(verifying: first.body, keys: issuing.keySet).sequence == 7)

            let again = try await http(url, headers: [("If-None-Match", etag)])
            #expect(again.status == 304)
            #expect(again.body.isEmpty)
            #expect(again.header("Cache-Control").flatMap(Self.maxAge) != nil)
        }
    }

    @Test func aListPastNextUpdateGetsMaxAgeZero() async throws {
        let dir = try TempDir()
        let issuing = try Issuing()
        let now = Timestamp.now()
        let list = try issuing.list(sequence: 1, issuedAt: now.adding(seconds: -7200), nextUpdate: now.adding(seconds: -3600))
        try dir.publish(keys: try issuing.signedKeys(), list: list)
        try dir.pin(issuing.anchors)
        try await withPATServer(PATServerConfiguration(home: dir.home)) { port, _ in
            let response = try await http("http://127.0.0.1:\(port)/.well-known/pat/revocations")
            #expect(response.status == 200)
            #expect(response.header("Cache-Control").flatMap(Self.maxAge) == 0)
        }
    }

    @Test func gzipWhenTheClientAcceptsIt() async throws {
        let (dir, _, list) = try Self.published()
        let keys = try SecureFile.read(dir.home.publishedKeysPath, maxBytes: 1 << 20)
        try await withPATServer(PATServerConfiguration(home: dir.home)) { port, _ in
            for (path, original) in [("keys", keys), ("revocations", list)] {
                let url = "http://127.0.0.1:\(port)/.well-known/pat/\(path)"
                let plain = try await http(url)
                let zipped = try await http(url, headers: [("Accept-Encoding", "br;q=1.0, gzip;q=0.8")])
                #expect(plain.header("Content-Encoding") == nil)
                #expect(plain.header("Vary") == "Accept-Encoding")
                guard zipped.header("Content-Encoding") == "gzip" else {
                    // Only served compressed when that is smaller; the key set always is.
                    #expect(path == "revocations", "the key set should compress")
                    continue
                }
                #expect(zipped.status == 200)
                #expect(zipped.body.count < original.count)
                var buffer = ByteBuffer(bytes: zipped.body)
                let inflated = try buffer.decompress(with: .gzip())
                #expect(Array(inflated.readableBytesView) == original)
                let zippedTag = try #require(zipped.header("ETag"))
                #expect(zippedTag != plain.header("ETag"), "each representation has its own strong tag")
                let revalidated = try await http(url, headers: [("Accept-Encoding", "gzip"), ("If-None-Match", zippedTag)])
                #expect(revalidated.status == 304)
                let refused = try await http(url, headers: [("Accept-Encoding", "gzip;q=0")])
                #expect(refused.header("Content-Encoding") == nil)
            }
        }
    }

    @Test func aRepublishedFileIsServedAtOnce() async throws {
        let dir = try TempDir()
        let issuing = try Issuing()
        try dir.publish(keys: try issuing.signedKeys(), list: try issuing.list(sequence: 1))
        try await withPATServer(PATServerConfiguration(home: dir.home)) { port, _ in
            let url = "http://127.0.0.1:\(port)/.well-known/pat/revocations"
            let first = try await http(url)
            let etag = try #require(first.header("ETag"))
            for sequence in UInt64(2)...4 {
                let next = try issuing.list(sequence: sequence, revoked: [PATClaims.newID()])
                try dir.publish(list: next)
                let served = try await http(url, headers: [("If-None-Match", etag)])
                #expect(served.status == 200)
                #expect(served.body == next, "the list on disk is served, never an older one")
                #expect(served.header("ETag") != etag)
            }
        }
    }

    @Test func errorsShareOneJSONShape() async throws {
        let dir = try TempDir()
        try await withPATServer(PATServerConfiguration(home: dir.home)) { port, _ in
            let missing = try await http("http://127.0.0.1:\(port)/.well-known/pat/keys")
            #expect(missing.status == 404)
            #expect(missing.errorCode == "not_published")
            #expect(missing.header("Content-Type") == "application/json; charset=utf-8")
            let list = try await http("http://127.0.0.1:\(port)/.well-known/pat/revocations")
            #expect(list.status == 404)
            #expect(list.errorCode == "not_published")
            let unknown = try await http("http://127.0.0.1:\(port)/nowhere")
            #expect(unknown.status == 404)
            #expect(unknown.errorCode == "not_found")
            let gate = try await http("http://127.0.0.1:\(port)/verify")
            #expect(gate.status == 404, "distribution mode serves no gate")
        }
    }

    static func maxAge(_ cacheControl: String) -> Int? {
        for part in cacheControl.split(separator: ",") {
            let item = part.trimmingCharacters(in: .whitespaces)
            if item.hasPrefix("max-age=") { return Int(item.dropFirst("max-age=".count)) }
        }
        return nil
    }
}
