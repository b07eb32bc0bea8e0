// Package config is the service's YAML file: its schema, defaults, environment overrides, strict decoding
// and one validation pass of its shape that reports every problem at once.
//
// What the route rules mean is checked where they are compiled, by policy.New: pkg/runtime runs both and
// names every problem by its key path. Only cmd and runtime import this package: runtime maps a Config
// onto the options of the packages it builds.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/cognito-authz/cognito-authz/pkg/authz"
	"github.com/cognito-authz/cognito-authz/pkg/token"
)

// Config is the whole file.
type Config struct {
	Server   Server   `yaml:"server"`
	Log      Log      `yaml:"log"`
	Token    Token    `yaml:"token"`
	JWKS     JWKS     `yaml:"jwks"`
	Cache    Cache    `yaml:"cache"`
	Pools    []Pool   `yaml:"pools"`
	Identity Identity `yaml:"identity"`
	Rules    []Rule   `yaml:"rules"`   // first match wins
	Paths    Paths    `yaml:"paths"`   // how a path whose readings select different rules is judged
	Default  string   `yaml:"default"` // authenticated | allow | deny: what applies when no rule matches
	// DryRun answers every deny as an allow marked x-auth-dry-run, still logged and counted (see ops.go).
	DryRun bool   `yaml:"dry_run"`
	Reload Reload `yaml:"reload"`
	// DynamicMetadata chooses what the gRPC answer's dynamic_metadata carries beyond outcome, reason, rule
	// and dry_run.
	DynamicMetadata DynamicMetadata `yaml:"dynamic_metadata"`
	// Browser is browser sign-in (browser.go); nil: off.
	Browser *Browser `yaml:"browser"`
}

// DynamicMetadata is the dynamic_metadata section.
type DynamicMetadata struct {
	// Identity adds the verified token's sub, client_id, token_use and pool, for Envoy's access log. Off by
	// default: the upstream gets them as headers, and every Envoy decodes the metadata of every answer.
	Identity bool `yaml:"identity"`
}

// Reload controls how the file is re-read while the service runs (SIGHUP always reloads too).
type Reload struct {
	// Interval is how often the file's content hash is compared with the one applied; 0s turns polling off.
	Interval Duration `yaml:"interval"`
}

// Server holds the listen addresses.
type Server struct {
	GRPCAddr  string `yaml:"grpc_addr"`  // Envoy ext_authz gRPC
	HTTPAddr  string `yaml:"http_addr"`  // Envoy ext_authz HTTP; empty turns it off
	AdminAddr string `yaml:"admin_addr"` // /healthz /readyz /metrics
	// HTTPPathPrefix is stripped from the path of HTTP ext_authz requests: Envoy's http_service
	// path_prefix (Istio envoyExtAuthzHttp pathPrefix), or the location nginx auth_request calls.
	HTTPPathPrefix string `yaml:"http_path_prefix"`
	// HTTPForwarded names the one family of forwarded headers HTTP ext_authz requests carry the original
	// method, URI and host in: none (Envoy, Istio: the check request is the original), nginx
	// (X-Original-URI, X-Original-Method, Host), traefik or caddy (X-Forwarded-Uri, X-Forwarded-Method,
	// X-Forwarded-Host). A request with the other family's headers, or a trusted one twice, is refused.
	HTTPForwarded string `yaml:"http_forwarded"`
	// HTTPTrustForwarded is deprecated (see Warnings): it reads whichever one family is present, and
	// refuses a request that carries both.
	HTTPTrustForwarded bool `yaml:"http_trust_forwarded"`
	// Shutdown and TLS: see ops.go.
	DrainPeriod     Duration `yaml:"drain_period"`
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
	TLS             TLS      `yaml:"tls"`
	// Listener bounds and connection ageing: see limits.go.
	MaxRecvMsgSize        ByteSize  `yaml:"max_recv_msg_size"`
	MaxConcurrentStreams  int       `yaml:"max_concurrent_streams"`
	MaxReceivingRequests  int       `yaml:"max_receiving_requests"`
	ReceiveTimeout        Duration  `yaml:"receive_timeout"`
	MaxConnections        int       `yaml:"max_connections"`
	ConnectionTimeout     Duration  `yaml:"connection_timeout"`
	MaxConnectionIdle     Duration  `yaml:"max_connection_idle"`
	MaxConnectionAge      Duration  `yaml:"max_connection_age"`
	MaxConnectionAgeGrace Duration  `yaml:"max_connection_age_grace"`
	Keepalive             Keepalive `yaml:"keepalive"`
}

