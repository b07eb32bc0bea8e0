package tracing_test

import (
	"context"
	"testing"

	"github.com/cognito-authz/cognito-authz/pkg/tracing"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

const (
	envoyTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	envoySpan  = "00f067aa0ba902b7"
	otherTrace = "0af7651916cd43dd8448eb211c80319c"
	otherSpan  = "b7ad6b7169203331"
)

// record installs an in-memory recorder for one test.
func record(t *testing.T) *tracetest.SpanRecorder {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	tracing.Install(tp)
	t.Cleanup(func() {
		_ = tp.Shutdown(context.Background())
		tracing.Off()
	})
	return rec
}

func TestStartCheckParent(t *testing.T) {
	traceparent := "00-" + envoyTrace + "-" + envoySpan + "-01"
	tests := []struct {
		name      string
		carriers  []propagation.TextMapCarrier
		wantTrace string
		wantSpan  string // parent span id; "" means a new root
	}{
		{name: "w3c_in_request_headers", carriers: []propagation.TextMapCarrier{nil, propagation.MapCarrier{"traceparent": traceparent}},
			wantTrace: envoyTrace, wantSpan: envoySpan},
		{name: "w3c_in_grpc_metadata", carriers: []propagation.TextMapCarrier{tracing.Values{"traceparent": {traceparent}}},
			wantTrace: envoyTrace, wantSpan: envoySpan},
		{name: "metadata_wins_over_headers", carriers: []propagation.TextMapCarrier{
			tracing.Values{"traceparent": {traceparent}},
			propagation.MapCarrier{"traceparent": "00-" + otherTrace + "-" + otherSpan + "-01"}},
			wantTrace: envoyTrace, wantSpan: envoySpan},
		{name: "invalid_metadata_falls_back_to_headers", carriers: []propagation.TextMapCarrier{
			tracing.Values{"traceparent": {"00-zz-yy-01"}},
			propagation.MapCarrier{"traceparent": traceparent}},
			wantTrace: envoyTrace, wantSpan: envoySpan},
		{name: "b3_multi_header", carriers: []propagation.TextMapCarrier{nil, propagation.MapCarrier{
			"x-b3-traceid": envoyTrace, "x-b3-spanid": envoySpan, "x-b3-sampled": "1"}},
			wantTrace: envoyTrace, wantSpan: envoySpan},
		{name: "b3_single_header", carriers: []propagation.TextMapCarrier{nil, propagation.MapCarrier{
			"b3": envoyTrace + "-" + envoySpan + "-1"}},
			wantTrace: envoyTrace, wantSpan: envoySpan},
		{name: "no_context_is_a_root", carriers: []propagation.TextMapCarrier{tracing.Values{}, propagation.MapCarrier{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := record(t)
			ctx, span := tracing.StartCheck(context.Background(), "check", tt.carriers...)
			_, child := tracing.Start(ctx, "verify")
			child.End()
			span.End()
			ended := rec.Ended()
			if len(ended) != 2 {
				t.Fatalf("ended %d spans, want 2", len(ended))
			}
			check, verify := ended[1], ended[0]
			if got := check.Parent().SpanID(); tt.wantSpan == "" && got.IsValid() || tt.wantSpan != "" && got.String() != tt.wantSpan {
				t.Errorf("check's parent span = %s, want %q", got, tt.wantSpan)
			}
			if tt.wantTrace != "" && check.SpanContext().TraceID().String() != tt.wantTrace {
				t.Errorf("check's trace = %s, want %s", check.SpanContext().TraceID(), tt.wantTrace)
			}
			if verify.Parent().SpanID() != check.SpanContext().SpanID() {
				t.Errorf("verify's parent = %s, want the check span %s", verify.Parent().SpanID(), check.SpanContext().SpanID())
			}
			if got := tracing.TraceID(ctx); got != check.SpanContext().TraceID().String() {
				t.Errorf("TraceID() = %q, want %s", got, check.SpanContext().TraceID())
			}
			if check.SpanKind() != trace.SpanKindServer {
				t.Errorf("check span kind = %v, want server", check.SpanKind())
			}
		})
	}
}

func TestOffCostsNothing(t *testing.T) {
	tracing.Off()
	headers := propagation.MapCarrier{"traceparent": "00-" + envoyTrace + "-" + envoySpan + "-01"}
	ctx := context.Background()
	allocs := testing.AllocsPerRun(100, func() {
		c, span := tracing.StartCheck(ctx, "check", headers)
		_, child := tracing.Start(c, "verify")
		child.End()
		span.End()
		_ = tracing.TraceID(c)
	})
	if allocs != 0 {
		t.Errorf("tracing off allocates %v times per Check, want 0", allocs)
	}
	if id := tracing.TraceID(ctx); id != "" {
		t.Errorf("TraceID() with tracing off = %q, want empty", id)
	}
}

func TestStartNeedsRecordingParent(t *testing.T) {
	rec := record(t)
	_, span := tracing.Start(context.Background(), "orphan")
	span.End()
	if n := len(rec.Ended()); n != 0 {
		t.Errorf("a child without a traced parent recorded %d spans, want 0", n)
	}
	_, root := tracing.StartRoot(context.Background(), "jwks.fetch")
	root.End()
	if n := len(rec.Ended()); n != 1 {
		t.Errorf("StartRoot recorded %d spans, want 1", n)
	}
}
