package extauthz_test

import (
	"errors"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/cognito-authz/cognito-authz/pkg/authz"
	"github.com/cognito-authz/cognito-authz/pkg/extauthz"
	"github.com/cognito-authz/cognito-authz/pkg/policy"
	"github.com/cognito-authz/cognito-authz/pkg/token"
)

func TestDryRunResponse(t *testing.T) {
	t.Parallel()
	d := authz.Decision{Outcome: authz.Allow, Reason: authz.ReasonTokenExpired, Rule: "default", Err: errors.New("expired"), DryRun: true,
		WouldBe: authz.Unauthenticated, Remove: []string{"x-auth-sub"}}
	resp := extauthz.Response(&d)
	s := extauthz.Summarize(resp)
	if !s.Allowed {
		t.Fatalf("dry run answered %v, want OK", s.Code)
	}
	got := resp.GetOkResponse().GetResponseHeadersToAdd()
	if len(got) != 1 || got[0].GetHeader().GetKey() != "x-auth-dry-run" || got[0].GetHeader().GetValue() != "token_expired" {
		t.Errorf("response_headers_to_add = %v, want x-auth-dry-run: token_expired", got)
	}
	want, _ := structpb.NewStruct(map[string]any{
		"outcome": "dry_run_unauthenticated", "reason": "token_expired", "rule": "default", "dry_run": true,
	})
	if diff := cmp.Diff(want, resp.GetDynamicMetadata(), protocmp.Transform()); diff != "" {
		t.Errorf("dynamic metadata mismatch (-want +got):\n%s", diff)
	}
}

func TestMetadataOmitsUnknownIdentity(t *testing.T) {
	t.Parallel()
	d := authz.Decision{Outcome: authz.Forbidden, Reason: "group_required", Rule: "admin",
		Identity: &token.Identity{Subject: "s-1", Pool: "main", TokenUse: "access"}}
	want, _ := structpb.NewStruct(map[string]any{
		"outcome": "forbidden", "reason": "group_required", "rule": "admin", "dry_run": false,
		"sub": "s-1", "pool": "main", "token_use": "access",
	})
	if diff := cmp.Diff(want, extauthz.Metadata(&d, true), protocmp.Transform()); diff != "" {
		t.Errorf("dynamic metadata mismatch (-want +got):\n%s", diff)
	}
}

func BenchmarkMetadata(b *testing.B) {
	d := authz.Decision{Outcome: authz.Allow, Reason: authz.ReasonOK, Rule: "default",
		Identity: &token.Identity{Subject: "0b5f3c1e-7a2d-4c1b-9e0f-aaaaaaaaaaaa", ClientID: "devclient", Pool: "main", TokenUse: "access"}}
	b.ReportAllocs()
	for b.Loop() {
		extauthz.Metadata(&d, false)
	}
}

// TestSharedDenyKeepsPerRequestMetadata: denies of one reason share their encoded fixed part, but each
// answer carries its own request's metadata (a shared envelope would report the first request's rule).
func TestSharedDenyKeepsPerRequestMetadata(t *testing.T) {
	t.Parallel()
	p, err := policy.New([]policy.Rule{
		{Name: "closed-a", Match: policy.Match{PathPrefix: "/a"}, Action: policy.Deny},
		{Name: "closed-b", Match: policy.Match{PathPrefix: "/b"}, Action: policy.Deny},
	}, policy.Authenticated)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixtureWith(t, p, cacheOn)
	srv := extauthz.NewServer(f.a)
	var shared *authv3.CheckResponse
	for _, path := range []string{"/a", "/b", "/a", "/b"} {
		raw, err := srv.Check(t.Context(), extauthz.Probe{Method: "GET", Path: path, Host: "h", Headers: map[string]string{}}.CheckRequest())
		if err != nil {
			t.Fatal(err)
		}
		resp := decode(t, raw)
		want := "closed" + strings.Replace(path, "/", "-", 1)
		if got := resp.GetDynamicMetadata().GetFields()["rule"].GetStringValue(); got != want {
			t.Errorf("%s: metadata rule = %q, want %q", path, got, want)
		}
		if resp.GetDeniedResponse() == nil || resp.GetStatus().GetMessage() != "rule_denied" {
			t.Fatalf("%s: not a rule_denied deny: %v", path, resp)
		}
		if shared == nil {
			shared = raw
		} else if raw.GetStatus() != shared.GetStatus() {
			t.Errorf("%s: the fixed part of a rule_denied deny was encoded again", path)
		}
	}
}