// Paths says how a request is judged when the readings of its path (see policy.Readings: Tomcat's ";"
// parameters, decoded %2F, case folding, ...) select different rules.
type Paths struct {
	// Ambiguous is strictest (the default: every selected rule must allow the request) or reject (400
	// path_ambiguous).
	Ambiguous string `yaml:"ambiguous"`
}

// Warnings lists settings that work but should change; config check prints them, serve logs them.
func (c *Config) Warnings() []string {
	var w []string
	if c.Server.HTTPTrustForwarded {
		w = append(w, "server.http_trust_forwarded is deprecated: set server.http_forwarded to nginx, traefik or caddy; "+
			"until then it reads whichever of X-Original-* and X-Forwarded-* is present and refuses requests with both")
	}
	return w
}

// Log sets the level and format of the service's logs.
type Log struct {
	Level  string `yaml:"level"`  // debug | info | warn | error
	Format string `yaml:"format"` // json | text
}

// Token bounds what the verifier accepts.
type Token struct {
	MaxBytes int      `yaml:"max_bytes"` // longer tokens are rejected before any parsing
	Leeway   Duration `yaml:"leeway"`    // clock skew allowed on exp, nbf and iat
	// Sources are the places a token is looked for, in order; the first that holds a credential is used.
	Sources []TokenSource `yaml:"sources"`
}

// TokenSource is one place a token may be: a header (after an optional scheme prefix) or a cookie.
type TokenSource struct {
	Header string `yaml:"header,omitempty"` // lower-case header name
	Prefix string `yaml:"prefix,omitempty"` // scheme before the token, e.g. "Bearer "; header only
	Cookie string `yaml:"cookie,omitempty"` // cookie name
}

// Rule is one entry of the route policy.
type Rule struct {
	Name   string `yaml:"name"`
	Match  Match  `yaml:"match"`
	Action string `yaml:"action"` // authenticated (default) | login | allow | deny | optional
	// OptionalInvalid is what an optional rule does with a token that does not verify: deny (401, the
	// default) or anonymous (let it through without identity).
	OptionalInvalid string   `yaml:"optional_invalid"`
	Require         *Require `yaml:"require,omitempty"` // only with action authenticated
	// DryRun answers this rule's denies as allows marked x-auth-dry-run, still logged and counted.
	DryRun bool `yaml:"dry_run"`
}

// Match selects the requests a rule governs; every key set must hold.
type Match struct {
	Host              string            `yaml:"host"` // api.example.com or *.example.com; port ignored
	PathExact         string            `yaml:"path_exact"`
	PathPrefix        string            `yaml:"path_prefix"` // segment-aware
	PathRegex         string            `yaml:"path_regex"`  // RE2, anchored
	Method            string            `yaml:"method"`
	Methods           []string          `yaml:"methods"`
	ContextExtensions map[string]string `yaml:"context_extensions"` // Envoy per-route check_settings
}

// Require is what a valid token must also have on a rule's routes.
type Require struct {
	Pools     []string              `yaml:"pools"`
	TokenUse  string                `yaml:"token_use"` // access | id
	GroupsAny []string              `yaml:"groups_any"`
	GroupsAll []string              `yaml:"groups_all"`
	ScopesAny []string              `yaml:"scopes_any"`
	ScopesAll []string              `yaml:"scopes_all"`
	Claims    map[string]StringList `yaml:"claims"` // claim → allowed values
}

// StringList is a list of strings written as a YAML sequence or, for one value, a scalar.
type StringList []string

// UnmarshalYAML reads a scalar as a list of one.
func (l *StringList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		var s string
		if err := n.Decode(&s); err != nil {
			return err
		}
		*l = StringList{s}
		return nil
	}
	var ss []string
	if err := n.Decode(&ss); err != nil {
		return fmt.Errorf("line %d: want a string or a list of strings: %w", n.Line, err)
	}
	*l = ss
	return nil
}

// JWKS controls how each pool's key set is fetched.
type JWKS struct {
	RefreshInterval  Duration `yaml:"refresh_interval"`   // periodic refresh
	UnknownKIDWindow Duration `yaml:"unknown_kid_window"` // at most one unknown-kid fetch per window per pool
	FetchTimeout     Duration `yaml:"fetch_timeout"`
}

