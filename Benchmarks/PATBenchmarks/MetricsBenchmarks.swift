import Benchmark
import Dispatch
import PATHummingbird
import PATKit
import Prometheus

/// The cost of metrics on a fresh validation: the same tokens validated plainly and through
/// `PATValidationMetrics` (a counter and a latency histogram in a Prometheus registry, as
/// `pat serve` has them), in 1,001 alternating batches of 100; the median ratio, in per mille.
func runMetricsOverhead(_ benchmark: Benchmark, _ f: Fixture) {
    let validator = f.freshValidator
    let metrics = PATValidationMetrics(factory: PrometheusMetricsFactory(registry: PrometheusCollectorRegistry()))
    let batch = 100, rounds = 1_001
    let mask = f.probeTokens.count - 1
    var next = 0
    func time(_ measured: Bool) -> UInt64 {
        let start = DispatchTime.now().uptimeNanoseconds
        for i in 0..<batch {
            let token = f.probeTokens[(next + i) & mask]
            if measured {
                do { blackHole(try metrics.validate(token, with: validator, domain: nil)) } catch { fail("validation failed: \(error)") }
            } else {
                blackHole(mustValidate(validator, token))
            }
        }
        return DispatchTime.now().uptimeNanoseconds - start
    }
    _ = time(false)
    _ = time(true)
    var ratios: [Double] = []
    for round in 0..<rounds {
        let plain: UInt64, measured: UInt64
        if round % 2 == 0 {
            plain = time(false)
            measured = time(true)
        } else {
            measured = time(true)
            plain = time(false)
        }
        next &+= batch
        ratios.append(Double(measured) / Double(plain))
    }
    ratios.sort()
    benchmark.measurement(.custom("overhead_permille", useScalingFactor: false), Int(((ratios[rounds / 2] - 1) * 1000).rounded()))
}
