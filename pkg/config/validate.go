package config

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/cognito-authz/cognito-authz/pkg/authz"
	"github.com/cognito-authz/cognito-authz/pkg/policy"
	"github.com/cognito-authz/cognito-authz/pkg/token"
)

var (
	// regionRE is an AWS region such as us-east-1 or ap-southeast-2 (and us-gov-west-1).
	regionRE = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-\d$`)
	// poolIDRE is a Cognito user pool id: the region, an underscore, then letters and digits.
	poolIDRE = regexp.MustCompile(`^([a-z]{2}(?:-[a-z]+)+-\d)_[0-9A-Za-z]+$`)
	// headerRE is an HTTP header name as Envoy sends it: lower case token characters.
	headerRE = regexp.MustCompile("^[a-z0-9!#$%&'*+.^_`|~-]+$")
	nameRE   = regexp.MustCompile(`^[a-z0-9]([a-z0-9_-]{0,62})$`)
	// tokenRE is an RFC 9110 token: a cookie name, an auth scheme.
	tokenRE = regexp.MustCompile("^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
)

// maxSources bounds token.sources: each is looked up on every request.
const maxSources = 8

// reservedHeaders may never be identity headers: writing them would let a claim steer routing or framing.
var reservedHeaders = []string{
	token.AuthorizationHeader, "cookie", "host", "content-length", "content-type", "transfer-encoding", "connection",
	"te", "upgrade", "x-request-id", "x-forwarded-for", "x-forwarded-proto", "x-envoy-original-path",
}

