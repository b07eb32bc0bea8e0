package authz_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cognito-authz/cognito-authz/pkg/authz"
	"github.com/cognito-authz/cognito-authz/pkg/devissuer"
	"github.com/cognito-authz/cognito-authz/pkg/jwks"
	"github.com/cognito-authz/cognito-authz/pkg/testkit"
	"github.com/cognito-authz/cognito-authz/pkg/token"
)

func newDryRunAuthorizer(t *testing.T, dryRun, forward bool) (*devissuer.Issuer, *authz.Authorizer) {
	t.Helper()
	return newAuthorizerWith(t, authz.Options{ForwardToken: forward, DryRun: dryRun})
}

// observation is one ObserveCheck call.
type observation struct{ Transport, Outcome, Reason, Rule string }

type recorder struct {
	mu  sync.Mutex
	got []observation
}

func (r *recorder) ObserveCheck(transport, outcome, reason, rule string, took time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, observation{transport, outcome, reason, rule})
}

// logLines decodes JSON log lines.
func logLines(t *testing.T, b *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.Lines(b.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		delete(m, "time")
		out = append(out, m)
	}
	return out
}

func TestDryRunAllowsAnonymously(t *testing.T) {
	t.Parallel()
	iss, a := newDryRunAuthorizer(t, true, false)
	c := iss.Access()
	c["exp"] = time.Now().Add(-time.Hour).Unix()
	expired := iss.MustMint(t, c)

	var logs bytes.Buffer
	rec := &recorder{}
	o := authz.NewObserved(func() *authz.Authorizer { return a }, "grpc", rec, slog.New(slog.NewJSONHandler(&logs, nil)))
	r := bearer(expired)
	r.RequestID = "req-1"
	r.Path = "/orders?code=secret#frag"
	d := o.Check(t.Context(), r)
	if !d.Allowed() || !d.DryRun || d.WouldBe != authz.Unauthenticated || d.Reason != authz.ReasonTokenExpired {
		t.Fatalf("dry run = allowed %v dry_run %v would_be %v reason %v", d.Allowed(), d.DryRun, d.WouldBe, d.Reason)
	}
	if len(d.Headers) != 0 {
		t.Errorf("dry-run allow sets headers %v: it must be anonymous", d.Headers)
	}
	wantRemove := append(headerNames(headers), "authorization")
	if diff := cmp.Diff(wantRemove, d.Remove); diff != "" {
		t.Errorf("Remove mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]observation{{"grpc", "dry_run_unauthenticated", "token_expired", "default"}}, rec.got); diff != "" {
		t.Errorf("observations mismatch (-want +got):\n%s", diff)
	}
	sum := sha256.Sum256([]byte(expired))
	lines := logLines(t, &logs)
	if len(lines) != 1 {
		t.Fatalf("%d log lines, want 1", len(lines))
	}
	got := lines[0]
	if e, _ := got["error"].(string); e == "" {
		t.Error("deny line has no error")
	}
	delete(got, "error")
	want := map[string]any{
		"level": "INFO", "msg": "deny", "reason": "token_expired", "rule": "default", "outcome": "dry_run_unauthenticated",
		"status": float64(401), "transport": "grpc", "method": "GET", "host": "", "path": "/orders", "request_id": "req-1",
		"dry_run": true, "token_sha256": hex.EncodeToString(sum[:6]), "kid": "test-key-1",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("log line mismatch (-want +got):\n%s", diff)
	}
}

func headerNames(h authz.IdentityHeaders) []string {
	return []string{h.Sub, h.Username, h.Groups, h.Scopes, h.ClientID, h.TokenUse, h.Email, h.Pool, "x-auth-tenant"}
}

func TestDryRunLeavesAllowsAlone(t *testing.T) {
	t.Parallel()
	iss, a := newDryRunAuthorizer(t, true, true)
	o := authz.NewObserved(func() *authz.Authorizer { return a }, "grpc", nil, slog.New(slog.DiscardHandler))
	d := o.Check(t.Context(), bearer(iss.MustMint(t, iss.Access())))
	if !d.Allowed() || d.DryRun || d.Label() != "allow" {
		t.Fatalf("valid token under dry run: allowed %v dry_run %v label %q", d.Allowed(), d.DryRun, d.Label())
	}
	if got := a.DryRun(d); got.DryRun {
		t.Error("DryRun marked an allow")
	}
}

func TestObservedLogsAllowsAtDebugOnly(t *testing.T) {
	t.Parallel()
	iss, a := newDryRunAuthorizer(t, false, true)
	tok := iss.MustMint(t, iss.Access())
	for _, level := range []slog.Level{slog.LevelInfo, slog.LevelDebug} {
		var logs bytes.Buffer
		rec := &recorder{}
		o := authz.NewObserved(func() *authz.Authorizer { return a }, "http", rec,
			slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: level})))
		o.Check(t.Context(), bearer(tok))
		o.Check(t.Context(), &authz.Request{Method: "GET", Path: "/", Headers: token.HeaderMap{}}) // token_missing
		lines := logLines(t, &logs)
		var msgs []string
		for _, l := range lines {
			msgs = append(msgs, l["msg"].(string))
		}
		want := []string{"deny"}
		if level == slog.LevelDebug {
			want = []string{"allow", "deny"}
			if lines[0]["sub"] != "0b5f3c1e-7a2d-4c1b-9e0f-aaaaaaaaaaaa" || lines[0]["client_id"] != iss.ClientID ||
				lines[0]["token_use"] != "access" || lines[0]["kid"] != "test-key-1" {
				t.Errorf("allow line lacks the identity: %v", lines[0])
			}
		}
		if diff := cmp.Diff(want, msgs); diff != "" {
			t.Errorf("level %v: messages mismatch (-want +got):\n%s", level, diff)
		}
		if diff := cmp.Diff([]observation{{"http", "allow", "ok", "default"}, {"http", "unauthenticated", "token_missing", "default"}}, rec.got); diff != "" {
			t.Errorf("observations mismatch (-want +got):\n%s", diff)
		}
		if strings.Contains(logs.String(), tok[:40]) {
			t.Error("the log holds the token")
		}
	}
}

