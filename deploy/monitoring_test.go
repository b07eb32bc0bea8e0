package deploy_test

import (
	"encoding/json"
	"log/slog"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/promqltest"

	"github.com/cognito-authz/cognito-authz/pkg/metrics"
)

const alertsFile = "monitoring/alerts.yaml"

var promParser = parser.NewParser(parser.Options{})

// alertRules parses the alert rules with Prometheus' own rule-file parser (unknown fields are errors, every
// expression and template is checked as Prometheus does on load).
func alertRules(t *testing.T) []rulefmt.Rule {
	t.Helper()
	groups, errs := rulefmt.ParseFile(alertsFile, false, model.UTF8Validation, promParser, slog.New(slog.DiscardHandler))
	for _, err := range errs {
		t.Errorf("rulefmt: %v", err)
	}
	if t.Failed() {
		t.FailNow()
	}
	var rules []rulefmt.Rule
	for _, g := range groups.Groups {
		rules = append(rules, g.Rules...)
	}
	if len(rules) == 0 {
		t.Fatal("no rules")
	}
	return rules
}

func alertNames(t *testing.T) []string {
	t.Helper()
	var names []string
	for _, r := range alertRules(t) {
		if r.Alert != "" {
			names = append(names, r.Alert)
		}
	}
	return names
}

// exportedSeries is every series name the service's registry exposes, with every family present: the
// hooks are all exercised once. Histograms and summaries contribute the names PromQL sees (_bucket, _sum,
// _count; summaries also their own name for quantiles).
func exportedSeries(t *testing.T) map[string]bool {
	t.Helper()
	m := metrics.New("test", "go")
	m.ObserveCheck("grpc", "allow", "ok", "default", time.Millisecond)
	m.JWKSRefresh("main")("ok", 2)
	m.CacheHit()
	m.CacheMiss()
	m.SetCacheEntries(func() int { return 1 })
	m.ConfigReload(nil)
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range fams {
		n := f.GetName()
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM:
			names[n+"_bucket"], names[n+"_sum"], names[n+"_count"] = true, true, true
		case dto.MetricType_SUMMARY:
			names[n], names[n+"_sum"], names[n+"_count"] = true, true, true
		default:
			names[n] = true
		}
	}
	for _, want := range []string{"cognito_authz_checks_total", "cognito_authz_check_duration_seconds_bucket", "cognito_authz_jwks_keys"} {
		if !names[want] {
			t.Fatalf("registry lacks %s: exportedSeries is not exercising it", want)
		}
	}
	return names
}

// selectedMetrics lists the metric names an expression selects.
func selectedMetrics(t *testing.T, expr parser.Expr) []string {
	t.Helper()
	var names []string
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			if vs.Name == "" {
				t.Errorf("selector %s has no metric name", vs)
			}
			names = append(names, vs.Name)
		}
		return nil
	})
	return names
}

func TestAlertRules(t *testing.T) {
	t.Parallel()
	exported := exportedSeries(t)
	for _, r := range alertRules(t) {
		t.Run(r.Alert, func(t *testing.T) {
			if r.Alert == "" {
				t.Fatalf("recording rule %s: the file holds alerts only", r.Record)
			}
			expr, err := promParser.ParseExpr(r.Expr)
			if err != nil {
				t.Fatal(err)
			}
			names := selectedMetrics(t, expr)
			if len(names) == 0 {
				t.Error("expression selects no metric")
			}
			for _, n := range names {
				if !exported[n] {
					t.Errorf("metric %s is not exported by pkg/metrics", n)
				}
			}
			if sev := r.Labels["severity"]; sev != "critical" && sev != "warning" {
				t.Errorf("severity = %q, want critical or warning", sev)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Error("summary and description annotations are required")
			}
		})
	}
}

// TestMetricNameCheckCatchesTypos proves the name check can fail: a misspelt metric, a histogram's base
// name (not a series) and another exporter's metric are all refused.
func TestMetricNameCheckCatchesTypos(t *testing.T) {
	t.Parallel()
	exported := exportedSeries(t)
	tests := []struct {
		name string
		expr string
	}{
		{name: "misspelt", expr: `rate(cognito_authz_check_total[5m])`},
		{name: "histogram_base_name", expr: `cognito_authz_check_duration_seconds`},
		{name: "other_exporter", expr: `kube_deployment_status_replicas_ready`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			expr, err := promParser.ParseExpr(tt.expr)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range selectedMetrics(t, expr) {
				if exported[n] {
					t.Errorf("%s counted as exported", n)
				}
			}
		})
	}
}

