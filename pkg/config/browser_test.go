package config

import (
	"strings"
	"testing"
)

// TestBrowserShape: the browser: block's problems are all reported at once, each by its key path, and a
// login rule without the block is refused.
func TestBrowserShape(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		yaml string
		want []string // every one must appear; none: valid
	}{
		{name: "valid", yaml: `
browser: {domain: "https://x.auth.eu-west-1.amazoncognito.com", client_id: abc, pool: main, allowed_hosts: [app.example.com], session_keys_file: /k}
rules: [{name: web, action: login}]`},
		{name: "every_problem", yaml: `
browser:
  domain: "ftp://x"
  client_id: " abc"
  pool: other
  scopes: [email]
  allowed_hosts: ["evil.com/path", "*.example.com"]
  session_max_age: 1m
  refresh_before: 2h
  cookie: {name: "bad name", same_site: loose, domain: "a;b"}
  endpoints: {token: "not a url"}
  logout_redirect: "https://app.example.com/?q=1"`, want: []string{
			"browser.domain:", "browser.client_id", "browser.pool: \"other\" is not a configured pool", "browser.scopes: openid",
			"browser.allowed_hosts[0]", "browser.allowed_hosts[1]", "browser.session_keys_file is required",
			"browser.session_max_age 1m0s", "browser.refresh_before 2h0m0s", "browser.cookie.name", "browser.cookie.same_site",
			"browser.cookie.domain", "browser.endpoints.token", "browser.logout_redirect"}},
		{name: "client_not_in_pool", yaml: `
browser: {domain: "https://x.example.com", client_id: other, pool: main, allowed_hosts: [a.example.com], session_keys_file: /k}`,
			want: []string{`browser.client_id "other" is not among pools (main).client_ids`}},
		{name: "login_without_browser", yaml: `
rules: [{name: web, action: login}]`, want: []string{"rules[0] (web).action login needs a browser: block"}},
		{name: "none_with_insecure_http", yaml: `
browser: {domain: "https://x.example.com", client_id: abc, pool: main, allowed_hosts: [a.example.com], session_keys_file: /k, insecure_http: true, cookie: {same_site: none}}`,
			want: []string{"same_site none needs Secure cookies"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pool := "pools: [{name: main, region: eu-west-1, user_pool_id: eu-west-1_AbC123, client_ids: [abc], token_use: any}]\n"
			_, err := Parse([]byte(pool + tt.yaml))
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("valid block refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("problems lack %q:\n%v", w, err)
				}
			}
		})
	}
}
