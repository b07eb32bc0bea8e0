package config

import (
	"net/url"
	"slices"
	"strings"
	"time"
)

// Browser is the browser: block: the Cognito Hosted UI sign-in flow run by the service itself (README
// "Browser sign-in"). Absent (nil), there is no browser sign-in and no login rule.
//
// Its shape is checked here; what it means (endpoints, paths, the keys file) is checked by session.New when
// runtime builds it, so config check reports exactly what serve would refuse. Every key is reloadable: a
// reload builds a new flow from the new block and reads session_keys_file again.
type Browser struct {
	Domain           string   `yaml:"domain"`             // Hosted UI base URL (or a custom domain)
	ClientID         string   `yaml:"client_id"`          // an app client with the code grant enabled
	ClientSecretFile string   `yaml:"client_secret_file"` // optional: HTTP Basic at the token endpoint
	Scopes           []string `yaml:"scopes"`             // default openid email profile
	Pool             string   `yaml:"pool"`               // the configured pool whose tokens this client gets
	AllowedHosts     []string `yaml:"allowed_hosts"`      // hosts the flow runs on; redirect_uri = https://<Host><callback_path>
	CallbackPath     string   `yaml:"callback_path"`
	LoginPath        string   `yaml:"login_path"`
	LogoutPath       string   `yaml:"logout_path"`
	LogoutRedirect   string   `yaml:"logout_redirect"` // Cognito's logout_uri: one of the app client's sign-out URLs
	// LogoutGET accepts GET on logout_path too (default: POST only, with an Origin check).
	LogoutGET       bool            `yaml:"logout_get"`
	SessionKeysFile string          `yaml:"session_keys_file"` // one base64 32-byte key per line; the first encrypts
	SessionMaxAge   Duration        `yaml:"session_max_age"`
	RefreshBefore   Duration        `yaml:"refresh_before"`
	Cookie          BrowserCookie   `yaml:"cookie"`
	Endpoints       BrowserEndpoint `yaml:"endpoints"`
	InsecureHTTP    bool            `yaml:"insecure_http"` // dev only: http:// hosts, cookies without Secure
}

// BrowserCookie shapes the session cookies.
type BrowserCookie struct {
	Name     string `yaml:"name"`      // default cognito_authz (__Host- prefixed without a domain)
	Domain   string `yaml:"domain"`    // share with subdomains (drops __Host-)
	SameSite string `yaml:"same_site"` // lax (default), strict or none
}

// BrowserEndpoint overrides the Hosted UI endpoints derived from domain (emulators, tests).
type BrowserEndpoint struct {
	Authorize string `yaml:"authorize"`
	Token     string `yaml:"token"`
	Logout    string `yaml:"logout"`
	Revoke    string `yaml:"revoke"`
}

// Defaults fills what the block leaves out (Decode calls it).
func (b *Browser) Defaults() {
	if b.Scopes == nil {
		b.Scopes = []string{"openid", "email", "profile"}
	}
	def := func(s *string, d string) {
		if *s == "" {
			*s = d
		}
	}
	def(&b.CallbackPath, "/_authz/callback")
	def(&b.LoginPath, "/_authz/login")
	def(&b.LogoutPath, "/_authz/logout")
	def(&b.Cookie.Name, "cognito_authz")
	def(&b.Cookie.SameSite, "lax")
	if b.SessionMaxAge == 0 {
		b.SessionMaxAge = Duration(12 * time.Hour)
	}
	if b.RefreshBefore == 0 {
		b.RefreshBefore = Duration(2 * time.Minute)
	}
}

// cookieNameRE is what a cookie name of ours may be: an RFC 6265 token, kept simple.
func cookieNameOK(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return s != "" && len(s) <= 64
}

