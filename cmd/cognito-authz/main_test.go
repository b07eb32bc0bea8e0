package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	goruntime "runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/cognito-authz/cognito-authz/pkg/config"
	"github.com/cognito-authz/cognito-authz/pkg/devissuer"
	"github.com/cognito-authz/cognito-authz/pkg/extauthz"
	"github.com/cognito-authz/cognito-authz/pkg/runtime"
	"github.com/cognito-authz/cognito-authz/pkg/server"
	"github.com/cognito-authz/cognito-authz/pkg/testkit"
)

// runCLI runs the command line in-process and returns its exit code, stdout and stderr.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(t.Context(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// clearEnv unsets every variable the CLI reads, for the life of the test, so the developer's shell cannot
// change the outcome.
func clearEnv(t *testing.T) {
	t.Helper()
	for _, k := range append([]string{"COGNITO_AUTHZ_CONFIG"}, config.Env...) {
		t.Setenv(k, "") // restores the old value on cleanup
		os.Unsetenv(k)
	}
}

func writeFile(t *testing.T, name, data string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// serviceYAML is the acceptance config: both listeners on 127.0.0.1:0 and one pool trusting iss, whose keys
// are at jwksURL.
func serviceYAML(issuer, jwksURL string) string {
	return fmt.Sprintf(`server: {grpc_addr: "127.0.0.1:0", admin_addr: "127.0.0.1:0", drain_period: 0s}
pools:
  - name: main
    region: us-east-1
    user_pool_id: us-east-1_AbC123
    client_ids: [devclient]
    token_use: access
    issuer: %q
    jwks_url: %q
`, issuer, jwksURL)
}

func loadConfig(t *testing.T, yaml string) *config.Config {
	t.Helper()
	cfg, err := config.Load(writeFile(t, "config.yaml", yaml))
	if err != nil {
		t.Fatalf("config.Load: %v", err)
	}
	return cfg
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// runningService is a running serve(); stop cancels its context and returns what serve returned.
type runningService struct {
	grpcAddr, adminAddr, httpAddr string
	stop                          func() error
}

// launch runs serve in-process until stop is called.
func launch(t *testing.T, cfg *config.Config) *runningService {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	bound := make(chan *server.Server, 1)
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, cfg, testLogger(t), serveOptions{listening: func(s *server.Server, _ *runtime.Reloader) { bound <- s }})
	}()
	stop := func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			return fmt.Errorf("serve did not return within 10s of cancel")
		}
	}
	select {
	case s := <-bound:
		return &runningService{grpcAddr: s.GRPCAddr(), adminAddr: s.AdminAddr(), httpAddr: s.HTTPAddr(), stop: stop}
	case err := <-done:
		cancel()
		t.Fatalf("serve returned before listening: %v", err)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("serve did not bind within 10s")
	}
	return nil
}

// startService runs serve for the life of the test; the cleanup checks it returns nil promptly.
func startService(t *testing.T, cfg *config.Config) (grpcAddr, adminAddr string) {
	t.Helper()
	s := launch(t, cfg)
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("serve() = %v, want nil after cancel", err)
		}
	})
	return s.grpcAddr, s.adminAddr
}

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// watchHealth streams the health of the Authorization service, one status per change.
func watchHealth(t *testing.T, ctx context.Context, conn *grpc.ClientConn) <-chan healthpb.HealthCheckResponse_ServingStatus {
	t.Helper()
	stream, err := healthpb.NewHealthClient(conn).Watch(ctx, &healthpb.HealthCheckRequest{Service: server.AuthorizationService})
	if err != nil {
		t.Fatalf("health Watch: %v", err)
	}
	ch := make(chan healthpb.HealthCheckResponse_ServingStatus, 16)
	go func() {
		defer close(ch)
		for {
			r, err := stream.Recv()
			if err != nil {
				return
			}
			ch <- r.GetStatus()
		}
	}()
	return ch
}

func nextStatus(t *testing.T, ch <-chan healthpb.HealthCheckResponse_ServingStatus) healthpb.HealthCheckResponse_ServingStatus {
	t.Helper()
	select {
	case st, ok := <-ch:
		if !ok {
			t.Fatal("health Watch stream ended")
		}
		return st
	case <-time.After(10 * time.Second):
		t.Fatal("no health status within 10s")
	}
	return 0
}

