import Benchmark
import CSodiumBaseline
import Foundation
import Dispatch
@_spi(Benchmarks) import PATKit
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

// Every figure is measured in the same run as `baseline.libsodium_verify`: one bare
// crypto_sign_verify_detached over the same token's PAE message. Compare ratios, not
// absolute numbers (these machines are noisy). Timed work lives in the plain functions below.
// Nothing here can quietly measure a failure: every check's result is checked (a failing
// fixture or validation stops the run with a message), and memory is measured, not computed.

let benchmarks: @Sendable () -> Void = {
    let timing: [BenchmarkMetric] = [.wallClock, .throughput, .mallocCountTotal]
    Benchmark.defaultConfiguration = .init(metrics: timing, timeUnits: .nanoseconds, warmupIterations: 10,
                                           maxDuration: .seconds(3), maxIterations: 100_000)

    Benchmark("baseline.libsodium_verify") { benchmark in
        runBaseline(benchmark, Fixture.shared)
    }
    // Both cycle through the same 4,096 tokens with different ids, so the 1M-entry list is
    // probed at different slots each time (cold cache), as a real mix of callers would.
    Benchmark("validate.fresh") { benchmark in
        runValidate(benchmark, Fixture.shared.freshValidator, Fixture.shared.probeTokens)
    }
    // Lineage (`par`): the same tokens minted four levels down (four ancestors to look up).
    Benchmark("validate.fresh_lineage_4") { benchmark in
        runValidate(benchmark, Fixture.shared.freshValidator, Fixture.shared.lineageProbeTokens)
    }
    // Root and depth-4 tokens validated in alternating batches of one run: the overhead of
    // lineage in per mille of a fresh validation (median over batches; robust to drift).
    Benchmark("validate.lineage_overhead", configuration: .init(metrics: [.custom("overhead_permille", useScalingFactor: false)],
                                                              warmupIterations: 0, maxDuration: .seconds(60), maxIterations: 1)) { benchmark in
        runLineageOverhead(benchmark, Fixture.shared)
    }
    // Metrics on (pat serve's /metrics): the overhead on a fresh validation, per mille.
    Benchmark("validate.metrics_overhead", configuration: .init(metrics: [.custom("overhead_permille", useScalingFactor: false)],
                                                              warmupIterations: 0, maxDuration: .seconds(60), maxIterations: 1)) { benchmark in
        runMetricsOverhead(benchmark, Fixture.shared)
    }
    Benchmark("validate.revocations_1M") { benchmark in
        runValidate(benchmark, MillionFixture.shared.validator, Fixture.shared.probeTokens)
    }
    // The lookup alone (precomputed keys), cycling through 65,536 ids, half of them listed:
    // a hash table stays flat from 10 to 1,000,000 entries (only cache misses grow); a
    // binary search would add about 20 dependent probes.
    Benchmark("revocations.lookup_small", configuration: .init(metrics: timing, scalingFactor: .kilo)) { benchmark in
        runLookup(benchmark, MillionFixture.shared.small, MillionFixture.shared.probes)
    }
    Benchmark("revocations.lookup_1M", configuration: .init(metrics: timing, scalingFactor: .kilo)) { benchmark in
        runLookup(benchmark, MillionFixture.shared.list, MillionFixture.shared.probes)
    }
    let cacheMetrics: [BenchmarkMetric] = ["cache_bytes_per_entry", "cache_charged_per_entry",
                                           "cache_bytes_per_entry_100_scopes", "cache_charged_per_entry_100_scopes"]
        .map { .custom($0, useScalingFactor: false) }
    Benchmark("validate.cached", configuration: .init(metrics: timing + cacheMetrics, scalingFactor: .kilo)) { benchmark in
        runCached(benchmark, Fixture.shared)
    }
    Benchmark("authorize.20_scopes", configuration: .init(metrics: timing, scalingFactor: .kilo)) { benchmark in
        runAuthorize(benchmark, Fixture.shared)
    }
    Benchmark("issue.sign") { benchmark in
        runIssue(benchmark, Fixture.shared)
    }
    let load: [BenchmarkMetric] = [.wallClock, .mallocBytesCount, .peakMemoryResidentDelta,
                                   .custom("file_bytes_per_entry", useScalingFactor: false),
                                   .custom("held_rss_bytes", useScalingFactor: false)]
    Benchmark("revocations.load_100k", configuration: .init(metrics: load, warmupIterations: 1, maxDuration: .seconds(5), maxIterations: 10)) { benchmark in
        runLoad(benchmark, Fixture.shared, path: Fixture.listPath(100_000), entries: 100_000)
    } setup: {
        Fixture.shared.writeListFile(entries: 100_000)
    }
    Benchmark("revocations.load_1M", configuration: .init(metrics: load, warmupIterations: 1, maxDuration: .seconds(10), maxIterations: 5)) { benchmark in
        runLoad(benchmark, Fixture.shared, path: Fixture.listPath(1_000_000), entries: 1_000_000)
    } setup: {
        Fixture.shared.writeListFile(entries: 1_000_000)
    }
    // The same two-thread shape twice, interleaved: bare libsodium on every core, then
    // validations on every core. Their ratios to the one-core figures are compared.
    Benchmark("baseline.libsodium_verify_all_cores", configuration: .init(metrics: timing, scalingFactor: .kilo, maxDuration: .seconds(5))) { benchmark in
        runBaselineAllCores(benchmark, Fixture.shared)
    }
    Benchmark("validate.fresh_all_cores", configuration: .init(metrics: timing, scalingFactor: .kilo, maxDuration: .seconds(5))) { benchmark in
        runAllCores(benchmark, Fixture.shared)
    }
    // Cached validations on every core, each thread with its own tokens: what is left is the
    // shared state every call reads (the validator's snapshot), so contention there shows.
    Benchmark("validate.cached_all_cores", configuration: .init(metrics: timing, scalingFactor: .mega, maxDuration: .seconds(5))) { benchmark in
        runCachedAllCores(benchmark, Fixture.shared)
    }
    registerScanBenchmarks()
}

