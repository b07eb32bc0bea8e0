package authz_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/cognito-authz/cognito-authz/pkg/authz"
	"github.com/cognito-authz/cognito-authz/pkg/devissuer"
	"github.com/cognito-authz/cognito-authz/pkg/policy"
	"github.com/cognito-authz/cognito-authz/pkg/testkit"
	"github.com/cognito-authz/cognito-authz/pkg/token"
)

// pathRules has one rule of each strictness, so that any walk from one to another shows.
var pathRules = []policy.Rule{
	{Name: "public", Match: policy.Match{PathPrefix: "/public"}, Action: policy.Allow},
	{Name: "feed", Match: policy.Match{PathPrefix: "/feed"}, Action: policy.Optional},
	{Name: "admin", Match: policy.Match{PathPrefix: "/admin"}, Require: policy.Require{GroupsAny: []string{"admins"}}},
	{Name: "secrets", Match: policy.Match{PathPrefix: "/secrets"}, Action: policy.Deny},
	{Name: "rollout", Match: policy.Match{PathPrefix: "/beta"}, Require: policy.Require{GroupsAny: []string{"testers"}}, DryRun: true},
}

// pathFixture is an authorizer over pathRules (default authenticated) and tokens of each kind.
type pathFixture struct {
	iss                 *devissuer.Issuer
	v                   *token.Verifier
	a                   *authz.Authorizer
	user, admin, forged string
}

