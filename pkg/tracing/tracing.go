// Package tracing continues the traces Envoy starts. It is OpenTelemetry, off by default and on when
// OTEL_TRACES_EXPORTER=otlp (see package otlp, which installs the exporter; this package needs only the
// OpenTelemetry API, so the core packages can start spans without importing an exporter or gRPC). A Check's span takes its parent from the gRPC call's metadata (what
// Envoy's ext_authz gRPC client injects), else from the CheckRequest's own headers (traceparent, or B3 as
// Zipkin-style meshes send), so the authorization shows up inside the request's trace.
//
// While tracing is off, every function here returns at once without allocating: the Check path pays one
// atomic load.
package tracing

import (
	"context"
	"strings"
	"sync/atomic"

	"go.opentelemetry.io/contrib/propagators/b3"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Name is the instrumentation scope of every span this service makes.
const Name = "github.com/cognito-authz/cognito-authz"

// installed is what Install set, nil while tracing is off. One atomic pointer, so a Check reads the tracer
// and the propagator of the same Install, and turning tracing on or off races with nothing.
var installed atomic.Pointer[state]

type state struct {
	tracer     trace.Tracer
	propagator propagation.TextMapPropagator
}

// Install makes tp the provider of every span this service starts, with W3C trace context and B3 (single
// and multi header) propagation. otlp.Setup calls it; tests call it with an in-memory recorder.
func Install(tp trace.TracerProvider) {
	st := &state{
		tracer: tp.Tracer(Name),
		propagator: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{},
			b3.New(b3.WithInjectEncoding(b3.B3MultipleHeader|b3.B3SingleHeader))),
	}
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(st.propagator)
	installed.Store(st)
}

// Enabled reports whether spans are being recorded.
func Enabled() bool { return installed.Load() != nil }

// Values carries propagation fields in a multi-valued map such as gRPC metadata (keys lower-case).
type Values map[string][]string

// Get returns the first value of key.
func (v Values) Get(key string) string {
	if vs := v[strings.ToLower(key)]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}

// Set replaces key's values.
func (v Values) Set(key, value string) { v[strings.ToLower(key)] = []string{value} }

// Keys lists the keys.
func (v Values) Keys() []string {
	out := make([]string, 0, len(v))
	for k := range v {
		out = append(out, k)
	}
	return out
}

// StartCheck starts the server span of one Check. Its parent is the first of carriers that holds a valid
// span context: pass the call's metadata first and the request's headers second. With tracing off it
// returns ctx and a span that records nothing, without allocating.
func StartCheck(ctx context.Context, name string, carriers ...propagation.TextMapCarrier) (context.Context, trace.Span) {
	st := installed.Load()
	if st == nil {
		return ctx, trace.SpanFromContext(ctx)
	}
	for _, c := range carriers {
		if c == nil {
			continue
		}
		if pc := st.propagator.Extract(ctx, c); trace.SpanContextFromContext(pc).IsValid() {
			ctx = pc
			break
		}
	}
	return st.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer))
}

// Start starts a child span of the span in ctx, only when that one is recording: a request that is not
// traced costs nothing here.
func Start(ctx context.Context, name string) (context.Context, trace.Span) {
	parent := trace.SpanFromContext(ctx)
	st := installed.Load()
	if st == nil || !parent.IsRecording() {
		return ctx, parent
	}
	return st.tracer.Start(ctx, name)
}

// StartRoot starts a span with no parent, for work detached from any request (a key set refresh).
func StartRoot(ctx context.Context, name string) (context.Context, trace.Span) {
	st := installed.Load()
	if st == nil {
		return ctx, trace.SpanFromContext(ctx)
	}
	return st.tracer.Start(ctx, name, trace.WithNewRoot())
}

// TraceID returns the trace id of the span in ctx as 32 hex digits, or "" when there is none.
func TraceID(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.HasTraceID() {
		return ""
	}
	return sc.TraceID().String()
}

// Off stops recording (otlp.Setup's shutdown; tests).
func Off() { installed.Store(nil) }