// Validate checks the whole config and returns every problem found, joined, each wrapping ErrInvalid.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...))
	}

	// Slices, not maps: config check prints the problems in this order, and the same file must always
	// print the same way.
	listen := []struct{ key, addr string }{
		{"server.grpc_addr", c.Server.GRPCAddr}, {"server.http_addr", c.Server.HTTPAddr}, {"server.admin_addr", c.Server.AdminAddr},
	}
	for _, l := range listen {
		if l.addr == "" && l.key != "server.http_addr" {
			bad("%s is required", l.key)
		}
	}
	addrs := map[string]string{}
	for _, l := range listen {
		key, addr := l.key, l.addr
		if addr == "" {
			continue
		}
		if _, port, err := net.SplitHostPort(addr); err != nil {
			bad("%s %q: %v", key, addr, err)
		} else if other, dup := addrs[addr]; dup && port != "0" {
			bad("%s and %s both listen on %q", other, key, addr)
		}
		addrs[addr] = key
	}

	c.Server.validateOps(bad)

	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		bad("log.level %q: want debug, info, warn or error", c.Log.Level)
	}
	if !slices.Contains([]string{"json", "text"}, c.Log.Format) {
		bad("log.format %q: want json or text", c.Log.Format)
	}

	if c.Token.MaxBytes < 512 || c.Token.MaxBytes > 64<<10 {
		bad("token.max_bytes %d: want 512 to 65536", c.Token.MaxBytes)
	}
	if l := c.Token.Leeway.Std(); l < 0 || l > 5*time.Minute {
		bad("token.leeway %s: want 0s to 5m", l)
	}
	c.validateServerHTTP(bad)
	c.validateSources(bad)
	if d := c.JWKS.RefreshInterval.Std(); d < time.Minute || d > 24*time.Hour {
		bad("jwks.refresh_interval %s: want 1m to 24h", d)
	}
	if d := c.JWKS.UnknownKIDWindow.Std(); d < time.Second || d > time.Hour {
		bad("jwks.unknown_kid_window %s: want 1s to 1h", d)
	}
	if d := c.JWKS.FetchTimeout.Std(); d < 100*time.Millisecond || d > time.Minute {
		bad("jwks.fetch_timeout %s: want 100ms to 1m", d)
	}

	if n := c.Cache.MaxEntries; n < 0 || n > 10_000_000 {
		bad("cache.max_entries %d: want 0 (off) to 10000000", n)
	}
	if b := c.Cache.MaxBytes; c.Cache.MaxEntries != 0 && (b < 1<<20 || b > 16<<30) {
		bad("cache.max_bytes %s: want 1MiB to 16GiB", b)
	}
	if d := c.Cache.NegativeTTL.Std(); d < 0 || d > time.Minute {
		bad("cache.negative_ttl %s: want 0s to 1m", d)
	}

	if d := c.Reload.Interval.Std(); d != 0 && (d < 100*time.Millisecond || d > 10*time.Minute) {
		bad("reload.interval %s: want 0s (off) or 100ms to 10m", d)
	}

	if len(c.Pools) == 0 {
		bad("pools: at least one pool is required")
	}
	names, issuers := map[string]bool{}, map[string]string{}
	for i, p := range c.Pools {
		at := Where("pools", i, p.Name)
		switch {
		case !nameRE.MatchString(p.Name):
			bad("%s.name %q: want lower case letters, digits, - and _", at, p.Name)
		case names[p.Name]:
			bad("%s.name %q is used twice", at, p.Name)
		}
		names[p.Name] = true
		if p.Issuer == "" {
			m := poolIDRE.FindStringSubmatch(p.UserPoolID)
			switch {
			case !regionRE.MatchString(p.Region):
				bad("%s.region %q: want an AWS region such as us-east-1", at, p.Region)
			case m == nil:
				bad("%s.user_pool_id %q: want REGION_ID such as %s_AbC123", at, p.UserPoolID, p.Region)
			case m[1] != p.Region:
				bad("%s.user_pool_id %q is not in region %q", at, p.UserPoolID, p.Region)
			}
		} else {
			if err := checkURL(p.Issuer); err != nil {
				bad("%s.issuer: %v", at, err)
			}
		}
		if p.JWKSURL != "" {
			if err := checkURL(p.JWKSURL); err != nil {
				bad("%s.jwks_url: %v", at, err)
			}
		}
		if len(p.ClientIDs) == 0 {
			bad("%s.client_ids: at least one app client id is required", at)
		}
		for _, id := range p.ClientIDs {
			if strings.TrimSpace(id) == "" || strings.TrimSpace(id) != id {
				bad("%s.client_ids: %q is empty or has spaces", at, id)
			}
		}
		if !slices.Contains([]string{"access", "id", "any"}, p.TokenUse) {
			bad("%s.token_use %q: want access, id or any", at, p.TokenUse)
		}
		reported := map[string]bool{} // a pool copied whole shares both issuer forms: say so once
		for _, iss := range p.Issuers() {
			if other, dup := issuers[iss]; dup && !reported[other] {
				bad("%s and %s have the same issuer %q", other, at, iss)
				reported[other] = true
			}
			issuers[iss] = at
		}
	}

	seen := map[string]string{}
	check := func(key, h string) {
		switch {
		case h == "":
			return
		case !headerRE.MatchString(h):
			bad("identity.%s %q: want a lower-case header name", key, h)
		case strings.Contains(h, "_"):
			// x_auth_sub and x-auth-sub are one header to CGI, WSGI, Rack and PHP upstreams, and Envoy's
			// samples and nginx drop names with "_": only the "-" spelling can be guarded (authz.lookalikes).
			bad("identity.%s %q: use - instead of _ in a header name", key, h)
		case slices.Contains(reservedHeaders, h) || strings.HasPrefix(h, ":") || strings.HasPrefix(h, "x-envoy-"):
			bad("identity.%s %q is a header the proxy owns", key, h)
		case seen[h] != "":
			bad("identity.%s and identity.%s both use header %q", seen[h], key, h)
		}
		seen[h] = key
	}
	id := c.Identity
	for _, f := range authz.IdentityFields {
		check(f.Key, *f.Name(&id.IdentityHeaders))
	}
	if id.Sub == "" {
		bad("identity.sub is required: upstreams need to know who is calling")
	}
	for _, claim := range slices.Sorted(maps.Keys(id.Claims)) {
		if claim == "" {
			bad("identity.claims: empty claim name")
		}
		if id.Claims[claim] == "" {
			bad("identity.claims[%q]: empty header name", claim)
		}
		check("claims["+claim+"]", id.Claims[claim])
	}
	if id.ForwardToken == nil {
		bad("identity.forward_token must be true or false")
	}
	c.validateRules(bad, names)
	c.validateBrowser(bad, names)
	return errors.Join(errs...)
}

func (c *Config) validateServerHTTP(bad func(string, ...any)) {
	switch f := c.Server.HTTPForwarded; {
	case !slices.Contains([]string{"", "none", "nginx", "traefik", "caddy"}, f):
		bad("server.http_forwarded %q: want none, nginx, traefik or caddy", f)
	case f != "" && f != "none" && c.Server.HTTPTrustForwarded:
		bad("server.http_forwarded %q and the deprecated server.http_trust_forwarded: set only http_forwarded", f)
	}
	if a := c.Paths.Ambiguous; a != "strictest" && a != "reject" {
		bad("paths.ambiguous %q: want strictest or reject", a)
	}
	p := c.Server.HTTPPathPrefix
	if p == "" {
		return
	}
	if !strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || strings.ContainsAny(p, "?#") || policy.NormalizePath(p) != p {
		bad("server.http_path_prefix %q: want a normalised path such as /authz, without a trailing slash", p)
	}
}

