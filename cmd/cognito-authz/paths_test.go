package main

import (
	"strings"
	"testing"

	"github.com/cognito-authz/cognito-authz/pkg/testkit"
)

// TestCheckCommandPathBypass: `cognito-authz check` against a running service no longer shows ALLOW for a
// path that Tomcat serves as an admin route, and reports path_ambiguous when paths.ambiguous is reject.
func TestCheckCommandPathBypass(t *testing.T) {
	clearEnv(t)
	iss := testkit.Start(t)
	rules := `
rules:
  - {name: public, match: {path_prefix: /public}, action: allow}
  - {name: admin, match: {path_prefix: /admin}, require: {groups_any: [admins]}}
`
	strict, _ := startService(t, loadConfig(t, serviceYAML(iss.URL, iss.JWKSURL())+rules))
	reject, _ := startService(t, loadConfig(t, serviceYAML(iss.URL, iss.JWKSURL())+rules+"paths: {ambiguous: reject}\n"))
	tests := []struct {
		name, addr, path string
		wantCode         int
		wantStdout       string
	}{
		{name: "tomcat_dotdot_param", addr: strict, path: "/public/..;/admin/users", wantCode: 1, wantStdout: "DENY 401 token_missing"},
		{name: "encoded_slash", addr: strict, path: "/public/..%2Fadmin/users", wantCode: 1, wantStdout: "DENY 401 token_missing"},
		{name: "upper_case", addr: strict, path: "/ADMIN/users", wantCode: 1, wantStdout: "DENY 401 token_missing"},
		{name: "public", addr: strict, path: "/public/app.css", wantCode: 0, wantStdout: "ALLOW"},
		{name: "reject_ambiguous", addr: reject, path: "/public/..;/admin/users", wantCode: 1, wantStdout: "DENY 400 path_ambiguous (gRPC InvalidArgument)"},
		{name: "reject_plain_public", addr: reject, path: "/public/app.css", wantCode: 0, wantStdout: "ALLOW"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, "check", "-addr", tt.addr, "-path", tt.path)
			if code != tt.wantCode || !strings.Contains(stdout, tt.wantStdout) {
				t.Errorf("check -path %q: exit %d, stdout %q (stderr %q); want exit %d and %q", tt.path, code, stdout, stderr, tt.wantCode, tt.wantStdout)
			}
		})
	}
}

// TestConfigCheckWarnsDeprecated: config check accepts the deprecated http_trust_forwarded and says what to
// set instead.
func TestConfigCheckWarnsDeprecated(t *testing.T) {
	clearEnv(t)
	base := serviceYAML("http://127.0.0.1:9229/local_abc123", "http://127.0.0.1:9229/local_abc123/.well-known/jwks.json")
	legacy := writeFile(t, "legacy.yaml", strings.Replace(base, "drain_period: 0s}", "drain_period: 0s, http_trust_forwarded: true}", 1))
	both := writeFile(t, "both.yaml", strings.Replace(base, "drain_period: 0s}", "drain_period: 0s, http_trust_forwarded: true, http_forwarded: nginx}", 1))
	if code, stdout, _ := runCLI(t, "config", "check", "-config", legacy); code != 0 || !strings.Contains(stdout, "warning: server.http_trust_forwarded is deprecated") {
		t.Errorf("config check (http_trust_forwarded): exit %d, stdout %q; want 0 and the deprecation warning", code, stdout)
	}
	if code, stdout, _ := runCLI(t, "config", "check", "-config", both); code != 1 || !strings.Contains(stdout, "set only http_forwarded") {
		t.Errorf("config check (both): exit %d, stdout %q; want 1 and the conflict", code, stdout)
	}
}
