package authz_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"

	"github.com/cognito-authz/cognito-authz/pkg/authz"
	"github.com/cognito-authz/cognito-authz/pkg/devissuer"
	"github.com/cognito-authz/cognito-authz/pkg/policy"
	"github.com/cognito-authz/cognito-authz/pkg/testkit"
	"github.com/cognito-authz/cognito-authz/pkg/token"
)

// twoPools is an authorizer over two real pools ("main" takes any token, "partners" access tokens only)
// with the given rules.
type twoPools struct {
	main, partners *devissuer.Issuer
	a              *authz.Authorizer
}

func newTwoPools(t *testing.T, rules []policy.Rule, def policy.Action, sources ...token.Source) *twoPools {
	t.Helper()
	f := &twoPools{main: testkit.Start(t), partners: testkit.Start(t)}
	f.partners.ClientID = "partnerclient"
	p, err := policy.New(rules, def)
	if err != nil {
		t.Fatal(err)
	}
	v, err := token.NewVerifier([]token.Pool{
		{Name: "main", Issuers: []string{f.main.URL}, ClientIDs: []string{f.main.ClientID}, TokenUse: "any", Keys: testkit.LoadedSet(t, f.main)},
		{Name: "partners", Issuers: []string{f.partners.URL}, ClientIDs: []string{f.partners.ClientID}, TokenUse: "access", Keys: testkit.LoadedSet(t, f.partners)},
	}, token.WithClaims(append(p.Claims(), "custom:tenant")...))
	if err != nil {
		t.Fatal(err)
	}
	f.a, err = authz.New(authz.Options{Verifier: v, Policy: p, Headers: headers, ForwardToken: true, Sources: sources})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestActionsAndRequirements(t *testing.T) {
	rules := []policy.Rule{
		{Name: "health", Match: policy.Match{PathPrefix: "/healthz"}, Action: policy.Allow},
		{Name: "closed", Match: policy.Match{PathPrefix: "/closed"}, Action: policy.Deny},
		{Name: "feed", Match: policy.Match{PathPrefix: "/feed"}, Action: policy.Optional},
		{Name: "feed_lenient", Match: policy.Match{PathPrefix: "/lenient"}, Action: policy.Optional, AnonymousOnInvalid: true},
		{Name: "partners", Match: policy.Match{PathPrefix: "/partners"}, Require: policy.Require{Pools: []string{"partners"}}},
		{Name: "ids", Match: policy.Match{PathPrefix: "/profile"}, Require: policy.Require{TokenUse: "id"}},
		{Name: "admin_any", Match: policy.Match{PathPrefix: "/admin"}, Require: policy.Require{GroupsAny: []string{"admins", "ops"}}},
		{Name: "admin_all", Match: policy.Match{PathPrefix: "/root"}, Require: policy.Require{GroupsAll: []string{"admins", "users"}}},
		{Name: "orders_any", Match: policy.Match{PathPrefix: "/orders"}, Require: policy.Require{ScopesAny: []string{"orders/read", "orders/write"}}},
		{Name: "orders_all", Match: policy.Match{PathPrefix: "/bulk"}, Require: policy.Require{ScopesAll: []string{"orders/read", "orders/write"}}},
		{Name: "tenant", Match: policy.Match{PathPrefix: "/acme"}, Require: policy.Require{Claims: map[string][]string{"custom:tenant": {"acme"}}}},
		{Name: "roles", Match: policy.Match{PathPrefix: "/roles"}, Require: policy.Require{Claims: map[string][]string{"custom:roles": {"editor"}}}},
	}
	f := newTwoPools(t, rules, policy.Authenticated)
	mint := func(iss *devissuer.Issuer, c jwt.MapClaims, mod func(jwt.MapClaims)) string {
		if mod != nil {
			mod(c)
		}
		return iss.MustMint(t, c)
	}
	access := mint(f.main, f.main.Access(), nil)
	admin := mint(f.main, f.main.Access(), func(c jwt.MapClaims) { c["cognito:groups"] = []string{"users", "admins"} })
	id := mint(f.main, f.main.IDToken(), nil)
	otherTenant := mint(f.main, f.main.IDToken(), func(c jwt.MapClaims) { c["custom:tenant"] = "globex" })
	editor := mint(f.main, f.main.IDToken(), func(c jwt.MapClaims) { c["custom:roles"] = []string{"viewer", "editor"} })
	viewer := mint(f.main, f.main.IDToken(), func(c jwt.MapClaims) { c["custom:roles"] = []string{"viewer"} })
	m2m := mint(f.partners, f.partners.M2M(), nil)
	m2mRead := mint(f.partners, f.partners.M2M(), func(c jwt.MapClaims) { c["scope"] = "orders/read" })
	tests := []struct {
		name       string
		path       string
		token      string // empty: no Authorization
		wantReason authz.Reason
		wantStatus int // 0: allow
		wantRule   string
		wantIdent  bool // allowed with identity headers
	}{
		{name: "allow_rule_without_token", path: "/healthz", wantReason: authz.ReasonAnonymous, wantRule: "health"},
		{name: "allow_rule_ignores_bad_token", path: "/healthz", token: "garbage", wantReason: authz.ReasonAnonymous, wantRule: "health"},
		{name: "deny_rule_even_with_valid_token", path: "/closed", token: admin, wantReason: authz.ReasonRuleDenied, wantStatus: 403, wantRule: "closed"},
		{name: "optional_valid_token_sets_identity", path: "/feed", token: access, wantReason: authz.ReasonOK, wantRule: "feed", wantIdent: true},
		{name: "optional_no_token_anonymous", path: "/feed", wantReason: authz.ReasonAnonymous, wantRule: "feed"},
		{name: "optional_invalid_token_refused", path: "/feed", token: testkit.Tamper(access), wantReason: authz.ReasonSignatureInvalid, wantStatus: 401, wantRule: "feed"},
		{name: "optional_malformed_token_refused", path: "/feed", token: "garbage", wantReason: authz.ReasonTokenMalformed, wantStatus: 401, wantRule: "feed"},
		{name: "optional_invalid_anonymous", path: "/lenient", token: testkit.Tamper(access), wantReason: authz.ReasonAnonymous, wantRule: "feed_lenient"},
		{name: "default_authenticated_allows", path: "/anything", token: access, wantReason: authz.ReasonOK, wantRule: "default", wantIdent: true},
		{name: "default_authenticated_no_token", path: "/anything", wantReason: authz.ReasonTokenMissing, wantStatus: 401, wantRule: "default"},
		{name: "pools_allow", path: "/partners", token: m2m, wantReason: authz.ReasonOK, wantRule: "partners", wantIdent: true},
		{name: "pools_deny", path: "/partners", token: access, wantReason: authz.ReasonPoolNotAllowed, wantStatus: 403, wantRule: "partners"},
		{name: "token_use_allow", path: "/profile", token: id, wantReason: authz.ReasonOK, wantRule: "ids", wantIdent: true},
		{name: "token_use_deny_is_403", path: "/profile", token: access, wantReason: authz.ReasonTokenUseMismatch, wantStatus: 403, wantRule: "ids"},
		{name: "groups_any_allow", path: "/admin", token: admin, wantReason: authz.ReasonOK, wantRule: "admin_any", wantIdent: true},
		{name: "groups_any_deny", path: "/admin/users", token: access, wantReason: authz.ReasonGroupRequired, wantStatus: 403, wantRule: "admin_any"},
		{name: "groups_any_no_token_is_401", path: "/admin", wantReason: authz.ReasonTokenMissing, wantStatus: 401, wantRule: "admin_any"},
		{name: "groups_all_allow", path: "/root", token: admin, wantReason: authz.ReasonOK, wantRule: "admin_all", wantIdent: true},
		{name: "groups_all_deny", path: "/root", token: access, wantReason: authz.ReasonGroupRequired, wantStatus: 403, wantRule: "admin_all"},
		{name: "groups_dotdot_trap", path: "/healthz/../admin", token: access, wantReason: authz.ReasonGroupRequired, wantStatus: 403, wantRule: "admin_any"},
		{name: "scopes_any_allow", path: "/orders", token: m2mRead, wantReason: authz.ReasonOK, wantRule: "orders_any", wantIdent: true},
		{name: "scopes_any_deny", path: "/orders", token: access, wantReason: authz.ReasonScopeRequired, wantStatus: 403, wantRule: "orders_any"},
		{name: "scopes_all_allow", path: "/bulk", token: m2m, wantReason: authz.ReasonOK, wantRule: "orders_all", wantIdent: true},
		{name: "scopes_all_deny", path: "/bulk", token: m2mRead, wantReason: authz.ReasonScopeRequired, wantStatus: 403, wantRule: "orders_all"},
		{name: "claim_string_allow", path: "/acme", token: id, wantReason: authz.ReasonOK, wantRule: "tenant", wantIdent: true},
		{name: "claim_string_deny", path: "/acme", token: otherTenant, wantReason: authz.ReasonClaimRequired, wantStatus: 403, wantRule: "tenant"},
		{name: "claim_absent_deny", path: "/acme", token: access, wantReason: authz.ReasonClaimRequired, wantStatus: 403, wantRule: "tenant"},
		{name: "claim_list_allow", path: "/roles", token: editor, wantReason: authz.ReasonOK, wantRule: "roles", wantIdent: true},
		{name: "claim_list_deny", path: "/roles", token: viewer, wantReason: authz.ReasonClaimRequired, wantStatus: 403, wantRule: "roles"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := token.HeaderMap{"x-auth-groups": "admins"} // a spoofed identity header: never passes through
			if tt.token != "" {
				h["authorization"] = "Bearer " + tt.token
			}
			d := f.a.Check(t.Context(), &authz.Request{Method: "GET", Host: "api.example.com", Path: tt.path, Headers: h})
			got := struct {
				Reason authz.Reason
				Status int
				Rule   string
			}{d.Reason, d.Outcome.HTTPStatus(), d.Rule}
			want := struct {
				Reason authz.Reason
				Status int
				Rule   string
			}{tt.wantReason, tt.wantStatus, tt.wantRule}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("decision mismatch (-want +got):\n%s\ncause: %v", diff, d.Err)
			}
			if !d.Allowed() {
				if d.Err == nil {
					t.Error("deny without a cause for the logs")
				}
				if wantAuth := map[int]string{401: `Bearer error="invalid_token"`, 403: `Bearer error="insufficient_scope"`}[tt.wantStatus]; !hasHeaderPrefix(d.Headers, "www-authenticate", wantAuth) {
					t.Errorf("www-authenticate missing or wrong: %v", d.Headers)
				}
				if !strings.Contains(d.Body, `"error":"`+string(tt.wantReason)+`"`) {
					t.Errorf("body %q does not name the reason", d.Body)
				}
				return
			}
			// Allowed: every identity header is either set from the token or removed.
			set := map[string]bool{}
			for _, hd := range d.Headers {
				set[hd.Name] = true
			}
			if tt.wantIdent != set["x-auth-sub"] {
				t.Errorf("identity set = %v, want %v", set["x-auth-sub"], tt.wantIdent)
			}
			if !set["x-auth-groups"] && !slices.Contains(d.Remove, "x-auth-groups") {
				t.Errorf("x-auth-groups neither set nor removed: a spoofed value would pass")
			}
			if (d.Identity != nil) != tt.wantIdent {
				t.Errorf("Identity = %v, want set %v", d.Identity, tt.wantIdent)
			}
		})
	}
}