// MARK: - timed functions

func runBaseline(_ benchmark: Benchmark, _ f: Fixture) {
    f.pae.withUnsafeBufferPointer { message in
        f.signature.withUnsafeBufferPointer { signature in
            f.publicKey.bytes.withUnsafeBufferPointer { key in
                guard let m = message.baseAddress, let s = signature.baseAddress, let k = key.baseAddress else {
                    fail("baseline: empty fixture buffers")
                }
                var failures = 0
                benchmark.startMeasurement()
                for _ in benchmark.scaledIterations {
                    // Counted, not branched on: the same work as a verification that is used.
                    failures &+= Int(crypto_sign_verify_detached(s, m, UInt64(message.count), k) != 0 ? 1 : 0)
                }
                benchmark.stopMeasurement()
                if failures != 0 { fail("baseline: crypto_sign_verify_detached did not return 0 (\(failures) times)") }
            }
        }
    }
}

func runValidate(_ benchmark: Benchmark, _ validator: Validator, _ tokens: [String]) {
    let mask = tokens.count - 1 // a power of two
    var i = 0
    benchmark.startMeasurement()
    for _ in benchmark.scaledIterations {
        blackHole(mustValidate(validator, tokens[i & mask]))
        i &+= 1
    }
    benchmark.stopMeasurement()
}

func runLineageOverhead(_ benchmark: Benchmark, _ f: Fixture) {
    let validator = f.freshValidator
    let batch = 100, rounds = 1_001
    let mask = f.probeTokens.count - 1
    var next = 0
    func time(_ tokens: [String]) -> UInt64 {
        let start = DispatchTime.now().uptimeNanoseconds
        for i in 0..<batch { blackHole(mustValidate(validator, tokens[(next + i) & mask])) }
        return DispatchTime.now().uptimeNanoseconds - start
    }
    _ = time(f.probeTokens)
    _ = time(f.lineageProbeTokens)
    var ratios: [Double] = []
    for round in 0..<rounds {
        // Alternate which goes first, so neither always follows the other; both see the same ids.
        let root: UInt64, deep: UInt64
        if round % 2 == 0 {
            root = time(f.probeTokens)
            deep = time(f.lineageProbeTokens)
        } else {
            deep = time(f.lineageProbeTokens)
            root = time(f.probeTokens)
        }
        next &+= batch
        ratios.append(Double(deep) / Double(root))
    }
    ratios.sort()
    benchmark.measurement(.custom("overhead_permille", useScalingFactor: false), Int(((ratios[rounds / 2] - 1) * 1000).rounded()))
}