// TestCancelledNeverAllowed: a request Envoy gave up on is denied request_cancelled whatever the mode,
// global dry run included, is counted as such (never as keys_unavailable), and is not a dry-run allow.
func TestCancelledNeverAllowed(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		dryRun bool
		token  bool
	}{
		{name: "valid_token", token: true},
		{name: "valid_token_global_dry_run", dryRun: true, token: true},
		{name: "no_token_global_dry_run", dryRun: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			iss, a := newDryRunAuthorizer(t, tt.dryRun, true)
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			rec := &recorder{}
			o := authz.NewObserved(func() *authz.Authorizer { return a }, "grpc", rec, slog.New(slog.DiscardHandler))
			r := &authz.Request{Method: "GET", Path: "/", Headers: token.HeaderMap{}}
			if tt.token {
				r = bearer(iss.MustMint(t, iss.Access()))
			}
			for _, d := range []authz.Decision{o.Check(ctx, r), a.Check(ctx, r)} {
				if d.Allowed() || d.DryRun || d.Reason != authz.ReasonRequestCancelled {
					t.Fatalf("cancelled: allowed %v dry_run %v reason %s, want a deny request_cancelled", d.Allowed(), d.DryRun, d.Reason)
				}
			}
			if diff := cmp.Diff([]observation{{"grpc", "unavailable", "request_cancelled", "default"}}, rec.got); diff != "" {
				t.Errorf("observations mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func BenchmarkObservedAllow(b *testing.B) {
	iss := testkit.Start(b)
	set, _ := jwks.New(jwks.Options{URL: iss.JWKSURL()})
	if err := set.Refresh(b.Context()); err != nil {
		b.Fatal(err)
	}
	v, _ := token.NewVerifier([]token.Pool{{Name: "main", Issuers: []string{iss.URL}, ClientIDs: []string{iss.ClientID}, TokenUse: "any", Keys: set}})
	a, _ := authz.New(authz.Options{Verifier: v, Headers: headers, ForwardToken: true})
	o := authz.NewObserved(func() *authz.Authorizer { return a }, "grpc", nil, slog.New(slog.NewJSONHandler(bytes.NewBuffer(nil), nil)))
	r := bearer(iss.MustMint(b, iss.Access()))
	b.ReportAllocs()
	for b.Loop() {
		o.Check(b.Context(), r)
	}
}

// TestLoggedPathDropsSecrets: a deny's log line holds the path only, never what follows "?", "#" or a ";"
// path parameter, where clients put codes and tokens ("/cb;access_token=…").
func TestLoggedPathDropsSecrets(t *testing.T) {
	t.Parallel()
	_, a := newAuthorizer(t, true)
	tests := []struct {
		name, path, want string
	}{
		{name: "query", path: "/cb?code=SECRET1", want: "/cb"},
		{name: "fragment", path: "/cb#id_token=SECRET2", want: "/cb"},
		{name: "path_parameter", path: "/cb;access_token=SECRET3", want: "/cb"},
		{name: "parameter_mid_path", path: "/a;jsessionid=SECRET4/b", want: "/a"},
		{name: "parameter_before_query", path: "/cb;t=SECRET5?x=1", want: "/cb"},
		{name: "plain", path: "/orders/1", want: "/orders/1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var logs bytes.Buffer
			o := authz.NewObserved(func() *authz.Authorizer { return a }, "grpc", nil, slog.New(slog.NewJSONHandler(&logs, nil)))
			o.Check(t.Context(), &authz.Request{Method: "GET", Path: tt.path, Headers: token.HeaderMap{}})
			if strings.Contains(logs.String(), "SECRET") {
				t.Fatalf("log holds the secret: %s", logs.String())
			}
			lines := logLines(t, &logs)
			if len(lines) != 1 {
				t.Fatalf("%d log lines, want 1", len(lines))
			}
			if got := lines[0]["path"]; got != tt.want {
				t.Errorf("logged path = %v, want %q", got, tt.want)
			}
		})
	}
}