// Cache bounds the verified-token cache. Entries serve until the token's exp plus leeway, and stop at once
// when the signing key leaves the pool's JWKS.
type Cache struct {
	MaxEntries  int      `yaml:"max_entries"`  // 0 turns the cache off
	MaxBytes    ByteSize `yaml:"max_bytes"`    // estimated memory of all entries, e.g. 16MiB
	NegativeTTL Duration `yaml:"negative_ttl"` // bad signatures against a known key are denied from the cache this long; 0s: never
}

// ByteSize is a number of bytes written as an integer or with a binary unit: 512KiB, 16MiB, 1GiB.
type ByteSize int64

// UnmarshalYAML reads an integer, or a number followed by KiB, MiB or GiB.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return fmt.Errorf("line %d: want a size such as \"16MiB\": %w", n.Line, err)
	}
	num, mult := s, int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			num, mult = rest, u.mult
			break
		}
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil || v < 0 || v > math.MaxInt64/mult {
		return fmt.Errorf("line %d: size %q: want a non-negative integer, optionally with KiB, MiB or GiB", n.Line, s)
	}
	*b = ByteSize(v * mult)
	return nil
}

// MarshalYAML writes the size in the largest unit that divides it.
func (b ByteSize) MarshalYAML() (any, error) { return b.String(), nil }