// TestAlertsFire runs each alert's expression on recorded series with Prometheus' query engine: it must
// hold at every minute of its `for` window on a bad series, and at none on a good one.
func TestAlertsFire(t *testing.T) {
	t.Parallel()
	const (
		ok      = `cognito_authz_checks_total{namespace="ns",job="authz",outcome="allow",reason="ok",rule="default",transport="grpc"}`
		expired = `cognito_authz_checks_total{namespace="ns",job="authz",outcome="unauthenticated",reason="token_expired",rule="default",transport="grpc"}`
		client  = `cognito_authz_checks_total{namespace="ns",job="authz",outcome="unauthenticated",reason="client_mismatch",rule="default",transport="grpc"}`
		noKeys  = `cognito_authz_checks_total{namespace="ns",job="authz",outcome="unavailable",reason="keys_unavailable",rule="default",transport="grpc"}`
		bucket  = `cognito_authz_check_duration_seconds_bucket{namespace="ns",job="authz",outcome="allow",transport="grpc",le="%s"}`
		keysA   = `cognito_authz_jwks_keys{namespace="ns",job="authz",instance="a",pool="main"}`
		keysB   = `cognito_authz_jwks_keys{namespace="ns",job="authz",instance="b",pool="main"}`
		lastOK  = `cognito_authz_jwks_last_success_timestamp_seconds{namespace="ns",job="authz",instance="a",pool="main"}`
		reloadE = `cognito_authz_config_reloads_total{namespace="ns",job="authz",instance="a",result="error"}`
		reloadO = `cognito_authz_config_reloads_total{namespace="ns",job="authz",instance="a",result="ok"}`
	)
	b := func(le string) string { return strings.Replace(bucket, "%s", le, 1) }
	tests := []struct {
		name  string
		alert string
		load  string        // promqltest load block
		at    time.Duration // evaluation time, from the series' start
		fire  bool
	}{
		{name: "error_ratio/keys_unavailable_9pct", alert: "CognitoAuthzErrorRatio", at: 30 * time.Minute, fire: true,
			load: "load 1m\n" + ok + " 0+600x40\n" + noKeys + " 0+60x40"},
		{name: "error_ratio/below_1pct", alert: "CognitoAuthzErrorRatio", at: 30 * time.Minute,
			load: "load 1m\n" + ok + " 0+600x40\n" + noKeys + " 0+1x40"},
		{name: "keys_unavailable/some", alert: "CognitoAuthzKeysUnavailable", at: 30 * time.Minute, fire: true,
			load: "load 1m\n" + ok + " 0+600x40\n" + noKeys + " 0+1x40"},
		{name: "keys_unavailable/old_only", alert: "CognitoAuthzKeysUnavailable", at: 30 * time.Minute,
			load: "load 1m\n" + ok + " 0+600x40\n" + noKeys + " 5x40"},
		// A day at 1% token_expired, then 50%.
		{name: "deny_spike/known_reason_jumps", alert: "CognitoAuthzDenySpike", at: 1600 * time.Minute, fire: true,
			load: "load 2m\n" + ok + " 0+1200x800\n" + expired + " 0+12x720 8652+1200x80"},
		// A reason never seen the day before: no baseline series, still a spike. (The stale marker at 0
		// only keeps the test storage's first sample at time 0, so the load order of series is free.)
		{name: "deny_spike/new_reason", alert: "CognitoAuthzDenySpike", at: 1600 * time.Minute, fire: true,
			load: "load 2m\n" + ok + " 0+1200x800\n" + client + " stale _x719 0+600x80"},
		{name: "deny_spike/steady_low", alert: "CognitoAuthzDenySpike", at: 1600 * time.Minute,
			load: "load 2m\n" + ok + " 0+1200x800\n" + expired + " 0+12x800"},
		// 20% all day long (say, a bot without tokens): high but not a spike.
		{name: "deny_spike/steady_high", alert: "CognitoAuthzDenySpike", at: 1600 * time.Minute,
			load: "load 2m\n" + ok + " 0+1200x800\n" + expired + " 0+300x800"},
		{name: "p99_near_timeout/5pct_over_100ms", alert: "CognitoAuthzP99NearEnvoyTimeout", at: 30 * time.Minute, fire: true,
			load: "load 1m\n" + b("0.1") + " 0+570x40\n" + b("+Inf") + " 0+600x40"},
		{name: "p99_near_timeout/fast", alert: "CognitoAuthzP99NearEnvoyTimeout", at: 30 * time.Minute,
			load: "load 1m\n" + b("0.1") + " 0+599x40\n" + b("+Inf") + " 0+600x40"},
		{name: "p99_high/p99_in_50ms_bucket", alert: "CognitoAuthzP99High", at: 30 * time.Minute, fire: true,
			load: "load 1m\n" + b("0.01") + " 0+500x40\n" + b("0.025") + " 0+500x40\n" + b("0.05") + " 0+600x40\n" + b("0.1") + " 0+600x40\n" + b("+Inf") + " 0+600x40"},
		{name: "p99_high/all_under_10ms", alert: "CognitoAuthzP99High", at: 30 * time.Minute,
			load: "load 1m\n" + b("0.01") + " 0+600x40\n" + b("0.025") + " 0+600x40\n" + b("0.05") + " 0+600x40\n" + b("0.1") + " 0+600x40\n" + b("+Inf") + " 0+600x40"},
		{name: "jwks_stale/three_hours", alert: "CognitoAuthzJWKSStale", at: 3 * time.Hour, fire: true,
			load: "load 5m\n" + lastOK + " 60x40"},
		{name: "jwks_stale/refreshing", alert: "CognitoAuthzJWKSStale", at: 3 * time.Hour,
			load: "load 5m\n" + lastOK + " 0+300x40"},
		{name: "jwks_stale/never_loaded_is_not_stale", alert: "CognitoAuthzJWKSStale", at: 3 * time.Hour,
			load: "load 5m\n" + lastOK + " 0x40"},
		{name: "reload_failed/one_error", alert: "CognitoAuthzConfigReloadFailed", at: 20 * time.Minute, fire: true,
			load: "load 1m\n" + reloadE + " 0x10 1x20\n" + reloadO + " 0x30"},
		{name: "reload_failed/only_ok", alert: "CognitoAuthzConfigReloadFailed", at: 20 * time.Minute,
			load: "load 1m\n" + reloadE + " 0x30\n" + reloadO + " 0+1x30"},
		{name: "replica_not_ready/one_without_keys", alert: "CognitoAuthzReplicaNotReady", at: 30 * time.Minute, fire: true,
			load: "load 1m\n" + keysA + " 2x40\n" + keysB + " 0x40"},
		{name: "replica_not_ready/all_loaded", alert: "CognitoAuthzReplicaNotReady", at: 30 * time.Minute,
			load: "load 1m\n" + keysA + " 2x40\n" + keysB + " 2x40"},
		{name: "no_ready_replicas/none", alert: "CognitoAuthzNoReadyReplicas", at: 30 * time.Minute, fire: true,
			load: "load 1m\n" + keysA + " 0x40\n" + keysB + " 0x40"},
		{name: "no_ready_replicas/one_ready", alert: "CognitoAuthzNoReadyReplicas", at: 30 * time.Minute,
			load: "load 1m\n" + keysA + " 2x40\n" + keysB + " 0x40"},
	}
	rules := map[string]rulefmt.Rule{}
	for _, r := range alertRules(t) {
		rules[r.Alert] = r
	}
	covered := map[string][2]bool{} // alert → {has a firing case, has a silent case}
	for _, tt := range tests {
		c := covered[tt.alert]
		if tt.fire {
			c[0] = true
		} else {
			c[1] = true
		}
		covered[tt.alert] = c
	}
	for name := range rules {
		if c := covered[name]; !c[0] || !c[1] {
			t.Errorf("alert %s needs a firing and a silent case (have %v)", name, c)
		}
	}
	engine := promqltest.NewTestEngine(t, false, 0, promqltest.DefaultMaxSamplesPerQuery)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rule, ok := rules[tt.alert]
			if !ok {
				t.Fatalf("no alert %s in %s", tt.alert, alertsFile)
			}
			storage := promqltest.LoadedStorage(t, tt.load)
			window := time.Duration(rule.For)
			for at := tt.at - window; at <= tt.at; at += time.Minute {
				q, err := engine.NewInstantQuery(t.Context(), storage, nil, rule.Expr, time.Unix(0, 0).Add(at))
				if err != nil {
					t.Fatal(err)
				}
				res := q.Exec(t.Context())
				if res.Err != nil {
					t.Fatalf("at %s: %v", at, res.Err)
				}
				vec, err := res.Vector()
				if err != nil {
					t.Fatalf("at %s: %v", at, err)
				}
				q.Close()
				if fired := len(vec) > 0; fired != tt.fire {
					t.Fatalf("at %s: fired = %v (%v), want %v", at, fired, vec, tt.fire)
				}
			}
		})
	}
}

