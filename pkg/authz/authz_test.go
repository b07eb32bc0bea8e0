package authz_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/cognito-authz/cognito-authz/pkg/authz"
	"github.com/cognito-authz/cognito-authz/pkg/devissuer"
	"github.com/cognito-authz/cognito-authz/pkg/policy"
	"github.com/cognito-authz/cognito-authz/pkg/testkit"
	"github.com/cognito-authz/cognito-authz/pkg/token"
)

var headers = authz.IdentityHeaders{
	Sub: "x-auth-sub", Username: "x-auth-username", Groups: "x-auth-groups", Scopes: "x-auth-scopes",
	ClientID: "x-auth-client-id", TokenUse: "x-auth-token-use", Email: "x-auth-email", Pool: "x-auth-pool",
	Claims: map[string]string{"custom:tenant": "x-auth-tenant"},
}

func newAuthorizer(t *testing.T, forward bool) (*devissuer.Issuer, *authz.Authorizer) {
	t.Helper()
	return newAuthorizerWith(t, authz.Options{ForwardToken: forward})
}

// newAuthorizerWith is an authorizer over one real pool ("main", any token use) served by a new dev issuer,
// with opts; Verifier and Headers are filled in.
func newAuthorizerWith(t *testing.T, opts authz.Options) (*devissuer.Issuer, *authz.Authorizer) {
	t.Helper()
	iss := testkit.Start(t)
	v, err := token.NewVerifier([]token.Pool{{Name: "main", Issuers: []string{iss.URL}, ClientIDs: []string{iss.ClientID},
		TokenUse: "any", Keys: testkit.LoadedSet(t, iss)}}, token.WithClaims("custom:tenant"))
	if err != nil {
		t.Fatal(err)
	}
	opts.Verifier, opts.Headers = v, headers
	a, err := authz.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return iss, a
}

func bearer(tok string) *authz.Request {
	return &authz.Request{Method: "GET", Path: "/", Headers: token.HeaderMap{"authorization": "Bearer " + tok}}
}