func newPathFixture(t testing.TB, opts authz.Options) *pathFixture {
	t.Helper()
	f := &pathFixture{iss: testkit.Start(t)}
	p, err := policy.New(pathRules, policy.Authenticated)
	if err != nil {
		t.Fatal(err)
	}
	set := testkit.LoadedSet(t, f.iss)
	v, err := token.NewVerifier([]token.Pool{{Name: "main", Issuers: []string{f.iss.URL}, ClientIDs: []string{f.iss.ClientID},
		TokenUse: "any", Keys: set}})
	if err != nil {
		t.Fatal(err)
	}
	f.v = v
	opts.Verifier, opts.Policy, opts.Headers, opts.ForwardToken = v, p, headers, true
	if f.a, err = authz.New(opts); err != nil {
		t.Fatal(err)
	}
	mint := func(groups ...string) string {
		c := f.iss.Access()
		c["cognito:groups"] = groups
		s, err := f.iss.Mint(c)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	f.user, f.admin = mint("users"), mint("admins")
	f.forged = f.user[:len(f.user)-4] + "AAAA"
	return f
}

func (f *pathFixture) request(path, tok string) *authz.Request {
	h := token.HeaderMap{}
	if tok != "" {
		h["authorization"] = "Bearer " + tok
	}
	return &authz.Request{Method: "GET", Host: "api.example.com", Path: path, Headers: h}
}

// TestPathBypasses: every spelling of a protected path that a real upstream serves as the protected
// resource is judged at least as strictly as that resource's rule, in the default mode (every selected
// rule applies), and refused as path_ambiguous with RejectAmbiguousPaths.
func TestPathBypasses(t *testing.T) {
	t.Parallel()
	strict := newPathFixture(t, authz.Options{})
	reject := newPathFixture(t, authz.Options{RejectAmbiguousPaths: true})
	type who int
	const (
		anonymous who = iota
		user
		admin
	)
	tests := []struct {
		name string
		path string
		as   who
		want authz.Reason // strictest mode
		// ambiguous: the path's readings select several rules (reject mode: path_ambiguous)
		ambiguous bool
	}{
		{name: "tomcat_dotdot_param", path: "/public/..;/admin/users", as: anonymous, want: authz.ReasonTokenMissing, ambiguous: true},
		{name: "tomcat_dotdot_param_user", path: "/public/..;/admin/users", as: user, want: authz.ReasonGroupRequired, ambiguous: true},
		{name: "tomcat_dotdot_param_admin", path: "/public/..;/admin/users", as: admin, want: authz.ReasonOK, ambiguous: true},
		{name: "tomcat_param_in_segment", path: "/admin;x=1/users", as: user, want: authz.ReasonGroupRequired, ambiguous: true},
		{name: "tomcat_encoded_dotdot_param", path: "/public/%2e%2e;/admin", as: anonymous, want: authz.ReasonTokenMissing, ambiguous: true},
		{name: "tomcat_param_into_deny", path: "/public/..;/secrets", as: admin, want: authz.ReasonRuleDenied, ambiguous: true},
		{name: "case_upper", path: "/ADMIN/users", as: user, want: authz.ReasonGroupRequired, ambiguous: true},
		{name: "case_mixed_deny", path: "/Secrets/x", as: admin, want: authz.ReasonRuleDenied, ambiguous: true},
		{name: "case_long_s", path: "/%C5%BFecrets", as: admin, want: authz.ReasonRuleDenied, ambiguous: true},
		{name: "nginx_encoded_slash_climb", path: "/public/..%2Fadmin/x", as: anonymous, want: authz.ReasonTokenMissing, ambiguous: true},
		{name: "nginx_encoded_slash_lower", path: "/public/..%2fadmin/x", as: anonymous, want: authz.ReasonTokenMissing, ambiguous: true},
		{name: "nginx_encoded_slash_in_segment", path: "/admin%2Fx", as: user, want: authz.ReasonGroupRequired, ambiguous: true},
		{name: "encoded_backslash", path: "/public/..%5Cadmin", as: anonymous, want: authz.ReasonTokenMissing, ambiguous: true},
		{name: "backslash", path: `/public\..\admin`, as: user, want: authz.ReasonGroupRequired, ambiguous: true},
		// nginx and Caddy decode %2F but keep "\" as a byte: /0\0/..%2FAdmin is /Admin to them.
		{name: "backslash_kept_encoded_slash_climb", path: `/0\0/..%2FAdmin`, as: user, want: authz.ReasonGroupRequired, ambiguous: true},
		{name: "backslash_kept_encoded_slash_deny", path: `/x\y/..%2Fsecrets`, as: admin, want: authz.ReasonRuleDenied, ambiguous: true},
		{name: "double_encoded_slash", path: "/public/..%252Fadmin", as: anonymous, want: authz.ReasonTokenMissing, ambiguous: true},
		{name: "double_encoded_semicolon", path: "/public/..%253B/secrets", as: admin, want: authz.ReasonRuleDenied, ambiguous: true},
		{name: "encoded_semicolon", path: "/public/..%3B/admin", as: anonymous, want: authz.ReasonTokenMissing, ambiguous: true},
		{name: "slash_and_param", path: "/public;x/..%2Fadmin", as: user, want: authz.ReasonGroupRequired, ambiguous: true},
		{name: "windows_trailing_dot", path: "/admin./users", as: user, want: authz.ReasonGroupRequired, ambiguous: true},
		{name: "case_with_three_dots", path: "/ADMIN/...", as: user, want: authz.ReasonGroupRequired, ambiguous: true},
		{name: "case_with_three_dots_deny", path: "/SECRETS/...", as: admin, want: authz.ReasonRuleDenied, ambiguous: true},
		{name: "windows_dotdot_space", path: "/public/..%20/admin", as: anonymous, want: authz.ReasonTokenMissing, ambiguous: true},
		{name: "raw_router_dotdot", path: "/admin/../public/x", as: user, want: authz.ReasonGroupRequired, ambiguous: true},
		{name: "optional_walk_to_admin", path: "/feed/..;/admin", as: user, want: authz.ReasonGroupRequired, ambiguous: true},
		{name: "invalid_token_optional_and_public", path: "/public/..;/feed", as: -1, want: authz.ReasonSignatureInvalid, ambiguous: true},
		// A dry-run rule keeps its dry run when selected with a more lenient one: the deny is answered as
		// a marked allow, as it would be on its own path.
		{name: "dry_run_rule_selected", path: "/public/..;/beta", as: user, want: authz.ReasonGroupRequired, ambiguous: true},
		// ...but never hides the deny of a rule that is not in dry run: the normal reading selects the dry-run
		// rule, Tomcat's reading the admin rule, and the admin rule's deny is the answer.
		{name: "dry_run_rule_does_not_hide_a_deny", path: "/beta/..;/admin", as: user, want: authz.ReasonGroupRequired, ambiguous: true},
		{name: "dry_run_rule_does_not_hide_a_deny_anonymous", path: "/beta/..;/secrets", as: admin, want: authz.ReasonRuleDenied, ambiguous: true},
		// One reading only: judged as before.
		{name: "normal_dotdot", path: "/public/../admin", as: user, want: authz.ReasonGroupRequired, ambiguous: true},
		{name: "plain_public", path: "/public/a", as: anonymous, want: authz.ReasonAnonymous},
		{name: "public_session_param", path: "/public/a;jsessionid=1", as: anonymous, want: authz.ReasonAnonymous},
		{name: "public_mixed_case_file", path: "/public/Logo.PNG", as: anonymous, want: authz.ReasonAnonymous},
		{name: "plain_admin", path: "/admin/users", as: admin, want: authz.ReasonOK},
		{name: "query_is_not_path", path: "/public?x=/../admin", as: anonymous, want: authz.ReasonAnonymous},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, f := range []*pathFixture{strict, reject} {
				tok := map[who]string{anonymous: "", user: f.user, admin: f.admin, -1: f.forged}[tt.as]
				d := f.a.Check(t.Context(), f.request(tt.path, tok))
				want := tt.want
				if f == reject && tt.ambiguous {
					want = authz.ReasonPathAmbiguous
				}
				if d.Reason != want {
					t.Fatalf("reject=%v: Check(%q) = %s (rule %s, allowed %v), want %s", f == reject, tt.path, d.Reason, d.Rule, d.Allowed(), want)
				}
				allowed := want == authz.ReasonOK || want == authz.ReasonAnonymous || strings.HasSuffix(tt.name, "dry_run_rule_selected") && f == strict
				if d.Allowed() != allowed {
					t.Fatalf("reject=%v: Check(%q) allowed = %v, want %v", f == reject, tt.path, d.Allowed(), allowed)
				}
				if want == authz.ReasonPathAmbiguous && (d.Outcome != authz.BadRequest || d.Outcome.HTTPStatus() != 400) {
					t.Errorf("path_ambiguous outcome = %v (%d), want bad_request 400", d.Outcome, d.Outcome.HTTPStatus())
				}
			}
		})
	}
}