func runLookup(_ benchmark: Benchmark, _ list: RevocationList, _ probes: [(claims: PATClaims, key: EntryKey)]) {
    let mask = probes.count - 1 // a power of two
    var i = 0, refused = 0
    let now = Timestamp.now()
    benchmark.startMeasurement()
    for _ in benchmark.scaledIterations {
        let probe = probes[i & mask]
        if list.check(probe.claims, tokenKey: probe.key, ownerKey: nil, now: now) != nil { refused &+= 1 }
        i &+= 1
    }
    benchmark.stopMeasurement()
    blackHole(refused)
}

func runCached(_ benchmark: Benchmark, _ f: Fixture) {
    let validator = f.cachingValidator
    _ = mustValidate(validator, f.token) // warm
    let hits = validator.cacheHitCount
    // Memory per cached token, measured (resident set growth) and as the cache charges it
    // against `cacheMaxBytes`: the charge must not be below the measurement.
    benchmark.measurement(.custom("cache_bytes_per_entry", useScalingFactor: false), f.cacheBytesPerEntry.measured)
    benchmark.measurement(.custom("cache_charged_per_entry", useScalingFactor: false), f.cacheBytesPerEntry.charged)
    benchmark.measurement(.custom("cache_bytes_per_entry_100_scopes", useScalingFactor: false), f.wideCacheBytesPerEntry.measured)
    benchmark.measurement(.custom("cache_charged_per_entry_100_scopes", useScalingFactor: false), f.wideCacheBytesPerEntry.charged)
    benchmark.startMeasurement()
    for _ in benchmark.scaledIterations {
        blackHole(mustValidate(validator, f.token))
    }
    benchmark.stopMeasurement()
    if validator.cacheHitCount == hits { fail("validate.cached: no validation was answered from the cache") }
}

func runAuthorize(_ benchmark: Benchmark, _ f: Fixture) {
    let pat = f.twentyScopePAT
    benchmark.startMeasurement()
    for _ in benchmark.scaledIterations {
        // The last of 20 scopes: the worst case of the linear scan.
        blackHole(pat.allows(entity: "groups", operation: "view", id: "g-19"))
    }
    benchmark.stopMeasurement()
}

func runIssue(_ benchmark: Benchmark, _ f: Fixture) {
    let issuer = Issuer(key: f.secretKey)
    let claims = f.claims
    benchmark.startMeasurement()
    for _ in benchmark.scaledIterations {
        do { blackHole(try issuer.issue(claims)) } catch { fail("issue.sign: \(error)") }
    }
    benchmark.stopMeasurement()
}

func runLoad(_ benchmark: Benchmark, _ f: Fixture, path: String, entries: Int) {
    var loaded: RevocationList? = nil
    var fileBytes = 0
    // Hand memory freed by the fixtures back to the system first, so the resident set can
    // only grow by what loading takes (malloc would otherwise reuse it unseen).
    trimMalloc()
    let before = residentBytes()
    benchmark.startMeasurement()
    for _ in benchmark.scaledIterations {
        loaded = nil // never hold two lists at once
        do {
            let bytes = try readFile(path)
            fileBytes = bytes.count
            loaded = try RevocationList(verifying: bytes, keys: f.keySet)
        } catch {
            fail("load of \(path) failed: \(error)")
        }
    }
    benchmark.stopMeasurement()
    guard let list = loaded, list.tokenEntryCount == entries else { fail("load of \(path): expected \(entries) entries") }
    // Measured: the resident set with the list held, over what it was before loading.
    benchmark.measurement(.custom("held_rss_bytes", useScalingFactor: false), max(0, residentBytes() - before))
    benchmark.measurement(.custom("file_bytes_per_entry", useScalingFactor: false), fileBytes / max(1, entries))
    blackHole(loaded)
}

func runAllCores(_ benchmark: Benchmark, _ f: Fixture) {
    let validator = f.freshValidator
    let token = f.token
    let cores = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    let total = benchmark.configuration.scalingFactor.rawValue
    benchmark.startMeasurement()
    DispatchQueue.concurrentPerform(iterations: cores) { core in
        // Every one of the `total` validations runs, whatever the number of cores.
        let share = total / cores + (core < total % cores ? 1 : 0)
        for _ in 0..<share { blackHole(mustValidate(validator, token)) }
    }
    benchmark.stopMeasurement()
}

