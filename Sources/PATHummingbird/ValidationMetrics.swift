import CoreMetrics
import PATKit

/// Validation metrics, recorded through swift-metrics by ``PATAuthenticator`` and the `/verify`
/// gate; any swift-metrics back end exports them (`pat serve` uses Prometheus at `/metrics`).
///
/// - `patkit_validations_total{result}`: validations by result, `ok` or the refusal's code
///   (`expired`, `revoked`, `bad_signature`, …; `missing_token` when the request carried none);
/// - `patkit_validation_duration_seconds`: the validation's latency (a timer: a histogram in
///   Prometheus), signature check or cache hit included;
/// - ``record(_:)`` with a `Validator`: its cache (entries, bytes, hits), list and key set, as
///   gauges read at scrape time, so nothing is added to the validation itself.
///
/// Every handle is made once, when this is created: a validation costs two clock reads, one
/// atomic counter increment and one histogram observation. Create it with the factory the
/// application exports (or after `MetricsSystem.bootstrap`).
public final class PATValidationMetrics: Sendable {
    /// One counter per result, indexed like `results`.
    private let counters: [Counter]
    private let missingTokenCounter: Counter
    private let duration: Timer
    private let cacheEntries: Gauge
    private let cacheBytes: Gauge
    private let cacheHits: Gauge
    private let listSequence: Gauge
    private let listAge: Gauge
    private let listEntries: Gauge
    private let keySetSequence: Gauge

    /// The counter slots: `ok` first, then every refusal code.
    private static let results: [String] = ["ok"] + PATValidationError.Code.allCases.map(\.rawValue)

    public static let validationsName = "patkit_validations_total"
    public static let durationName = "patkit_validation_duration_seconds"

    public init(factory: any MetricsFactory = MetricsSystem.factory) {
        counters = Self.results.map { Counter(label: Self.validationsName, dimensions: [("result", $0)], factory: factory) }
        missingTokenCounter = Counter(label: Self.validationsName, dimensions: [("result", "missing_token")], factory: factory)
        duration = Timer(label: Self.durationName, dimensions: [], factory: factory)
        cacheEntries = Gauge(label: "patkit_validation_cache_entries", factory: factory)
        cacheBytes = Gauge(label: "patkit_validation_cache_bytes", factory: factory)
        cacheHits = Gauge(label: "patkit_validation_cache_hits", factory: factory)
        listSequence = Gauge(label: "patkit_revocation_list_sequence", factory: factory)
        listAge = Gauge(label: "patkit_revocation_list_age_seconds", factory: factory)
        listEntries = Gauge(label: "patkit_revocation_list_entries", factory: factory)
        keySetSequence = Gauge(label: "patkit_key_set_sequence", factory: factory)
    }

    /// Validates `token` with `validator` and records the result and its latency.
    public func validate(_ token: String, with validator: Validator, domain: String?) throws(PATValidationError) -> VerifiedPAT {
        let start = ContinuousClock.now
        do {
            let pat = try validator.validate(token, domain: domain)
            finish(slot: 0, start: start)
            return pat
        } catch {
            finish(slot: Self.slot(of: error.code), start: start)
            throw error
        }
    }

    /// Validates `token`, recorded by `metrics` when there are metrics (the one call the gate and
    /// the authenticator make).
    public static func validate(_ token: String, with validator: Validator, domain: String?,
                                recordedBy metrics: PATValidationMetrics?) throws(PATValidationError) -> VerifiedPAT {
        guard let metrics else { return try validator.validate(token, domain: domain) }
        return try metrics.validate(token, with: validator, domain: domain)
    }

    /// A request that carried no token at all.
    public func recordMissingToken() { missingTokenCounter.increment() }

    /// A refusal decided before the validator ran (e.g. a malformed `Authorization` header).
    public func recordRefusal(_ code: PATValidationError.Code) { counters[Self.slot(of: code)].increment() }

    /// Sets the gauges from `validator`'s current state (call it when metrics are scraped).
    public func record(_ validator: Validator) {
        cacheEntries.record(validator.cachedTokenCount)
        cacheBytes.record(validator.cachedBytes)
        cacheHits.record(validator.cacheHitCount)
        if let list = validator.revocations {
            listSequence.record(Int64(clamping: list.sequence))
            listAge.record(max(0, validator.now().seconds - list.issuedAt.seconds))
            listEntries.record(list.tokenEntryCount + list.ownerEntryCount)
        }
        if let keySet = validator.signedKeySet { keySetSequence.record(Int64(clamping: keySet.sequence)) }
    }

    private func finish(slot: Int, start: ContinuousClock.Instant) {
        let elapsed = ContinuousClock.now - start
        counters[slot].increment()
        let (seconds, attoseconds) = elapsed.components
        duration.recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }

    private static func slot(of code: PATValidationError.Code) -> Int {
        // `results` lists the codes in `allCases` order after "ok".
        (PATValidationError.Code.allCases.firstIndex(of: code) ?? 0) + 1
    }
}