func TestAllowHeaders(t *testing.T) {
	iss, a := newAuthorizer(t, true)
	withClaims := func(mod func(jwt.MapClaims)) string {
		c := iss.Access()
		mod(c)
		return iss.MustMint(t, c)
	}
	tests := []struct {
		name       string
		a          *authz.Authorizer
		token      string
		wantSet    map[string]string
		wantRemove []string
	}{
		{
			name: "access_token", a: a, token: iss.MustMint(t, iss.Access()),
			wantSet: map[string]string{"x-auth-sub": "0b5f3c1e-7a2d-4c1b-9e0f-aaaaaaaaaaaa", "x-auth-username": "alice",
				"x-auth-groups": "users", "x-auth-scopes": "aws.cognito.signin.user.admin openid email",
				"x-auth-client-id": "devclient", "x-auth-token-use": "access", "x-auth-pool": "main"},
			wantRemove: []string{"x-auth-email", "x-auth-tenant"},
		},
		{
			name: "id_token_email_and_custom_claim", a: a, token: iss.MustMint(t, iss.IDToken()),
			wantSet: map[string]string{"x-auth-sub": "0b5f3c1e-7a2d-4c1b-9e0f-aaaaaaaaaaaa", "x-auth-username": "alice",
				"x-auth-groups": "users", "x-auth-client-id": "devclient", "x-auth-token-use": "id", "x-auth-pool": "main",
				"x-auth-email": "alice@example.com", "x-auth-tenant": "acme"},
			wantRemove: []string{"x-auth-scopes"},
		},
		{
			name: "groups_comma_joined_and_comma_group_dropped", a: a,
			token: withClaims(func(c jwt.MapClaims) { c["cognito:groups"] = []string{"a", "users,admins", "b"} }),
			wantSet: map[string]string{"x-auth-sub": "0b5f3c1e-7a2d-4c1b-9e0f-aaaaaaaaaaaa", "x-auth-username": "alice",
				"x-auth-groups": "a,b", "x-auth-scopes": "aws.cognito.signin.user.admin openid email",
				"x-auth-client-id": "devclient", "x-auth-token-use": "access", "x-auth-pool": "main"},
			wantRemove: []string{"x-auth-email", "x-auth-tenant"},
		},
		{
			name: "header_unsafe_value_removed_not_sent", a: a,
			token: withClaims(func(c jwt.MapClaims) { c["username"] = "alice\r\nx-auth-groups: admins" }),
			wantSet: map[string]string{"x-auth-sub": "0b5f3c1e-7a2d-4c1b-9e0f-aaaaaaaaaaaa",
				"x-auth-groups": "users", "x-auth-scopes": "aws.cognito.signin.user.admin openid email",
				"x-auth-client-id": "devclient", "x-auth-token-use": "access", "x-auth-pool": "main"},
			wantRemove: []string{"x-auth-username", "x-auth-email", "x-auth-tenant"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := tt.a.Check(t.Context(), bearer(tt.token))
			if !d.Allowed() {
				t.Fatalf("denied: %s (%v)", d.Reason, d.Err)
			}
			got := map[string]string{}
			for _, h := range d.Headers {
				got[h.Name] = h.Value
			}
			if diff := cmp.Diff(tt.wantSet, got); diff != "" {
				t.Errorf("headers set mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantRemove, d.Remove); diff != "" {
				t.Errorf("headers removed mismatch (-want +got):\n%s", diff)
			}
			// Every identity header is either set or removed: none can pass through from the client.
			for _, h := range []string{"x-auth-sub", "x-auth-username", "x-auth-groups", "x-auth-scopes", "x-auth-client-id",
				"x-auth-token-use", "x-auth-email", "x-auth-pool", "x-auth-tenant"} {
				if _, set := got[h]; set == slices.Contains(d.Remove, h) {
					t.Errorf("%s: set=%v removed=%v; want exactly one", h, set, !set)
				}
			}
		})
	}
}

func TestForwardTokenFalse(t *testing.T) {
	iss, a := newAuthorizer(t, false)
	d := a.Check(t.Context(), bearer(iss.MustMint(t, iss.Access())))
	if !d.Allowed() || !slices.Contains(d.Remove, "authorization") {
		t.Fatalf("want allow with authorization removed, got %s remove=%v", d.Reason, d.Remove)
	}
	_, fwd := newAuthorizer(t, true)
	if d := fwd.Check(t.Context(), bearer(iss.MustMint(t, iss.Access()))); slices.Contains(d.Remove, "authorization") {
		t.Fatalf("forward_token true removed authorization")
	}
}

// TestForwardTokenFalseEverySource: with forward_token false the token never reaches the upstream, wherever
// it was read: a header source is removed like Authorization, and the cookie header is rewritten without the
// token cookies (other cookies stay), or removed when nothing else is left. Dry-run allows strip it too.
func TestForwardTokenFalseEverySource(t *testing.T) {
	t.Parallel()
	sources := []token.Source{token.BearerSource, {Cookie: "id_token"}, {Header: "x-amzn-oidc-accesstoken"}}
	iss, a := newAuthorizerWith(t, authz.Options{Sources: sources})
	_, dry := newAuthorizerWith(t, authz.Options{Sources: sources, DryRun: true})
	tok := iss.MustMint(t, iss.Access())
	tests := []struct {
		name       string
		a          *authz.Authorizer
		headers    token.HeaderMap
		wantCookie string // the cookie header set for the upstream; "" when not set
		wantRemove []string
	}{
		{name: "cookie_others_kept", a: a, headers: token.HeaderMap{"cookie": "theme=dark; id_token=" + tok + "; lang=en"},
			wantCookie: "theme=dark; lang=en", wantRemove: []string{"authorization", "x-amzn-oidc-accesstoken"}},
		{name: "cookie_alone_removed", a: a, headers: token.HeaderMap{"cookie": "id_token=" + tok},
			wantRemove: []string{"authorization", "x-amzn-oidc-accesstoken", "cookie"}},
		{name: "alb_header", a: a, headers: token.HeaderMap{"x-amzn-oidc-accesstoken": tok},
			wantRemove: []string{"authorization", "x-amzn-oidc-accesstoken"}},
		{name: "cookie_on_a_dry_run_allow", a: dry, headers: token.HeaderMap{"cookie": "id_token=" + testkit.Tamper(tok) + "; theme=dark"},
			wantCookie: "theme=dark", wantRemove: []string{"authorization", "x-amzn-oidc-accesstoken"}},
		{name: "no_token_cookie_untouched", a: a, headers: token.HeaderMap{"cookie": "theme=dark", "authorization": "Bearer " + tok},
			wantRemove: []string{"authorization", "x-amzn-oidc-accesstoken"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := tt.a.Check(t.Context(), &authz.Request{Method: "GET", Path: "/", Headers: tt.headers})
			if !d.Allowed() {
				t.Fatalf("denied: %s (%v)", d.Reason, d.Err)
			}
			cookie := ""
			for _, h := range d.Headers {
				if h.Name == "cookie" {
					cookie = h.Value
				}
			}
			if cookie != tt.wantCookie {
				t.Errorf("cookie set = %q, want %q", cookie, tt.wantCookie)
			}
			for _, h := range tt.wantRemove {
				if !slices.Contains(d.Remove, h) {
					t.Errorf("Remove = %v, want it to hold %s", d.Remove, h)
				}
			}
			if got, want := slices.Contains(d.Remove, "cookie"), slices.Contains(tt.wantRemove, "cookie"); got != want {
				t.Errorf("Remove = %v: cookie removed %v, want %v", d.Remove, got, want)
			}
		})
	}
}

func TestDenies(t *testing.T) {
	iss, a := newAuthorizer(t, true)
	expired := iss.Access()
	expired["exp"], expired["iat"] = 1700000000, 1699990000
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	tests := []struct {
		name       string
		ctx        context.Context
		req        *authz.Request
		wantReason authz.Reason
		wantStatus int
	}{
		{name: "no_token", req: &authz.Request{Headers: token.HeaderMap{}}, wantReason: authz.ReasonTokenMissing, wantStatus: 401},
		{name: "malformed", req: bearer("not-a-jwt"), wantReason: authz.ReasonTokenMalformed, wantStatus: 401},
		{name: "too_large", req: bearer(strings.Repeat("a", 9000)), wantReason: authz.ReasonTokenTooLarge, wantStatus: 401},
		{name: "expired", req: bearer(iss.MustMint(t, expired)), wantReason: authz.ReasonTokenExpired, wantStatus: 401},
		{name: "cancelled_request_never_allowed", ctx: cancelled, req: bearer(iss.MustMint(t, iss.Access())),
			wantReason: authz.ReasonRequestCancelled, wantStatus: 503},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := tt.ctx
			if ctx == nil {
				ctx = t.Context()
			}
			d := a.Check(ctx, tt.req)
			if d.Allowed() || d.Reason != tt.wantReason || d.Outcome.HTTPStatus() != tt.wantStatus {
				t.Fatalf("got %s %s (%d), want %s (%d)", d.Outcome, d.Reason, d.Outcome.HTTPStatus(), tt.wantReason, tt.wantStatus)
			}
			var body map[string]string
			if err := json.Unmarshal([]byte(d.Body), &body); err != nil {
				t.Fatalf("body %q: %v", d.Body, err)
			}
			if body["error"] != string(tt.wantReason) || body["error_description"] == "" {
				t.Errorf("body = %v", body)
			}
			if d.Err == nil {
				t.Errorf("deny without a cause for the logs")
			}
		})
	}
}

