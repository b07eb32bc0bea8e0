package extauthz_test

import (
	"context"
	"sync"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/cognito-authz/cognito-authz/pkg/authz"
	"github.com/cognito-authz/cognito-authz/pkg/extauthz"
	"github.com/cognito-authz/cognito-authz/pkg/testkit"
)

// TestSharedDenyConcurrent: shared deny responses are marshalled by many streams at once; under -race this
// shows that the codec only reads them.
func TestSharedDenyConcurrent(t *testing.T) {
	t.Parallel()
	f := newFixtureWith(t, nil, cacheOn)
	conn := f.serve(t)
	tampered := testkit.Tamper(f.iss.MustMint(t, at(f.iss.Access())))
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 25 {
				h := map[string]string{}
				if (w+i)%2 == 0 {
					h["authorization"] = "Bearer " + tampered
				}
				got, err := extauthz.Check(context.Background(), conn, extauthz.Probe{Method: "GET", Path: "/", Headers: h})
				if err != nil || codes.Code(got.GetStatus().GetCode()) != codes.Unauthenticated {
					t.Errorf("Check() = %v, %v; want a 401 deny", got, err)
					return
				}
			}
		})
	}
	wg.Wait()
	// Same reason, same fixed parts (the envelope carries per-request metadata).
	s := extauthz.NewServer(f.a)
	req := extauthz.Probe{Method: "GET", Path: "/", Headers: map[string]string{}}.CheckRequest()
	r1, _ := s.Check(t.Context(), req)
	r2, _ := s.Check(t.Context(), req)
	if r1.GetDeniedResponse() != r2.GetDeniedResponse() || r1.GetStatus() != r2.GetStatus() {
		t.Error("two denies of one reason built their fixed parts twice")
	}
}

// BenchmarkCheck is one Check as the gRPC handler runs it, from the decoded CheckRequest to the
// CheckResponse the codec marshals (marshalling included, as it is work the response's shape decides).
func BenchmarkCheck(b *testing.B) {
	for _, bc := range []struct {
		name  string
		cache authz.CacheOptions
		token func(f *fixture) string
	}{
		{name: "cached", cache: cacheOn, token: func(f *fixture) string { return f.iss.MustMint(b, at(f.iss.Access())) }},
		{name: "uncached", token: func(f *fixture) string { return f.iss.MustMint(b, at(f.iss.Access())) }},
		{name: "denied_missing", cache: cacheOn},
		{name: "denied_bad_signature_cached", cache: cacheOn, token: func(f *fixture) string { return testkit.Tamper(f.iss.MustMint(b, at(f.iss.Access()))) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			f := newFixtureWith(b, nil, bc.cache)
			h := map[string]string{"x-request-id": "0f4c1c4e-4b8e", "user-agent": "bench", ":path": "/orders", ":method": "GET"}
			if bc.token != nil {
				h["authorization"] = "Bearer " + bc.token(f)
			}
			req := extauthz.Probe{Method: "GET", Host: "api.example.com", Path: "/orders", Headers: h}.CheckRequest()
			s := extauthz.NewServer(f.a)
			ctx := context.Background()
			var resp *authv3.CheckResponse
			b.ReportAllocs()
			for b.Loop() {
				resp, _ = s.Check(ctx, req)
				if _, err := proto.Marshal(resp); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