func readyz(t *testing.T, adminAddr string) int {
	t.Helper()
	resp, err := http.Get("http://" + adminAddr + "/readyz")
	if err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func healthCheck(t *testing.T, conn *grpc.ClientConn, service string) healthpb.HealthCheckResponse_ServingStatus {
	t.Helper()
	r, err := healthpb.NewHealthClient(conn).Check(t.Context(), &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		t.Fatalf("health Check(%q): %v", service, err)
	}
	return r.GetStatus()
}

func mint(t *testing.T, key *devissuer.Key, header map[string]any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := devissuer.Sign(key, header, claims)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// with returns a copy of c with the changes applied; a nil value deletes the claim.
func with(c jwt.MapClaims, changes map[string]any) jwt.MapClaims {
	out := jwt.MapClaims{}
	for k, v := range c {
		out[k] = v
	}
	for k, v := range changes {
		if v == nil {
			delete(out, k)
			continue
		}
		out[k] = v
	}
	return out
}

func bearer(tok string) map[string]string { return map[string]string{"authorization": "Bearer " + tok} }

func probe(headers map[string]string) extauthz.Probe {
	return extauthz.Probe{Method: "GET", Host: "api.example.com", Path: "/orders?x=1", Headers: headers}
}

// assertNoTokenLeak fails if any segment of tok appears in the deny body or headers.
func assertNoTokenLeak(t *testing.T, tok string, s extauthz.Summary) {
	t.Helper()
	if tok == "" {
		return
	}
	where := s.Body + "\n" + strings.Join(s.Set, "\n")
	for _, seg := range strings.Split(tok, ".") {
		if len(seg) >= 8 && strings.Contains(where, seg) {
			t.Errorf("the deny response contains a segment of the token: %q", seg)
		}
	}
}

func bodyError(t *testing.T, body string) string {
	t.Helper()
	var b struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.Unmarshal([]byte(body), &b); err != nil {
		t.Fatalf("deny body %q is not JSON: %v", body, err)
	}
	if b.Description == "" {
		t.Errorf("deny body %q has no error_description", body)
	}
	return b.Error
}

func hasHeader(set []string, prefix string) bool {
	return slices.ContainsFunc(set, func(h string) bool { return strings.HasPrefix(h, prefix) })
}

// TestServeEndToEnd is the acceptance test: the real service, in-process, on real listeners, trusting a
// real JWKS, asked by a real gRPC client.
func TestServeEndToEnd(t *testing.T) {
	t.Parallel()
	iss := testkit.Start(t)
	iss.FailWith(http.StatusInternalServerError) // hold readiness back until NOT_SERVING has been seen
	cfg := loadConfig(t, serviceYAML(iss.URL, iss.JWKSURL()))
	grpcAddr, adminAddr := startService(t, cfg)
	conn := dial(t, grpcAddr)

	// Readiness: NOT_SERVING while the keys cannot be had, SERVING once they load.
	watchCtx, stopWatch := context.WithCancel(t.Context())
	defer stopWatch()
	statuses := watchHealth(t, watchCtx, conn)
	if st := nextStatus(t, statuses); st != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("first health status = %v, want NOT_SERVING while the JWKS fails", st)
	}
	if code := readyz(t, adminAddr); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz before keys = %d, want 503", code)
	}
	iss.FailWith(0)
	if st := nextStatus(t, statuses); st != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health status after keys = %v, want SERVING", st)
	}
	stopWatch()
	for _, svc := range []string{"", server.AuthorizationService} {
		if st := healthCheck(t, conn, svc); st != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health Check(%q) = %v, want SERVING", svc, st)
		}
	}
	if code := readyz(t, adminAddr); code != http.StatusOK {
		t.Errorf("/readyz after keys = %d, want 200", code)
	}

	key := iss.SigningKey()
	now := time.Now()
	access := iss.Access()
	valid := mint(t, key, nil, access)
	none := func() string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodNone, access).SignedString(jwt.UnsafeAllowNoneSignatureType)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}()
	hs256 := func() string {
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, access)
		tok.Header["kid"] = key.ID
		s, err := tok.SignedString([]byte("the public key is not a secret"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}()
	otherKey := testkit.Key(t, 1, key.ID) // same kid, different key: a forged signature

	t.Run("allow", func(t *testing.T) {
		t.Parallel()
		resp, err := extauthz.Check(t.Context(), conn, probe(bearer(valid)))
		if err != nil {
			t.Fatalf("Check: %v", err)
		}
		got := extauthz.Summarize(resp)
		want := extauthz.Summary{
			Allowed: true,
			Code:    codes.OK,
			Set: []string{
				"x-auth-sub: 0b5f3c1e-7a2d-4c1b-9e0f-aaaaaaaaaaaa",
				"x-auth-username: alice",
				"x-auth-groups: users",
				"x-auth-scopes: aws.cognito.signin.user.admin openid email",
				"x-auth-client-id: devclient",
				"x-auth-token-use: access",
				"x-auth-pool: main",
			},
			Remove: []string{"x-auth-email"},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Check(valid access token) mismatch (-want +got):\n%s", diff)
		}
		for _, h := range resp.GetOkResponse().GetHeaders() {
			if h.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD || h.GetAppend() == nil || h.GetAppend().GetValue() {
				t.Errorf("header %s: append_action %v append %v, want OVERWRITE_IF_EXISTS_OR_ADD and append=false",
					h.GetHeader().GetKey(), h.GetAppendAction(), h.GetAppend())
			}
		}
	})

	t.Run("spoofed_identity_headers_overwritten", func(t *testing.T) {
		t.Parallel()
		h := bearer(valid)
		h["x-auth-sub"], h["x-auth-groups"], h["x-auth-email"] = "evil", "admins", "root@example.com"
		resp, err := extauthz.Check(t.Context(), conn, probe(h))
		if err != nil {
			t.Fatalf("Check: %v", err)
		}
		ok := resp.GetOkResponse()
		if ok == nil {
			t.Fatalf("Check = %v, want allow", extauthz.Summarize(resp))
		}
		got := map[string]*corev3.HeaderValueOption{}
		for _, o := range ok.GetHeaders() {
			got[o.GetHeader().GetKey()] = o
		}
		for name, want := range map[string]string{"x-auth-sub": "0b5f3c1e-7a2d-4c1b-9e0f-aaaaaaaaaaaa", "x-auth-groups": "users"} {
			o := got[name]
			if o == nil {
				t.Errorf("%s: no header option, the client's value would reach the upstream", name)
				continue
			}
			if o.GetHeader().GetValue() != want || o.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD || o.GetAppend().GetValue() {
				t.Errorf("%s: option %v, want %q overwriting the client's value", name, o, want)
			}
		}
		if !slices.Contains(ok.GetHeadersToRemove(), "x-auth-email") {
			t.Errorf("headers_to_remove = %q, want x-auth-email (the token has no email)", ok.GetHeadersToRemove())
		}
	})

	t.Run("m2m", func(t *testing.T) {
		t.Parallel()
		resp, err := extauthz.Check(t.Context(), conn, probe(bearer(mint(t, key, nil, iss.M2M()))))
		if err != nil {
			t.Fatalf("Check: %v", err)
		}
		got := extauthz.Summarize(resp)
		want := extauthz.Summary{
			Allowed: true,
			Code:    codes.OK,
			Set: []string{
				"x-auth-sub: devclient",
				"x-auth-scopes: orders/read orders/write",
				"x-auth-client-id: devclient",
				"x-auth-token-use: access",
				"x-auth-pool: main",
			},
			Remove: []string{"x-auth-username", "x-auth-groups", "x-auth-email"},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Check(M2M token) mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("raw_header_map", func(t *testing.T) {
		t.Parallel()
		// Envoy with encode_raw_headers: header_map with raw bytes, and no headers map at all.
		req := probe(nil).CheckRequest()
		req.Attributes.Request.Http.Headers = nil
		req.Attributes.Request.Http.HeaderMap = &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
			{Key: ":authority", RawValue: []byte("api.example.com")},
			{Key: "authorization", RawValue: []byte("Bearer " + valid)},
			{Key: "x-auth-sub", RawValue: []byte("evil")},
		}}
		resp, err := authv3.NewAuthorizationClient(conn).Check(t.Context(), req)
		if err != nil {
			t.Fatalf("Check: %v", err)
		}
		got := extauthz.Summarize(resp)
		if !got.Allowed || !slices.Contains(got.Set, "x-auth-sub: 0b5f3c1e-7a2d-4c1b-9e0f-aaaaaaaaaaaa") {
			t.Errorf("Check(header_map) = %+v, want allow with the token's sub", got)
		}
	})

	tests := []struct {
		name       string
		headers    map[string]string
		token      string // the credential, for the leak check
		wantStatus int
		wantReason string
	}{
		{name: "alg_none", token: none, wantStatus: 401, wantReason: "alg_not_allowed"},
		{name: "alg_hs256", token: hs256, wantStatus: 401, wantReason: "alg_not_allowed"},
		{name: "kid_missing", token: mint(t, key, map[string]any{"kid": nil}, access), wantStatus: 401, wantReason: "kid_missing"},
		{name: "jku_header", token: mint(t, key, map[string]any{"jku": "https://evil.example/jwks.json"}, access), wantStatus: 401, wantReason: "header_not_allowed"},
		{name: "crit_header", token: mint(t, key, map[string]any{"crit": []string{"exp"}}, access), wantStatus: 401, wantReason: "header_not_allowed"},
		{name: "issuer_unknown", token: mint(t, key, nil, with(access, map[string]any{"iss": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Evil"})), wantStatus: 401, wantReason: "issuer_unknown"},
		{name: "kid_unknown", token: mint(t, key, map[string]any{"kid": "not-in-the-jwks"}, access), wantStatus: 401, wantReason: "key_unknown"},
		{name: "signature_tampered", token: testkit.Tamper(valid), wantStatus: 401, wantReason: "signature_invalid"},
		{name: "signature_other_key", token: mint(t, otherKey, nil, access), wantStatus: 401, wantReason: "signature_invalid"},
		{name: "expired", token: mint(t, key, nil, with(access, map[string]any{"iat": now.Add(-2 * time.Hour).Unix(), "exp": now.Add(-time.Hour).Unix()})), wantStatus: 401, wantReason: "token_expired"},
		{name: "nbf_future", token: mint(t, key, nil, with(access, map[string]any{"nbf": now.Add(time.Hour).Unix()})), wantStatus: 401, wantReason: "token_not_yet_valid"},
		{name: "iat_future", token: mint(t, key, nil, with(access, map[string]any{"iat": now.Add(time.Hour).Unix(), "exp": now.Add(2 * time.Hour).Unix()})), wantStatus: 401, wantReason: "token_not_yet_valid"},
		{name: "iat_missing", token: mint(t, key, nil, with(access, map[string]any{"iat": nil})), wantStatus: 401, wantReason: "claims_invalid"},
		{name: "sub_missing", token: mint(t, key, nil, with(access, map[string]any{"sub": nil})), wantStatus: 401, wantReason: "claims_invalid"},
		{name: "exp_missing", token: mint(t, key, nil, with(access, map[string]any{"exp": nil})), wantStatus: 401, wantReason: "claims_invalid"},
		{name: "exp_wrong_type", token: mint(t, key, nil, with(access, map[string]any{"exp": "tomorrow"})), wantStatus: 401, wantReason: "claims_invalid"},
		{name: "groups_wrong_type", token: mint(t, key, nil, with(access, map[string]any{"cognito:groups": map[string]any{"admins": true}})), wantStatus: 401, wantReason: "claims_invalid"},
		{name: "id_token_on_access_pool", token: mint(t, key, nil, iss.IDToken()), wantStatus: 401, wantReason: "token_use_mismatch"},
		{name: "client_id_wrong", token: mint(t, key, nil, with(access, map[string]any{"client_id": "someoneelse"})), wantStatus: 401, wantReason: "client_mismatch"},
		{name: "too_large", token: mint(t, key, nil, with(access, map[string]any{"padding": strings.Repeat("x", 9000)})), wantStatus: 401, wantReason: "token_too_large"},
		{name: "no_token", headers: map[string]string{}, wantStatus: 401, wantReason: "token_missing"},
		{name: "basic_scheme", headers: map[string]string{"authorization": "Basic YWxpY2U6c2VjcmV0"}, wantStatus: 401, wantReason: "token_missing"},
		{name: "bearer_empty", headers: map[string]string{"authorization": "Bearer "}, wantStatus: 401, wantReason: "token_malformed"},
		{name: "malformed", token: "not-a-jwt", wantStatus: 401, wantReason: "token_malformed"},
		{name: "malformed_bad_json", token: "eyJub3QganNvbg.eyJzdWIiOiJ4In0.c2ln", wantStatus: 401, wantReason: "token_malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := tt.headers
			if h == nil {
				h = bearer(tt.token)
			}
			resp, err := extauthz.Check(t.Context(), conn, probe(h))
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			got := extauthz.Summarize(resp)
			if got.Allowed || got.HTTPStatus != tt.wantStatus || got.Reason != tt.wantReason {
				t.Fatalf("Check = allowed %v, HTTP %d, reason %q; want deny %d %q (body %s)",
					got.Allowed, got.HTTPStatus, got.Reason, tt.wantStatus, tt.wantReason, got.Body)
			}
			if got.Code != codes.Unauthenticated {
				t.Errorf("Check status = %v, want Unauthenticated", got.Code)
			}
			if e := bodyError(t, got.Body); e != tt.wantReason {
				t.Errorf("deny body error = %q, want %q", e, tt.wantReason)
			}
			if !hasHeader(got.Set, `www-authenticate: Bearer error="invalid_token"`) || !hasHeader(got.Set, "content-type: application/json") {
				t.Errorf("deny headers = %q, want www-authenticate invalid_token and content-type application/json", got.Set)
			}
			assertNoTokenLeak(t, tt.token, got)
		})
	}
}

// TestServeKeysNeverLoad: a pool whose JWKS answers 500 keeps the service not ready, and its tokens get 503.
func TestServeKeysNeverLoad(t *testing.T) {
	t.Parallel()
	iss := testkit.Start(t)
	var fetches atomic.Int64
	fetched := make(chan struct{}, 64)
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fetches.Add(1)
		select {
		case fetched <- struct{}{}:
		default:
		}
		http.Error(w, "down", http.StatusInternalServerError)
	}))
	t.Cleanup(broken.Close)
	cfg := loadConfig(t, serviceYAML(iss.URL, broken.URL+"/.well-known/jwks.json"))
	grpcAddr, adminAddr := startService(t, cfg)
	conn := dial(t, grpcAddr)

	// Wait for the first fetch and a retry: by then the service has decided about readiness twice.
	for range 2 {
		select {
		case <-fetched:
		case <-time.After(10 * time.Second):
			t.Fatalf("the JWKS was fetched %d times in 10s, want a retry", fetches.Load())
		}
	}
	for _, svc := range []string{"", server.AuthorizationService} {
		if st := healthCheck(t, conn, svc); st != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Errorf("health Check(%q) = %v, want NOT_SERVING", svc, st)
		}
	}
	if code := readyz(t, adminAddr); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz = %d, want 503", code)
	}
	tok := iss.MustMint(t, iss.Access())
	resp, err := extauthz.Check(t.Context(), conn, probe(bearer(tok)))
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	got := extauthz.Summarize(resp)
	if got.Allowed || got.HTTPStatus != http.StatusServiceUnavailable || got.Reason != "keys_unavailable" || got.Code != codes.Unavailable {
		t.Fatalf("Check = %+v, want 503 keys_unavailable", got)
	}
	if e := bodyError(t, got.Body); e != "keys_unavailable" {
		t.Errorf("deny body error = %q, want keys_unavailable", e)
	}
	if !hasHeader(got.Set, "retry-after: ") || hasHeader(got.Set, "www-authenticate") {
		t.Errorf("deny headers = %q, want retry-after and no www-authenticate (the client did nothing wrong)", got.Set)
	}
	assertNoTokenLeak(t, tok, got)
}