func (c *Config) validateSources(bad func(string, ...any)) {
	srcs := c.Token.Sources
	if len(srcs) == 0 || len(srcs) > maxSources {
		bad("token.sources: want 1 to %d sources", maxSources)
	}
	seen := map[TokenSource]bool{}
	for i, s := range srcs {
		at := fmt.Sprintf("token.sources[%d]", i)
		switch {
		case (s.Header == "") == (s.Cookie == ""):
			bad("%s: set exactly one of header and cookie", at)
		case s.Header != "" && !headerRE.MatchString(s.Header):
			bad("%s.header %q: want a lower-case header name", at, s.Header)
		case s.Header == "cookie":
			bad("%s.header: use cookie: NAME to read a cookie", at)
		case s.Cookie != "" && !tokenRE.MatchString(s.Cookie):
			bad("%s.cookie %q: want a cookie name", at, s.Cookie)
		case s.Cookie != "" && s.Prefix != "":
			bad("%s.prefix: only a header has a scheme prefix", at)
		case s.Prefix != "" && !tokenRE.MatchString(strings.TrimRight(s.Prefix, " ")):
			bad("%s.prefix %q: want an auth scheme such as \"Bearer \"", at, s.Prefix)
		case seen[s]:
			bad("%s is listed twice", at)
		}
		seen[s] = true
	}
}

func (c *Config) validateRules(bad func(string, ...any), pools map[string]bool) {
	// Only the file's shape is checked here: the spellings of its enumerations, the keys that exist only in
	// the file (method beside methods) and references to other parts of it (require.pools). What a rule
	// means (hosts, paths, regexes, methods, requirements, names) is policy.New's to judge; runtime reports
	// its problems by key path together with these.
	if _, err := policy.ParseAction(c.Default); err != nil || c.Default == "" { // optional: policy.New refuses it
		bad("default %q: want authenticated, login, allow or deny", c.Default)
	}
	for i, r := range c.Rules {
		at := Where("rules", i, r.Name)
		if r.Name != "" && !nameRE.MatchString(r.Name) {
			bad("%s.name %q: want lower case letters, digits, - and _", at, r.Name)
		}
		if _, err := policy.ParseAction(r.Action); err != nil {
			bad("%s.action %q: want authenticated, login, allow, deny or optional", at, r.Action)
		}
		if !slices.Contains([]string{"", "deny", "anonymous"}, r.OptionalInvalid) {
			bad("%s.optional_invalid %q: want deny or anonymous", at, r.OptionalInvalid)
		}
		if r.Match.Method != "" && len(r.Match.Methods) > 0 {
			bad("%s.match: set method or methods, not both", at)
		}
		if r.Require != nil {
			for _, p := range r.Require.Pools {
				if !pools[p] {
					bad("%s.require.pools: %q is not a configured pool", at, p)
				}
			}
		}
	}
}

// Where names the i-th element of a list in a problem: "pools[1] (main)", or "pools[1]" when it has no name.
func Where(list string, i int, name string) string {
	if name == "" {
		return fmt.Sprintf("%s[%d]", list, i)
	}
	return fmt.Sprintf("%s[%d] (%s)", list, i, name)
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q: want an absolute http(s) URL without query", s)
	}
	return nil
}

// Issuers returns the issuers whose tokens this pool accepts: the override alone when one is set, otherwise
// Cognito's original and updated issuer forms (https://docs.aws.amazon.com/cognito/latest/developerguide/amazon-cognito-user-pools-using-tokens-verifying-a-jwt.html).
func (p Pool) Issuers() []string {
	if p.Issuer != "" {
		return []string{strings.TrimSuffix(p.Issuer, "/")}
	}
	return []string{
		"https://cognito-idp." + p.Region + ".amazonaws.com/" + p.UserPoolID,
		"https://issuer-cognito-idp." + p.Region + ".amazonaws.com/" + p.UserPoolID,
	}
}

// KeysURL returns where the pool's JWKS is fetched: the override, or the original issuer's well-known path
// (both issuer forms sign with the same keys).
func (p Pool) KeysURL() string {
	if p.JWKSURL != "" {
		return p.JWKSURL
	}
	return p.Issuers()[0] + "/.well-known/jwks.json"
}
