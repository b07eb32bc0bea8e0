package extauthz_test

import (
	"context"
	"flag"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/cognito-authz/cognito-authz/pkg/authz"
	"github.com/cognito-authz/cognito-authz/pkg/devissuer"
	"github.com/cognito-authz/cognito-authz/pkg/extauthz"
	"github.com/cognito-authz/cognito-authz/pkg/jwks"
	"github.com/cognito-authz/cognito-authz/pkg/policy"
	"github.com/cognito-authz/cognito-authz/pkg/testkit"
	"github.com/cognito-authz/cognito-authz/pkg/token"
)

// decode is a pre-encoded answer of Server.Check as Envoy receives it.
func decode(t testing.TB, r *authv3.CheckResponse) *authv3.CheckResponse {
	t.Helper()
	full, err := extauthz.Decode(r)
	if err != nil {
		t.Fatal(err)
	}
	return full
}

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// now is the fixed clock of the golden tests: tokens are minted around it and verified at it.
var now = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

// fixture is a real authorizer over a real JWKS served by the dev issuer.
type fixture struct {
	iss *devissuer.Issuer
	a   *authz.Authorizer
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	return newFixtureWith(t, nil, authz.CacheOptions{})
}

// newFixtureWith is newFixture with a route policy (nil: none, default authenticated) and the
// verified-token cache bounded by cache (zero: off).
func newFixtureWith(t testing.TB, p *policy.Policy, cache authz.CacheOptions) *fixture {
	t.Helper()
	iss := testkit.Start(t)
	set, err := jwks.New(jwks.Options{URL: iss.JWKSURL()})
	if err != nil {
		t.Fatal(err)
	}
	if err := set.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	v, err := token.NewVerifier([]token.Pool{{
		Name: "main", Issuers: []string{iss.URL}, ClientIDs: []string{iss.ClientID}, TokenUse: "any", Keys: set,
	}}, token.WithClock(func() time.Time { return now }), token.WithClaims("custom:tenant"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := authz.New(authz.Options{Verifier: v, Policy: p, ForwardToken: true, Cache: cache, Headers: authz.IdentityHeaders{
		Sub: "x-auth-sub", Username: "x-auth-username", Groups: "x-auth-groups", Scopes: "x-auth-scopes",
		ClientID: "x-auth-client-id", TokenUse: "x-auth-token-use", Email: "x-auth-email", Pool: "x-auth-pool",
		Claims: map[string]string{"custom:tenant": "x-auth-tenant"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{iss: iss, a: a}
}

// at pins a token's times around the fixed clock.
func at(c jwt.MapClaims) jwt.MapClaims {
	c["iat"], c["auth_time"], c["exp"] = now.Add(-time.Minute).Unix(), now.Add(-time.Minute).Unix(), now.Add(time.Hour).Unix()
	return c
}

// serve starts a real gRPC server on 127.0.0.1:0 with the fixture's authorizer and returns a client.
func (f *fixture) serve(t *testing.T) *grpc.ClientConn {
	t.Helper()
	// Identity metadata on: the golden files hold every metadata field.
	return serveGRPCWith(t, extauthz.NewServer(f.a, extauthz.WithIdentityMetadata(true)))
}

// serveGRPCWith serves srv on a real gRPC server on 127.0.0.1:0, with the service's own codec, and returns a
// client.
func serveGRPCWith(t *testing.T, srv *extauthz.Server) *grpc.ClientConn {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(extauthz.CodecOption())
	srv.Register(s)
	go s.Serve(ln)
	t.Cleanup(s.Stop)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// cacheOn is a small verified-token cache with negative entries.
var cacheOn = authz.CacheOptions{MaxEntries: 1000, MaxBytes: 4 << 20, NegativeTTL: 10 * time.Second}

// TestCheckGolden: the same responses with the cache off, and with it on, asked twice (the second answer
// comes from the cache or from the shared deny responses).
func TestCheckGolden(t *testing.T) {
	for _, c := range []struct {
		name  string
		cache authz.CacheOptions
		asks  int
	}{{name: "uncached", asks: 1}, {name: "cached", cache: cacheOn, asks: 2}} {
		t.Run(c.name, func(t *testing.T) { checkGolden(t, newFixtureWith(t, nil, c.cache), c.asks) })
	}
}

func checkGolden(t *testing.T, f *fixture, asks int) {
	conn := f.serve(t)
	access := f.iss.MustMint(t, at(f.iss.Access()))
	id := f.iss.MustMint(t, at(f.iss.IDToken()))
	m2m := f.iss.MustMint(t, at(f.iss.M2M()))
	expired := at(f.iss.Access())
	expired["exp"] = now.Add(-time.Hour).Unix()
	tests := []struct {
		name    string
		headers map[string]string
	}{
		{name: "allow_access", headers: map[string]string{"authorization": "Bearer " + access}},
		{name: "allow_id_token_with_custom_claim", headers: map[string]string{"authorization": "Bearer " + id}},
		{name: "allow_m2m_without_user_claims", headers: map[string]string{"authorization": "Bearer " + m2m}},
		{name: "allow_overwrites_spoofed_identity", headers: map[string]string{
			"authorization": "Bearer " + access, "x-auth-sub": "evil", "x-auth-groups": "admins", "x-auth-email": "ceo@example.com",
		}},
		{name: "deny_missing", headers: map[string]string{}},
		{name: "deny_expired", headers: map[string]string{"authorization": "Bearer " + f.iss.MustMint(t, expired)}},
		{name: "deny_tampered", headers: map[string]string{"authorization": "Bearer " + testkit.Tamper(access)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := extauthz.Probe{Method: "GET", Host: "api.example.com", Path: "/orders?x=1", Headers: tt.headers}
			var got *authv3.CheckResponse
			for range asks {
				var err error
				if got, err = extauthz.Check(t.Context(), conn, p); err != nil {
					t.Fatalf("Check() error = %v", err)
				}
			}
			for _, v := range tt.headers {
				if tok := strings.TrimPrefix(v, "Bearer "); len(tok) > 20 && strings.Contains(protojson.Format(got), tok[len(tok)-20:]) {
					t.Errorf("response echoes the token")
				}
			}
			golden(t, filepath.Join("testdata", tt.name+".golden"), got)
		})
	}
}

// golden compares got with the CheckResponse stored in path (semantically: protojson output is not
// byte-stable), or rewrites the file with -update.
func golden(t *testing.T, path string, got *authv3.CheckResponse) {
	t.Helper()
	if *update {
		b, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(got)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	want := &authv3.CheckResponse{}
	if err := protojson.Unmarshal(b, want); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("CheckResponse mismatch with %s (-want +got):\n%s", path, diff)
	}
}

func TestRequestRawHeaderMap(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		hm   []*corev3.HeaderValue
		want map[string]string
	}{
		{
			name: "raw_values_lower_cased",
			hm:   []*corev3.HeaderValue{{Key: "Authorization", RawValue: []byte("Bearer a.b.c")}, {Key: "x-request-id", RawValue: []byte("r1")}},
			want: map[string]string{"authorization": "Bearer a.b.c", "x-request-id": "r1"},
		},
		{
			name: "value_when_no_raw_value",
			hm:   []*corev3.HeaderValue{{Key: "authorization", Value: "Bearer x.y.z"}},
			want: map[string]string{"authorization": "Bearer x.y.z"},
		},
		{
			name: "three_duplicates_in_order",
			hm:   []*corev3.HeaderValue{{Key: "x-a", Value: "1"}, {Key: "X-A", RawValue: []byte("2")}, {Key: "x-b", Value: "no"}, {Key: "x-a", Value: "3"}},
			want: map[string]string{"x-a": "1,2,3", "x-b": "no"},
		},
		{
			name: "duplicates_comma_joined_like_envoy",
			hm:   []*corev3.HeaderValue{{Key: "authorization", RawValue: []byte("Bearer a.b.c")}, {Key: "Authorization", RawValue: []byte("Bearer d.e.f")}},
			want: map[string]string{"authorization": "Bearer a.b.c,Bearer d.e.f"},
		},
		{
			name: "cookie_crumbs_joined_with_semicolon",
			hm:   []*corev3.HeaderValue{{Key: "cookie", RawValue: []byte("a=1; b=2")}, {Key: "Cookie", RawValue: []byte("id=x.y.z")}},
			want: map[string]string{"cookie": "a=1; b=2; id=x.y.z"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
				Http: &authv3.AttributeContext_HttpRequest{HeaderMap: &corev3.HeaderMap{Headers: tt.hm}},
			}}}
			got := extauthz.Request(req)
			for k, v := range tt.want {
				for _, name := range []string{k, strings.ToUpper(k)} {
					if g := got.Headers.Get(name); g != v {
						t.Errorf("Get(%q) = %q, want %q", name, g, v)
					}
				}
			}
			if g := got.Headers.Get("x-absent"); g != "" {
				t.Errorf("Get(x-absent) = %q, want nothing", g)
			}
		})
	}
}

// TestRawHeaderMapSecondCookieEntry: with encode_raw_headers an HTTP/2 client's cookies arrive as one
// header_map entry each; a token in the second entry must be found (joined with "," it read as
// token_missing).
func TestRawHeaderMapSecondCookieEntry(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		entries []string
	}{
		{name: "token_in_second_entry", entries: []string{"theme=dark", "id_token=a.b.c"}},
		{name: "token_in_second_of_three", entries: []string{"theme=dark", "id_token=a.b.c", "lang=en"}},
		{name: "token_after_a_list", entries: []string{"theme=dark; lang=en", "id_token=a.b.c; z=1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var hm []*corev3.HeaderValue
			for _, e := range tt.entries {
				hm = append(hm, &corev3.HeaderValue{Key: "cookie", RawValue: []byte(e)})
			}
			r := extauthz.Request(&authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
				Http: &authv3.AttributeContext_HttpRequest{HeaderMap: &corev3.HeaderMap{Headers: hm}},
			}}})
			got, err := token.Extract(r.Headers, []token.Source{{Cookie: "id_token"}}, 8<<10)
			if err != nil || got != "a.b.c" {
				t.Fatalf("Extract(cookie id_token) = %q, %v; want \"a.b.c\" (cookie header %q)", got, err, r.Headers.Get("cookie"))
			}
		})
	}
}

