package extauthz_test

import (
	"context"
	"strings"
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
	if r1.GetStatus() != r2.GetStatus() {
		t.Error("two denies of one reason encoded their fixed parts twice")
	}
}

// BenchmarkCheck is one Check as the gRPC handler runs it, from the request's bytes to the bytes the
// server's codec hands the transport (decoding and marshalling included: both are work the messages' shape
// decides). resp-bytes is the size of the answer on the wire.
func BenchmarkCheck(b *testing.B) {
	for _, bc := range []struct {
		name     string
		cache    authz.CacheOptions
		identity bool
		token    func(f *fixture) string
	}{
		{name: "cached", cache: cacheOn, token: func(f *fixture) string { return f.iss.MustMint(b, at(f.iss.Access())) }},
		{name: "cached_identity_metadata", cache: cacheOn, identity: true, token: func(f *fixture) string { return f.iss.MustMint(b, at(f.iss.Access())) }},
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
			req := wire(b, extauthz.Probe{Method: "GET", Host: "api.example.com", Path: "/orders", Headers: h}.CheckRequest())
			s := extauthz.NewServer(f.a, extauthz.WithIdentityMetadata(bc.identity))
			codec := extauthz.NewCodec()
			ctx := context.Background()
			size := 0
			b.ReportAllocs()
			for b.Loop() {
				out, err := extauthz.ServeCheck(ctx, s, codec, req)
				if err != nil {
					b.Fatal(err)
				}
				size = out.Len()
				out.Free()
			}
			b.ReportMetric(float64(size), "resp-bytes")
		})
	}
}

// BenchmarkDecodeRequest is the decoding of an Envoy-shaped CheckRequest (peers, nine headers, a
// 900-byte token): into the whole message, as grpc-go's proto codec does, and as the service reads it.
func BenchmarkDecodeRequest(b *testing.B) {
	h := map[string]string{
		":authority": "api.example.com", ":method": "GET", ":path": "/api/orders?page=2", ":scheme": "https",
		"accept": "application/json", "user-agent": "Mozilla/5.0 (X11; Linux x86_64) load/1.0",
		"x-forwarded-proto": "https", "x-request-id": "6f1e6a0c-4b8e-4c1b-9e0f-aaaaaaaaaaaa",
		"authorization": "Bearer " + strings.Repeat("x", 900),
	}
	req := wire(b, extauthz.Probe{Method: "GET", Host: "api.example.com", Path: "/api/orders?page=2", Headers: h}.CheckRequest())
	b.Run("proto", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var r authv3.CheckRequest
			if err := proto.Unmarshal(req, &r); err != nil {
				b.Fatal(err)
			}
			_ = extauthz.Request(&r).Headers.Get("authorization")
		}
	})
	b.Run("wire", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r, err := extauthz.DecodeRequest(req)
			if err != nil {
				b.Fatal(err)
			}
			_ = r.Headers.Get("authorization")
		}
	})
}

// BenchmarkEncodeDeny measures what keeping a deny's encoded fixed part in its Slot saves over encoding
// it per answer (the question of a deny cache in this package: issue 10).
func BenchmarkEncodeDeny(b *testing.B) {
	d := authz.Decision{Outcome: authz.Unauthenticated, Reason: authz.ReasonSignatureInvalid, Rule: "default",
		Headers: []authz.Header{{Name: "content-type", Value: "application/json"},
			{Name: "www-authenticate", Value: `Bearer error="invalid_token", error_description="the token signature is invalid"`}},
		Body: `{"error":"signature_invalid","error_description":"the token signature is invalid"}` + "\n"}
	for _, bc := range []struct {
		name string
		slot *authz.Slot
	}{{"slot", &authz.Slot{}}, {"per_answer", nil}} {
		b.Run(bc.name, func(b *testing.B) {
			d := d
			d.Slot = bc.slot
			s := extauthz.NewServer(fixedChecker{d})
			codec := extauthz.NewCodec()
			req := &authv3.CheckRequest{}
			b.ReportAllocs()
			for b.Loop() {
				resp, _ := s.Check(context.Background(), req)
				out, _ := codec.Marshal(resp)
				out.Free()
			}
		})
	}
}

// TestAllowBytes reports the size of a cached allow's answer with lean and with identity metadata (the
// second is what every allow carried before metadata was made lean), and keeps the lean one smaller.
func TestAllowBytes(t *testing.T) {
	t.Parallel()
	f := newFixtureWith(t, nil, cacheOn)
	req := extauthz.Probe{Method: "GET", Host: "h", Path: "/", Headers: map[string]string{
		"authorization": "Bearer " + f.iss.MustMint(t, at(f.iss.Access()))}}.CheckRequest()
	size := map[bool]int{}
	for _, identity := range []bool{false, true} {
		s := extauthz.NewServer(f.a, extauthz.WithIdentityMetadata(identity))
		resp, _ := s.Check(t.Context(), req)
		out, err := extauthz.NewCodec().Marshal(resp)
		if err != nil {
			t.Fatal(err)
		}
		size[identity] = out.Len()
		if full := proto.Size(decode(t, resp)); full != out.Len() {
			t.Errorf("identity %v: %d bytes on the wire, the decoded answer re-encodes to %d", identity, out.Len(), full)
		}
	}
	t.Logf("bytes per allow: %d lean, %d with identity metadata", size[false], size[true])
	if size[false] >= size[true] {
		t.Errorf("lean allow %d bytes, not smaller than %d with identity", size[false], size[true])
	}
}