// TestServeShutdown: cancelling the context stops serve promptly, with nil, and leaves no goroutine behind.
// Not parallel: it counts the process's goroutines.
func TestServeShutdown(t *testing.T) {
	iss := testkit.Start(t)
	keys := httptest.NewServer(iss) // our own, so its connections can be closed before counting
	defer keys.Close()
	cfg := loadConfig(t, serviceYAML(iss.URL, keys.URL+"/"+iss.PoolID+"/.well-known/jwks.json"))
	before := goruntime.NumGoroutine()

	s := launch(t, cfg)
	conn, err := grpc.NewClient(s.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	watchCtx, stopWatch := context.WithCancel(t.Context())
	statuses := watchHealth(t, watchCtx, conn)
	for st := nextStatus(t, statuses); st != healthpb.HealthCheckResponse_SERVING; st = nextStatus(t, statuses) {
	}
	stopWatch()
	resp, err := extauthz.Check(t.Context(), conn, probe(bearer(iss.MustMint(t, iss.Access()))))
	if err != nil || !extauthz.Summarize(resp).Allowed {
		t.Fatalf("Check before shutdown = %v, %v; want allow", resp, err)
	}

	start := time.Now()
	if err := s.stop(); err != nil {
		t.Fatalf("serve() = %v, want nil after cancel", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("serve took %s to return after cancel with no request in flight", d)
	}
	conn.Close()
	keys.CloseClientConnections()
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()

	deadline := time.Now().Add(10 * time.Second)
	for goruntime.NumGoroutine() > before && time.Now().Before(deadline) {
		// The token cache's clean-up goroutine holds only a weak pointer to it and ends once the cache is
		// collected (so do the caches of replaced configs after a reload).
		goruntime.GC()
		time.Sleep(20 * time.Millisecond) // polling for goroutines to exit, not waiting for time to pass
	}
	if n := goruntime.NumGoroutine(); n > before {
		var buf bytes.Buffer
		pprof.Lookup("goroutine").WriteTo(&buf, 1)
		t.Errorf("%d goroutines after shutdown, %d before start:\n%s", n, before, buf.String())
	}
}

// TestServeShutdownWithHealthWatch: a client watching health (gRPC client-side health checking does) sees
// NOT_SERVING when the service stops, and does not hold the stop for the whole StopTimeout.
func TestServeShutdownWithHealthWatch(t *testing.T) {
	t.Parallel()
	iss := testkit.Start(t)
	s := launch(t, loadConfig(t, serviceYAML(iss.URL, iss.JWKSURL())))
	conn := dial(t, s.grpcAddr)
	statuses := watchHealth(t, t.Context(), conn)
	for st := nextStatus(t, statuses); st != healthpb.HealthCheckResponse_SERVING; st = nextStatus(t, statuses) {
	}
	start := time.Now()
	if err := s.stop(); err != nil {
		t.Fatalf("serve() = %v, want nil after cancel", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("serve took %s to return after cancel with a health Watch open", d)
	}
	sawNotServing := false
	for st := range statuses {
		sawNotServing = sawNotServing || st == healthpb.HealthCheckResponse_NOT_SERVING
	}
	if !sawNotServing {
		t.Error("the health watcher never saw NOT_SERVING during shutdown")
	}
}

func TestConfigCheckCommand(t *testing.T) {
	clearEnv(t)
	valid := writeFile(t, "valid.yaml", serviceYAML("http://127.0.0.1:9229/local_abc123", "http://127.0.0.1:9229/local_abc123/.well-known/jwks.json"))
	invalid := writeFile(t, "invalid.yaml", `
log: {level: loud}
pools:
  - name: main
    region: us-east-1
    user_pool_id: eu-west-1_AbC123
    client_ids: []
    token_use: access
`)
	unknownKey := writeFile(t, "unknown.yaml", "pools: []\nroutes: []\n")
	tests := []struct {
		name       string
		args       []string
		env        map[string]string
		wantCode   int
		wantStdout []string
		wantStderr []string
	}{
		{name: "valid", args: []string{"config", "check", "-config", valid}, wantCode: 0, wantStdout: []string{valid + ": ok (1 pools, 0 rules, 8 identity headers)"}},
		{name: "valid_from_env_path", args: []string{"config", "check"}, env: map[string]string{"COGNITO_AUTHZ_CONFIG": valid}, wantCode: 0, wantStdout: []string{": ok"}},
		{
			name: "invalid_lists_every_problem", args: []string{"config", "check", "-config", invalid}, wantCode: 1,
			wantStdout: []string{
				invalid + ": invalid",
				`  - invalid config: log.level "loud"`,
				`  - invalid config: pools[0] (main).user_pool_id "eu-west-1_AbC123" is not in region "us-east-1"`,
				`  - invalid config: pools[0] (main).client_ids: at least one app client id is required`,
			},
		},
		{name: "unknown_key", args: []string{"config", "check", "-config", unknownKey}, wantCode: 1, wantStdout: []string{"routes"}},
		{name: "env_override_invalid", args: []string{"config", "check", "-config", valid}, env: map[string]string{"COGNITO_AUTHZ_LOG_FORMAT": "xml"}, wantCode: 1, wantStdout: []string{`log.format "xml"`}},
		{name: "missing_file", args: []string{"config", "check", "-config", valid + ".nope"}, wantCode: 1, wantStdout: []string{"no such file"}},
		{name: "no_config", args: []string{"config", "check"}, wantCode: 2, wantStderr: []string{"-config FILE is required"}},
		{name: "config_without_check", args: []string{"config"}, wantCode: 2, wantStderr: []string{"usage:"}},
		{name: "config_bad_subcommand", args: []string{"config", "lint"}, wantCode: 2, wantStderr: []string{"usage:"}},
		{name: "bad_flag", args: []string{"config", "check", "-nope"}, wantCode: 2, wantStderr: []string{"flag provided but not defined: -nope"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			code, stdout, stderr := runCLI(t, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.wantCode, stdout, stderr)
			}
			for _, w := range tt.wantStdout {
				if !strings.Contains(stdout, w) {
					t.Errorf("stdout = %q, want it to contain %q", stdout, w)
				}
			}
			for _, w := range tt.wantStderr {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr = %q, want it to contain %q", stderr, w)
				}
			}
		})
	}
}

func TestRunCommands(t *testing.T) {
	clearEnv(t)
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{name: "help", args: []string{"help"}, wantCode: 0, wantStdout: "usage:"},
		{name: "dash_h", args: []string{"-h"}, wantCode: 0, wantStdout: "usage:"},
		{name: "unknown_command", args: []string{"frobnicate"}, wantCode: 2, wantStderr: `unknown command "frobnicate"`},
		{name: "serve_without_config", args: []string{"serve"}, wantCode: 2, wantStderr: "-config FILE"},
		{name: "default_is_serve", args: []string{}, wantCode: 2, wantStderr: "cognito-authz serve: -config FILE"},
		{name: "serve_missing_file", args: []string{"-config", "/nonexistent/cognito-authz.yaml"}, wantCode: 2, wantStderr: "no such file"},
		{name: "serve_extra_args", args: []string{"serve", "extra"}, wantCode: 2, wantStderr: "unexpected arguments"},
		{name: "verify_without_token", args: []string{"verify", "-config", "x.yaml"}, wantCode: 2, wantStderr: "-token TOKEN are required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.wantCode, stdout, stderr)
			}
			if !strings.Contains(stdout, tt.wantStdout) {
				t.Errorf("stdout = %q, want it to contain %q", stdout, tt.wantStdout)
			}
			if !strings.Contains(stderr, tt.wantStderr) {
				t.Errorf("stderr = %q, want it to contain %q", stderr, tt.wantStderr)
			}
		})
	}
}