func TestRawHeaderMapAllows(t *testing.T) {
	f := newFixture(t)
	tok := f.iss.MustMint(t, at(f.iss.Access()))
	req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/", HeaderMap: &corev3.HeaderMap{
			Headers: []*corev3.HeaderValue{{Key: "authorization", RawValue: []byte("Bearer " + tok)}},
		}},
	}}}
	resp, err := extauthz.NewServer(f.a).Check(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if s := extauthz.Summarize(resp); !s.Allowed {
		t.Fatalf("raw header_map request denied: %+v", s)
	}
}

func TestResponseMapsEveryOutcome(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		d        authz.Decision
		wantCode int32
		wantHTTP int
	}{
		{name: "unauthenticated", d: authz.Decision{Outcome: authz.Unauthenticated, Reason: authz.ReasonTokenExpired}, wantCode: 16, wantHTTP: 401},
		{name: "forbidden", d: authz.Decision{Outcome: authz.Forbidden, Reason: "group_required"}, wantCode: 7, wantHTTP: 403},
		{name: "unavailable", d: authz.Decision{Outcome: authz.Unavailable, Reason: authz.ReasonKeysUnavailable}, wantCode: 14, wantHTTP: 503},
		{name: "allow", d: authz.Decision{Outcome: authz.Allow}, wantCode: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := extauthz.Response(&tt.d)
			if r.GetStatus().GetCode() != tt.wantCode {
				t.Errorf("status code = %d, want %d", r.GetStatus().GetCode(), tt.wantCode)
			}
			if got := int(r.GetDeniedResponse().GetStatus().GetCode()); got != tt.wantHTTP {
				t.Errorf("HTTP status = %d, want %d", got, tt.wantHTTP)
			}
			if tt.wantCode != 0 && r.GetStatus().GetMessage() != string(tt.d.Reason) {
				t.Errorf("status message = %q, want the reason %q", r.GetStatus().GetMessage(), tt.d.Reason)
			}
		})
	}
}

// TestRawHeaderMapRepeatedHeaderLinear: a header_map repeating one header many times is joined in linear
// time and memory (a handful of allocations), not one string per repetition: a client chooses how many.
func TestRawHeaderMapRepeatedHeaderLinear(t *testing.T) { // not parallel: AllocsPerRun
	hm := make([]*corev3.HeaderValue, 10_000)
	for i := range hm {
		hm[i] = &corev3.HeaderValue{Key: "authorization", RawValue: []byte("x")}
	}
	req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{HeaderMap: &corev3.HeaderMap{Headers: hm}},
	}}}
	var got string
	allocs := testing.AllocsPerRun(5, func() { got = extauthz.Request(req).Headers.Get("authorization") })
	if len(got) != 2*len(hm)-1 {
		t.Fatalf("joined value is %d bytes, want %d", len(got), 2*len(hm)-1)
	}
	if allocs > 100 {
		t.Errorf("Request + Get of %d repetitions: %.0f allocations, want a few (linear join)", len(hm), allocs)
	}
}
