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
		Identity: Identity{
			Sub: "x-user-sub", Username: "x-user-name", Groups: "x-user-groups", Scopes: "x-user-scopes",
			ClientID: "x-user-client", TokenUse: "x-user-token-use", Email: "", Pool: "x-user-pool",
			Claims:       map[string]string{"custom:tenant": "x-user-tenant", "email": "x-user-email"},
			ForwardToken: ptr(false),
		},
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
		Identity: Identity{
			Sub: "x-auth-sub", Username: "x-auth-username", Groups: "x-auth-groups", Scopes: "x-auth-scopes",
			ClientID: "x-auth-client-id", TokenUse: "x-auth-token-use", Email: "x-auth-email", Pool: "x-auth-pool",
			ForwardToken: ptr(true),
		},
		Paths:   Paths{Ambiguous: "strictest"},
		Default: "authenticated",
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

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(c *Config)
		want   string // the one problem expected; empty: valid
	}{
		{name: "valid", mutate: func(*Config) {}},

		// server
		{name: "grpc_addr_required", mutate: func(c *Config) { c.Server.GRPCAddr = "" }, want: "server.grpc_addr is required"},
		{name: "admin_addr_required", mutate: func(c *Config) { c.Server.AdminAddr = "" }, want: "server.admin_addr is required"},
		{name: "http_addr_optional", mutate: func(c *Config) { c.Server.HTTPAddr = "" }},
		{name: "grpc_addr_without_port", mutate: func(c *Config) { c.Server.GRPCAddr = "9001" }, want: `server.grpc_addr "9001": address 9001: missing port in address`},
		{name: "http_addr_without_port", mutate: func(c *Config) { c.Server.HTTPAddr = "localhost" }, want: `server.http_addr "localhost"`},
		{name: "admin_addr_too_many_colons", mutate: func(c *Config) { c.Server.AdminAddr = "a:b:c" }, want: `server.admin_addr "a:b:c"`},
		{name: "grpc_and_admin_same_addr", mutate: func(c *Config) { c.Server.AdminAddr = ":9001" }, want: `both listen on ":9001"`},
		{name: "grpc_and_http_same_addr", mutate: func(c *Config) { c.Server.HTTPAddr = ":9001" }, want: `both listen on ":9001"`},
		{name: "port_zero_twice_is_fine", mutate: func(c *Config) {
			c.Server.GRPCAddr, c.Server.HTTPAddr, c.Server.AdminAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
		}},

		// log
		{name: "log_level_bad", mutate: func(c *Config) { c.Log.Level = "verbose" }, want: `log.level "verbose": want debug, info, warn or error`},
		{name: "log_level_upper_case", mutate: func(c *Config) { c.Log.Level = "INFO" }, want: `log.level "INFO"`},
		{name: "log_level_each_allowed", mutate: func(c *Config) { c.Log.Level = "warn" }},
		{name: "log_format_bad", mutate: func(c *Config) { c.Log.Format = "xml" }, want: `log.format "xml": want json or text`},
		{name: "log_format_text", mutate: func(c *Config) { c.Log.Format = "text" }},

		// token
		{name: "max_bytes_below_range", mutate: func(c *Config) { c.Token.MaxBytes = 511 }, want: "token.max_bytes 511: want 512 to 65536"},
		{name: "max_bytes_above_range", mutate: func(c *Config) { c.Token.MaxBytes = 65537 }, want: "token.max_bytes 65537"},
		{name: "max_bytes_zero", mutate: func(c *Config) { c.Token.MaxBytes = 0 }, want: "token.max_bytes 0"},
		{name: "max_bytes_low_bound", mutate: func(c *Config) { c.Token.MaxBytes = 512 }},
		{name: "max_bytes_high_bound", mutate: func(c *Config) { c.Token.MaxBytes = 65536 }},
		{name: "leeway_negative", mutate: func(c *Config) { c.Token.Leeway = Duration(-time.Second) }, want: "token.leeway -1s: want 0s to 5m"},
		{name: "leeway_above_range", mutate: func(c *Config) { c.Token.Leeway = Duration(5*time.Minute + time.Second) }, want: "token.leeway 5m1s"},
		{name: "leeway_zero", mutate: func(c *Config) { c.Token.Leeway = 0 }},
		{name: "leeway_high_bound", mutate: func(c *Config) { c.Token.Leeway = Duration(5 * time.Minute) }},

		// jwks
		{name: "refresh_below_range", mutate: func(c *Config) { c.JWKS.RefreshInterval = Duration(59 * time.Second) }, want: "jwks.refresh_interval 59s: want 1m to 24h"},
		{name: "refresh_above_range", mutate: func(c *Config) { c.JWKS.RefreshInterval = Duration(25 * time.Hour) }, want: "jwks.refresh_interval 25h0m0s"},
		{name: "refresh_bounds", mutate: func(c *Config) { c.JWKS.RefreshInterval = Duration(24 * time.Hour) }},
		{name: "window_below_range", mutate: func(c *Config) { c.JWKS.UnknownKIDWindow = Duration(999 * time.Millisecond) }, want: "jwks.unknown_kid_window 999ms: want 1s to 1h"},
		{name: "window_above_range", mutate: func(c *Config) { c.JWKS.UnknownKIDWindow = Duration(61 * time.Minute) }, want: "jwks.unknown_kid_window 1h1m0s"},
		{name: "window_bounds", mutate: func(c *Config) { c.JWKS.UnknownKIDWindow = Duration(time.Second) }},
		{name: "fetch_timeout_below_range", mutate: func(c *Config) { c.JWKS.FetchTimeout = Duration(99 * time.Millisecond) }, want: "jwks.fetch_timeout 99ms: want 100ms to 1m"},
		{name: "fetch_timeout_above_range", mutate: func(c *Config) { c.JWKS.FetchTimeout = Duration(61 * time.Second) }, want: "jwks.fetch_timeout 1m1s"},
		{name: "fetch_timeout_bounds", mutate: func(c *Config) { c.JWKS.FetchTimeout = Duration(100 * time.Millisecond) }},

		// pools
		{name: "no_pools", mutate: func(c *Config) { c.Pools = nil }, want: "pools: at least one pool is required"},
		{name: "pool_name_empty", mutate: func(c *Config) { c.Pools[0].Name = "" }, want: `pools[0].name "": want lower case letters, digits, - and _`},
		{name: "pool_name_upper_case", mutate: func(c *Config) { c.Pools[0].Name = "Main" }, want: `pools[0] (Main).name "Main"`},
		{name: "pool_name_too_long", mutate: func(c *Config) { c.Pools[0].Name = strings.Repeat("a", 64) }, want: ".name"},
		{name: "pool_names_duplicate", mutate: func(c *Config) {
			p := mainPool()
			p.UserPoolID = "us-east-1_Other"
			c.Pools = append(c.Pools, p)
		}, want: `pools[1] (main).name "main" is used twice`},
		{name: "region_bad", mutate: func(c *Config) { c.Pools[0].Region = "US-EAST-1" }, want: `pools[0] (main).region "US-EAST-1": want an AWS region such as us-east-1`},
		{name: "region_empty", mutate: func(c *Config) { c.Pools[0].Region = "" }, want: `pools[0] (main).region ""`},
		{name: "region_govcloud", mutate: func(c *Config) {
			c.Pools[0].Region, c.Pools[0].UserPoolID = "us-gov-west-1", "us-gov-west-1_AbC123"
		}},
		{name: "pool_id_bad_form", mutate: func(c *Config) { c.Pools[0].UserPoolID = "AbC123" }, want: `pools[0] (main).user_pool_id "AbC123": want REGION_ID such as us-east-1_AbC123`},
		{name: "pool_id_empty", mutate: func(c *Config) { c.Pools[0].UserPoolID = "" }, want: `pools[0] (main).user_pool_id ""`},
		{name: "pool_id_other_region", mutate: func(c *Config) { c.Pools[0].UserPoolID = "eu-west-1_AbC123" }, want: `pools[0] (main).user_pool_id "eu-west-1_AbC123" is not in region "us-east-1"`},
		{name: "cognito_local_pool_id_needs_issuer", mutate: func(c *Config) { c.Pools[0].UserPoolID = "local_abc123" }, want: `user_pool_id "local_abc123"`},
		{name: "cognito_local_with_issuer", mutate: func(c *Config) {
			c.Pools[0].UserPoolID, c.Pools[0].Issuer = "local_abc123", "http://127.0.0.1:9229/local_abc123"
		}},
		{name: "issuer_set_region_ignored", mutate: func(c *Config) {
			c.Pools[0].Region, c.Pools[0].UserPoolID, c.Pools[0].Issuer = "", "", "http://127.0.0.1:9229/local_abc123"
		}},
		{name: "issuer_not_http", mutate: func(c *Config) { c.Pools[0].Issuer = "ftp://example.com/pool" }, want: `pools[0] (main).issuer: "ftp://example.com/pool": want an absolute http(s) URL without query`},
		{name: "issuer_relative", mutate: func(c *Config) { c.Pools[0].Issuer = "/us-east-1_AbC123" }, want: "pools[0] (main).issuer"},
		{name: "issuer_with_query", mutate: func(c *Config) { c.Pools[0].Issuer = "https://example.com/pool?x=1" }, want: "pools[0] (main).issuer"},
		{name: "issuer_with_fragment", mutate: func(c *Config) { c.Pools[0].Issuer = "https://example.com/pool#x" }, want: "pools[0] (main).issuer"},
		{name: "issuer_unparsable", mutate: func(c *Config) { c.Pools[0].Issuer = "http://[::1" }, want: "pools[0] (main).issuer"},
		{name: "jwks_url_not_http", mutate: func(c *Config) { c.Pools[0].JWKSURL = "file:///etc/jwks.json" }, want: `pools[0] (main).jwks_url: "file:///etc/jwks.json"`},
		{name: "jwks_url_no_host", mutate: func(c *Config) { c.Pools[0].JWKSURL = "https:///jwks.json" }, want: "pools[0] (main).jwks_url"},
		{name: "jwks_url_ok", mutate: func(c *Config) { c.Pools[0].JWKSURL = "http://127.0.0.1:9229/jwks.json" }},
		{name: "client_ids_empty", mutate: func(c *Config) { c.Pools[0].ClientIDs = nil }, want: "pools[0] (main).client_ids: at least one app client id is required"},
		{name: "client_id_blank", mutate: func(c *Config) { c.Pools[0].ClientIDs = []string{""} }, want: `pools[0] (main).client_ids: "" is empty or has spaces`},
		{name: "client_id_padded", mutate: func(c *Config) { c.Pools[0].ClientIDs = []string{"abc ", "def"} }, want: `"abc " is empty or has spaces`},
		{name: "token_use_bad", mutate: func(c *Config) { c.Pools[0].TokenUse = "refresh" }, want: `pools[0] (main).token_use "refresh": want access, id or any`},
		{name: "token_use_empty", mutate: func(c *Config) { c.Pools[0].TokenUse = "" }, want: `token_use ""`},
		{name: "token_use_id", mutate: func(c *Config) { c.Pools[0].TokenUse = "id" }},
		{name: "token_use_any", mutate: func(c *Config) { c.Pools[0].TokenUse = "any" }},
		{name: "issuers_duplicate_derived", mutate: func(c *Config) {
			p := mainPool()
			p.Name = "copy"
			c.Pools = append(c.Pools, p)
		}, want: `pools[0] (main) and pools[1] (copy) have the same issuer "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_AbC123"`},
		{name: "issuers_duplicate_override_of_derived", mutate: func(c *Config) {
			c.Pools = append(c.Pools, Pool{Name: "copy", ClientIDs: []string{"x"}, TokenUse: "id",
				Issuer: "https://issuer-cognito-idp.us-east-1.amazonaws.com/us-east-1_AbC123"})
		}, want: `have the same issuer "https://issuer-cognito-idp.us-east-1.amazonaws.com/us-east-1_AbC123"`},
		{name: "issuers_duplicate_trailing_slash", mutate: func(c *Config) {
			c.Pools[0].Issuer = "http://127.0.0.1:9229/local_a"
			c.Pools = append(c.Pools, Pool{Name: "copy", ClientIDs: []string{"x"}, TokenUse: "id", Issuer: "http://127.0.0.1:9229/local_a/"})
		}, want: `have the same issuer "http://127.0.0.1:9229/local_a"`},
		{name: "two_pools_distinct", mutate: func(c *Config) {
			c.Pools = append(c.Pools, Pool{Name: "eu", Region: "eu-west-1", UserPoolID: "eu-west-1_AbC123", ClientIDs: []string{"x"}, TokenUse: "id"})
		}},

		// identity
		{name: "header_upper_case", mutate: func(c *Config) { c.Identity.Sub = "X-Auth-Sub" }, want: `identity.sub "X-Auth-Sub": want a lower-case header name`},
		{name: "header_with_space", mutate: func(c *Config) { c.Identity.Groups = "x auth groups" }, want: `identity.groups "x auth groups": want a lower-case header name`},
		{name: "header_pseudo", mutate: func(c *Config) { c.Identity.Username = ":authority" }, want: `identity.username ":authority"`},
		{name: "header_reserved_authorization", mutate: func(c *Config) { c.Identity.Username = "authorization" }, want: `identity.username "authorization" is a header the proxy owns`},
		{name: "header_reserved_host", mutate: func(c *Config) { c.Identity.Pool = "host" }, want: `identity.pool "host" is a header the proxy owns`},
		{name: "header_reserved_cookie", mutate: func(c *Config) { c.Identity.Email = "cookie" }, want: `identity.email "cookie" is a header the proxy owns`},
		{name: "header_reserved_x_envoy_prefix", mutate: func(c *Config) { c.Identity.Scopes = "x-envoy-auth" }, want: `identity.scopes "x-envoy-auth" is a header the proxy owns`},
		{name: "header_reserved_in_claims", mutate: func(c *Config) { c.Identity.Claims = map[string]string{"custom:tenant": "x-forwarded-for"} }, want: `identity.claims[custom:tenant] "x-forwarded-for" is a header the proxy owns`},
		{name: "headers_duplicate", mutate: func(c *Config) { c.Identity.Username = "x-auth-sub" }, want: `identity.sub and identity.username both use header "x-auth-sub"`},
		{name: "headers_duplicate_claim", mutate: func(c *Config) { c.Identity.Claims = map[string]string{"email": "x-auth-email"} }, want: `identity.email and identity.claims[email] both use header "x-auth-email"`},
		{name: "sub_required", mutate: func(c *Config) { c.Identity.Sub = "" }, want: "identity.sub is required"},
		{name: "other_headers_optional", mutate: func(c *Config) {
			c.Identity.Username, c.Identity.Groups, c.Identity.Scopes, c.Identity.ClientID = "", "", "", ""
			c.Identity.TokenUse, c.Identity.Email, c.Identity.Pool = "", "", ""
		}},
		{name: "claim_name_empty", mutate: func(c *Config) { c.Identity.Claims = map[string]string{"": "x-auth-x"} }, want: "identity.claims: empty claim name"},
		{name: "claim_header_empty", mutate: func(c *Config) { c.Identity.Claims = map[string]string{"custom:tenant": ""} }, want: `identity.claims["custom:tenant"]: empty header name`},
		{name: "claims_ok", mutate: func(c *Config) { c.Identity.Claims = map[string]string{"custom:tenant": "x-auth-tenant"} }},
		{name: "forward_token_unset", mutate: func(c *Config) { c.Identity.ForwardToken = nil }, want: "identity.forward_token must be true or false"},

		// server HTTP mode
		{name: "http_path_prefix_ok", mutate: func(c *Config) { c.Server.HTTPPathPrefix = "/authz" }},
		{name: "http_path_prefix_relative", mutate: func(c *Config) { c.Server.HTTPPathPrefix = "authz" }, want: `server.http_path_prefix "authz"`},
		{name: "http_path_prefix_trailing_slash", mutate: func(c *Config) { c.Server.HTTPPathPrefix = "/authz/" }, want: `server.http_path_prefix "/authz/"`},
		{name: "http_path_prefix_dotdot", mutate: func(c *Config) { c.Server.HTTPPathPrefix = "/a/../authz" }, want: `server.http_path_prefix`},
		{name: "http_trust_forwarded", mutate: func(c *Config) { c.Server.HTTPTrustForwarded = true }},
		{name: "http_forwarded_nginx", mutate: func(c *Config) { c.Server.HTTPForwarded = "nginx" }},
		{name: "http_forwarded_none", mutate: func(c *Config) { c.Server.HTTPForwarded = "none" }},
		{name: "http_forwarded_unknown", mutate: func(c *Config) { c.Server.HTTPForwarded = "apache" }, want: `server.http_forwarded "apache": want none, nginx, traefik or caddy`},
		{name: "http_forwarded_and_trust", mutate: func(c *Config) { c.Server.HTTPForwarded, c.Server.HTTPTrustForwarded = "traefik", true },
			want: "set only http_forwarded"},
		{name: "paths_reject", mutate: func(c *Config) { c.Paths.Ambiguous = "reject" }},
		{name: "paths_unknown", mutate: func(c *Config) { c.Paths.Ambiguous = "lenient" }, want: `paths.ambiguous "lenient": want strictest or reject`},

		// token sources
		{name: "sources_three", mutate: func(c *Config) {
			c.Token.Sources = []TokenSource{{Header: "authorization", Prefix: "Bearer "}, {Cookie: "id_token"}, {Header: "x-amzn-oidc-accesstoken"}}
		}},
		{name: "sources_empty", mutate: func(c *Config) { c.Token.Sources = nil }, want: "token.sources: want 1 to 8 sources"},
		{name: "sources_too_many", mutate: func(c *Config) {
			for i := range 9 {
				c.Token.Sources = append(c.Token.Sources, TokenSource{Cookie: fmt.Sprintf("c%d", i)})
			}
		}, want: "token.sources: want 1 to 8 sources"},
		{name: "source_both", mutate: func(c *Config) { c.Token.Sources = []TokenSource{{Header: "a", Cookie: "b"}} }, want: "token.sources[0]: set exactly one of header and cookie"},
		{name: "source_neither", mutate: func(c *Config) { c.Token.Sources = []TokenSource{{Prefix: "Bearer "}} }, want: "token.sources[0]: set exactly one"},
		{name: "source_header_upper", mutate: func(c *Config) { c.Token.Sources = []TokenSource{{Header: "Authorization"}} }, want: `token.sources[0].header "Authorization"`},
		{name: "source_header_cookie", mutate: func(c *Config) { c.Token.Sources = []TokenSource{{Header: "cookie"}} }, want: "use cookie: NAME"},
		{name: "source_cookie_bad", mutate: func(c *Config) { c.Token.Sources = []TokenSource{{Cookie: "id token"}} }, want: `token.sources[0].cookie "id token"`},
		{name: "source_cookie_prefix", mutate: func(c *Config) { c.Token.Sources = []TokenSource{{Cookie: "id_token", Prefix: "Bearer "}} }, want: "only a header has a scheme prefix"},
		{name: "source_prefix_blank", mutate: func(c *Config) { c.Token.Sources = []TokenSource{{Header: "authorization", Prefix: " "}} }, want: `token.sources[0].prefix " "`},
		{name: "source_twice", mutate: func(c *Config) { c.Token.Sources = []TokenSource{{Cookie: "a"}, {Cookie: "a"}} }, want: "token.sources[1] is listed twice"},

		// rules
		{name: "rules_ok", mutate: func(c *Config) {
			c.Rules = []Rule{
				{Name: "health", Match: Match{PathExact: "/healthz"}, Action: "allow"},
				{Name: "admin", Match: Match{Host: "*.Example.com.", PathPrefix: "/admin", Methods: []string{"GET", "post"}},
					Require: &Require{Pools: []string{"main"}, TokenUse: "id", GroupsAny: []string{"admins"}, Claims: map[string]StringList{"x": {"y"}}}},
				{Name: "feed", Match: Match{PathRegex: "/feed/.*", ContextExtensions: map[string]string{"policy": "feed"}}, Action: "optional", OptionalInvalid: "anonymous"},
			}
		}},
		{name: "default_bad", mutate: func(c *Config) { c.Default = "optional" }, want: `default "optional": want authenticated, allow or deny`},
		{name: "default_empty", mutate: func(c *Config) { c.Default = "" }, want: `default ""`},
		{name: "default_allow", mutate: func(c *Config) { c.Default = "allow" }},
		{name: "rule_name_empty", mutate: func(c *Config) { c.Rules = []Rule{{}} }, want: `rules[0].name ""`},
		{name: "rule_name_default", mutate: func(c *Config) { c.Rules = []Rule{{Name: "default"}} }, want: `rules[0] (default).name "default" is reserved`},
		{name: "rule_name_twice", mutate: func(c *Config) { c.Rules = []Rule{{Name: "a"}, {Name: "a"}} }, want: `rules[1] (a).name "a" is used twice`},
		{name: "rule_action_bad", mutate: func(c *Config) { c.Rules = []Rule{{Name: "a", Action: "permit"}} }, want: `rules[0] (a).action "permit"`},
		{name: "rule_optional_invalid_bad", mutate: func(c *Config) { c.Rules = []Rule{{Name: "a", Action: "optional", OptionalInvalid: "allow"}} }, want: `rules[0] (a).optional_invalid "allow"`},
		{name: "rule_optional_invalid_not_optional", mutate: func(c *Config) { c.Rules = []Rule{{Name: "a", OptionalInvalid: "anonymous"}} }, want: "optional_invalid needs action optional"},
		{name: "rule_require_with_allow", mutate: func(c *Config) { c.Rules = []Rule{{Name: "a", Action: "allow", Require: &Require{}}} }, want: "require needs action authenticated, not allow"},
		{name: "rule_host_port", mutate: func(c *Config) { c.Rules = []Rule{{Name: "a", Match: Match{Host: "api.example.com:443"}}} }, want: `rules[0] (a).match.host "api.example.com:443"`},
		{name: "rule_host_inner_wildcard", mutate: func(c *Config) { c.Rules = []Rule{{Name: "a", Match: Match{Host: "api.*.com"}}} }, want: `match.host "api.*.com"`},
		{name: "rule_path_not_normal", mutate: func(c *Config) { c.Rules = []Rule{{Name: "a", Match: Match{PathPrefix: "/public/../admin"}}} }, want: `match.path_prefix "/public/../admin": requests are matched by their normalised path, so this never matches; write "/admin"`},
		{name: "rule_path_with_query", mutate: func(c *Config) { c.Rules = []Rule{{Name: "a", Match: Match{PathExact: "/a?b"}}} }, want: `match.path_exact "/a?b"`},
		{name: "rule_path_encoded_letter", mutate: func(c *Config) { c.Rules = []Rule{{Name: "a", Match: Match{PathExact: "/%61"}}} }, want: `write "/a"`},
		{name: "rule_regex_bad", mutate: func(c *Config) { c.Rules = []Rule{{Name: "a", Match: Match{PathRegex: "(("}}} }, want: "rules[0] (a).match.path_regex"},
		{name: "rule_two_paths", mutate: func(c *Config) { c.Rules = []Rule{{Name: "a", Match: Match{PathExact: "/a", PathRegex: "/b"}}} }, want: "set at most one of path_exact"},
		{name: "rule_method_and_methods", mutate: func(c *Config) { c.Rules = []Rule{{Name: "a", Match: Match{Method: "GET", Methods: []string{"POST"}}}} }, want: "set method or methods, not both"},
		{name: "rule_method_bad", mutate: func(c *Config) { c.Rules = []Rule{{Name: "a", Match: Match{Methods: []string{"GET POST"}}}} }, want: `match.methods: "GET POST" is not a method`},
		{name: "rule_context_extension_empty_key", mutate: func(c *Config) {
			c.Rules = []Rule{{Name: "a", Match: Match{ContextExtensions: map[string]string{"": "x"}}}}
		}, want: "context_extensions: empty key"},
		{name: "require_pool_unknown", mutate: func(c *Config) { c.Rules = []Rule{{Name: "a", Require: &Require{Pools: []string{"other"}}}} }, want: `rules[0] (a).require.pools: "other" is not a configured pool`},
		{name: "require_token_use_bad", mutate: func(c *Config) { c.Rules = []Rule{{Name: "a", Require: &Require{TokenUse: "any"}}} }, want: `require.token_use "any": want access or id`},
		{name: "require_group_blank", mutate: func(c *Config) { c.Rules = []Rule{{Name: "a", Require: &Require{GroupsAll: []string{" "}}}} }, want: `require.groups_all: " " is empty`},
		{name: "require_scope_with_space", mutate: func(c *Config) { c.Rules = []Rule{{Name: "a", Require: &Require{ScopesAny: []string{"a b"}}}} }, want: `require.scopes_any: "a b"`},
		{name: "require_claim_no_values", mutate: func(c *Config) {
			c.Rules = []Rule{{Name: "a", Require: &Require{Claims: map[string]StringList{"x": {}}}}}
		}, want: `require.claims["x"]: list at least one allowed value`},
		{name: "require_claim_empty_name", mutate: func(c *Config) {
			c.Rules = []Rule{{Name: "a", Require: &Require{Claims: map[string]StringList{"": {"x"}}}}}
		}, want: "require.claims: empty claim name"},
		// cache
		{name: "cache_off", mutate: func(c *Config) { c.Cache.MaxEntries, c.Cache.MaxBytes = 0, 0 }},
		{name: "cache_entries_negative", mutate: func(c *Config) { c.Cache.MaxEntries = -1 }, want: "cache.max_entries -1: want 0 (off) to 10000000"},
		{name: "cache_entries_above_range", mutate: func(c *Config) { c.Cache.MaxEntries = 10_000_001 }, want: "cache.max_entries 10000001"},
		{name: "cache_bytes_below_range", mutate: func(c *Config) { c.Cache.MaxBytes = 1<<20 - 1 }, want: "cache.max_bytes 1048575: want 1MiB to 16GiB"},
		{name: "cache_bytes_above_range", mutate: func(c *Config) { c.Cache.MaxBytes = 17 << 30 }, want: "cache.max_bytes 17GiB"},
		{name: "cache_bytes_min", mutate: func(c *Config) { c.Cache.MaxBytes = 1 << 20 }},
		{name: "negative_ttl_off", mutate: func(c *Config) { c.Cache.NegativeTTL = 0 }},
		{name: "negative_ttl_negative", mutate: func(c *Config) { c.Cache.NegativeTTL = Duration(-time.Second) }, want: "cache.negative_ttl -1s: want 0s to 1m"},
		{name: "negative_ttl_above_range", mutate: func(c *Config) { c.Cache.NegativeTTL = Duration(61 * time.Second) }, want: "cache.negative_ttl 1m1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := Default()
			c.Pools = []Pool{mainPool()}
			tt.mutate(&c)
			err := c.Validate()
			got := problems(t, err)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("Validate() = %v, want it to wrap ErrInvalid", err)
			}
			if len(got) != 1 || !strings.Contains(got[0], tt.want) {
				t.Errorf("Validate() problems = %q, want exactly one containing %q", got, tt.want)
			}
		})
	}
}