func hasHeaderPrefix(hs []authz.Header, name, prefix string) bool {
	for _, h := range hs {
		if h.Name == name {
			return strings.HasPrefix(h.Value, prefix)
		}
	}
	return false
}

func TestDefaultActions(t *testing.T) {
	tests := []struct {
		name       string
		def        policy.Action
		wantReason authz.Reason
	}{
		{name: "allow", def: policy.Allow, wantReason: authz.ReasonAnonymous},
		{name: "deny", def: policy.Deny, wantReason: authz.ReasonRuleDenied},
		{name: "authenticated", def: policy.Authenticated, wantReason: authz.ReasonTokenMissing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newTwoPools(t, nil, tt.def)
			d := f.a.Check(t.Context(), &authz.Request{Method: "GET", Path: "/", Headers: token.HeaderMap{}})
			if d.Reason != tt.wantReason || d.Rule != "default" {
				t.Fatalf("got %s (rule %s), want %s (rule default)", d.Reason, d.Rule, tt.wantReason)
			}
		})
	}
}

// TestMultiPoolRouting routes tokens to their pool by iss, and checks an unknown issuer costs no request to
// any JWKS server: neither the configured pools' nor the one the token's issuer serves.
func TestMultiPoolRouting(t *testing.T) {
	f := newTwoPools(t, nil, policy.Authenticated)
	stranger := testkit.Start(t) // same signing key as the others: only the issuer tells them apart
	before := []int64{f.main.Fetches(), f.partners.Fetches()}
	tests := []struct {
		name       string
		token      string
		wantReason authz.Reason
		wantPool   string
	}{
		{name: "main_pool", token: f.main.MustMint(t, f.main.IDToken()), wantReason: authz.ReasonOK, wantPool: "main"},
		{name: "partners_pool", token: f.partners.MustMint(t, f.partners.M2M()), wantReason: authz.ReasonOK, wantPool: "partners"},
		{name: "partners_pool_takes_access_only", token: f.partners.MustMint(t, f.partners.IDToken()), wantReason: authz.ReasonTokenUseMismatch},
		{name: "client_of_other_pool", token: f.main.MustMint(t, jwt.MapClaims(withClient(f.main.Access(), f.partners.ClientID))), wantReason: authz.ReasonClientMismatch},
		{name: "unknown_issuer", token: stranger.MustMint(t, withIss(stranger.Access(), stranger.URL+"x")), wantReason: authz.ReasonIssuerUnknown},
		{name: "unknown_issuer_served_elsewhere", token: stranger.MustMint(t, withIss(stranger.Access(), "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Nope")), wantReason: authz.ReasonIssuerUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := f.a.Check(t.Context(), bearer(tt.token))
			if d.Reason != tt.wantReason {
				t.Fatalf("reason = %s, want %s (%v)", d.Reason, tt.wantReason, d.Err)
			}
			if tt.wantPool != "" && d.Identity.Pool != tt.wantPool {
				t.Errorf("pool = %s, want %s", d.Identity.Pool, tt.wantPool)
			}
		})
	}
	after := []int64{f.main.Fetches(), f.partners.Fetches()}
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("JWKS fetches of the configured pools changed (-before +after):\n%s", diff)
	}
	if n := stranger.Fetches(); n != 0 {
		t.Errorf("unknown issuer's JWKS fetched %d times, want 0", n)
	}
}