// validateBrowser checks the browser: block's shape, every problem named by its key path.
func (c *Config) validateBrowser(bad func(string, ...any), pools map[string]bool) {
	b := c.Browser
	if b == nil {
		for i, r := range c.Rules {
			if r.Action == "login" {
				bad("%s.action login needs a browser: block", Where("rules", i, r.Name))
			}
		}
		if c.Default == "login" {
			bad("default login needs a browser: block")
		}
		return
	}
	if b.Domain == "" && (b.Endpoints.Authorize == "" || b.Endpoints.Token == "") {
		bad("browser.domain is required (or endpoints.authorize and endpoints.token)")
	} else if b.Domain != "" {
		if err := checkURL(b.Domain); err != nil {
			bad("browser.domain: %v", err)
		}
	}
	for _, e := range []struct{ key, v string }{{"authorize", b.Endpoints.Authorize}, {"token", b.Endpoints.Token},
		{"logout", b.Endpoints.Logout}, {"revoke", b.Endpoints.Revoke}} {
		if e.v != "" {
			if err := checkURL(e.v); err != nil {
				bad("browser.endpoints.%s: %v", e.key, err)
			}
		}
	}
	if strings.TrimSpace(b.ClientID) == "" || strings.TrimSpace(b.ClientID) != b.ClientID {
		bad("browser.client_id %q: want the app client id", b.ClientID)
	}
	switch {
	case b.Pool == "":
		bad("browser.pool is required: the configured pool whose tokens the app client gets")
	case !pools[b.Pool]:
		bad("browser.pool: %q is not a configured pool", b.Pool)
	default:
		for _, p := range c.Pools {
			if p.Name == b.Pool && !slices.Contains(p.ClientIDs, b.ClientID) {
				bad("browser.client_id %q is not among pools (%s).client_ids: its tokens would never verify", b.ClientID, p.Name)
			}
			if p.Name == b.Pool && p.TokenUse == "id" {
				bad("browser.pool %q takes only id tokens: a session's access token needs token_use access or any", p.Name)
			}
		}
	}
	if len(b.Scopes) == 0 || !slices.Contains(b.Scopes, "openid") {
		bad("browser.scopes: openid is required (the ID token carries the nonce)")
	}
	if len(b.AllowedHosts) == 0 {
		bad("browser.allowed_hosts: at least one host is required")
	}
	for i, h := range b.AllowedHosts {
		if u, err := url.Parse("//" + h); h == "" || err != nil || u.Host != h || u.Path != "" || strings.ContainsAny(h, "*@ ") {
			bad("browser.allowed_hosts[%d] %q: want a host name, a port optional", i, h)
		}
	}
	if b.SessionKeysFile == "" {
		bad("browser.session_keys_file is required")
	}
	if d := b.SessionMaxAge.Std(); d < 5*time.Minute || d > 30*24*time.Hour {
		bad("browser.session_max_age %s: want 5m to 720h", d)
	}
	if d := b.RefreshBefore.Std(); d < 0 || d > time.Hour || d >= b.SessionMaxAge.Std() {
		bad("browser.refresh_before %s: want 0s to 1h, below session_max_age", d)
	}
	if !cookieNameOK(b.Cookie.Name) {
		bad("browser.cookie.name %q: want letters, digits, - and _ (at most 64)", b.Cookie.Name)
	}
	if d := b.Cookie.Domain; d != "" && (strings.ContainsAny(d, ":/ ;,") || !strings.Contains(strings.TrimPrefix(d, "."), ".")) {
		bad("browser.cookie.domain %q: want a domain such as example.com", d)
	}
	if !slices.Contains([]string{"lax", "strict", "none"}, b.Cookie.SameSite) {
		bad("browser.cookie.same_site %q: want lax, strict or none", b.Cookie.SameSite)
	}
	if b.Cookie.SameSite == "none" && b.InsecureHTTP {
		bad("browser.cookie.same_site none needs Secure cookies: not with insecure_http")
	}
	if b.LogoutRedirect != "" {
		if err := checkURL(b.LogoutRedirect); err != nil {
			bad("browser.logout_redirect: %v", err)
		}
	}
}