func TestVerifyCommand(t *testing.T) {
	clearEnv(t)
	iss := testkit.Start(t)
	path := writeFile(t, "config.yaml", serviceYAML(iss.URL, iss.JWKSURL()))
	now := time.Now()
	expired := iss.MustMint(t, with(iss.Access(), map[string]any{"iat": now.Add(-2 * time.Hour).Unix(), "exp": now.Add(-time.Hour).Unix()}))
	tests := []struct {
		name       string
		token      string
		wantCode   int
		wantStdout []string
	}{
		{name: "valid", token: iss.MustMint(t, iss.Access()), wantCode: 0, wantStdout: []string{"ALLOW", "+ x-auth-sub: 0b5f3c1e-7a2d-4c1b-9e0f-aaaaaaaaaaaa", "- x-auth-email"}},
		{name: "expired", token: expired, wantCode: 1, wantStdout: []string{"DENY 401 token_expired", `"error":"token_expired"`}},
		{name: "id_token", token: iss.MustMint(t, iss.IDToken()), wantCode: 1, wantStdout: []string{"DENY 401 token_use_mismatch"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, "verify", "-config", path, "-token", tt.token)
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.wantCode, stdout, stderr)
			}
			for _, w := range tt.wantStdout {
				if !strings.Contains(stdout, w) {
					t.Errorf("stdout = %q, want it to contain %q", stdout, w)
				}
			}
			if sig := tt.token[strings.LastIndexByte(tt.token, '.')+1:]; strings.Contains(stdout+stderr, sig) {
				t.Errorf("verify printed the token's signature")
			}
		})
	}
}