// TestEveryReasonHasADeny keeps the closed set of reasons, their outcomes and their bodies in step.
func TestEveryReasonHasADeny(t *testing.T) {
	t.Parallel()
	seen := map[authz.Reason]bool{}
	for _, r := range authz.Reasons {
		if seen[r] {
			t.Errorf("reason %q listed twice", r)
		}
		seen[r] = true
		if authz.IsAllowReason(r) {
			continue
		}
		d := authz.DenyFor(r)
		if d.Allowed() || d.Reason != r || !strings.Contains(d.Body, fmt.Sprintf("%q", string(r))) {
			t.Errorf("reason %q: deny = %+v", r, d)
		}
		wantAuth := map[authz.Outcome]string{authz.Unauthenticated: `Bearer error="invalid_token"`, authz.Forbidden: `Bearer error="insufficient_scope"`}[d.Outcome]
		var got string
		for _, h := range d.Headers {
			if h.Name == "www-authenticate" {
				got = h.Value
			}
		}
		if !strings.HasPrefix(got, wantAuth) || (wantAuth == "") != (got == "") {
			t.Errorf("reason %q: www-authenticate = %q, want prefix %q", r, got, wantAuth)
		}
	}
	if err := authz.ReasonsComplete(); err != nil {
		t.Error(err)
	}
}