// TestAmbiguousReportsDecidingRule: the rule a combined decision names is the one that decided it.
func TestAmbiguousReportsDecidingRule(t *testing.T) {
	t.Parallel()
	f := newPathFixture(t, authz.Options{})
	for _, tt := range []struct{ path, tok, rule string }{
		{"/public/..;/admin", "", "admin"},          // public allows, admin denies
		{"/public/..;/admin", f.admin, "admin"},     // both allow: the strictest
		{"/secrets/..;/public", f.admin, "secrets"}, // normal reading: secrets denies first
	} {
		if d := f.a.Check(t.Context(), f.request(tt.path, tt.tok)); d.Rule != tt.rule {
			t.Errorf("Check(%q).Rule = %q, want %q", tt.path, d.Rule, tt.rule)
		}
	}
}

// TestAmbiguousVerifiesOnce: a path judged by several rules verifies its token once.
func TestAmbiguousVerifiesOnce(t *testing.T) {
	t.Parallel()
	var misses, hits int
	f2 := newPathFixture(t, authz.Options{Cache: authz.CacheOptions{MaxEntries: 100, MaxBytes: 1 << 20,
		OnMiss: func() { misses++ }, OnHit: func() { hits++ }}})
	f2.a.Check(t.Context(), f2.request("/feed/..;/admin/..;/public/..;/secrets;/..;/beta", f2.admin))
	if misses != 1 || hits != 0 {
		t.Errorf("cache misses %d hits %d, want the token looked up once", misses, hits)
	}
}

// FuzzPathStrictness: for any path and credential, the decision is at least as strict as the decision the
// rule of each reading of the path would make on its own: if any of them refuses, the request is refused,
// and if any of them allows with identity, an allow carries identity too.
func FuzzPathStrictness(f *testing.F) {
	fx := newPathFixture(f, authz.Options{})
	p, err := policy.New(pathRules, policy.Authenticated)
	if err != nil {
		f.Fatal(err)
	}
	// alone[name] judges every request by that one rule.
	alone := map[string]*authz.Authorizer{}
	for _, r := range append(slices.Clone(pathRules), policy.Rule{Name: policy.DefaultName}) {
		var rules []policy.Rule
		def := policy.Authenticated
		if r.Name != policy.DefaultName {
			one := r
			one.Name, one.Match = "only", policy.Match{}
			rules, def = []policy.Rule{one}, policy.Deny
		}
		pol, err := policy.New(rules, def)
		if err != nil {
			f.Fatal(err)
		}
		alone[r.Name], err = authz.New(authz.Options{Verifier: fx.v, Policy: pol, Headers: headers, ForwardToken: true})
		if err != nil {
			f.Fatal(err)
		}
	}
	for _, s := range []string{"/public/..;/admin/users", "/admin;x=1/users", "/ADMIN/users", "/public/..%2Fadmin/x", "/admin%2Fx",
		`/public\..\admin`, "/public/..%252Fadmin", "/public/..%3B/secrets", "/admin./x", "/%C5%BFecrets", "/feed/..;/beta",
		"/public/%2e%2e;/admin", "//admin", "/admin/../public", "/public/a"} {
		for who := range uint8(4) {
			f.Add(s, who)
		}
	}
	f.Fuzz(func(t *testing.T, path string, who uint8) {
		tok := [...]string{"", fx.user, fx.admin, fx.forged}[who%4]
		req := fx.request(path, tok)
		got := fx.a.Check(context.Background(), req)
		preq := &policy.Request{Method: req.Method, Host: req.Host, Path: req.Path}
		for _, rd := range policy.Readings(path) {
			rule := p.MatchReading(preq, rd)
			single := alone[rule.Name].Check(context.Background(), req)
			if !single.Allowed() && got.Allowed() {
				t.Fatalf("path %q (token %d): reading %s %q selects %s, which refuses (%s), but the decision allows (%s, rule %s)",
					path, who%4, rd.Name, rd.Path, rule.Name, single.Reason, got.Reason, got.Rule)
			}
			if single.Allowed() && single.Identity != nil && got.Allowed() && got.Identity == nil {
				t.Fatalf("path %q: reading %s selects %s, which allows with identity, but the decision is anonymous", path, rd.Name, rule.Name)
			}
		}
	})
}
