package extauthz_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/cognito-authz/cognito-authz/pkg/authz"
	"github.com/cognito-authz/cognito-authz/pkg/extauthz"
	"github.com/cognito-authz/cognito-authz/pkg/policy"
	"github.com/cognito-authz/cognito-authz/pkg/testkit"
	"github.com/cognito-authz/cognito-authz/pkg/token"
)

// recorder decides with a real Authorizer and keeps the last decision, to build the reference answer of.
type recorder struct {
	a    *authz.Authorizer
	last authz.Decision
}

func (r *recorder) Check(ctx context.Context, req *authz.Request) authz.Decision {
	r.last = r.a.Check(ctx, req)
	return r.last
}

// fixedChecker answers every request with one decision.
type fixedChecker struct{ d authz.Decision }

func (c fixedChecker) Check(context.Context, *authz.Request) authz.Decision { return c.d }

// serveWith is a real gRPC server over srv, and a client of it: with the service's codec, or with
// grpc-go's default one (which writes the pre-encoded Status twice: the same field, merged on decode).
func serveWith(t *testing.T, srv *extauthz.Server, codec bool) *grpc.ClientConn {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var opts []grpc.ServerOption
	if codec {
		opts = append(opts, extauthz.CodecOption())
	}
	s := grpc.NewServer(opts...)
	authv3.RegisterAuthorizationServer(s, srv)
	go s.Serve(ln)
	t.Cleanup(s.Stop)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TestEncodedMatchesResponse: for every kind of answer, with and without identity metadata, the
// pre-encoded bytes (in process, and over gRPC with the codec and without, the first answer of a shared decision
// and the later ones served from its Slot) decode to exactly the CheckResponse Response builds.
func TestEncodedMatchesResponse(t *testing.T) {
	t.Parallel()
	p, err := policy.New([]policy.Rule{
		{Name: "closed", Match: policy.Match{PathPrefix: "/closed"}, Action: policy.Deny},
		{Name: "public", Match: policy.Match{PathPrefix: "/public"}, Action: policy.Allow},
		{Name: "feed", Match: policy.Match{PathPrefix: "/feed"}, Action: policy.Optional},
		{Name: "admin", Match: policy.Match{PathPrefix: "/admin"}, Require: policy.Require{GroupsAny: []string{"admins"}}},
		{Name: "rollout", Match: policy.Match{PathPrefix: "/rollout"}, Require: policy.Require{GroupsAny: []string{"admins"}}, DryRun: true},
		{Name: "m2m-only", Match: policy.Match{PathPrefix: "/scoped"}, Require: policy.Require{ScopesAll: []string{"nobody/ever"}}},
	}, policy.Authenticated)
	if err != nil {
		t.Fatal(err)
	}
	for _, cache := range []struct {
		name string
		opts authz.CacheOptions
	}{{"cache_on", cacheOn}, {"cache_off", authz.CacheOptions{}}} {
		f := newFixtureWith(t, p, cache.opts)
		access := "Bearer " + f.iss.MustMint(t, at(f.iss.Access()))
		id := "Bearer " + f.iss.MustMint(t, at(f.iss.IDToken()))
		m2m := "Bearer " + f.iss.MustMint(t, at(f.iss.M2M()))
		expired := at(f.iss.Access())
		expired["exp"] = now.Add(-time.Hour).Unix()
		tests := []struct {
			name, path, authorization string
			wantCode                  int32
		}{
			{name: "allow_access", path: "/orders", authorization: access},
			{name: "allow_id_token", path: "/orders", authorization: id},
			{name: "allow_m2m", path: "/orders", authorization: m2m},
			{name: "allow_anonymous_rule", path: "/public", authorization: access},
			{name: "allow_optional_without_token", path: "/feed"},
			{name: "dry_run_group_required", path: "/rollout", authorization: access},
			{name: "dry_run_token_missing", path: "/rollout"},
			{name: "deny_missing", path: "/orders", wantCode: 16},
			{name: "deny_malformed", path: "/orders", authorization: "Bearer abc", wantCode: 16},
			{name: "deny_expired", path: "/orders", authorization: "Bearer " + f.iss.MustMint(t, expired), wantCode: 16},
			{name: "deny_tampered", path: "/orders", authorization: testkit.Tamper(access), wantCode: 16},
			{name: "deny_rule", path: "/closed", authorization: access, wantCode: 7},
			{name: "deny_group_required_with_identity", path: "/admin", authorization: access, wantCode: 7},
			{name: "deny_scope_required_with_identity", path: "/scoped", authorization: m2m, wantCode: 7},
		}
		for _, identity := range []bool{false, true} {
			rec := &recorder{a: f.a}
			srv := extauthz.NewServer(rec, extauthz.WithIdentityMetadata(identity))
			conns := []*grpc.ClientConn{serveWith(t, srv, true), serveWith(t, srv, false)}
			for _, tt := range tests {
				name := cache.name + "/" + tt.name
				if identity {
					name += "/identity_metadata"
				}
				t.Run(name, func(t *testing.T) {
					h := map[string]string{}
					if tt.authorization != "" {
						h["authorization"] = tt.authorization
					}
					pr := extauthz.Probe{Method: "GET", Host: "api.example.com", Path: tt.path, Headers: h}
					for ask := range 4 {
						var got *authv3.CheckResponse
						if ask < 2 {
							raw, err := srv.Check(t.Context(), pr.CheckRequest())
							if err != nil {
								t.Fatal(err)
							}
							if raw.GetStatus().GetCode() != tt.wantCode {
								t.Errorf("ask %d: in-process status %d, want %d", ask, raw.GetStatus().GetCode(), tt.wantCode)
							}
							got = decode(t, raw)
						} else if got, err = extauthz.Check(t.Context(), conns[ask-2], pr); err != nil {
							t.Fatal(err)
						}
						want := extauthz.ResponseFor(&rec.last, identity)
						if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
							t.Fatalf("ask %d: encoded answer mismatch (-want +got):\n%s", ask, diff)
						}
						if got.GetStatus().GetCode() != tt.wantCode {
							t.Errorf("ask %d: status %d, want %d", ask, got.GetStatus().GetCode(), tt.wantCode)
						}
					}
				})
			}
		}
	}
}