func TestParseReportsEveryProblem(t *testing.T) {
	t.Parallel()
	data := `
log: {level: loud}
pools:
  - name: main
    region: us-east-1
    user_pool_id: eu-west-1_AbC123
    client_ids: [abc123]
    token_use: access
identity: {groups: authorization}
rules:
  - {name: a, match: {path_regex: "(("}, action: permit}
token: {sources: [{cookie: "a b"}]}
`
	_, err := Parse([]byte(data))
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("Parse() error = %v, want it to wrap ErrInvalid", err)
	}
	want := []string{
		`log.level "loud"`,
		`user_pool_id "eu-west-1_AbC123" is not in region "us-east-1"`,
		`identity.groups "authorization" is a header the proxy owns`,
		`token.sources[0].cookie "a b"`,
		`rules[0] (a).action "permit"`,
		`rules[0] (a).match.path_regex`,
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("Parse() error = %q, want it to contain %q", err, w)
		}
	}
	if got := problems(t, err); len(got) != len(want) {
		t.Errorf("Parse() reported %d problems %q, want %d", len(got), got, len(want))
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
			id: Identity{Sub: "x-sub", Email: "x-email", Claims: map[string]string{
				"custom:zone": "x-a-zone", "custom:tenant": "x-z-tenant", "custom:dept": "x-dept",
			}},
			want: []string{"x-sub", "x-email", "x-dept", "x-z-tenant", "x-a-zone"},
		},
		{name: "none", id: Identity{}, want: []string{}},
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
