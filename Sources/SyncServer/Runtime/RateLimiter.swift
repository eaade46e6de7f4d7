import Synchronization

/// A token bucket per key (a device, a client address): `rate` tokens per second sustained,
/// `burst` at once; a request takes its route's cost in tokens. Answers how many seconds to wait
/// when a request does not fit. At most `maxKeys` buckets are kept: past that, the buckets that
/// have refilled (which a new bucket would equal) are dropped, so callers that choose their key
/// (addresses) cannot grow it without bound.
final class RateLimiter: Sendable {
    private struct Bucket {
        var tokens: Double
        var updated: ContinuousClock.Instant
    }
    private let rate: Double
    private let burst: Double
    private let buckets = Mutex([String: Bucket]())

    private let maxKeys: Int

    init(rate: Double, burst: Double, maxKeys: Int = 100_000) {
        self.rate = rate
        self.burst = burst
        self.maxKeys = maxKeys
    }

    /// Takes `cost` tokens for `key`; nil when allowed, else the seconds to wait (at least 1).
    func take(_ key: String, cost: Double = 1, now: ContinuousClock.Instant = .now) -> Int? {
        let cost = min(cost, burst)
        return buckets.withLock { buckets in
            if buckets.count >= maxKeys, buckets[key] == nil { prune(&buckets, now: now) }
            var bucket = buckets[key] ?? Bucket(tokens: burst, updated: now)
            let elapsed = now - bucket.updated
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            bucket.tokens = min(burst, bucket.tokens + seconds * rate)
            bucket.updated = now
            if bucket.tokens >= cost {
                bucket.tokens -= cost
                buckets[key] = bucket
                return nil
            }
            buckets[key] = bucket
            return max(1, Int(((cost - bucket.tokens) / rate).rounded(.up)))
        }
    }

    /// Drops the buckets that are full by now; if none is, the oldest half (a flood of new keys:
    /// each is forgotten sooner, none is refused for the others).
    private func prune(_ buckets: inout [String: Bucket], now: ContinuousClock.Instant) {
        let refill = Duration.seconds(burst / rate)
        buckets = buckets.filter { now - $0.value.updated < refill }
        if buckets.count >= maxKeys {
            let kept = buckets.sorted { $0.value.updated > $1.value.updated }.prefix(maxKeys / 2)
            buckets = Dictionary(uniqueKeysWithValues: kept.map { ($0.key, $0.value) })
        }
    }
}