func runCachedAllCores(_ benchmark: Benchmark, _ f: Fixture) {
    let validator = f.cachingValidator
    let cores = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    let tokens = f.threadTokens
    for list in tokens { for t in list { _ = mustValidate(validator, t) } } // warm
    let hits = validator.cacheHitCount
    let total = benchmark.configuration.scalingFactor.rawValue
    benchmark.startMeasurement()
    DispatchQueue.concurrentPerform(iterations: cores) { core in
        let mine = tokens[core % tokens.count]
        let share = total / cores + (core < total % cores ? 1 : 0)
        for i in 0..<share { blackHole(mustValidate(validator, mine[i & 63])) }
    }
    benchmark.stopMeasurement()
    if validator.cacheHitCount == hits { fail("validate.cached_all_cores: no validation was answered from the cache") }
}

/// Bare `crypto_sign_verify_detached` on every core at once: the ceiling for `runAllCores`.
func runBaselineAllCores(_ benchmark: Benchmark, _ f: Fixture) {
    let cores = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    let total = benchmark.configuration.scalingFactor.rawValue
    let message = f.pae, signature = f.signature, key = f.publicKey.bytes
    let failures = Atomic<Int>(0)
    benchmark.startMeasurement()
    DispatchQueue.concurrentPerform(iterations: cores) { core in
        let share = total / cores + (core < total % cores ? 1 : 0)
        message.withUnsafeBufferPointer { m in
            signature.withUnsafeBufferPointer { s in
                key.withUnsafeBufferPointer { k in
                    guard let mp = m.baseAddress, let sp = s.baseAddress, let kp = k.baseAddress else { return }
                    var failed = 0
                    for _ in 0..<share { failed &+= Int(crypto_sign_verify_detached(sp, mp, UInt64(m.count), kp) != 0 ? 1 : 0) }
                    failures.add(failed, ordering: .relaxed)
                }
            }
        }
    }
    benchmark.stopMeasurement()
    if failures.load(ordering: .relaxed) != 0 { fail("baseline all cores: crypto_sign_verify_detached did not return 0") }
}

/// Validates or stops the run: a benchmark of failing validations would measure nothing useful.
@inline(__always)
func mustValidate(_ validator: Validator, _ token: String) -> VerifiedPAT {
    do { return try validator.validate(token) } catch { fail("validation failed: \(error)") }
}

// MARK: - fixture (built once, outside the measurements)

/// A validator holding a revocation list of 1,000,000 entries, the same list and a 10-entry one
/// for lookups, and 65,536 probe ids (half of them listed) with their lookup keys (built only where used).
final class MillionFixture: Sendable {
    static let shared = MillionFixture()
    let validator: Validator
    let list: RevocationList
    let small: RevocationList
    let probes: [(claims: PATClaims, key: EntryKey)]

    init() {
        let f = Fixture.shared
        do {
            let now = Timestamp.now()
            var probes: [(claims: PATClaims, key: EntryKey)] = []
            var listed: [String] = []
            for i in 0..<65_536 {
                var claims = f.claims
                claims.id = PATClaims.newID()
                probes.append((claims, RevocationList.tokenKey(claims.id)))
                if i % 2 == 0 { listed.append(claims.id) }
            }
            self.probes = probes
            list = try RevocationList(verifying: Fixture.listBytes(entries: 1_000_000, key: f.secretKey, now: now, including: listed),
                                      keys: f.keySet)
            small = try RevocationList(verifying: Fixture.listBytes(entries: 10, key: f.secretKey, now: now), keys: f.keySet)
            guard list.tokenEntryCount == 1_000_000, list.check(probes[0].claims) != nil, list.check(probes[1].claims) == nil else {
                fail("the 1M-entry fixture does not hold what it should")
            }
            var noCache = Validator.Policy()
            noCache.cacheCapacity = 0
            validator = Validator(keys: f.keySet, revocations: list, policy: noCache)
            for token in f.probeTokens { _ = mustValidate(validator, token) }
        } catch {
            fail("benchmark fixture failed: \(error)")
        }
    }
}