// TestUnsetIsTheIdentityHeadersRemoved: on every kind of allow, Unset (the identity headers the HTTP
// protocol answers empty) is Remove without the token header, so an HTTP answer names every identity
// header and never the token's.
func TestUnsetIsTheIdentityHeadersRemoved(t *testing.T) {
	p, err := policy.New([]policy.Rule{
		{Name: "public", Match: policy.Match{PathPrefix: "/public"}, Action: policy.Allow},
		{Name: "feed", Match: policy.Match{PathPrefix: "/feed"}, Action: policy.Optional},
	}, policy.Authenticated)
	if err != nil {
		t.Fatal(err)
	}
	iss, a := newAuthorizerWith(t, authz.Options{Policy: p, ForwardToken: false,
		Cache: authz.CacheOptions{MaxEntries: 100, MaxBytes: 1 << 20}})
	access := iss.MustMint(t, iss.Access())
	tests := []struct {
		name      string
		decide    func() authz.Decision
		wantUnset []string
	}{
		{name: "token", decide: func() authz.Decision { return a.Check(t.Context(), bearer(access)) },
			wantUnset: []string{"x-auth-email", "x-auth-tenant"}},
		{name: "token_cached", decide: func() authz.Decision { return a.Check(t.Context(), bearer(access)) },
			wantUnset: []string{"x-auth-email", "x-auth-tenant"}},
		{name: "allow_rule", decide: func() authz.Decision {
			return a.Check(t.Context(), &authz.Request{Method: "GET", Path: "/public/x", Headers: token.HeaderMap{}})
		}, wantUnset: identityNames},
		{name: "optional_anonymous", decide: func() authz.Decision {
			return a.Check(t.Context(), &authz.Request{Method: "GET", Path: "/feed", Headers: token.HeaderMap{}})
		}, wantUnset: identityNames},
		{name: "dry_run", decide: func() authz.Decision {
			return a.DryRun(a.Check(t.Context(), &authz.Request{Method: "GET", Path: "/orders", Headers: token.HeaderMap{}}))
		}, wantUnset: identityNames},
	}
	for _, tt := range tests { // in order: token_cached follows token
		t.Run(tt.name, func(t *testing.T) {
			d := tt.decide()
			if !d.Allowed() {
				t.Fatalf("denied: %s (%v)", d.Reason, d.Err)
			}
			if diff := cmp.Diff(tt.wantUnset, d.Unset, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
				t.Errorf("Unset mismatch (-want +got):\n%s", diff)
			}
			if want := append(slices.Clone(d.Unset), "authorization"); !slices.Equal(want, d.Remove) {
				t.Errorf("Remove = %q, want Unset and authorization %q", d.Remove, want)
			}
		})
	}
}

var identityNames = []string{"x-auth-sub", "x-auth-username", "x-auth-groups", "x-auth-scopes", "x-auth-client-id",
	"x-auth-token-use", "x-auth-email", "x-auth-pool", "x-auth-tenant"}