// TestConfigCheckAgreesWithServe runs `config check` and `serve` on the same files: check exits 0 exactly
// when serve starts (its context is cancelled up front, so it stops at once), and both name the problem.
// A rule host "[::1]" used to pass config check and then stop serve from starting.
func TestConfigCheckAgreesWithServe(t *testing.T) {
	clearEnv(t)
	const head = "server: {grpc_addr: \"127.0.0.1:0\", admin_addr: \"127.0.0.1:0\", drain_period: 0s}\nlog: {level: error}\n" +
		"pools: [{name: main, region: us-east-1, user_pool_id: us-east-1_AbC123, client_ids: [abc], token_use: access, jwks_url: \"http://127.0.0.1:1/jwks.json\"}]\n"
	tests := []struct {
		name, rules string
		wantProblem string // "" when valid
	}{
		{name: "valid", rules: "rules: [{name: a, match: {host: api.example.com, path_prefix: /a}}]\n"},
		{name: "ipv6_host", rules: "rules: [{name: a, match: {host: \"[::1]\"}}]\n", wantProblem: `rules[0] (a).match.host`},
		{name: "regex", rules: "rules: [{name: a, match: {path_regex: \"((\"}}]\n", wantProblem: `rules[0] (a).match.path_regex`},
		{name: "require_on_allow", rules: "rules: [{name: a, action: allow, require: {groups_any: [x]}}]\n", wantProblem: `rules[0] (a).require`},
		{name: "duplicate_names", rules: "rules: [{name: a}, {name: a}]\n", wantProblem: `rules[1] (a).name`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, "config.yaml", head+tt.rules)
			checkCode, checkOut, _ := runCLI(t, "config", "check", "-config", path)
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			var out, errb bytes.Buffer
			serveCode := run(ctx, []string{"serve", "-config", path}, &out, &errb)
			if (checkCode == exitOK) != (serveCode == exitOK) {
				t.Fatalf("config check exit %d, serve exit %d: they disagree\ncheck:\n%s\nserve:\n%s", checkCode, serveCode, checkOut, errb.String())
			}
			if (checkCode == exitOK) != (tt.wantProblem == "") {
				t.Fatalf("config check exit %d, want the problem %q\n%s", checkCode, tt.wantProblem, checkOut)
			}
			if tt.wantProblem != "" && (!strings.Contains(checkOut, tt.wantProblem) || !strings.Contains(errb.String(), tt.wantProblem)) {
				t.Errorf("want both to name %q\ncheck:\n%s\nserve:\n%s", tt.wantProblem, checkOut, errb.String())
			}
		})
	}
}

