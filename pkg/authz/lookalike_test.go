package authz_test

import (
	"strings"
	"testing"

	"github.com/cognito-authz/cognito-authz/pkg/authz"
	"github.com/cognito-authz/cognito-authz/pkg/policy"
	"github.com/cognito-authz/cognito-authz/pkg/token"
)

// unlisted is headers that cannot list their names: nothing to check them by.
type unlisted token.HeaderMap

func (h unlisted) Get(name string) string { return h[name] }

// TestLookalikeIdentityHeaderRefused: a header that CGI, WSGI, Rack and PHP upstreams read as an identity
// header (the same name with "_" for "-", in any case) is refused with 400 identity_spoofed, with a token
// or without, even on a dry run; other underscore names and the identity headers themselves are not.
func TestLookalikeIdentityHeaderRefused(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		dryRun  bool
		header  string
		token   bool
		spoofed bool
	}{
		{name: "sub_underscores", header: "x_auth_sub", token: true, spoofed: true},
		{name: "groups_mixed_case", header: "X_Auth_Groups", token: true, spoofed: true},
		{name: "one_underscore", header: "x-auth_client-id", token: true, spoofed: true},
		{name: "claim_header", header: "x_auth_tenant", token: true, spoofed: true},
		{name: "without_token", header: "x_auth_email", spoofed: true},
		{name: "dry_run_still_refused", dryRun: true, header: "x_auth_pool", token: true, spoofed: true},
		{name: "identity_header_itself", header: "x-auth-sub", token: true},
		{name: "other_underscore_header", header: "x_custom_trace", token: true},
		{name: "prefix_only", header: "x_auth", token: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			iss, a := newAuthorizerWith(t, authz.Options{DryRun: tt.dryRun})
			h := token.HeaderMap{tt.header: "admins"}
			if tt.token {
				h["authorization"] = "Bearer " + iss.MustMint(t, iss.Access())
			}
			d := a.Check(t.Context(), &authz.Request{Method: "GET", Path: "/", Headers: h})
			if tt.spoofed {
				if d.Allowed() || d.Reason != authz.ReasonIdentitySpoofed || d.HTTPStatus() != 400 || d.Err == nil || !strings.Contains(d.Err.Error(), tt.header) {
					t.Fatalf("allowed %v, reason %s, status %d, err %v; want 400 identity_spoofed", d.Allowed(), d.Reason, d.HTTPStatus(), d.Err)
				}
				return
			}
			if d.Reason == authz.ReasonIdentitySpoofed || (tt.token && !d.Allowed()) {
				t.Fatalf("allowed %v, reason %s; want the request judged as usual", d.Allowed(), d.Reason)
			}
		})
	}
	t.Run("headers_that_cannot_list_names", func(t *testing.T) {
		t.Parallel()
		iss, a := newAuthorizer(t, false)
		h := unlisted{"authorization": "Bearer " + iss.MustMint(t, iss.Access()), "x_auth_sub": "evil"}
		if d := a.Check(t.Context(), &authz.Request{Method: "GET", Path: "/", Headers: h}); !d.Allowed() {
			t.Fatalf("reason %s: want the look-alike check skipped (the transports' headers all list names)", d.Reason)
		}
	})
}

// TestLookalikeNotDryRun: a per-rule dry run does not let a look-alike through either.
func TestLookalikeNotDryRun(t *testing.T) {
	t.Parallel()
	p, err := policy.New([]policy.Rule{{Name: "trial", Match: policy.Match{PathPrefix: "/"}, DryRun: true}}, policy.Authenticated)
	if err != nil {
		t.Fatal(err)
	}
	_, a := newAuthorizerWith(t, authz.Options{Policy: p})
	d := a.Check(t.Context(), &authz.Request{Method: "GET", Path: "/x", Headers: token.HeaderMap{"x_auth_sub": "evil"}})
	if d.Allowed() || d.Reason != authz.ReasonIdentitySpoofed {
		t.Fatalf("allowed %v, reason %s; want identity_spoofed", d.Allowed(), d.Reason)
	}
}
