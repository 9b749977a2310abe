import Hummingbird
import PATHummingbird
import Synchronization

/// Token buckets keyed by caller (the management API keys them by the PAT's `sub`): each key
/// may spend `capacity` requests at once, refilled at `refillPerSecond`. Memory is bounded:
/// past `maxKeys` buckets, the ones that have refilled completely (equivalent to absent) are
/// dropped first.
public final class RateLimiter: Sendable {
    public struct Policy: Sendable, Equatable {
        /// Requests a caller may make at once (the bucket size), at least 1.
        public var capacity: Int
        /// Requests regained per second.
        public var refillPerSecond: Double

        public init(capacity: Int, refillPerSecond: Double) {
            self.capacity = max(1, capacity)
            self.refillPerSecond = refillPerSecond > 0 ? refillPerSecond : 1
        }

        /// `perMinute` requests a minute on average, bursts of up to `burst`.
        public static func perMinute(_ perMinute: Int, burst: Int) -> Policy {
            Policy(capacity: burst, refillPerSecond: Double(max(1, perMinute)) / 60)
        }
    }

    private struct Bucket {
        var tokens: Double
        var updated: Double
    }

    public let policy: Policy
    public let maxKeys: Int
    /// Keyed by the key's UTF-8 bytes: a `String` key would make "\u{e9}ve" and "e\u{301}ve" one
    /// caller (Swift's `==` and hashing are canonical equivalence), letting one spend the other's rate.
    private let buckets: Mutex<[[UInt8]: Bucket]>
    /// Monotonic seconds.
    private let now: @Sendable () -> Double
    private let refused = Atomic<Int>(0)

    public init(policy: Policy, maxKeys: Int = 100_000, now: (@Sendable () -> Double)? = nil) {
        self.policy = policy
        self.maxKeys = max(1, maxKeys)
        self.buckets = Mutex([:])
        if let now {
            self.now = now
        } else {
            let origin = ContinuousClock.now
            self.now = {
                let elapsed = ContinuousClock.now - origin
                return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            }
        }
    }

    /// Spends one request of `key`: nil when allowed, else the whole seconds to wait (≥ 1)
    /// before the next request would be.
    public func acquire(_ key: String) -> Int? {
        let key = Array(key.utf8)
        let t = now()
        let capacity = Double(policy.capacity), rate = policy.refillPerSecond
        return buckets.withLock { buckets -> Int? in
            var bucket = buckets[key] ?? Bucket(tokens: capacity, updated: t)
            bucket.tokens = min(capacity, bucket.tokens + max(0, t - bucket.updated) * rate)
            bucket.updated = t
            defer {
                buckets[key] = bucket
                if buckets.count > maxKeys {
                    Self.evict(&buckets, now: t, capacity: capacity, rate: rate, keeping: key, maxKeys: maxKeys)
                }
            }
            if bucket.tokens >= 1 {
                bucket.tokens -= 1
                return nil
            }
            refused.add(1, ordering: .relaxed)
            return max(1, Int(((1 - bucket.tokens) / rate).rounded(.up)))
        }
    }

    /// Requests refused so far (answered 429).
    public var refusedCount: Int { refused.load(ordering: .relaxed) }

    /// Buckets held now (for tests and status).
    public var keyCount: Int { buckets.withLock { $0.count } }

    private static func evict(_ buckets: inout [[UInt8]: Bucket], now: Double, capacity: Double, rate: Double,
                              keeping key: [UInt8], maxKeys: Int) {
        buckets = buckets.filter { entry in
            entry.key == key || entry.value.tokens + max(0, now - entry.value.updated) * rate < capacity
        }
        // Every bucket in use: forget all but the current one rather than grow without bound.
        if buckets.count > maxKeys { buckets = buckets.filter { $0.key == key } }
    }
}

/// Answers 429 with `Retry-After` when the authenticated caller (`sub`) is over its rate.
/// Runs after `PATAuthenticator`; a request without a PAT passes through (the route refuses it).
struct RateLimitMiddleware<Context: PATRequestContext>: RouterMiddleware {
    let limiter: RateLimiter

    func handle(_ request: Request, context: Context,
                next: (Request, Context) async throws -> Response) async throws -> Response {
        if let subject = context.pat?.subject, let wait = limiter.acquire(subject) {
            var headers = HTTPFields()
            headers[.retryAfter] = String(wait)
            throw PATHTTPError(.tooManyRequests, code: "rate_limited",
                               message: "too many requests for this caller: retry after \(wait) s", headers: headers)
        }
        return try await next(request, context)
    }
}