// TestEncodedEveryReason: a shared decision of every deny reason, and the allows and dry runs, answered
// twice (built, then from the Slot) with and without identity metadata, decode to Response's message.
func TestEncodedEveryReason(t *testing.T) {
	t.Parallel()
	outcomeOf := func(r authz.Reason) authz.Outcome {
		switch {
		case r == authz.ReasonKeysUnavailable:
			return authz.Unavailable
		case strings.HasSuffix(string(r), "_required") || r == authz.ReasonRuleDenied || r == authz.ReasonPoolNotAllowed:
			return authz.Forbidden
		}
		return authz.Unauthenticated
	}
	ident := &token.Identity{Pool: "main", Subject: "0b5f3c1e-7a2d", Username: "alice", ClientID: "client-1", TokenUse: "access"}
	var ds []authz.Decision
	for _, r := range authz.Reasons {
		switch r {
		case authz.ReasonOK:
			ds = append(ds, authz.Decision{Outcome: authz.Allow, Reason: r, Rule: "default", Identity: ident, Slot: &authz.Slot{},
				Headers: []authz.Header{{Name: "x-auth-sub", Value: ident.Subject}, {Name: "x-auth-username", Value: "alice"}},
				Remove:  []string{"x-auth-groups", "x-auth-email"}})
		case authz.ReasonAnonymous:
			ds = append(ds, authz.Decision{Outcome: authz.Allow, Reason: r, Rule: "public", Slot: &authz.Slot{},
				Remove: []string{"x-auth-sub", "x-auth-username", "authorization"}})
		default:
			o := outcomeOf(r)
			d := authz.Decision{Outcome: o, Reason: r, Rule: "rule-" + string(r), Slot: &authz.Slot{}, Err: errors.New("cause"),
				Headers: []authz.Header{{Name: "content-type", Value: "application/json"}, {Name: "www-authenticate", Value: `Bearer error="invalid_token"`}},
				Body:    `{"error":"` + string(r) + `"}` + "\n"}
			if o == authz.Forbidden {
				d.Identity = ident
			}
			ds = append(ds, d)
			dry := authz.Decision{Outcome: authz.Allow, Reason: r, Rule: d.Rule, Identity: d.Identity, DryRun: true, WouldBe: o,
				Remove: []string{"x-auth-sub"}}
			ds = append(ds, dry)
		}
	}
	for _, d := range ds {
		for _, identity := range []bool{false, true} {
			name := d.Label() + "/" + string(d.Reason)
			if identity {
				name += "/identity_metadata"
			}
			t.Run(name, func(t *testing.T) {
				srv := extauthz.NewServer(fixedChecker{d}, extauthz.WithIdentityMetadata(identity))
				want := extauthz.ResponseFor(&d, identity)
				for ask := range 2 {
					raw, err := srv.Check(t.Context(), &authv3.CheckRequest{})
					if err != nil {
						t.Fatal(err)
					}
					if !proto.Equal(raw.GetStatus(), want.GetStatus()) {
						t.Errorf("ask %d: in-process status %v, want %v", ask, raw.GetStatus(), want.GetStatus())
					}
					if diff := cmp.Diff(want, decode(t, raw), protocmp.Transform()); diff != "" {
						t.Fatalf("ask %d: encoded answer mismatch (-want +got):\n%s", ask, diff)
					}
				}
			})
		}
	}
}

// TestSlotNotReusedForAnotherDecision: a Slot filled for one decision never serves a decision that
// differs in what the bytes encode (another outcome, a dry run, another cached identity).
func TestSlotNotReusedForAnotherDecision(t *testing.T) {
	t.Parallel()
	slot := &authz.Slot{}
	a := &token.Identity{Subject: "a", Pool: "main"}
	b := &token.Identity{Subject: "b", Pool: "main"}
	ds := []authz.Decision{
		{Outcome: authz.Allow, Reason: authz.ReasonOK, Rule: "r", Identity: a, Slot: slot, Headers: []authz.Header{{Name: "x-auth-sub", Value: "a"}}},
		{Outcome: authz.Allow, Reason: authz.ReasonOK, Rule: "r", Identity: b, Slot: slot, Headers: []authz.Header{{Name: "x-auth-sub", Value: "b"}}},
		{Outcome: authz.Unauthenticated, Reason: authz.ReasonTokenExpired, Rule: "r", Slot: slot, Body: "x"},
		{Outcome: authz.Allow, Reason: authz.ReasonTokenExpired, Rule: "r", Slot: slot, DryRun: true, WouldBe: authz.Unauthenticated},
		{Outcome: authz.Allow, Reason: authz.ReasonOK, Rule: "r", Identity: a, Slot: slot, Headers: []authz.Header{{Name: "x-auth-sub", Value: "a"}}},
	}
	for i, d := range ds {
		srv := extauthz.NewServer(fixedChecker{d}, extauthz.WithIdentityMetadata(true))
		raw, err := srv.Check(t.Context(), &authv3.CheckRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(extauthz.ResponseFor(&d, true), decode(t, raw), protocmp.Transform()); diff != "" {
			t.Errorf("decision %d: answered from a slot filled for another (-want +got):\n%s", i, diff)
		}
	}
}
