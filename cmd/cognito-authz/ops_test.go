package main

import (
	"context"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/cognito-authz/cognito-authz/pkg/extauthz"
	"github.com/cognito-authz/cognito-authz/pkg/testkit"
)

// TestDryRunService: with dry_run on, a deny is answered OK, anonymous, marked for the client and in the
// dynamic metadata, and counted as dry_run_<outcome>, never as an allow.
func TestDryRunService(t *testing.T) {
	t.Parallel()
	iss := startIssuer(t)
	cfg := testConfig(iss.pool("main"))
	cfg.DryRun = true
	s := startOps(t, cfg)
	s.waitReady(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := extauthz.Check(ctx, s.conn, extauthz.Probe{Method: "GET", Host: "h", Path: "/",
		Headers: map[string]string{"authorization": "Bearer " + testkit.Tamper(iss.MustMint(t, iss.Access())), "x-auth-sub": "spoofed"}})
	if err != nil {
		t.Fatal(err)
	}
	sum := extauthz.Summarize(resp)
	if !sum.Allowed || len(sum.Set) != 0 {
		t.Fatalf("dry run: allowed %v, set %v; want an anonymous allow", sum.Allowed, sum.Set)
	}
	removed := map[string]bool{}
	for _, h := range sum.Remove {
		removed[h] = true
	}
	if !removed["x-auth-sub"] {
		t.Errorf("dry run does not remove the spoofed x-auth-sub: remove %v", sum.Remove)
	}
	marks := resp.GetOkResponse().GetResponseHeadersToAdd()
	if len(marks) != 1 || marks[0].GetHeader().GetKey() != "x-auth-dry-run" || marks[0].GetHeader().GetValue() != "signature_invalid" {
		t.Errorf("response_headers_to_add = %v, want x-auth-dry-run: signature_invalid", marks)
	}
	md := resp.GetDynamicMetadata().GetFields()
	if md["dry_run"].GetBoolValue() != true || md["outcome"].GetStringValue() != "dry_run_unauthenticated" || md["reason"].GetStringValue() != "signature_invalid" {
		t.Errorf("dynamic metadata = %v", md)
	}
	if n := s.metric(t, `cognito_authz_checks_total{outcome="dry_run_unauthenticated",reason="signature_invalid",rule="default",transport="grpc"}`); n != 1 {
		t.Errorf("dry-run deny counted %v times, want 1", n)
	}
	if n := s.metric(t, `cognito_authz_check_duration_seconds_count{outcome="dry_run_unauthenticated",transport="grpc"}`); n != 1 {
		t.Errorf("dry-run deny timed %v times, want 1", n)
	}
	if got := s.bearer(t, iss.MustMint(t, iss.Access())); !got.Allowed || len(got.Set) == 0 {
		t.Errorf("a valid token under dry run: allowed %v, set %v; want a normal allow", got.Allowed, got.Set)
	}
}

// TestCacheMetrics: the verified-token cache reports hits, misses and entries on /metrics.
func TestCacheMetrics(t *testing.T) {
	t.Parallel()
	iss := startIssuer(t)
	s := startOps(t, testConfig(iss.pool("main")))
	s.waitReady(t)
	tok := iss.MustMint(t, iss.Access())
	for range 3 {
		if got := s.bearer(t, tok); !got.Allowed {
			t.Fatalf("valid token denied: %s", got.Reason)
		}
	}
	for series, want := range map[string]float64{
		"cognito_authz_cache_misses_total": 1,
		"cognito_authz_cache_hits_total":   2,
		"cognito_authz_cache_entries":      1,
	} {
		if got := s.metric(t, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
}

// TestDynamicMetadataIdentity: the served answer's dynamic metadata is lean by default (outcome, reason,
// rule, dry_run) and carries the identity only with dynamic_metadata.identity.
func TestDynamicMetadataIdentity(t *testing.T) {
	t.Parallel()
	iss := startIssuer(t)
	for _, tt := range []struct {
		name     string
		identity bool
		want     []string
	}{
		{name: "default_lean", want: []string{"dry_run", "outcome", "reason", "rule"}},
		{name: "identity", identity: true, want: []string{"client_id", "dry_run", "outcome", "pool", "reason", "rule", "sub", "token_use"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(iss.pool("main"))
			cfg.DynamicMetadata.Identity = tt.identity
			s := startOps(t, cfg)
			s.waitReady(t)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			resp, err := extauthz.Check(ctx, s.conn, extauthz.Probe{Method: "GET", Host: "h", Path: "/",
				Headers: map[string]string{"authorization": "Bearer " + iss.MustMint(t, iss.Access())}})
			if err != nil {
				t.Fatal(err)
			}
			got := slices.Sorted(maps.Keys(resp.GetDynamicMetadata().GetFields()))
			if !slices.Equal(got, tt.want) {
				t.Errorf("dynamic metadata keys = %v, want %v", got, tt.want)
			}
		})
	}
}