func withIss(c jwt.MapClaims, iss string) jwt.MapClaims { c["iss"] = iss; return c }

func withClient(c jwt.MapClaims, id string) jwt.MapClaims { c["client_id"] = id; return c }

func TestTokenSources(t *testing.T) {
	sources := []token.Source{
		{Header: "authorization", Prefix: "Bearer "},
		{Cookie: "id_token"},
		{Header: "x-amzn-oidc-accesstoken"},
	}
	f := newTwoPools(t, nil, policy.Authenticated, sources...)
	tok := f.main.MustMint(t, f.main.Access())
	tests := []struct {
		name       string
		headers    token.HeaderMap
		wantReason authz.Reason
	}{
		{name: "bearer", headers: token.HeaderMap{"authorization": "Bearer " + tok}, wantReason: authz.ReasonOK},
		{name: "cookie", headers: token.HeaderMap{"cookie": "theme=dark; id_token=" + tok + "; other=1"}, wantReason: authz.ReasonOK},
		{name: "cookie_after_a_broken_one", headers: token.HeaderMap{"cookie": "bad\x01=x; id_token=" + tok}, wantReason: authz.ReasonOK},
		{name: "custom_header", headers: token.HeaderMap{"x-amzn-oidc-accesstoken": tok}, wantReason: authz.ReasonOK},
		{name: "basic_auth_falls_through_to_cookie", headers: token.HeaderMap{"authorization": "Basic dXNlcjpwYXNz", "cookie": "id_token=" + tok}, wantReason: authz.ReasonOK},
		{name: "first_source_wins_even_if_bad", headers: token.HeaderMap{"authorization": "Bearer " + testkit.Tamper(tok), "cookie": "id_token=" + tok}, wantReason: authz.ReasonSignatureInvalid},
		{name: "other_cookie_only", headers: token.HeaderMap{"cookie": "access_token=" + tok}, wantReason: authz.ReasonTokenMissing},
		{name: "custom_header_garbage", headers: token.HeaderMap{"x-amzn-oidc-accesstoken": "nope"}, wantReason: authz.ReasonTokenMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := f.a.Check(t.Context(), &authz.Request{Method: "GET", Path: "/", Headers: tt.headers})
			if d.Reason != tt.wantReason {
				t.Fatalf("reason = %s, want %s (%v)", d.Reason, tt.wantReason, d.Err)
			}
		})
	}
}

