package extauthz_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc/metadata"

	"github.com/cognito-authz/cognito-authz/pkg/authz"
	"github.com/cognito-authz/cognito-authz/pkg/extauthz"
	"github.com/cognito-authz/cognito-authz/pkg/tracing"
)

const (
	envoyTrace   = "4bf92f3577b34da6a3ce929d0e0e4736"
	envoySpan    = "00f067aa0ba902b7"
	meshTrace    = "0af7651916cd43dd8448eb211c80319c"
	meshSpan     = "b7ad6b7169203331"
	traceparentE = "00-" + envoyTrace + "-" + envoySpan + "-01"
	traceparentM = "00-" + meshTrace + "-" + meshSpan + "-01"
)

// tracingMu keeps the tests that turn tracing on (it is process-wide) from overlapping.
var tracingMu sync.Mutex

// traced turns tracing on with an in-memory recorder for one test.
func traced(t *testing.T) *tracetest.SpanRecorder {
	t.Helper()
	tracingMu.Lock()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	tracing.Install(tp)
	t.Cleanup(func() {
		tracing.Off()
		_ = tp.Shutdown(context.Background())
		tracingMu.Unlock()
	})
	return rec
}

// spansOf returns the n ended spans named name of trace id, failing when there are not exactly n.
func spansOf(t *testing.T, rec *tracetest.SpanRecorder, trace, name string, n int) []sdktrace.ReadOnlySpan {
	t.Helper()
	var found []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == name && s.SpanContext().TraceID().String() == trace {
			found = append(found, s)
		}
	}
	if len(found) != n {
		t.Fatalf("%d %s spans in trace %s, want %d (ended: %d)", len(found), name, trace, n, len(rec.Ended()))
	}
	return found
}

// TestCheckContinuesEnvoysTrace: over a real gRPC server, a Check's span is a child of the span Envoy put in
// the call's metadata, else of the one in the request's own headers (W3C or B3); a verification and a cache
// hit show up under it, and the decision log line carries the trace id.
func TestCheckContinuesEnvoysTrace(t *testing.T) {
	f := newFixtureWith(t, nil, cacheOn)
	var logs strings.Builder
	var logMu sync.Mutex
	log := slog.New(slog.NewJSONHandler(writerFunc(func(p []byte) (int, error) {
		logMu.Lock()
		defer logMu.Unlock()
		return logs.Write(p)
	}), nil))
	conn := serveGRPCWith(t, extauthz.NewServer(authz.NewObserved(func() *authz.Authorizer { return f.a }, "grpc", nil, log)))
	client := authv3.NewAuthorizationClient(conn)
	tests := []struct {
		name      string
		metadata  []string // gRPC call metadata, key value pairs
		headers   map[string]string
		token     bool
		wantTrace string
		wantSpan  string
	}{
		{name: "w3c_in_request_headers", headers: map[string]string{"traceparent": traceparentM}, token: true, wantTrace: meshTrace, wantSpan: meshSpan},
		{name: "b3_in_request_headers", headers: map[string]string{"x-b3-traceid": meshTrace, "x-b3-spanid": meshSpan, "x-b3-sampled": "1"},
			wantTrace: meshTrace, wantSpan: meshSpan},
		{name: "b3_single_in_request_headers", headers: map[string]string{"b3": meshTrace + "-" + meshSpan + "-1"}, wantTrace: meshTrace, wantSpan: meshSpan},
		{name: "grpc_metadata_wins", metadata: []string{"traceparent", traceparentE}, headers: map[string]string{"traceparent": traceparentM},
			token: true, wantTrace: envoyTrace, wantSpan: envoySpan},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := traced(t)
			req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
				Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Host: "api.example.com", Path: "/orders", Headers: map[string]string{}},
			}}}
			for k, v := range tt.headers {
				req.Attributes.Request.Http.Headers[k] = v
			}
			if tt.token {
				c := at(f.iss.Access())
				c["jti"] = tt.name // a token of its own: the first Check verifies it, the second hits the cache
				req.Attributes.Request.Http.Headers["authorization"] = "Bearer " + f.iss.MustMint(t, c)
			}
			ctx := metadata.AppendToOutgoingContext(t.Context(), tt.metadata...)
			for range 2 { // the second Check of the token is a cache hit
				resp, err := client.Check(ctx, req)
				if err != nil {
					t.Fatal(err)
				}
				if allowed := resp.GetStatus().GetCode() == 0; allowed != tt.token {
					t.Fatalf("Check allowed = %v, want %v", allowed, tt.token)
				}
			}
			checks := spansOf(t, rec, tt.wantTrace, "ext_authz.Check", 2)
			for _, check := range checks {
				if got := check.Parent().SpanID().String(); got != tt.wantSpan {
					t.Errorf("Check span's parent = %s, want Envoy's %s", got, tt.wantSpan)
				}
				if !check.Parent().IsRemote() {
					t.Error("Check span's parent is not remote")
				}
			}
			if tt.token {
				verify := spansOf(t, rec, tt.wantTrace, "token.verify", 1)[0] // the second Check hit the cache
				if verify.Parent().SpanID() != checks[0].SpanContext().SpanID() {
					t.Errorf("token.verify's parent = %s, want the first Check span %s", verify.Parent().SpanID(), checks[0].SpanContext().SpanID())
				}
				hits := 0
				for _, s := range rec.Ended() {
					for _, e := range s.Events() {
						if e.Name == "cache.hit" && s.SpanContext().TraceID().String() == tt.wantTrace {
							hits++
						}
					}
				}
				if hits != 1 {
					t.Errorf("%d cache.hit events, want 1", hits)
				}
			} else {
				logMu.Lock()
				line := logs.String()
				logMu.Unlock()
				if !strings.Contains(line, `"trace_id":"`+tt.wantTrace+`"`) {
					t.Errorf("no decision log line with trace_id %s in:\n%s", tt.wantTrace, line)
				}
			}
		})
	}
}

