import Benchmark
import PATKit
#if canImport(Glibc)
import Glibc
#endif

// The leak scanner's speed (`pat scan`): MB/s of text through TokenScanner on one core, with no
// token present and with tokens, next to a same-run floor: memchr over the same bytes for a byte
// that is not there (how fast one core can read the buffer at all). Time is per pass over the
// 16 MiB text; bench-report.py turns it into MB/s and the ratio to the floor.

func registerScanBenchmarks() {
    let timing: [BenchmarkMetric] = [.wallClock, .throughput, .custom("bytes_per_pass", useScalingFactor: false)]
    let config = Benchmark.Configuration(metrics: timing, timeUnits: .microseconds, warmupIterations: 3,
                                         maxDuration: .seconds(3), maxIterations: 1000)
    Benchmark("baseline.memchr_16MiB", configuration: config) { benchmark in
        runMemchr(benchmark, ScanFixture.shared.tokenFree)
    }
    Benchmark("scan.token_free_16MiB", configuration: config) { benchmark in
        runScan(benchmark, ScanFixture.shared.tokenFree, expecting: 0)
    }
    Benchmark("scan.tokens_16MiB", configuration: config) { benchmark in
        runScan(benchmark, ScanFixture.shared.withTokens, expecting: ScanFixture.shared.tokenCount)
    }
    // What `pat scan` does per token beyond finding it: verify, look up, classify.
    Benchmark("scan.tokens_verified_16MiB", configuration: config) { benchmark in
        runScanVerified(benchmark, ScanFixture.shared)
    }
}

func runMemchr(_ benchmark: Benchmark, _ text: [UInt8]) {
    text.withUnsafeBytes { buffer in
        guard let base = buffer.baseAddress else { fail("memchr: empty text") }
        var hits = 0
        var absent: Int32 = 0
        benchmark.measurement(.custom("bytes_per_pass", useScalingFactor: false), buffer.count)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            // A different absent byte (1…8) each pass, so the compiler cannot hoist the call.
            absent = absent % 8 + 1
            if memchr(base, absent, buffer.count) != nil { hits += 1 }
            blackHole(absent)
        }
        benchmark.stopMeasurement()
        if hits != 0 { fail("memchr baseline: the text holds a byte from 1 to 8") }
    }
}

func runScan(_ benchmark: Benchmark, _ text: [UInt8], expecting count: Int) {
    var found = 0
    benchmark.measurement(.custom("bytes_per_pass", useScalingFactor: false), text.count)
    benchmark.startMeasurement()
    for _ in benchmark.scaledIterations {
        scanInChunks(text) { blackHole($0); found += 1 }
    }
    benchmark.stopMeasurement()
    let passes = benchmark.scaledIterations.count
    if found != count * passes { fail("scan: found \(found) tokens in \(passes) passes, expected \(count) a pass") }
}

func runScanVerified(_ benchmark: Benchmark, _ f: ScanFixture) {
    var live = 0
    benchmark.measurement(.custom("bytes_per_pass", useScalingFactor: false), f.withTokens.count)
    benchmark.startMeasurement()
    for _ in benchmark.scaledIterations {
        scanInChunks(f.withTokens) { match in
            if f.inspector.inspect(match.token).status == .live { live += 1 }
        }
    }
    benchmark.stopMeasurement()
    if live != f.tokenCount * benchmark.scaledIterations.count { fail("scan.tokens_verified: not every token was live") }
}

/// One pass of a fresh scanner over `text` in 1 MiB chunks, as `pat scan` reads files.
@inline(__always)
func scanInChunks(_ text: [UInt8], _ onMatch: (TokenScanner.Match) -> Void) {
    text.withUnsafeBytes { buffer in
        var scanner = TokenScanner()
        var at = 0
        while at < buffer.count {
            let end = min(buffer.count, at + (1 << 20))
            scanner.scan(UnsafeRawBufferPointer(rebasing: buffer[at..<end]), onMatch)
            at = end
        }
        scanner.finish(onMatch)
    }
}

/// 16 MiB of text like a source tree or a log (prose, code, base64 key material, near misses
/// such as "v4.public." in documentation), deterministic; and the same 16 MiB with a live
/// token (distinct ids) written over it every 64 KiB (256 tokens).
final class ScanFixture: Sendable {
    static let shared = ScanFixture()
    static let size = 16 << 20

    let tokenFree: [UInt8]
    let withTokens: [UInt8]
    let tokenCount: Int
    let inspector: TokenInspector

    init() {
        var state: UInt64 = 0x5EED_CAFE
        func next(_ bound: Int) -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((state >> 33) % UInt64(bound))
        }
        let words = ["the", "value", "version", "verify", "token", "public", "private", "v4", "vivid", "over", "service",
                     "revocation", "list", "key", "deploy", "environment", "variable", "valid", "invalid", "request", "of", "and"]
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(ScanFixture.size + 4096)
        while text.count < ScanFixture.size {
            switch next(20) {
            case 0: // base64 key material, as in PEM files
                for _ in 0..<76 { text.append(alphabet[next(64)]) }
            case 1: // documentation that names the format
                text += Array("A PAT looks like v4.public.eyJqdGkiOi… with a footer; see `pat verify`.".utf8)
            case 2, 3, 4: // code
                text += Array("    let value = try validator.validate(request.header(\"Authorization\"), domain: env[\"DOMAIN\"])".utf8)
            default: // prose
                for w in 0..<(8 + next(10)) {
                    if w > 0 { text.append(0x20) }
                    text += Array(words[next(words.count)].utf8)
                }
                text.append(UInt8(ascii: "."))
            }
            text.append(0x0A)
        }
        text.removeLast(text.count - ScanFixture.size)
        tokenFree = text
        guard TokenScanner.matches(in: text).isEmpty else { fail("the token-free text holds a token") }

        do {
            let key = try SecretKey.generate()
            let keys = KeySet(keys: [key.publicKey])
            let now = Timestamp.now()
            // The same 16 MiB with a token written over the text every 64 KiB.
            var withTokens = text
            var count = 0
            var at = 4096
            while at + 8192 < withTokens.count {
                let claims = PATClaims(id: PATClaims.newID(), subject: "user-\(count)", generation: 1, issuedAt: now,
                                       expiresAt: now.adding(seconds: 86_400), domain: "d1",
                                       scopes: try ScopeSet(parsing: ["clients:view", "channels:connect_client:ch-42"]))
                let line = Array("\nTOKEN=\(try Issuer(key: key).issue(claims))\n".utf8)
                withTokens.replaceSubrange(at..<(at + line.count), with: line)
                count += 1
                at += 65_536
            }
            self.withTokens = withTokens
            tokenCount = count
            inspector = TokenInspector(keys: keys, revocations: nil)
        } catch {
            fail("scan fixture: \(error)")
        }
        guard TokenScanner.matches(in: withTokens).count == tokenCount else { fail("the scan fixture's tokens are not all found") }
    }
}