// String writes the size as MarshalYAML does.
func (b ByteSize) String() string {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if b != 0 && int64(b)%u.mult == 0 {
			return strconv.FormatInt(int64(b)/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(b), 10)
}

// Pool is one Cognito user pool.
type Pool struct {
	Name       string   `yaml:"name"`
	Region     string   `yaml:"region"`
	UserPoolID string   `yaml:"user_pool_id"`
	ClientIDs  []string `yaml:"client_ids"`
	TokenUse   string   `yaml:"token_use"` // access | id | any
	Issuer     string   `yaml:"issuer"`    // override, for emulators and tests
	JWKSURL    string   `yaml:"jwks_url"`  // override
}

// Identity maps identity facts onto the request headers the upstream receives. Its keys are those of
// authz.IdentityFields (sub, username, groups, ...), plus claims and forward_token.
type Identity struct {
	authz.IdentityHeaders // claims: claim name → header name, e.g. custom:tenant → x-auth-tenant
	ForwardToken          *bool
}

// UnmarshalYAML decodes identity: strictly, by the keys of authz.IdentityFields, over what is already set
// (the defaults).
func (id *Identity) UnmarshalYAML(n *yaml.Node) error {
	var raw map[string]yaml.Node
	if err := n.Decode(&raw); err != nil {
		return err
	}
	for _, k := range slices.Sorted(maps.Keys(raw)) {
		v := raw[k]
		var err error
		switch i := slices.IndexFunc(authz.IdentityFields, func(f authz.IdentityField) bool { return f.Key == k }); {
		case i >= 0:
			err = v.Decode(authz.IdentityFields[i].Name(&id.IdentityHeaders))
		case k == "claims":
			err = v.Decode(&id.Claims)
		case k == "forward_token":
			err = v.Decode(&id.ForwardToken)
		default:
			err = fmt.Errorf("line %d: field %s not found in identity", v.Line, k)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// MarshalYAML writes identity: as UnmarshalYAML reads it.
func (id Identity) MarshalYAML() (any, error) {
	m := map[string]any{"claims": id.Claims, "forward_token": id.ForwardToken}
	for _, f := range authz.IdentityFields {
		m[f.Key] = *f.Name(&id.IdentityHeaders)
	}
	return m, nil
}

// Headers lists every configured identity header name, fixed fields first, then claims in name order.
func (id Identity) Headers() []string { return id.IdentityHeaders.Names() }

// Duration is a time.Duration written as "30s" or "1h" in YAML.
type Duration time.Duration

// UnmarshalYAML reads a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return fmt.Errorf("line %d: want a duration such as \"30s\": %w", n.Line, err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as a Go duration string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// Std returns the duration as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// Default returns the configuration every file starts from.
func Default() Config {
	forward := true
	return Config{
		Server: Server{GRPCAddr: ":9001", AdminAddr: ":9090", DrainPeriod: Duration(5 * time.Second), ShutdownTimeout: Duration(15 * time.Second),
			// Listener bounds; README "Listener bounds" says why each is what it is.
			MaxRecvMsgSize: 256 << 10, MaxConcurrentStreams: 256, MaxReceivingRequests: 256, ReceiveTimeout: Duration(10 * time.Second),
			MaxConnections: 1024, ConnectionTimeout: Duration(5 * time.Second), MaxConnectionIdle: Duration(2 * time.Minute),
			MaxConnectionAge: Duration(5 * time.Minute), MaxConnectionAgeGrace: Duration(30 * time.Second),
			Keepalive: Keepalive{Time: Duration(time.Minute), Timeout: Duration(20 * time.Second), MinTime: Duration(10 * time.Second), PermitWithoutStream: true}},
		Log: Log{Level: "info", Format: "json"},
		Token: Token{MaxBytes: 8 << 10, Leeway: Duration(30 * time.Second),
			Sources: []TokenSource{{Header: token.AuthorizationHeader, Prefix: "Bearer "}}},
		JWKS: JWKS{
			RefreshInterval:  Duration(time.Hour),
			UnknownKIDWindow: Duration(time.Minute),
			FetchTimeout:     Duration(5 * time.Second),
		},
		// 100 000 tokens, or 12 MiB of entries (about 11 000 Cognito access tokens at ~1.1 KiB each) if that
		// comes first: with the garbage of verifying at full load, the whole process stays within 64 MiB of
		// RSS however many distinct tokens arrive (measured by cmd/authz-load; 16 MiB peaked at 64.5).
		Cache:    Cache{MaxEntries: 100_000, MaxBytes: 12 << 20, NegativeTTL: Duration(10 * time.Second)},
		Identity: Identity{IdentityHeaders: authz.DefaultIdentityHeaders(), ForwardToken: &forward},
		Default:  "authenticated",
		Paths:    Paths{Ambiguous: "strictest"},
		Reload:   Reload{Interval: Duration(time.Second)},
	}
}

// maxFileBytes bounds the config file: it is operator input, but a wrong path (a log, a device) must not hang us.
const maxFileBytes = 4 << 20

// Load reads, decodes and validates the file at path. Environment overrides are not applied: see ApplyEnv.
// It checks the file's shape only; runtime.Load also checks what the rules mean, as serve does.
func Load(path string) (*Config, error) {
	c, err := Read(path)
	if err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Read reads and strictly decodes the file at path over Default, without validating it.
func Read(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("config: read %s: %w", path, err)
	}
	if len(data) > maxFileBytes {
		return nil, fmt.Errorf("config: %s is larger than %d bytes", path, maxFileBytes)
	}
	c, err := Decode(data)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// ErrInvalid is wrapped by every error Parse and Validate return for a bad file.
var ErrInvalid = errors.New("invalid config")

// Parse decodes data strictly (unknown keys are errors) over Default and validates the result.
func Parse(data []byte) (*Config, error) {
	c, err := Decode(data)
	if err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// Decode decodes data strictly (unknown keys are errors) over Default, without validating the result.
func Decode(data []byte) (*Config, error) {
	c := Default()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if c.Browser != nil {
		c.Browser.Defaults()
	}
	// A second document in the file is almost always a mistake (a stray ---); refuse it rather than ignore it.
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: more than one YAML document", ErrInvalid)
	}
	return &c, nil
}

// Env names the environment variables ApplyEnv reads, for documentation and tests.
var Env = []string{
	"COGNITO_AUTHZ_GRPC_ADDR", "COGNITO_AUTHZ_HTTP_ADDR", "COGNITO_AUTHZ_ADMIN_ADDR",
	"COGNITO_AUTHZ_LOG_LEVEL", "COGNITO_AUTHZ_LOG_FORMAT",
}

// ApplyEnv overrides the per-deployment scalars from the environment (lookup is os.LookupEnv in main) and
// validates the result again. A variable that is set, even to "", wins over the file.
func (c *Config) ApplyEnv(lookup func(string) (string, bool)) error {
	c.OverrideEnv(lookup)
	return c.Validate()
}

// OverrideEnv is ApplyEnv without the validation.
func (c *Config) OverrideEnv(lookup func(string) (string, bool)) {
	for name, dst := range map[string]*string{
		"COGNITO_AUTHZ_GRPC_ADDR":  &c.Server.GRPCAddr,
		"COGNITO_AUTHZ_HTTP_ADDR":  &c.Server.HTTPAddr,
		"COGNITO_AUTHZ_ADMIN_ADDR": &c.Server.AdminAddr,
		"COGNITO_AUTHZ_LOG_LEVEL":  &c.Log.Level,
		"COGNITO_AUTHZ_LOG_FORMAT": &c.Log.Format,
	} {
		if v, ok := lookup(name); ok {
			*dst = v
		}
	}
}