// TestHTTPCheckContinuesTrace: the HTTP protocol reads the trace context from the auth request's headers.
func TestHTTPCheckContinuesTrace(t *testing.T) {
	f := newFixture(t)
	srv := httptest.NewServer(extauthz.NewHTTPHandler(f.a, extauthz.HTTPOptions{}))
	t.Cleanup(srv.Close)
	rec := traced(t)
	req, err := http.NewRequest("GET", srv.URL+"/orders", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("traceparent", traceparentM)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	check := spansOf(t, rec, meshTrace, "ext_authz.Check", 1)[0]
	if got := check.Parent().SpanID().String(); got != meshSpan {
		t.Errorf("Check span's parent = %s, want %s", got, meshSpan)
	}
}

type writerFunc func([]byte) (int, error)

func (w writerFunc) Write(p []byte) (int, error) { return w(p) }

// BenchmarkCheckTracing is a cached Check whose request carries Envoy's traceparent, with tracing off (what
// every deployment without OTEL_TRACES_EXPORTER pays) and on (every Check sampled; spans go nowhere, so
// this is the instrumentation's own cost, not an exporter's).
func BenchmarkCheckTracing(b *testing.B) {
	f := newFixtureWith(b, nil, cacheOn)
	h := map[string]string{"authorization": "Bearer " + f.iss.MustMint(b, at(f.iss.Access())), "traceparent": traceparentE}
	req := extauthz.Probe{Method: "GET", Host: "api.example.com", Path: "/orders", Headers: h}.CheckRequest()
	s := extauthz.NewServer(f.a)
	for _, on := range []bool{false, true} {
		b.Run(map[bool]string{false: "off", true: "on"}[on], func(b *testing.B) {
			if on {
				tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
				tracing.Install(tp)
				b.Cleanup(func() { tracing.Off(); _ = tp.Shutdown(context.Background()) })
			}
			b.ReportAllocs()
			for b.Loop() {
				if resp, _ := s.Check(b.Context(), req); resp == nil {
					b.Fatal("no answer")
				}
			}
		})
	}
}
