import HeraldProtocol
import Testing
@testable import HeraldCore

@Suite("Metrics: Prometheus text format and counters")
struct MetricsFormatTests {
    @Test("label values escape backslash, double quote and newline, and nothing else")
    func labelEscaping() {
        #expect(PrometheusText.escapeLabelValue(#"a\b"#) == #"a\\b"#)
        #expect(PrometheusText.escapeLabelValue(#"say "hi""#) == #"say \"hi\""#)
        #expect(PrometheusText.escapeLabelValue("two\nlines") == #"two\nlines"#)
        #expect(PrometheusText.escapeLabelValue("tab\there é ✓") == "tab\there é ✓")
        #expect(PrometheusText.escapeLabelValue("\\\"\n") == #"\\\"\n"#)
    }

    @Test("HELP text escapes backslash and newline; samples and numbers as the format writes them")
    func samples() {
        var writer = PrometheusText.Writer()
        writer.family("x_total", type: "counter", help: "a \\ b\nc \"q\"")
        writer.sample("x_total", ["action": "we\"ird\\\n"], 3)
        writer.sample("y", 0.25)
        #expect(writer.text == """
        # HELP x_total a \\\\ b\\nc "q"
        # TYPE x_total counter
        x_total{action="we\\"ird\\\\\\n"} 3
        y 0.25

        """)
        #expect(PrometheusText.format(.infinity) == "+Inf")
        #expect(PrometheusText.format(-.infinity) == "-Inf")
        #expect(PrometheusText.format(.nan) == "NaN")
        #expect(PrometheusText.format(12) == "12")
    }

    @Test("histogram buckets are cumulative, end with +Inf, and _sum is in seconds")
    func histogram() {
        var histogram = DurationHistogram()
        histogram.observe(nanos: 50_000)          // 0.00005 s: first bucket
        histogram.observe(nanos: 2_000_000)       // 0.002 s
        histogram.observe(nanos: 60_000_000_000)  // 60 s: only +Inf
        var writer = PrometheusText.Writer()
        writer.histogram("d_seconds", labels: [("action", "a")], histogram)
        let lines = writer.text.split(separator: "\n").map(String.init)
        #expect(lines.first == #"d_seconds_bucket{action="a",le="0.0001"} 1"#)
        #expect(lines.contains(#"d_seconds_bucket{action="a",le="0.001"} 1"#))
        #expect(lines.contains(#"d_seconds_bucket{action="a",le="0.0025"} 2"#))
        #expect(lines.contains(#"d_seconds_bucket{action="a",le="10"} 2"#))
        #expect(lines.contains(#"d_seconds_bucket{action="a",le="+Inf"} 3"#))
        #expect(lines.contains(#"d_seconds_count{action="a"} 3"#))
        #expect(lines.contains(#"d_seconds_sum{action="a"} 60.00205"#))
    }

    @Test("counters survive their report line and add up (retired + live)")
    func countersRoundTrip() {
        var counters = WorkerCounters()
        counters.connectionsOpened = 5
        counters.connectionsClosed[CloseReason.timeout.rawValue] = 2
        counters.actions["randomNumber"] = ActionCounts()
        counters.actions["randomNumber"]?.record(failed: false, nanos: 1_000)
        counters.actions["randomNumber"]?.record(failed: true, nanos: 1_000)
        counters.says = 3
        counters.redisReconnects = 1
        counters.redisCommandDuration.observe(nanos: 300_000)
        let decoded = WorkerCounters(json: counters.asJSON)
        #expect(decoded == counters)
        let sum = decoded + counters
        #expect(sum.connectionsOpened == 10)
        #expect(sum.actions["randomNumber"]?.ok == 2 && sum.actions["randomNumber"]?.error == 2)
        #expect(sum.actions["randomNumber"]?.duration.count == 4)
        #expect(sum.redisCommandDuration.count == 2)
    }

    @Test("close reasons are a fixed set")
    func closeReasons() {
        #expect(CloseReason.classify("client closed") == .client)
        #expect(CloseReason.classify("quit requested") == .goodbye)
        #expect(CloseReason.classify("idle for 1000 ms") == .timeout)
        #expect(CloseReason.classify("output queue over maxOutputBytes (1); the client is not reading") == .overflow)
        #expect(CloseReason.classify("server shutdown") == .shutdown)
        #expect(CloseReason.classify("socket error: whatever text") == .error)
        #expect(Set(CloseReason.allCases.map(\.label)) == ["client", "goodbye", "timeout", "overflow", "error", "shutdown"])
    }
}
