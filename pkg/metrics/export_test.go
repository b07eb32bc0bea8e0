package metrics

import "github.com/prometheus/client_golang/prometheus"

// VecsForBenchmark exposes the check vectors, to benchmark WithLabelValues against the cached children.
func VecsForBenchmark(m *Metrics) (*prometheus.CounterVec, *prometheus.HistogramVec) {
	return m.checks, m.duration
}