final class Fixture: Sendable {
    static let shared = Fixture()

    let secretKey: SecretKey
    let publicKey: PublicKey
    let keySet: KeySet
    let claims: PATClaims
    let token: String
    /// `probeTokens` minted four levels down: the same claims with a lineage of four ancestors (`par`).
    let lineageProbeTokens: [String]
    /// 4,096 valid tokens with different ids (none listed), cycled through by the validate benchmarks.
    let probeTokens: [String]
    let pae: [UInt8]
    let signature: [UInt8]
    let freshValidator: Validator
    let cachingValidator: Validator
    let twentyScopePAT: VerifiedPAT
    let cacheBytesPerEntry: (measured: Int, charged: Int)
    let wideCacheBytesPerEntry: (measured: Int, charged: Int)
    /// 64 distinct tokens for each of up to 8 threads.
    let threadTokens: [[String]]

    init() {
        do {
            secretKey = try SecretKey.generate()
            publicKey = secretKey.publicKey
            keySet = KeySet(keys: [publicKey])
            let now = Timestamp.now()
            claims = PATClaims(id: PATClaims.newID(), subject: "user-7f3a9c", generation: 3, issuedAt: now,
                               expiresAt: now.adding(seconds: 30 * 86_400), domain: "domain-1",
                               scopes: try ScopeSet(parsing: ["clients:view", "clients:update:c-1", "channels:view",
                                                              "channels:connect_client:ch-42", "groups:view"]))
            token = try Issuer(key: secretKey).issue(claims)
            let issuer = Issuer(key: secretKey)
            let lineage = try (1...4).map { try PATAncestor(id: PATClaims.newID(), generation: UInt64($0)) }
            var probes: [String] = [], deepProbes: [String] = []
            for _ in 0..<4096 {
                var c = claims
                c.id = PATClaims.newID()
                probes.append(try issuer.issue(c))
                c.lineage = lineage // the same token minted four levels down
                deepProbes.append(try issuer.issue(c))
            }
            probeTokens = probes
            lineageProbeTokens = deepProbes
            let parts = try PASETOv4Public.parse(token)
            pae = PASETOv4Public.pae([Array("v4.public.".utf8), parts.message, parts.footer, []])
            signature = parts.signature

            var smallList = RevocationList.Builder()
            for _ in 0..<10 { smallList.revoke(id: PATClaims.newID(), below: 2, horizon: now.adding(seconds: 86_400)) }
            let small = try RevocationList(verifying: smallList.sign(with: secretKey, sequence: 1, issuedAt: now,
                                                                     nextUpdate: now.adding(seconds: 3600)), keys: keySet)
            var noCache = Validator.Policy()
            noCache.cacheCapacity = 0
            freshValidator = Validator(keys: keySet, revocations: small, policy: noCache)
            cachingValidator = Validator(keys: keySet, revocations: small)

            var scopes: [String] = []
            for i in 0..<19 { scopes.append("clients:view:c-\(i)") }
            scopes.append("groups:view:g-19")
            var wide = claims
            wide.scopes = try ScopeSet(parsing: scopes)
            let wideToken = try Issuer(key: secretKey).issue(wide)
            twentyScopePAT = try freshValidator.validate(wideToken)
            for token in [token] + probeTokens { _ = mustValidate(freshValidator, token) }
            guard twentyScopePAT.allows(entity: "groups", operation: "view", id: "g-19") else {
                fail("the 20-scope fixture does not grant its last scope")
            }
            cacheBytesPerEntry = try Fixture.measureCacheEntryBytes(secretKey: secretKey, keySet: keySet, list: small, template: claims)
            var hundred = claims
            hundred.scopes = try ScopeSet(parsing: (0..<100).map { "clients:view:c-\($0)" })
            let threadIssuer = Issuer(key: secretKey)
            let template = claims
            threadTokens = try (0..<8).map { _ in
                try (0..<64).map { _ in
                    var c = template
                    c.id = PATClaims.newID()
                    return try threadIssuer.issue(c)
                }
            }
            wideCacheBytesPerEntry = try Fixture.measureCacheEntryBytes(secretKey: secretKey, keySet: keySet, list: small, template: hundred)
        } catch {
            fail("benchmark fixture failed: \(error)")
        }
    }

