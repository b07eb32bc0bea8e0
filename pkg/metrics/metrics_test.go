package metrics_test

import (
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cognito-authz/cognito-authz/pkg/metrics"
)

func TestExposition(t *testing.T) {
	t.Parallel()
	m := metrics.New("v1.2.3", "go1.26")
	m.ObserveCheck("grpc", "allow", "ok", "default", 40*time.Microsecond)
	m.ObserveCheck("grpc", "allow", "ok", "default", 40*time.Microsecond)
	m.ObserveCheck("grpc", "unauthenticated", "token_expired", "default", time.Millisecond)
	refresh := m.JWKSRefresh("main")
	refresh("ok", 2)
	refresh("error", 2)
	rejected := m.JWKSRejected("main")
	rejected("exponent")
	rejected("exponent")
	m.CacheHit()
	m.CacheMiss()
	m.CacheMiss()
	m.SetCacheEntries(func() int { return 7 })
	m.ConfigReload(nil)
	m.ConfigReload(errors.New("bad"))
	m.StreamCut("receive_timeout")

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`cognito_authz_checks_total{outcome="allow",reason="ok",rule="default",transport="grpc"} 2`,
		`cognito_authz_checks_total{outcome="unauthenticated",reason="token_expired",rule="default",transport="grpc"} 1`,
		`cognito_authz_check_duration_seconds_bucket{outcome="allow",transport="grpc",le="5e-05"} 2`,
		`cognito_authz_check_duration_seconds_bucket{outcome="allow",transport="grpc",le="2.5e-05"} 0`,
		`cognito_authz_jwks_refresh_total{pool="main",result="ok"} 1`,
		`cognito_authz_jwks_refresh_total{pool="main",result="error"} 1`,
		`cognito_authz_jwks_keys{pool="main"} 2`,
		`cognito_authz_jwks_last_success_timestamp_seconds{pool="main"}`,
		`cognito_authz_jwks_keys_rejected_total{pool="main",reason="exponent"} 2`,
		`cognito_authz_cache_hits_total 1`,
		`cognito_authz_cache_misses_total 2`,
		`cognito_authz_cache_entries 7`,
		`cognito_authz_config_reloads_total{result="ok"} 1`,
		`cognito_authz_config_reloads_total{result="error"} 1`,
		`cognito_authz_grpc_streams_cut_total{limit="receive_timeout"} 1`,
		`cognito_authz_grpc_streams_cut_total{limit="max_receiving_requests"} 0`,
		`cognito_authz_build_info{goversion="go1.26",version="v1.2.3"} 1`,
		`go_goroutines `,
		`process_start_time_seconds`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	problems, err := testutil.GatherAndLint(m.Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "cognito_authz_") {
			t.Errorf("lint: %s: %s", p.Metric, p.Text)
		}
	}
}

func TestRuleLabelsAreCapped(t *testing.T) {
	t.Parallel()
	m := metrics.New("dev", "go")
	for i := range metrics.MaxRules + 50 {
		m.ObserveCheck("grpc", "allow", "ok", fmt.Sprintf("rule-%d", i), time.Microsecond)
	}
	m.ObserveCheck("grpc", "allow", "ok", "rule-0", time.Microsecond) // a known rule keeps its label
	n, err := testutil.GatherAndCount(m.Registry(), "cognito_authz_checks_total")
	if err != nil {
		t.Fatal(err)
	}
	if n != metrics.MaxRules+1 {
		t.Errorf("%d series, want %d (the cap plus %s)", n, metrics.MaxRules+1, metrics.OtherRule)
	}
}

func TestCacheEntriesUnset(t *testing.T) {
	t.Parallel()
	m := metrics.New("dev", "go")
	m.SetCacheEntries(func() int { return 3 })
	m.SetCacheEntries(nil)
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(
		"# HELP cognito_authz_cache_entries Verified tokens held in the cache.\n# TYPE cognito_authz_cache_entries gauge\ncognito_authz_cache_entries 0\n"),
		"cognito_authz_cache_entries"); err != nil {
		t.Error(err)
	}
}

// BenchmarkObserveCheck is the hot path: the label children resolved once and cached.
func BenchmarkObserveCheck(b *testing.B) {
	m := metrics.New("dev", "go")
	b.ReportAllocs()
	for b.Loop() {
		m.ObserveCheck("grpc", "allow", "ok", "default", 40*time.Microsecond)
	}
}

// BenchmarkWithLabelValues is the alternative ObserveCheck is measured against: resolve the children on
// every request.
func BenchmarkWithLabelValues(b *testing.B) {
	m := metrics.New("dev", "go")
	m.ObserveCheck("grpc", "allow", "ok", "default", 0) // create the series
	checks, dur := metrics.VecsForBenchmark(m)
	b.ReportAllocs()
	for b.Loop() {
		checks.WithLabelValues("allow", "ok", "default", "grpc").Inc()
		dur.WithLabelValues("grpc", "allow").Observe(40e-6)
	}
}

func BenchmarkObserveCheckParallel(b *testing.B) {
	m := metrics.New("dev", "go")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.ObserveCheck("grpc", "allow", "ok", "default", 40*time.Microsecond)
		}
	})
}
