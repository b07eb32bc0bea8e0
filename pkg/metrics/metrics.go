// Package metrics holds the service's Prometheus collectors on a registry of its own (never the global
// one), and the cheap hooks the request path, the key sets, the token cache and config reload record into.
//
// Every label value comes from a closed set: outcomes, reasons, transports, pool names and rule names from
// the config. Never a sub, a path or a token. Rule names are closed per config but reloads can change
// them, so their number is capped anyway (MaxRules); any rule past the cap is counted as "_other".
package metrics

import (
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// MaxRules caps the distinct rule label values; later ones are counted as OtherRule.
const MaxRules = 256

// OtherRule is the rule label of every rule past MaxRules.
const OtherRule = "_other"

// DurationBuckets suit a decision that takes tens of microseconds on a cache hit and a few milliseconds at
// worst (an unknown-kid fetch is bounded by the key set's wait, and shows in the top buckets).
var DurationBuckets = []float64{
	25e-6, 50e-6, 100e-6, 250e-6, 500e-6,
	1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3,
}

// Metrics is the service's collectors. It is safe for concurrent use; the zero value is not usable.
type Metrics struct {
	reg *prometheus.Registry

	checks       *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	jwksRefresh  *prometheus.CounterVec
	jwksKeys     *prometheus.GaugeVec
	jwksSuccess  *prometheus.GaugeVec
	jwksRejected *prometheus.CounterVec
	cacheHits    prometheus.Counter
	cacheMisses  prometheus.Counter
	cacheEntries atomic.Pointer[func() int]
	reloads      *prometheus.CounterVec
	streamsCut   *prometheus.CounterVec

	children sync.Map // checkKey → *checkChildren: the label lookups done once, not per request
	rulesMu  sync.Mutex
	rules    map[string]struct{}

	now func() time.Time
}

type checkKey struct{ transport, outcome, reason, rule string }

type checkChildren struct {
	count    prometheus.Counter
	duration prometheus.Observer
}

// New makes the collectors and registers them, with the Go and process collectors and build info, on a
// new registry.
func New(version, goVersion string) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cognito_authz_checks_total",
			Help: "Decisions made, by outcome (allow, unauthenticated, forbidden, unavailable, bad_request, answered (the browser sign-in paths), or dry_run_<outcome> for a deny answered as an allow), reason, rule and transport.",
		}, []string{"outcome", "reason", "rule", "transport"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "cognito_authz_check_duration_seconds",
			Help:    "Time to decide one request, from the transport's view (excludes the wire).",
			Buckets: DurationBuckets,
		}, []string{"transport", "outcome"}),
		jwksRefresh: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cognito_authz_jwks_refresh_total",
			Help: "JWKS fetches by pool and result (ok or error): periodic, initial and on unknown kid.",
		}, []string{"pool", "result"}),
		jwksKeys: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cognito_authz_jwks_keys",
			Help: "Signing keys held per pool (0: the pool was never loaded and its tokens get 503).",
		}, []string{"pool"}),
		jwksSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cognito_authz_jwks_last_success_timestamp_seconds",
			Help: "Unix time of the last successful JWKS fetch per pool (0: never).",
		}, []string{"pool"}),
		jwksRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cognito_authz_jwks_keys_rejected_total",
			Help: "RSA keys of a fetched JWKS refused as unsafe, by pool and reason (exponent: e is not 65537; too_small: under 2048 bits; too_large: over 8192 bits; invalid), counted at every fetch that serves them.",
		}, []string{"pool", "reason"}),
		cacheHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cognito_authz_cache_hits_total",
			Help: "Verified-token cache hits.",
		}),
		cacheMisses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cognito_authz_cache_misses_total",
			Help: "Verified-token cache misses.",
		}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cognito_authz_config_reloads_total",
			Help: "Config reloads by result (ok or error; on error the previous config keeps serving).",
		}, []string{"result"}),
		streamsCut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cognito_authz_grpc_streams_cut_total",
			Help: "gRPC streams ended by a listener bound: max_receiving_requests (refused at their headers) or receive_timeout (the message did not arrive in time).",
		}, []string{"limit"}),
		rules: map[string]struct{}{},
		now:   time.Now,
	}
	entries := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "cognito_authz_cache_entries",
		Help: "Verified tokens held in the cache.",
	}, func() float64 {
		if f := m.cacheEntries.Load(); f != nil {
			return float64((*f)())
		}
		return 0
	})
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "cognito_authz_build_info",
		Help: "Always 1; the labels say which build is running.",
	}, []string{"version", "goversion"})
	info.WithLabelValues(version, goVersion).Set(1)
	for _, r := range []string{"ok", "error"} {
		m.reloads.WithLabelValues(r) // present at 0, so rate() and absent() work from the start
	}
	for _, l := range []string{"max_receiving_requests", "receive_timeout"} {
		m.streamsCut.WithLabelValues(l)
	}
	m.reg.MustRegister(m.checks, m.duration, m.jwksRefresh, m.jwksKeys, m.jwksSuccess, m.jwksRejected, m.cacheHits,
		m.cacheMisses, entries, m.reloads, m.streamsCut, info,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is the registry the collectors are on, for tests and for adding collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus exposition formats, for /metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// ObserveCheck counts one decision and records how long it took. It is on the request path: after the
// first request of a label combination it is one map read and two atomic adds.
func (m *Metrics) ObserveCheck(transport, outcome, reason, rule string, took time.Duration) {
	k := checkKey{transport, outcome, reason, rule}
	c, ok := m.children.Load(k)
	if !ok {
		c = m.resolve(k)
	}
	cc := c.(*checkChildren)
	cc.count.Inc()
	cc.duration.Observe(took.Seconds())
}

// resolve makes the children of a new label combination, mapping a rule past the cap onto OtherRule.
func (m *Metrics) resolve(k checkKey) *checkChildren {
	orig := k
	m.rulesMu.Lock()
	if _, known := m.rules[k.rule]; !known {
		if len(m.rules) < MaxRules {
			m.rules[k.rule] = struct{}{}
		} else {
			k.rule = OtherRule
		}
	}
	m.rulesMu.Unlock()
	cc := &checkChildren{
		count:    m.checks.WithLabelValues(k.outcome, k.reason, k.rule, k.transport),
		duration: m.duration.WithLabelValues(k.transport, k.outcome),
	}
	c, _ := m.children.LoadOrStore(orig, cc)
	return c.(*checkChildren)
}

// JWKSRefresh returns the hook a pool's key set calls after every fetch (jwks.Options.OnRefresh): result
// is "ok" or "error", keys the number of keys held afterwards.
func (m *Metrics) JWKSRefresh(pool string) func(result string, keys int) {
	ok, failed := m.jwksRefresh.WithLabelValues(pool, "ok"), m.jwksRefresh.WithLabelValues(pool, "error")
	held, last := m.jwksKeys.WithLabelValues(pool), m.jwksSuccess.WithLabelValues(pool)
	return func(result string, keys int) {
		if result == "ok" {
			ok.Inc()
			last.Set(float64(m.now().UnixNano()) / 1e9)
		} else {
			failed.Inc()
		}
		held.Set(float64(keys))
	}
}

// JWKSRejected returns the hook a pool's key set calls for every key it refuses as unsafe
// (jwks.Options.OnRejected); reason is one of the key set's closed set of reasons.
func (m *Metrics) JWKSRejected(pool string) func(reason string) {
	return func(reason string) { m.jwksRejected.WithLabelValues(pool, reason).Inc() }
}

// CacheHit counts a verified-token cache hit.
func (m *Metrics) CacheHit() { m.cacheHits.Inc() }

// CacheMiss counts a verified-token cache miss.
func (m *Metrics) CacheMiss() { m.cacheMisses.Inc() }

// SetCacheEntries makes cognito_authz_cache_entries report entries() at every scrape (nil: 0). The cache
// is built after the metrics, and again on a config reload, so it is set late and may be replaced.
func (m *Metrics) SetCacheEntries(entries func() int) {
	if entries == nil {
		m.cacheEntries.Store(nil)
		return
	}
	m.cacheEntries.Store(&entries)
}

// StreamCut counts a gRPC stream the server ended for the listener bound limit (pkg/server's
// Options.OnStreamCut).
func (m *Metrics) StreamCut(limit string) { m.streamsCut.WithLabelValues(limit).Inc() }

// ConfigReload counts a config reload; err nil is "ok".
func (m *Metrics) ConfigReload(err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.reloads.WithLabelValues(result).Inc()
}