// dashboardVar matches Grafana's variable references: $name, ${name} and ${name:format}.
var dashboardVar = regexp.MustCompile(`\$\{?(\w+)(?::\w+)?\}?`)

// TestDashboard parses the Grafana dashboard, resolves its variables as Grafana would for one choice, and
// checks every query with the PromQL parser and against the exported metrics.
func TestDashboard(t *testing.T) {
	t.Parallel()
	type target struct {
		Expr string `json:"expr"`
	}
	type panel struct {
		Title   string   `json:"title"`
		Type    string   `json:"type"`
		Targets []target `json:"targets"`
		Panels  []panel  `json:"panels"`
	}
	var dash struct {
		Title      string  `json:"title"`
		UID        string  `json:"uid"`
		Panels     []panel `json:"panels"`
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Type       string `json:"type"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(readFile(t, "monitoring/dashboard.json"), &dash); err != nil {
		t.Fatal(err)
	}
	if dash.UID == "" || dash.Title == "" {
		t.Error("dashboard needs a uid and title (the sidecar and links key on them)")
	}
	// One value per variable, as Grafana substitutes it; builtins included.
	values := map[string]string{"__rate_interval": "5m", "__interval": "1m", "__range": "1h", "datasource": "prom"}
	for _, v := range dash.Templating.List {
		switch v.Type {
		case "custom":
			values[v.Name] = "0.25"
		default:
			values[v.Name] = ".*"
		}
	}
	exported := exportedSeries(t)
	resolve := func(t *testing.T, s string) string {
		return dashboardVar.ReplaceAllStringFunc(s, func(ref string) string {
			name := dashboardVar.FindStringSubmatch(ref)[1]
			v, ok := values[name]
			if !ok {
				t.Errorf("%q uses undefined variable $%s", s, name)
			}
			return v
		})
	}
	check := func(t *testing.T, q string) []string {
		expr, err := promParser.ParseExpr(resolve(t, q))
		if err != nil {
			t.Errorf("%q: %v", q, err)
			return nil
		}
		names := selectedMetrics(t, expr)
		for _, n := range names {
			if !exported[n] {
				t.Errorf("%q: metric %s is not exported by pkg/metrics", q, n)
			}
		}
		return names
	}
	used := map[string]bool{}
	var walk func(ps []panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				for _, n := range check(t, tg.Expr) {
					used[n] = true
				}
			}
		}
	}
	walk(dash.Panels)
	labelValues := regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`)
	for _, v := range dash.Templating.List {
		if v.Type != "query" {
			continue
		}
		m := labelValues.FindStringSubmatch(v.Definition)
		if m == nil {
			t.Errorf("variable %s: definition %q is not label_values(selector, label)", v.Name, v.Definition)
			continue
		}
		check(t, m[1])
	}
	// What the dashboard is for: decisions, latency, the cache, key freshness, reloads and readiness.
	var missing []string
	for _, want := range []string{
		"cognito_authz_checks_total", "cognito_authz_check_duration_seconds_bucket",
		"cognito_authz_cache_hits_total", "cognito_authz_cache_misses_total",
		"cognito_authz_jwks_last_success_timestamp_seconds", "cognito_authz_config_reloads_total",
		"cognito_authz_jwks_keys",
	} {
		if !used[want] {
			missing = append(missing, want)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("dashboard has no panel on %v", missing)
	}
	if !slices.ContainsFunc(dash.Templating.List, func(v struct {
		Name       string `json:"name"`
		Type       string `json:"type"`
		Definition string `json:"definition"`
	}) bool {
		return v.Name == "envoy_timeout"
	}) {
		t.Error("no envoy_timeout variable: the latency panel compares against it")
	}
}

// The engine type is named so a change of promqltest's constructor shows here, not in the middle of a test.
var _ promql.QueryEngine = (*promql.Engine)(nil)
