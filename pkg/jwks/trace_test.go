package jwks_test

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/cognito-authz/cognito-authz/pkg/jwks"
	"github.com/cognito-authz/cognito-authz/pkg/testkit"
	"github.com/cognito-authz/cognito-authz/pkg/tracing"
)

// TestFetchSpan: with tracing on, every fetch is a root span (it is detached from the request that may
// have triggered it) naming the URL and the keys it brought; with tracing off, none is recorded.
func TestFetchSpan(t *testing.T) { // not parallel: tracing is process-wide
	iss := testkit.Start(t)
	set, err := jwks.New(jwks.Options{URL: iss.JWKSURL()})
	if err != nil {
		t.Fatal(err)
	}
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	tracing.Install(tp)
	t.Cleanup(func() { tracing.Off(); _ = tp.Shutdown(context.Background()) })
	if err := set.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	tracing.Off()
	if err := set.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	ended := rec.Ended()
	if len(ended) != 1 || ended[0].Name() != "jwks.fetch" || ended[0].Parent().IsValid() {
		t.Fatalf("spans = %v, want one root jwks.fetch", ended)
	}
	attrs := map[string]string{}
	for _, a := range ended[0].Attributes() {
		attrs[string(a.Key)] = a.Value.Emit()
	}
	if attrs["jwks.url"] != iss.JWKSURL() || attrs["jwks.keys"] == "0" || attrs["jwks.keys"] == "" {
		t.Errorf("jwks.fetch attributes = %v, want the URL and a key count", attrs)
	}
}