// TestPerRuleDryRun rolls out one rule in dry run: its denies become marked anonymous allows, while other
// rules keep denying and a cancelled request is never allowed.
func TestPerRuleDryRun(t *testing.T) {
	f := newTwoPools(t, []policy.Rule{
		{Name: "admin-rollout", Match: policy.Match{PathPrefix: "/admin"}, Action: policy.Authenticated,
			Require: policy.Require{GroupsAny: []string{"admins"}}, DryRun: true},
		{Name: "closed", Match: policy.Match{PathPrefix: "/closed"}, Action: policy.Deny},
	}, policy.Authenticated)
	alice := f.main.MustMint(t, f.main.Access()) // group users, not admins
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	tests := []struct {
		name        string
		ctx         context.Context
		path, token string
		wantAllowed bool
		wantDryRun  bool
		wantReason  authz.Reason
		wantWouldBe authz.Outcome
	}{
		{name: "requirement_unmet_is_a_marked_allow", path: "/admin/x", token: alice, wantAllowed: true, wantDryRun: true,
			wantReason: authz.ReasonGroupRequired, wantWouldBe: authz.Forbidden},
		{name: "no_token_is_a_marked_allow", path: "/admin/x", wantAllowed: true, wantDryRun: true,
			wantReason: authz.ReasonTokenMissing, wantWouldBe: authz.Unauthenticated},
		{name: "other_rules_still_deny", path: "/closed", token: alice, wantReason: authz.ReasonRuleDenied},
		{name: "cancelled_request_never_allowed", ctx: cancelled, path: "/admin/x", token: alice, wantReason: authz.ReasonRequestCancelled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := tt.ctx
			if ctx == nil {
				ctx = t.Context()
			}
			r := &authz.Request{Method: "GET", Path: tt.path, Headers: token.HeaderMap{}}
			if tt.token != "" {
				r.Headers = token.HeaderMap{"authorization": "Bearer " + tt.token, "x-auth-groups": "admins"}
			}
			d := f.a.Check(ctx, r)
			if d.Allowed() != tt.wantAllowed || d.DryRun != tt.wantDryRun || d.Reason != tt.wantReason {
				t.Fatalf("got allowed=%v dryRun=%v reason=%s, want %v %v %s", d.Allowed(), d.DryRun, d.Reason, tt.wantAllowed, tt.wantDryRun, tt.wantReason)
			}
			if !tt.wantDryRun {
				return
			}
			if d.WouldBe != tt.wantWouldBe || len(d.Headers) != 0 || !slices.Contains(d.Remove, "x-auth-groups") {
				t.Errorf("dry-run allow must carry no identity: wouldBe=%s set=%v remove=%v", d.WouldBe, d.Headers, d.Remove)
			}
		})
	}
}