// TestServeDevConfigWithoutPools: with -dev the dev pool is added to the file's pools before the file is
// validated, so a file without pools is valid there, as the README says. The context is cancelled up
// front: serve loads, builds, binds and stops at once.
func TestServeDevConfigWithoutPools(t *testing.T) {
	clearEnv(t)
	path := writeFile(t, "config.yaml", "server: {grpc_addr: \"127.0.0.1:0\", admin_addr: \"127.0.0.1:0\", drain_period: 0s}\nlog: {level: error}\n")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	var out, errb bytes.Buffer
	if code := run(ctx, []string{"serve", "-dev", "-dev-issuer-addr", "127.0.0.1:0", "-config", path}, &out, &errb); code != exitOK {
		t.Fatalf("serve -dev -config (no pools) exit code = %d, want 0\nstderr:\n%s", code, errb.String())
	}
}

// TestVerifyHonoursSources: verify presents the token where the config's first token source reads it, so a
// config that reads a cookie or the ALB's header verifies the token instead of answering token_missing.
func TestVerifyHonoursSources(t *testing.T) {
	clearEnv(t)
	iss := testkit.Start(t)
	tok := iss.MustMint(t, iss.Access())
	tests := []struct {
		name    string
		sources string
	}{
		{name: "cookie", sources: "[{cookie: id_token}]"},
		{name: "alb_header", sources: "[{header: x-amzn-oidc-accesstoken}]"},
		{name: "custom_scheme", sources: `[{header: x-token, prefix: "Token "}, {header: authorization, prefix: "Bearer "}]`},
		{name: "scheme_without_space", sources: `[{header: x-token, prefix: "Token"}]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, "config.yaml", serviceYAML(iss.URL, iss.JWKSURL())+"token: {sources: "+tt.sources+"}\n")
			code, stdout, stderr := runCLI(t, "verify", "-config", path, "-token", tok)
			if code != 0 || !strings.Contains(stdout, "ALLOW") {
				t.Fatalf("verify with sources %s: exit code %d\nstdout:\n%s\nstderr:\n%s", tt.sources, code, stdout, stderr)
			}
		})
	}
}

func TestTokenCommand(t *testing.T) {
	clearEnv(t)
	iss := testkit.Start(t)
	base := strings.TrimSuffix(iss.URL, "/"+iss.PoolID) // the mint endpoint is at the server root
	path := writeFile(t, "config.yaml", serviceYAML(iss.URL, iss.JWKSURL()))

	code, stdout, stderr := runCLI(t, "token", "-issuer-url", base, "-username", "bob", "-groups", "admins,users", "-scopes", "orders/read")
	if code != 0 {
		t.Fatalf("token exit code = %d, stderr:\n%s", code, stderr)
	}
	tok := strings.TrimSpace(stdout)
	if strings.Count(tok, ".") != 2 {
		t.Fatalf("token printed %q, want a JWT", stdout)
	}
	code, stdout, stderr = runCLI(t, "verify", "-config", path, "-token", tok)
	if code != 0 {
		t.Fatalf("verify of the minted token exit code = %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	for _, w := range []string{"ALLOW", "x-auth-username: bob", "x-auth-groups: admins,users", "x-auth-scopes: orders/read"} {
		if !strings.Contains(stdout, w) {
			t.Errorf("verify stdout = %q, want it to contain %q", stdout, w)
		}
	}

	t.Run("bad_token_use", func(t *testing.T) {
		code, _, stderr := runCLI(t, "token", "-issuer-url", base, "-token-use", "refresh")
		if code != 2 || !strings.Contains(stderr, "400") {
			t.Errorf("token -token-use refresh = %d, stderr %q; want 2 and the issuer's 400", code, stderr)
		}
	})
	t.Run("no_issuer", func(t *testing.T) {
		dead := httptest.NewServer(http.NotFoundHandler())
		dead.Close()
		code, _, stderr := runCLI(t, "token", "-issuer-url", dead.URL)
		if code != 2 || !strings.Contains(stderr, "serve -dev") {
			t.Errorf("token against a closed port = %d, stderr %q; want 2 and a hint", code, stderr)
		}
	})
}

// TestServeDevRemovesSessionKey: serve -dev writes a fresh session key to a temporary directory, and removes
// it when it stops (it used to leave one behind on every run).
func TestServeDevRemovesSessionKey(t *testing.T) {
	clearEnv(t)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	t.Setenv("COGNITO_AUTHZ_GRPC_ADDR", "127.0.0.1:0")
	t.Setenv("COGNITO_AUTHZ_HTTP_ADDR", "127.0.0.1:0")
	t.Setenv("COGNITO_AUTHZ_ADMIN_ADDR", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(t.Context())
	cancel() // serve builds, binds and stops at once
	var out, errb bytes.Buffer
	if code := run(ctx, []string{"serve", "-dev", "-dev-issuer-addr", "127.0.0.1:0"}, &out, &errb); code != exitOK {
		t.Fatalf("serve -dev exit code = %d, want 0\nstderr:\n%s", code, errb.String())
	}
	left, err := filepath.Glob(filepath.Join(tmp, "cognito-authz-dev-*"))
	if err != nil || len(left) > 0 {
		t.Fatalf("serve -dev left %v behind (%v)", left, err)
	}
}