    /// A signed list of `entries` entries: the `including` ids (revoked below generation 9,
    /// above the fixture's 3) and random others.
    static func listBytes(entries: Int, key: SecretKey, now: Timestamp, including: [String] = []) throws -> [UInt8] {
        var builder = RevocationList.Builder()
        for id in including.prefix(entries) { builder.revoke(id: id, below: 9, horizon: now.adding(seconds: 86_400)) }
        for i in 0..<max(0, entries - including.count) {
            builder.revoke(id: PATClaims.newID(), below: UInt64(2 + i % 7), horizon: now.adding(seconds: 86_400 + Int64(i % 1000)))
        }
        return try builder.sign(with: key, sequence: 1, issuedAt: now, nextUpdate: now.adding(seconds: 3600))
    }

    static func listPath(_ entries: Int) -> String { "/tmp/patkit-bench-revocations-\(entries).bin" }

    /// Writes a signed list of `entries` entries for the load benchmarks (in their setup).
    func writeListFile(entries: Int) {
        let path = Fixture.listPath(entries)
        do {
            try Data(Fixture.listBytes(entries: entries, key: secretKey, now: .now())).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            fail("cannot write \(path): \(error)")
        }
    }

    /// Memory the cache holds per entry: growth of the resident set while a fresh cache
    /// fills with 20,000 distinct tokens (the token strings are counted back in, since the
    /// test also holds them).
    static func measureCacheEntryBytes(secretKey: SecretKey, keySet: KeySet, list: RevocationList,
                                       template: PATClaims) throws -> (measured: Int, charged: Int) {
        let count = 20_000
        let issuer = Issuer(key: secretKey)
        var tokens: [String] = []
        tokens.reserveCapacity(count)
        for _ in 0..<count {
            var c = template
            c.id = PATClaims.newID()
            tokens.append(try issuer.issue(c))
        }
        var policy = Validator.Policy()
        policy.cacheMaxBytes = 1 << 30 // room for all of them: this measures, it does not evict
        let validator = Validator(keys: keySet, revocations: list, policy: policy)
        trimMalloc()
        let before = residentBytes()
        for t in tokens { _ = try validator.validate(t) }
        let after = residentBytes()
        let tokenBytes = tokens.reduce(0) { $0 + $1.utf8.count + 32 }
        guard validator.cachedTokenCount == count else { throw PATKitError.invalidArgument("only \(validator.cachedTokenCount) cached") }
        return ((after - before + tokenBytes) / count, validator.cachedBytes / count)
    }
}

func warn(_ message: String) {
    let bytes = Array(message.utf8)
    bytes.withUnsafeBytes { _ = write(2, $0.baseAddress, $0.count) }
}

/// Stops the run with a message: a broken fixture must never produce a figure.
func fail(_ message: String) -> Never {
    warn("PATBenchmarks: \(message)\n")
    exit(1)
}

/// glibc's malloc_trim(0), looked up at run time (malloc.h is not part of the Glibc module).
func trimMalloc() {
    typealias Trim = @convention(c) (Int) -> Int32
    guard let symbol = dlsym(nil, "malloc_trim") else { return }
    _ = unsafeBitCast(symbol, to: Trim.self)(0)
}

/// Resident set size of this process, from /proc/self/statm (whose stat size is 0, so read by hand).
func residentBytes() -> Int {
    let fd = open("/proc/self/statm", O_RDONLY)
    guard fd >= 0 else { return 0 }
    defer { close(fd) }
    var buffer = [UInt8](repeating: 0, count: 256)
    let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
    let fields = String(decoding: buffer.prefix(max(0, n)), as: UTF8.self).split(separator: " ")
    guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
    return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
}

/// The whole file, as the loader would read it (PATKit's own bounded reader is internal to its package).
func readFile(_ path: String) throws -> [UInt8] {
    guard let data = FileManager.default.contents(atPath: path) else {
        throw CocoaError(.fileReadNoSuchFile, userInfo: [NSFilePathErrorKey: path])
    }
    guard data.count <= RevocationList.defaultMaxBytes else { throw CocoaError(.fileReadTooLarge) }
    return [UInt8](data)
}
