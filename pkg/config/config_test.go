package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"go.yaml.in/yaml/v3"

	"github.com/cognito-authz/cognito-authz/pkg/authz"
)

func ptr[T any](v T) *T { return &v }

// minimal is the smallest valid file: everything but the pool is a default.
const minimal = `
pools:
  - name: main
    region: us-east-1
    user_pool_id: us-east-1_AbC123
    client_ids: [abc123]
    token_use: access
`

func mainPool() Pool {
	return Pool{Name: "main", Region: "us-east-1", UserPoolID: "us-east-1_AbC123", ClientIDs: []string{"abc123"}, TokenUse: "access"}
}

func TestParseFullFile(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(filepath.Join("testdata", "full.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(data)
	if err != nil {
		t.Fatalf("Parse(testdata/full.yaml) error = %v", err)
	}
	want := &Config{
		Server: Server{GRPCAddr: "127.0.0.1:19001", HTTPAddr: "127.0.0.1:19002", AdminAddr: "127.0.0.1:19090",
			HTTPPathPrefix: "/authz", HTTPForwarded: "caddy",
			DrainPeriod: Duration(3 * time.Second), ShutdownTimeout: Duration(20 * time.Second),
			MaxRecvMsgSize: 128 << 10, MaxConcurrentStreams: 100, MaxReceivingRequests: 64, ReceiveTimeout: Duration(3 * time.Second),
			MaxConnections: 512, ConnectionTimeout: Duration(2 * time.Second), MaxConnectionIdle: Duration(time.Minute),
			MaxConnectionAge: Duration(10 * time.Minute), MaxConnectionAgeGrace: Duration(15 * time.Second),
			Keepalive: Keepalive{Time: Duration(30 * time.Second), Timeout: Duration(10 * time.Second), MinTime: Duration(5 * time.Second)}},
		Log: Log{Level: "debug", Format: "text"},
		Token: Token{MaxBytes: 4096, Leeway: Duration(10 * time.Second), Sources: []TokenSource{
			{Header: "authorization", Prefix: "Bearer "}, {Cookie: "id_token"}, {Header: "x-amzn-oidc-accesstoken"},
		}},
		JWKS: JWKS{
			RefreshInterval:  Duration(30 * time.Minute),
			UnknownKIDWindow: Duration(30 * time.Second),
			FetchTimeout:     Duration(2 * time.Second),
		},
		Cache: Cache{MaxEntries: 5000, MaxBytes: 8 << 20, NegativeTTL: Duration(5 * time.Second)},
		Pools: []Pool{
			{Name: "main", Region: "eu-west-1", UserPoolID: "eu-west-1_AbC123", ClientIDs: []string{"3n4b5urk1ft4fl3mg5e62d9ado", "second"}, TokenUse: "access"},
			{
				Name: "local", Region: "us-east-1", UserPoolID: "local_abc123", ClientIDs: []string{"localclient"}, TokenUse: "any",
				Issuer: "http://127.0.0.1:9229/local_abc123", JWKSURL: "http://127.0.0.1:9229/local_abc123/.well-known/jwks.json",
			},
		},
		Identity: Identity{IdentityHeaders: authz.IdentityHeaders{
			Sub: "x-user-sub", Username: "x-user-name", Groups: "x-user-groups", Scopes: "x-user-scopes",
			ClientID: "x-user-client", TokenUse: "x-user-token-use", Email: "", Pool: "x-user-pool",
			Claims: map[string]string{"custom:tenant": "x-user-tenant", "email": "x-user-email"},
		}, ForwardToken: ptr(false)},
		Rules: []Rule{
			{Name: "health", Match: Match{PathPrefix: "/healthz"}, Action: "allow"},
			{Name: "preflight", Match: Match{Method: "OPTIONS"}, Action: "allow"},
			{Name: "orders", Match: Match{Host: "*.example.com", PathRegex: "/orders/[0-9]+", Methods: []string{"POST", "put"},
				ContextExtensions: map[string]string{"policy": "orders"}},
				Require: &Require{Pools: []string{"main"}, TokenUse: "access", GroupsAny: []string{"admins"}, GroupsAll: []string{"users"},
					ScopesAny: []string{"orders/write"}, ScopesAll: []string{"openid"},
					Claims: map[string]StringList{"custom:tenant": {"acme"}, "roles": {"a", "b"}}}},
			{Name: "feed", Match: Match{Host: "api.example.com", PathExact: "/feed"}, Action: "optional", OptionalInvalid: "anonymous"},
			{Name: "closed", Match: Match{PathPrefix: "/closed"}, Action: "deny", DryRun: true},
		},
		Paths:   Paths{Ambiguous: "reject"},
		Default: "deny",
		DryRun:  true,
		Reload:  Reload{Interval: Duration(2 * time.Second)},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Parse(testdata/full.yaml) mismatch (-want +got):\n%s", diff)
	}
}

func TestParseDefaults(t *testing.T) {
	t.Parallel()
	withPool := func(mutate func(*Config)) *Config {
		c := Default()
		c.Pools = []Pool{mainPool()}
		if mutate != nil {
			mutate(&c)
		}
		return &c
	}
	tests := []struct {
		name string
		data string
		want *Config
	}{
		{name: "only_pools", data: minimal, want: withPool(nil)},
		{
			// A nested section that names one key keeps the defaults of its other keys.
			name: "partial_sections_keep_other_defaults",
			data: minimal + "server: {grpc_addr: \"127.0.0.1:7000\"}\nidentity: {sub: x-id}\njwks: {fetch_timeout: 1s}\n",
			want: withPool(func(c *Config) {
				c.Server.GRPCAddr = "127.0.0.1:7000"
				c.Identity.Sub = "x-id"
				c.JWKS.FetchTimeout = Duration(time.Second)
			}),
		},
		{
			name: "empty_header_turns_one_off",
			data: minimal + "identity: {email: \"\", pool: \"\"}\n",
			want: withPool(func(c *Config) { c.Identity.Email, c.Identity.Pool = "", "" }),
		},
		{
			// A list replaces the default list: it is not merged with it element by element.
			name: "sources_replace_the_default",
			data: minimal + "token: {sources: [{cookie: id_token}]}\n",
			want: withPool(func(c *Config) { c.Token.Sources = []TokenSource{{Cookie: "id_token"}} }),
		},
		{
			name: "claim_values_scalar_or_list",
			data: minimal + "rules: [{name: a, require: {claims: {x: one, y: [two, three], z: true}}}]\n",
			want: withPool(func(c *Config) {
				c.Rules = []Rule{{Name: "a", Require: &Require{Claims: map[string]StringList{"x": {"one"}, "y": {"two", "three"}, "z": {"true"}}}}}
			}),
		},
		{
			name: "explicit_document_start",
			data: "---" + minimal,
			want: withPool(nil),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Parse([]byte(tt.data))
			if err != nil {
				t.Fatalf("Parse() error = %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Parse() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDefaultValues(t *testing.T) {
	t.Parallel()
	// The contract's documented defaults: changing one is a breaking change for every deployment.
	d := Default()
	want := Config{
		Server: Server{GRPCAddr: ":9001", HTTPAddr: "", AdminAddr: ":9090", DrainPeriod: Duration(5 * time.Second), ShutdownTimeout: Duration(15 * time.Second),
			MaxRecvMsgSize: 256 << 10, MaxConcurrentStreams: 256, MaxReceivingRequests: 256, ReceiveTimeout: Duration(10 * time.Second),
			MaxConnections: 1024, ConnectionTimeout: Duration(5 * time.Second), MaxConnectionIdle: Duration(2 * time.Minute),
			MaxConnectionAge: Duration(5 * time.Minute), MaxConnectionAgeGrace: Duration(30 * time.Second),
			Keepalive: Keepalive{Time: Duration(time.Minute), Timeout: Duration(20 * time.Second), MinTime: Duration(10 * time.Second), PermitWithoutStream: true}},
		Log: Log{Level: "info", Format: "json"},
		Token: Token{MaxBytes: 8192, Leeway: Duration(30 * time.Second),
			Sources: []TokenSource{{Header: "authorization", Prefix: "Bearer "}}},
		JWKS:  JWKS{RefreshInterval: Duration(time.Hour), UnknownKIDWindow: Duration(time.Minute), FetchTimeout: Duration(5 * time.Second)},
		Cache: Cache{MaxEntries: 100_000, MaxBytes: 12 << 20, NegativeTTL: Duration(10 * time.Second)},
		Identity: Identity{IdentityHeaders: authz.IdentityHeaders{
			Sub: "x-auth-sub", Username: "x-auth-username", Groups: "x-auth-groups", Scopes: "x-auth-scopes",
			ClientID: "x-auth-client-id", TokenUse: "x-auth-token-use", Email: "x-auth-email", Pool: "x-auth-pool",
		}, ForwardToken: ptr(true)},
		Default: "authenticated",
		Paths:   Paths{Ambiguous: "strictest"},
		Reload:  Reload{Interval: Duration(time.Second)},
	}
	if diff := cmp.Diff(want, d); diff != "" {
		t.Errorf("Default() mismatch (-want +got):\n%s", diff)
	}
	// Each call returns its own ForwardToken: a caller flipping it must not change the next Default.
	*d.Identity.ForwardToken = false
	if !*Default().Identity.ForwardToken {
		t.Error("Default() shares ForwardToken between calls")
	}
}

func TestParseRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		data string
		want []string // each must appear in the error
	}{
		{name: "unknown_top_level_key", data: minimal + "servr: {grpc_addr: \":1\"}\n", want: []string{"servr"}},
		{name: "unknown_server_key", data: minimal + "server: {grpc_adr: \":1\"}\n", want: []string{"grpc_adr"}},
		{name: "unknown_pool_key", data: minimal + "    clientids: [x]\n", want: []string{"clientids"}},
		{name: "unknown_identity_key", data: minimal + "identity: {subject: x-sub}\n", want: []string{"subject"}},
		{name: "duplicate_identity_key", data: minimal + "identity: {sub: x-a, sub: x-b}\n", want: []string{"sub"}},
		{name: "identity_header_not_a_string", data: minimal + "identity: {sub: [x]}\n", want: []string{"line"}},
		{name: "identity_not_a_mapping", data: minimal + "identity: x-sub\n", want: []string{"line"}},
		{name: "second_document", data: minimal + "---\nlog: {level: debug}\n", want: []string{"more than one YAML document"}},
		{name: "duplicate_key", data: minimal + "log: {level: debug}\nlog: {level: info}\n", want: []string{"log"}},
		{name: "duration_without_unit", data: minimal + "token: {leeway: 30}\n", want: []string{"line", "missing unit"}},
		{name: "duration_not_scalar", data: minimal + "token: {leeway: [1s]}\n", want: []string{"line", "duration"}},
		{name: "max_bytes_not_int", data: minimal + "token: {max_bytes: lots}\n", want: []string{"lots"}},
		{name: "cache_size_bad_unit", data: minimal + "cache: {max_bytes: 16MB}\n", want: []string{"line", `size "16MB"`}},
		{name: "cache_size_negative", data: minimal + "cache: {max_bytes: -1}\n", want: []string{`size "-1"`}},
		{name: "cache_size_not_scalar", data: minimal + "cache: {max_bytes: [1]}\n", want: []string{"line", "size"}},
		{name: "cache_size_overflow", data: minimal + "cache: {max_bytes: 9999999999999GiB}\n", want: []string{"size"}},
		{name: "unknown_cache_key", data: minimal + "cache: {ttl: 1m}\n", want: []string{"ttl"}},
		{name: "forward_token_null", data: minimal + "identity: {forward_token: null}\n", want: []string{"identity.forward_token must be true or false"}},
		{name: "not_a_mapping", data: "just a string\n", want: []string{"cannot unmarshal"}},
		{name: "unknown_rule_key", data: minimal + "rules: [{name: a, match: {path: /x}}]\n", want: []string{"path"}},
		{name: "unknown_require_key", data: minimal + "rules: [{name: a, require: {group: [x]}}]\n", want: []string{"group"}},
		{name: "unknown_source_key", data: minimal + "token: {sources: [{query: t}]}\n", want: []string{"query"}},
		{name: "claim_values_mapping", data: minimal + "rules: [{name: a, require: {claims: {x: {y: z}}}}]\n", want: []string{"want a string or a list"}},
		{name: "empty_file", data: "", want: []string{"at least one pool"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := Parse([]byte(tt.data))
			if err == nil {
				t.Fatalf("Parse() = %+v, want an error", c)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("Parse() error = %v, want it to wrap ErrInvalid", err)
			}
			if c != nil {
				t.Errorf("Parse() returned a config with an error: %+v", c)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Parse() error = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

// problems returns the messages of a Validate error, one per problem.
func problems(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) {
		return []string{err.Error()}
	}
	var out []string
	for _, e := range joined.Unwrap() {
		if !errors.Is(e, ErrInvalid) {
			t.Errorf("problem %q does not wrap ErrInvalid", e)
		}
		out = append(out, e.Error())
	}
	return out
}

// ValidateCase is one case of the validation table: a change to a valid config and the one problem it
// causes. Rules marks a problem of what a rule means: policy.New finds it (through runtime.Validate), and
// config.Validate must pass. The table is exported to this package's external tests, which feed every case
// to config check's and serve's build (see agree_test.go).
type ValidateCase struct {
	Name   string
	Mutate func(c *Config)
	Want   string // the one problem expected; empty: valid
	Rules  bool
}

// CaseConfig is the valid config every case changes.
func CaseConfig() *Config {
	c := Default()
	c.Pools = []Pool{mainPool()}
	return &c
}

var ValidateCases = []ValidateCase{
	{Name: "valid", Mutate: func(*Config) {}},

	// server
	{Name: "grpc_addr_required", Mutate: func(c *Config) { c.Server.GRPCAddr = "" }, Want: "server.grpc_addr is required"},
	{Name: "admin_addr_required", Mutate: func(c *Config) { c.Server.AdminAddr = "" }, Want: "server.admin_addr is required"},
	{Name: "http_addr_optional", Mutate: func(c *Config) { c.Server.HTTPAddr = "" }},
	{Name: "grpc_addr_without_port", Mutate: func(c *Config) { c.Server.GRPCAddr = "9001" }, Want: `server.grpc_addr "9001": address 9001: missing port in address`},
	{Name: "http_addr_without_port", Mutate: func(c *Config) { c.Server.HTTPAddr = "localhost" }, Want: `server.http_addr "localhost"`},
	{Name: "admin_addr_too_many_colons", Mutate: func(c *Config) { c.Server.AdminAddr = "a:b:c" }, Want: `server.admin_addr "a:b:c"`},
	{Name: "grpc_and_admin_same_addr", Mutate: func(c *Config) { c.Server.AdminAddr = ":9001" }, Want: `both listen on ":9001"`},
	{Name: "grpc_and_http_same_addr", Mutate: func(c *Config) { c.Server.HTTPAddr = ":9001" }, Want: `both listen on ":9001"`},
	{Name: "port_zero_twice_is_fine", Mutate: func(c *Config) {
		c.Server.GRPCAddr, c.Server.HTTPAddr, c.Server.AdminAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	}},

	// log
	{Name: "log_level_bad", Mutate: func(c *Config) { c.Log.Level = "verbose" }, Want: `log.level "verbose": want debug, info, warn or error`},
	{Name: "log_level_upper_case", Mutate: func(c *Config) { c.Log.Level = "INFO" }, Want: `log.level "INFO"`},
	{Name: "log_level_each_allowed", Mutate: func(c *Config) { c.Log.Level = "warn" }},
	{Name: "log_format_bad", Mutate: func(c *Config) { c.Log.Format = "xml" }, Want: `log.format "xml": want json or text`},
	{Name: "log_format_text", Mutate: func(c *Config) { c.Log.Format = "text" }},

	// token
	{Name: "max_bytes_below_range", Mutate: func(c *Config) { c.Token.MaxBytes = 511 }, Want: "token.max_bytes 511: want 512 to 65536"},
	{Name: "max_bytes_above_range", Mutate: func(c *Config) { c.Token.MaxBytes = 65537 }, Want: "token.max_bytes 65537"},
	{Name: "max_bytes_zero", Mutate: func(c *Config) { c.Token.MaxBytes = 0 }, Want: "token.max_bytes 0"},
	{Name: "max_bytes_low_bound", Mutate: func(c *Config) { c.Token.MaxBytes = 512 }},
	{Name: "max_bytes_high_bound", Mutate: func(c *Config) { c.Token.MaxBytes = 65536 }},
	{Name: "leeway_negative", Mutate: func(c *Config) { c.Token.Leeway = Duration(-time.Second) }, Want: "token.leeway -1s: want 0s to 5m"},
	{Name: "leeway_above_range", Mutate: func(c *Config) { c.Token.Leeway = Duration(5*time.Minute + time.Second) }, Want: "token.leeway 5m1s"},
	{Name: "leeway_zero", Mutate: func(c *Config) { c.Token.Leeway = 0 }},
	{Name: "leeway_high_bound", Mutate: func(c *Config) { c.Token.Leeway = Duration(5 * time.Minute) }},

	// jwks
	{Name: "refresh_below_range", Mutate: func(c *Config) { c.JWKS.RefreshInterval = Duration(59 * time.Second) }, Want: "jwks.refresh_interval 59s: want 1m to 24h"},
	{Name: "refresh_above_range", Mutate: func(c *Config) { c.JWKS.RefreshInterval = Duration(25 * time.Hour) }, Want: "jwks.refresh_interval 25h0m0s"},
	{Name: "refresh_bounds", Mutate: func(c *Config) { c.JWKS.RefreshInterval = Duration(24 * time.Hour) }},
	{Name: "window_below_range", Mutate: func(c *Config) { c.JWKS.UnknownKIDWindow = Duration(999 * time.Millisecond) }, Want: "jwks.unknown_kid_window 999ms: want 1s to 1h"},
	{Name: "window_above_range", Mutate: func(c *Config) { c.JWKS.UnknownKIDWindow = Duration(61 * time.Minute) }, Want: "jwks.unknown_kid_window 1h1m0s"},
	{Name: "window_bounds", Mutate: func(c *Config) { c.JWKS.UnknownKIDWindow = Duration(time.Second) }},
	{Name: "fetch_timeout_below_range", Mutate: func(c *Config) { c.JWKS.FetchTimeout = Duration(99 * time.Millisecond) }, Want: "jwks.fetch_timeout 99ms: want 100ms to 1m"},
	{Name: "fetch_timeout_above_range", Mutate: func(c *Config) { c.JWKS.FetchTimeout = Duration(61 * time.Second) }, Want: "jwks.fetch_timeout 1m1s"},
	{Name: "fetch_timeout_bounds", Mutate: func(c *Config) { c.JWKS.FetchTimeout = Duration(100 * time.Millisecond) }},

	// pools
	{Name: "no_pools", Mutate: func(c *Config) { c.Pools = nil }, Want: "pools: at least one pool is required"},
	{Name: "pool_name_empty", Mutate: func(c *Config) { c.Pools[0].Name = "" }, Want: `pools[0].name "": want lower case letters, digits, - and _`},
	{Name: "pool_name_upper_case", Mutate: func(c *Config) { c.Pools[0].Name = "Main" }, Want: `pools[0] (Main).name "Main"`},
	{Name: "pool_name_too_long", Mutate: func(c *Config) { c.Pools[0].Name = strings.Repeat("a", 64) }, Want: ".name"},
	{Name: "pool_names_duplicate", Mutate: func(c *Config) {
		p := mainPool()
		p.UserPoolID = "us-east-1_Other"
		c.Pools = append(c.Pools, p)
	}, Want: `pools[1] (main).name "main" is used twice`},
	{Name: "region_bad", Mutate: func(c *Config) { c.Pools[0].Region = "US-EAST-1" }, Want: `pools[0] (main).region "US-EAST-1": want an AWS region such as us-east-1`},
	{Name: "region_empty", Mutate: func(c *Config) { c.Pools[0].Region = "" }, Want: `pools[0] (main).region ""`},
	{Name: "region_govcloud", Mutate: func(c *Config) {
		c.Pools[0].Region, c.Pools[0].UserPoolID = "us-gov-west-1", "us-gov-west-1_AbC123"
	}},
	{Name: "pool_id_bad_form", Mutate: func(c *Config) { c.Pools[0].UserPoolID = "AbC123" }, Want: `pools[0] (main).user_pool_id "AbC123": want REGION_ID such as us-east-1_AbC123`},
	{Name: "pool_id_empty", Mutate: func(c *Config) { c.Pools[0].UserPoolID = "" }, Want: `pools[0] (main).user_pool_id ""`},
	{Name: "pool_id_other_region", Mutate: func(c *Config) { c.Pools[0].UserPoolID = "eu-west-1_AbC123" }, Want: `pools[0] (main).user_pool_id "eu-west-1_AbC123" is not in region "us-east-1"`},
	{Name: "cognito_local_pool_id_needs_issuer", Mutate: func(c *Config) { c.Pools[0].UserPoolID = "local_abc123" }, Want: `user_pool_id "local_abc123"`},
	{Name: "cognito_local_with_issuer", Mutate: func(c *Config) {
		c.Pools[0].UserPoolID, c.Pools[0].Issuer = "local_abc123", "http://127.0.0.1:9229/local_abc123"
	}},
	{Name: "issuer_set_region_ignored", Mutate: func(c *Config) {
		c.Pools[0].Region, c.Pools[0].UserPoolID, c.Pools[0].Issuer = "", "", "http://127.0.0.1:9229/local_abc123"
	}},
	{Name: "issuer_not_http", Mutate: func(c *Config) { c.Pools[0].Issuer = "ftp://example.com/pool" }, Want: `pools[0] (main).issuer: "ftp://example.com/pool": want an absolute http(s) URL without query`},
	{Name: "issuer_relative", Mutate: func(c *Config) { c.Pools[0].Issuer = "/us-east-1_AbC123" }, Want: "pools[0] (main).issuer"},
	{Name: "issuer_with_query", Mutate: func(c *Config) { c.Pools[0].Issuer = "https://example.com/pool?x=1" }, Want: "pools[0] (main).issuer"},
	{Name: "issuer_with_fragment", Mutate: func(c *Config) { c.Pools[0].Issuer = "https://example.com/pool#x" }, Want: "pools[0] (main).issuer"},
	{Name: "issuer_unparsable", Mutate: func(c *Config) { c.Pools[0].Issuer = "http://[::1" }, Want: "pools[0] (main).issuer"},
	{Name: "jwks_url_not_http", Mutate: func(c *Config) { c.Pools[0].JWKSURL = "file:///etc/jwks.json" }, Want: `pools[0] (main).jwks_url: "file:///etc/jwks.json"`},
	{Name: "jwks_url_no_host", Mutate: func(c *Config) { c.Pools[0].JWKSURL = "https:///jwks.json" }, Want: "pools[0] (main).jwks_url"},
	{Name: "jwks_url_ok", Mutate: func(c *Config) { c.Pools[0].JWKSURL = "http://127.0.0.1:9229/jwks.json" }},
	{Name: "client_ids_empty", Mutate: func(c *Config) { c.Pools[0].ClientIDs = nil }, Want: "pools[0] (main).client_ids: at least one app client id is required"},
	{Name: "client_id_blank", Mutate: func(c *Config) { c.Pools[0].ClientIDs = []string{""} }, Want: `pools[0] (main).client_ids: "" is empty or has spaces`},
	{Name: "client_id_padded", Mutate: func(c *Config) { c.Pools[0].ClientIDs = []string{"abc ", "def"} }, Want: `"abc " is empty or has spaces`},
	{Name: "token_use_bad", Mutate: func(c *Config) { c.Pools[0].TokenUse = "refresh" }, Want: `pools[0] (main).token_use "refresh": want access, id or any`},
	{Name: "token_use_empty", Mutate: func(c *Config) { c.Pools[0].TokenUse = "" }, Want: `token_use ""`},
	{Name: "token_use_id", Mutate: func(c *Config) { c.Pools[0].TokenUse = "id" }},
	{Name: "token_use_any", Mutate: func(c *Config) { c.Pools[0].TokenUse = "any" }},
	{Name: "issuers_duplicate_derived", Mutate: func(c *Config) {
		p := mainPool()
		p.Name = "copy"
		c.Pools = append(c.Pools, p)
	}, Want: `pools[0] (main) and pools[1] (copy) have the same issuer "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_AbC123"`},
	{Name: "issuers_duplicate_override_of_derived", Mutate: func(c *Config) {
		c.Pools = append(c.Pools, Pool{Name: "copy", ClientIDs: []string{"x"}, TokenUse: "id",
			Issuer: "https://issuer-cognito-idp.us-east-1.amazonaws.com/us-east-1_AbC123"})
	}, Want: `have the same issuer "https://issuer-cognito-idp.us-east-1.amazonaws.com/us-east-1_AbC123"`},
	{Name: "issuers_duplicate_trailing_slash", Mutate: func(c *Config) {
		c.Pools[0].Issuer = "http://127.0.0.1:9229/local_a"
		c.Pools = append(c.Pools, Pool{Name: "copy", ClientIDs: []string{"x"}, TokenUse: "id", Issuer: "http://127.0.0.1:9229/local_a/"})
	}, Want: `have the same issuer "http://127.0.0.1:9229/local_a"`},
	{Name: "two_pools_distinct", Mutate: func(c *Config) {
		c.Pools = append(c.Pools, Pool{Name: "eu", Region: "eu-west-1", UserPoolID: "eu-west-1_AbC123", ClientIDs: []string{"x"}, TokenUse: "id"})
	}},

	// identity
	{Name: "header_upper_case", Mutate: func(c *Config) { c.Identity.Sub = "X-Auth-Sub" }, Want: `identity.sub "X-Auth-Sub": want a lower-case header name`},
	{Name: "header_with_underscore", Mutate: func(c *Config) { c.Identity.Email = "x_auth_email" }, Want: `identity.email "x_auth_email": use - instead of _ in a header name`},
	{Name: "header_with_space", Mutate: func(c *Config) { c.Identity.Groups = "x auth groups" }, Want: `identity.groups "x auth groups": want a lower-case header name`},
	{Name: "header_pseudo", Mutate: func(c *Config) { c.Identity.Username = ":authority" }, Want: `identity.username ":authority"`},
	{Name: "header_reserved_authorization", Mutate: func(c *Config) { c.Identity.Username = "authorization" }, Want: `identity.username "authorization" is a header the proxy owns`},
	{Name: "header_reserved_host", Mutate: func(c *Config) { c.Identity.Pool = "host" }, Want: `identity.pool "host" is a header the proxy owns`},
	{Name: "header_reserved_cookie", Mutate: func(c *Config) { c.Identity.Email = "cookie" }, Want: `identity.email "cookie" is a header the proxy owns`},
	{Name: "header_reserved_x_envoy_prefix", Mutate: func(c *Config) { c.Identity.Scopes = "x-envoy-auth" }, Want: `identity.scopes "x-envoy-auth" is a header the proxy owns`},
	{Name: "header_reserved_in_claims", Mutate: func(c *Config) { c.Identity.Claims = map[string]string{"custom:tenant": "x-forwarded-for"} }, Want: `identity.claims[custom:tenant] "x-forwarded-for" is a header the proxy owns`},
	{Name: "headers_duplicate", Mutate: func(c *Config) { c.Identity.Username = "x-auth-sub" }, Want: `identity.sub and identity.username both use header "x-auth-sub"`},
	{Name: "headers_duplicate_claim", Mutate: func(c *Config) { c.Identity.Claims = map[string]string{"email": "x-auth-email"} }, Want: `identity.email and identity.claims[email] both use header "x-auth-email"`},
	{Name: "sub_required", Mutate: func(c *Config) { c.Identity.Sub = "" }, Want: "identity.sub is required"},
	{Name: "other_headers_optional", Mutate: func(c *Config) {
		c.Identity.Username, c.Identity.Groups, c.Identity.Scopes, c.Identity.ClientID = "", "", "", ""
		c.Identity.TokenUse, c.Identity.Email, c.Identity.Pool = "", "", ""
	}},
	{Name: "claim_name_empty", Mutate: func(c *Config) { c.Identity.Claims = map[string]string{"": "x-auth-x"} }, Want: "identity.claims: empty claim name"},
	{Name: "claim_header_empty", Mutate: func(c *Config) { c.Identity.Claims = map[string]string{"custom:tenant": ""} }, Want: `identity.claims["custom:tenant"]: empty header name`},
	{Name: "claims_ok", Mutate: func(c *Config) { c.Identity.Claims = map[string]string{"custom:tenant": "x-auth-tenant"} }},
	{Name: "forward_token_unset", Mutate: func(c *Config) { c.Identity.ForwardToken = nil }, Want: "identity.forward_token must be true or false"},

	// server HTTP mode
	{Name: "http_path_prefix_ok", Mutate: func(c *Config) { c.Server.HTTPPathPrefix = "/authz" }},
	{Name: "http_path_prefix_relative", Mutate: func(c *Config) { c.Server.HTTPPathPrefix = "authz" }, Want: `server.http_path_prefix "authz"`},
	{Name: "http_path_prefix_trailing_slash", Mutate: func(c *Config) { c.Server.HTTPPathPrefix = "/authz/" }, Want: `server.http_path_prefix "/authz/"`},
	{Name: "http_path_prefix_dotdot", Mutate: func(c *Config) { c.Server.HTTPPathPrefix = "/a/../authz" }, Want: `server.http_path_prefix`},
	{Name: "http_trust_forwarded", Mutate: func(c *Config) { c.Server.HTTPTrustForwarded = true }},
	{Name: "http_forwarded_nginx", Mutate: func(c *Config) { c.Server.HTTPForwarded = "nginx" }},
	{Name: "http_forwarded_none", Mutate: func(c *Config) { c.Server.HTTPForwarded = "none" }},
	{Name: "http_forwarded_unknown", Mutate: func(c *Config) { c.Server.HTTPForwarded = "apache" }, Want: `server.http_forwarded "apache": want none, nginx, traefik or caddy`},
	{Name: "http_forwarded_and_trust", Mutate: func(c *Config) { c.Server.HTTPForwarded, c.Server.HTTPTrustForwarded = "traefik", true },
		Want: "set only http_forwarded"},
	{Name: "paths_reject", Mutate: func(c *Config) { c.Paths.Ambiguous = "reject" }},
	{Name: "paths_unknown", Mutate: func(c *Config) { c.Paths.Ambiguous = "lenient" }, Want: `paths.ambiguous "lenient": want strictest or reject`},

	// token sources
	{Name: "sources_three", Mutate: func(c *Config) {
		c.Token.Sources = []TokenSource{{Header: "authorization", Prefix: "Bearer "}, {Cookie: "id_token"}, {Header: "x-amzn-oidc-accesstoken"}}
	}},
	{Name: "sources_empty", Mutate: func(c *Config) { c.Token.Sources = nil }, Want: "token.sources: want 1 to 8 sources"},
	{Name: "sources_too_many", Mutate: func(c *Config) {
		for i := range 9 {
			c.Token.Sources = append(c.Token.Sources, TokenSource{Cookie: fmt.Sprintf("c%d", i)})
		}
	}, Want: "token.sources: want 1 to 8 sources"},
	{Name: "source_both", Mutate: func(c *Config) { c.Token.Sources = []TokenSource{{Header: "a", Cookie: "b"}} }, Want: "token.sources[0]: set exactly one of header and cookie"},
	{Name: "source_neither", Mutate: func(c *Config) { c.Token.Sources = []TokenSource{{Prefix: "Bearer "}} }, Want: "token.sources[0]: set exactly one"},
	{Name: "source_header_upper", Mutate: func(c *Config) { c.Token.Sources = []TokenSource{{Header: "Authorization"}} }, Want: `token.sources[0].header "Authorization"`},
	{Name: "source_header_cookie", Mutate: func(c *Config) { c.Token.Sources = []TokenSource{{Header: "cookie"}} }, Want: "use cookie: NAME"},
	{Name: "source_cookie_bad", Mutate: func(c *Config) { c.Token.Sources = []TokenSource{{Cookie: "id token"}} }, Want: `token.sources[0].cookie "id token"`},
	{Name: "source_cookie_prefix", Mutate: func(c *Config) { c.Token.Sources = []TokenSource{{Cookie: "id_token", Prefix: "Bearer "}} }, Want: "only a header has a scheme prefix"},
	{Name: "source_prefix_blank", Mutate: func(c *Config) { c.Token.Sources = []TokenSource{{Header: "authorization", Prefix: " "}} }, Want: `token.sources[0].prefix " "`},
	{Name: "source_twice", Mutate: func(c *Config) { c.Token.Sources = []TokenSource{{Cookie: "a"}, {Cookie: "a"}} }, Want: "token.sources[1] is listed twice"},

	// rules
	{Name: "rules_ok", Mutate: func(c *Config) {
		c.Rules = []Rule{
			{Name: "health", Match: Match{PathExact: "/healthz"}, Action: "allow"},
			{Name: "admin", Match: Match{Host: "*.Example.com.", PathPrefix: "/admin", Methods: []string{"GET", "post"}},
				Require: &Require{Pools: []string{"main"}, TokenUse: "id", GroupsAny: []string{"admins"}, Claims: map[string]StringList{"x": {"y"}}}},
			{Name: "feed", Match: Match{PathRegex: "/feed/.*", ContextExtensions: map[string]string{"policy": "feed"}}, Action: "optional", OptionalInvalid: "anonymous"},
		}
	}},
	{Name: "default_bad", Rules: true, Mutate: func(c *Config) { c.Default = "optional" }, Want: `default: optional: want authenticated, login, allow or deny`},
	{Name: "default_empty", Mutate: func(c *Config) { c.Default = "" }, Want: `default ""`},
	{Name: "default_allow", Mutate: func(c *Config) { c.Default = "allow" }},
	{Name: "rule_name_empty", Rules: true, Mutate: func(c *Config) { c.Rules = []Rule{{}} }, Want: `rules[0].name: a rule needs a name`},
	{Name: "rule_name_default", Rules: true, Mutate: func(c *Config) { c.Rules = []Rule{{Name: "default"}} }, Want: `rules[0] (default).name: "default" is reserved`},
	{Name: "rule_name_twice", Rules: true, Mutate: func(c *Config) { c.Rules = []Rule{{Name: "a"}, {Name: "a"}} }, Want: `rules[1] (a).name: "a" is used twice`},
	{Name: "rule_action_bad", Mutate: func(c *Config) { c.Rules = []Rule{{Name: "a", Action: "permit"}} }, Want: `rules[0] (a).action "permit"`},
	{Name: "rule_optional_invalid_bad", Mutate: func(c *Config) { c.Rules = []Rule{{Name: "a", Action: "optional", OptionalInvalid: "allow"}} }, Want: `rules[0] (a).optional_invalid "allow"`},
	{Name: "rule_optional_invalid_not_optional", Rules: true, Mutate: func(c *Config) { c.Rules = []Rule{{Name: "a", OptionalInvalid: "anonymous"}} }, Want: `rules[0] (a).optional_invalid: needs action optional`},
	{Name: "rule_require_with_allow", Rules: true, Mutate: func(c *Config) {
		c.Rules = []Rule{{Name: "a", Action: "allow", Require: &Require{GroupsAny: []string{"x"}}}}
	}, Want: `rules[0] (a).require: needs action authenticated or login, not allow`},
	{Name: "rule_host_port", Rules: true, Mutate: func(c *Config) { c.Rules = []Rule{{Name: "a", Match: Match{Host: "api.example.com:443"}}} }, Want: `rules[0] (a).match.host: "api.example.com:443"`},
	{Name: "rule_host_inner_wildcard", Rules: true, Mutate: func(c *Config) { c.Rules = []Rule{{Name: "a", Match: Match{Host: "api.*.com"}}} }, Want: `match.host: "api.*.com"`},
	{Name: "rule_path_not_normal", Rules: true, Mutate: func(c *Config) { c.Rules = []Rule{{Name: "a", Match: Match{PathPrefix: "/public/../admin"}}} }, Want: `rules[0] (a).match.path_prefix: "/public/../admin": requests are matched by their normalised path, so this never matches; write "/admin"`},
	{Name: "rule_path_with_query", Rules: true, Mutate: func(c *Config) { c.Rules = []Rule{{Name: "a", Match: Match{PathExact: "/a?b"}}} }, Want: `match.path_exact: "/a?b"`},
	{Name: "rule_path_encoded_letter", Rules: true, Mutate: func(c *Config) { c.Rules = []Rule{{Name: "a", Match: Match{PathExact: "/%61"}}} }, Want: `write "/a"`},
	{Name: "rule_regex_bad", Rules: true, Mutate: func(c *Config) { c.Rules = []Rule{{Name: "a", Match: Match{PathRegex: "(("}}} }, Want: "rules[0] (a).match.path_regex"},
	{Name: "rule_two_paths", Rules: true, Mutate: func(c *Config) { c.Rules = []Rule{{Name: "a", Match: Match{PathExact: "/a", PathRegex: "/b"}}} }, Want: "set at most one of path_exact"},
	{Name: "rule_method_and_methods", Mutate: func(c *Config) { c.Rules = []Rule{{Name: "a", Match: Match{Method: "GET", Methods: []string{"POST"}}}} }, Want: "set method or methods, not both"},
	{Name: "rule_method_bad", Rules: true, Mutate: func(c *Config) { c.Rules = []Rule{{Name: "a", Match: Match{Methods: []string{"GET POST"}}}} }, Want: `rules[0] (a).match.methods: "GET POST" is not a method`},
	{Name: "rule_context_extension_empty_key", Rules: true, Mutate: func(c *Config) {
		c.Rules = []Rule{{Name: "a", Match: Match{ContextExtensions: map[string]string{"": "x"}}}}
	}, Want: `rules[0] (a).match.context_extensions: empty key`},
	{Name: "require_pool_unknown", Mutate: func(c *Config) { c.Rules = []Rule{{Name: "a", Require: &Require{Pools: []string{"other"}}}} }, Want: `rules[0] (a).require.pools: "other" is not a configured pool`},
	{Name: "require_token_use_bad", Rules: true, Mutate: func(c *Config) { c.Rules = []Rule{{Name: "a", Require: &Require{TokenUse: "any"}}} }, Want: `rules[0] (a).require.token_use: "any": want access or id`},
	{Name: "require_group_blank", Rules: true, Mutate: func(c *Config) { c.Rules = []Rule{{Name: "a", Require: &Require{GroupsAll: []string{" "}}}} }, Want: `rules[0] (a).require.groups_all: " " is empty`},
	{Name: "require_scope_with_space", Rules: true, Mutate: func(c *Config) { c.Rules = []Rule{{Name: "a", Require: &Require{ScopesAny: []string{"a b"}}}} }, Want: `rules[0] (a).require.scopes_any: "a b"`},
	{Name: "require_claim_no_values", Rules: true, Mutate: func(c *Config) {
		c.Rules = []Rule{{Name: "a", Require: &Require{Claims: map[string]StringList{"x": {}}}}}
	}, Want: `rules[0] (a).require.claims[x]: list at least one allowed value`},
	{Name: "require_claim_empty_name", Rules: true, Mutate: func(c *Config) {
		c.Rules = []Rule{{Name: "a", Require: &Require{Claims: map[string]StringList{"": {"x"}}}}}
	}, Want: `rules[0] (a).require.claims: empty claim name`},
	// cache
	{Name: "cache_off", Mutate: func(c *Config) { c.Cache.MaxEntries, c.Cache.MaxBytes = 0, 0 }},
	{Name: "cache_entries_negative", Mutate: func(c *Config) { c.Cache.MaxEntries = -1 }, Want: "cache.max_entries -1: want 0 (off) to 10000000"},
	{Name: "cache_entries_above_range", Mutate: func(c *Config) { c.Cache.MaxEntries = 10_000_001 }, Want: "cache.max_entries 10000001"},
	{Name: "cache_bytes_below_range", Mutate: func(c *Config) { c.Cache.MaxBytes = 1<<20 - 1 }, Want: "cache.max_bytes 1048575: want 1MiB to 16GiB"},
	{Name: "cache_bytes_above_range", Mutate: func(c *Config) { c.Cache.MaxBytes = 17 << 30 }, Want: "cache.max_bytes 17GiB"},
	{Name: "cache_bytes_min", Mutate: func(c *Config) { c.Cache.MaxBytes = 1 << 20 }},
	{Name: "negative_ttl_off", Mutate: func(c *Config) { c.Cache.NegativeTTL = 0 }},
	{Name: "negative_ttl_negative", Mutate: func(c *Config) { c.Cache.NegativeTTL = Duration(-time.Second) }, Want: "cache.negative_ttl -1s: want 0s to 1m"},
	{Name: "negative_ttl_above_range", Mutate: func(c *Config) { c.Cache.NegativeTTL = Duration(61 * time.Second) }, Want: "cache.negative_ttl 1m1s"},
	{Name: "rule_host_ipv6_literal", Rules: true, Mutate: func(c *Config) { c.Rules = []Rule{{Name: "a", Match: Match{Host: "[::1]"}}} }, Want: `rules[0] (a).match.host: "[::1]"`},
	{Name: "reload_interval_off", Mutate: func(c *Config) { c.Reload.Interval = 0 }},
	{Name: "reload_interval_short", Mutate: func(c *Config) { c.Reload.Interval = Duration(99 * time.Millisecond) }, Want: "reload.interval 99ms: want 0s (off) or 100ms to 10m"},
	{Name: "reload_interval_long", Mutate: func(c *Config) { c.Reload.Interval = Duration(11 * time.Minute) }, Want: "reload.interval 11m0s"},
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := ValidateCases
	for _, tt := range tests {
		t.Run(tt.Name, func(t *testing.T) {
			t.Parallel()
			c := CaseConfig()
			tt.Mutate(c)
			err := c.Validate()
			got := problems(t, err)
			if tt.Want == "" || tt.Rules {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("Validate() = %v, want it to wrap ErrInvalid", err)
			}
			if len(got) != 1 || !strings.Contains(got[0], tt.Want) {
				t.Errorf("Validate() problems = %q, want exactly one containing %q", got, tt.Want)
			}
		})
	}
}

func TestValidateOrderIsStable(t *testing.T) {
	t.Parallel()
	// config check prints the problems in Validate's order; the same file must always print the same way.
	c := Default()
	c.Server.GRPCAddr, c.Server.AdminAddr, c.Server.HTTPAddr = "", "", "x"
	first := c.Validate().Error()
	for range 50 {
		if got := c.Validate().Error(); got != first {
			t.Fatalf("Validate() order changed between calls:\n%s\n---\n%s", first, got)
		}
	}
}

func TestApplyEnv(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		env   string
		value string
		field func(*Config) *string
	}{
		{name: "grpc_addr", env: "COGNITO_AUTHZ_GRPC_ADDR", value: "127.0.0.1:7001", field: func(c *Config) *string { return &c.Server.GRPCAddr }},
		{name: "http_addr", env: "COGNITO_AUTHZ_HTTP_ADDR", value: "127.0.0.1:7002", field: func(c *Config) *string { return &c.Server.HTTPAddr }},
		{name: "http_addr_set_empty_turns_it_off", env: "COGNITO_AUTHZ_HTTP_ADDR", value: "", field: func(c *Config) *string { return &c.Server.HTTPAddr }},
		{name: "admin_addr", env: "COGNITO_AUTHZ_ADMIN_ADDR", value: "127.0.0.1:7090", field: func(c *Config) *string { return &c.Server.AdminAddr }},
		{name: "log_level", env: "COGNITO_AUTHZ_LOG_LEVEL", value: "debug", field: func(c *Config) *string { return &c.Log.Level }},
		{name: "log_format", env: "COGNITO_AUTHZ_LOG_FORMAT", value: "text", field: func(c *Config) *string { return &c.Log.Format }},
	}
	var covered []string
	for _, tt := range tests {
		covered = append(covered, tt.env)
	}
	for _, name := range Env {
		if !slices.Contains(covered, name) {
			t.Errorf("config.Env lists %s but TestApplyEnv does not cover it", name)
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := Parse([]byte(minimal + "server: {http_addr: \":9002\"}\n"))
			if err != nil {
				t.Fatal(err)
			}
			want := *c
			if *tt.field(&want) == tt.value {
				t.Fatalf("the file already has %q: the test would prove nothing", tt.value)
			}
			*tt.field(&want) = tt.value
			env := map[string]string{tt.env: tt.value}
			if err := c.ApplyEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
				t.Fatalf("ApplyEnv(%s=%q) error = %v", tt.env, tt.value, err)
			}
			if diff := cmp.Diff(want, *c); diff != "" {
				t.Errorf("ApplyEnv(%s=%q) mismatch (-want +got):\n%s", tt.env, tt.value, diff)
			}
		})
	}
	t.Run("none_set", func(t *testing.T) {
		t.Parallel()
		c, err := Parse([]byte(minimal))
		if err != nil {
			t.Fatal(err)
		}
		want := *c
		if err := c.ApplyEnv(func(string) (string, bool) { return "", false }); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, *c); diff != "" {
			t.Errorf("ApplyEnv with no variables mismatch (-want +got):\n%s", diff)
		}
	})
}

func TestApplyEnvInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{name: "bad_level", env: map[string]string{"COGNITO_AUTHZ_LOG_LEVEL": "loud"}, want: []string{`log.level "loud"`}},
		{name: "bad_format", env: map[string]string{"COGNITO_AUTHZ_LOG_FORMAT": "yaml"}, want: []string{`log.format "yaml"`}},
		{name: "grpc_addr_emptied", env: map[string]string{"COGNITO_AUTHZ_GRPC_ADDR": ""}, want: []string{"server.grpc_addr is required"}},
		{name: "admin_collides_with_grpc", env: map[string]string{"COGNITO_AUTHZ_ADMIN_ADDR": ":9001"}, want: []string{`both listen on ":9001"`}},
		{name: "two_bad", env: map[string]string{"COGNITO_AUTHZ_LOG_LEVEL": "loud", "COGNITO_AUTHZ_HTTP_ADDR": "nope"}, want: []string{`log.level "loud"`, `server.http_addr "nope"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := Parse([]byte(minimal))
			if err != nil {
				t.Fatal(err)
			}
			err = c.ApplyEnv(func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok })
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("ApplyEnv(%v) error = %v, want ErrInvalid", tt.env, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("ApplyEnv(%v) error = %q, want it to contain %q", tt.env, err, w)
				}
			}
		})
	}
}

func TestPoolIssuersAndKeysURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		pool        Pool
		wantIssuers []string
		wantKeys    string
	}{
		{
			name:        "cognito_both_forms",
			pool:        Pool{Region: "eu-west-1", UserPoolID: "eu-west-1_AbC123"},
			wantIssuers: []string{"https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123", "https://issuer-cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123"},
			wantKeys:    "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123/.well-known/jwks.json",
		},
		{
			name:        "issuer_override_alone",
			pool:        Pool{Region: "us-east-1", UserPoolID: "local_abc123", Issuer: "http://127.0.0.1:9229/local_abc123"},
			wantIssuers: []string{"http://127.0.0.1:9229/local_abc123"},
			wantKeys:    "http://127.0.0.1:9229/local_abc123/.well-known/jwks.json",
		},
		{
			name:        "issuer_override_trailing_slash",
			pool:        Pool{Issuer: "http://127.0.0.1:9229/local_abc123/"},
			wantIssuers: []string{"http://127.0.0.1:9229/local_abc123"},
			wantKeys:    "http://127.0.0.1:9229/local_abc123/.well-known/jwks.json",
		},
		{
			name:        "jwks_override",
			pool:        Pool{Region: "us-east-1", UserPoolID: "us-east-1_AbC123", JWKSURL: "http://keys.internal/jwks.json"},
			wantIssuers: []string{"https://cognito-idp.us-east-1.amazonaws.com/us-east-1_AbC123", "https://issuer-cognito-idp.us-east-1.amazonaws.com/us-east-1_AbC123"},
			wantKeys:    "http://keys.internal/jwks.json",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.wantIssuers, tt.pool.Issuers()); diff != "" {
				t.Errorf("Issuers() mismatch (-want +got):\n%s", diff)
			}
			if got := tt.pool.KeysURL(); got != tt.wantKeys {
				t.Errorf("KeysURL() = %q, want %q", got, tt.wantKeys)
			}
		})
	}
}

func TestIdentityHeaders(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		id   Identity
		want []string
	}{
		{
			name: "defaults",
			id:   Default().Identity,
			want: []string{"x-auth-sub", "x-auth-username", "x-auth-groups", "x-auth-scopes", "x-auth-client-id", "x-auth-token-use", "x-auth-email", "x-auth-pool"},
		},
		{
			name: "empties_dropped_claims_in_claim_order",
			id: Identity{IdentityHeaders: authz.IdentityHeaders{Sub: "x-sub", Email: "x-email", Claims: map[string]string{
				"custom:zone": "x-a-zone", "custom:tenant": "x-z-tenant", "custom:dept": "x-dept",
			}}},
			want: []string{"x-sub", "x-email", "x-dept", "x-z-tenant", "x-a-zone"},
		},
		{name: "none", id: Identity{}, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, tt.id.Headers()); diff != "" {
				t.Errorf("Headers() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// pad makes a valid file of exactly n bytes with a trailing comment.
	pad := func(n int) []byte {
		b := []byte(minimal + "#")
		b = append(b, strings.Repeat("x", n-len(b)-1)...)
		return append(b, '\n')
	}
	valid := write("valid.yaml", []byte(minimal))
	atBound := write("at-bound.yaml", pad(maxFileBytes))
	overBound := write("over-bound.yaml", pad(maxFileBytes+1))
	invalid := write("invalid.yaml", []byte(minimal+"log: {level: loud}\n"))

	t.Run("valid", func(t *testing.T) {
		t.Parallel()
		c, err := Load(valid)
		if err != nil {
			t.Fatalf("Load() error = %v", err)
		}
		if diff := cmp.Diff([]Pool{mainPool()}, c.Pools); diff != "" {
			t.Errorf("Load() pools mismatch (-want +got):\n%s", diff)
		}
	})
	t.Run("at_bound", func(t *testing.T) {
		t.Parallel()
		if _, err := Load(atBound); err != nil {
			t.Fatalf("Load() of a %d-byte file error = %v", maxFileBytes, err)
		}
	})
	t.Run("over_bound", func(t *testing.T) {
		t.Parallel()
		_, err := Load(overBound)
		if err == nil || !strings.Contains(err.Error(), "larger than") {
			t.Fatalf("Load() of a %d-byte file error = %v, want larger than", maxFileBytes+1, err)
		}
	})
	t.Run("missing", func(t *testing.T) {
		t.Parallel()
		_, err := Load(filepath.Join(dir, "nope.yaml"))
		if !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Load() of a missing file error = %v, want fs.ErrNotExist", err)
		}
	})
	t.Run("invalid_names_the_file", func(t *testing.T) {
		t.Parallel()
		_, err := Load(invalid)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), invalid) || !strings.Contains(err.Error(), `log.level "loud"`) {
			t.Fatalf("Load() error = %v, want ErrInvalid naming %s and the problem", err, invalid)
		}
	})
	t.Run("directory", func(t *testing.T) {
		t.Parallel()
		if _, err := Load(dir); err == nil {
			t.Fatal("Load() of a directory succeeded")
		}
	})
}

func TestDurationYAMLRoundTrip(t *testing.T) {
	t.Parallel()
	for _, d := range []Duration{0, Duration(1500 * time.Millisecond), Duration(time.Hour + time.Minute)} {
		b, err := yaml.Marshal(struct {
			D Duration `yaml:"d"`
		}{d})
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			D Duration `yaml:"d"`
		}
		if err := yaml.Unmarshal(b, &got); err != nil {
			t.Fatalf("Unmarshal(%q) error = %v", b, err)
		}
		if got.D != d {
			t.Errorf("round trip of %s = %s", d.Std(), got.D.Std())
		}
	}
}

func FuzzParse(f *testing.F) {
	full, err := os.ReadFile(filepath.Join("testdata", "full.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		string(full), minimal, "", "---\n", "a: [", "pools: [{name: x}]", minimal + "---\n{}",
		"identity: {claims: {\"\": x}}", "token: {leeway: -1s}", minimal + "rules: [{name: a, require: {claims: {x: y}}}]", "&a [*a, *a]", "server: !!binary AAAA",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			if c != nil {
				t.Fatal("Parse returned a config and an error")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted a config that Validate rejects: %v", err)
		}
		// What Parse accepts survives being written back out: config check and docs print it that way.
		out, err := yaml.Marshal(c)
		if err != nil {
			t.Fatalf("Marshal of an accepted config: %v", err)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse of the re-marshalled config: %v\n%s", err, out)
		}
		if diff := cmp.Diff(c, again, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("round trip mismatch (-first +second):\n%s", diff)
		}
	})
}

func TestByteSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml string
		want       ByteSize
		text       string // MarshalYAML
	}{
		{name: "plain", yaml: "4096", want: 4096, text: "4KiB"},
		{name: "odd", yaml: "1000", want: 1000, text: "1000"},
		{name: "kib", yaml: "512KiB", want: 512 << 10, text: "512KiB"},
		{name: "mib", yaml: "16MiB", want: 16 << 20, text: "16MiB"},
		{name: "gib", yaml: "2GiB", want: 2 << 30, text: "2GiB"},
		{name: "zero", yaml: "0", want: 0, text: "0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got ByteSize
			if err := yaml.Unmarshal([]byte(tt.yaml), &got); err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("ByteSize(%q) = %d, want %d", tt.yaml, got, tt.want)
			}
			if s := got.String(); s != tt.text {
				t.Errorf("String() = %q, want %q", s, tt.text)
			}
		})
	}
}

func TestWarnings(t *testing.T) {
	t.Parallel()
	c := Default()
	if w := c.Warnings(); len(w) != 0 {
		t.Errorf("Default().Warnings() = %q, want none", w)
	}
	c.Server.HTTPTrustForwarded = true
	if w := c.Warnings(); len(w) != 1 || !strings.Contains(w[0], "server.http_trust_forwarded is deprecated") {
		t.Errorf("Warnings() = %q, want the http_trust_forwarded deprecation", w)
	}
}
