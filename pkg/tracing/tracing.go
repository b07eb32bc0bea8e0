// Package tracing continues the traces Envoy starts. It is OpenTelemetry, off by default and on when
// OTEL_TRACES_EXPORTER=otlp, configured by the standard OTEL_* variables (exporter endpoint, protocol,
// headers, sampler, batch processor). A Check's span takes its parent from the gRPC call's metadata (what
// Envoy's ext_authz gRPC client injects), else from the CheckRequest's own headers (traceparent, or B3 as
// Zipkin-style meshes send), so the authorization shows up inside the request's trace.
//
// While tracing is off, every function here returns at once without allocating: the Check path pays one
// atomic load.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"go.opentelemetry.io/contrib/propagators/b3"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
)

// Name is the instrumentation scope of every span this service makes.
const Name = "github.com/cognito-authz/cognito-authz"

// ErrConfig marks an OTEL_* setting this service cannot honour.
var ErrConfig = errors.New("tracing: unsupported setting")

var (
	on         atomic.Bool
	tracer     trace.Tracer = trace.NewNoopTracerProvider().Tracer(Name)
	propagator propagation.TextMapPropagator
)

// Setup reads the OTEL_* variables through getenv and, when OTEL_TRACES_EXPORTER is otlp, installs an OTLP
// exporter (OTEL_EXPORTER_OTLP_TRACES_PROTOCOL or OTEL_EXPORTER_OTLP_PROTOCOL: grpc, or http/protobuf, the
// specification's default). It returns the function that flushes and stops it; with tracing off that
// function does nothing. Any other exporter name but none is an error, so a typo does not silently lose
// traces.
func Setup(ctx context.Context, getenv func(string) string) (shutdown func(context.Context) error, err error) {
	noop := func(context.Context) error { return nil }
	exporter := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER"))
	switch exporter {
	case "", "none":
		return noop, nil
	case "otlp":
	default:
		return noop, fmt.Errorf("%w: OTEL_TRACES_EXPORTER=%q (otlp or none)", ErrConfig, exporter)
	}
	protocol := getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if protocol == "" {
		protocol = getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	var exp sdktrace.SpanExporter
	switch protocol {
	case "", "http/protobuf":
		exp, err = otlptracehttp.New(ctx)
	case "grpc":
		exp, err = otlptracegrpc.New(ctx)
	default:
		return noop, fmt.Errorf("%w: OTLP protocol %q (grpc or http/protobuf)", ErrConfig, protocol)
	}
	if err != nil {
		return noop, fmt.Errorf("tracing: exporter: %w", err)
	}
	res, err := resource.Merge(resource.Default(),
		resource.NewSchemaless(semconv.ServiceName("cognito-authz")))
	if err != nil {
		return noop, fmt.Errorf("tracing: resource: %w", err)
	}
	if env, err := resource.New(ctx, resource.WithFromEnv()); err == nil { // OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES win
		if merged, err := resource.Merge(res, env); err == nil {
			res = merged
		}
	}
	// The SDK reads OTEL_TRACES_SAMPLER(_ARG) and OTEL_BSP_* itself.
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	Install(tp)
	return func(ctx context.Context) error {
		on.Store(false)
		return tp.Shutdown(ctx)
	}, nil
}

// Install makes tp the provider of every span this service starts, with W3C trace context and B3 (single
// and multi header) propagation. Setup calls it; tests call it with an in-memory recorder.
func Install(tp trace.TracerProvider) {
	propagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{},
		b3.New(b3.WithInjectEncoding(b3.B3MultipleHeader|b3.B3SingleHeader)))
	tracer = tp.Tracer(Name)
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagator)
	on.Store(true)
}

// Enabled reports whether spans are being recorded.
func Enabled() bool { return on.Load() }

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
	if !on.Load() {
		return ctx, trace.SpanFromContext(ctx)
	}
	for _, c := range carriers {
		if c == nil {
			continue
		}
		if pc := propagator.Extract(ctx, c); trace.SpanContextFromContext(pc).IsValid() {
			ctx = pc
			break
		}
	}
	return tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer))
}

// Start starts a child span of the span in ctx, only when that one is recording: a request that is not
// traced costs nothing here.
func Start(ctx context.Context, name string) (context.Context, trace.Span) {
	parent := trace.SpanFromContext(ctx)
	if !on.Load() || !parent.IsRecording() {
		return ctx, parent
	}
	return tracer.Start(ctx, name)
}

// StartRoot starts a span with no parent, for work detached from any request (a key set refresh).
func StartRoot(ctx context.Context, name string) (context.Context, trace.Span) {
	if !on.Load() {
		return ctx, trace.SpanFromContext(ctx)
	}
	return tracer.Start(ctx, name, trace.WithNewRoot())
}

// TraceID returns the trace id of the span in ctx as 32 hex digits, or "" when there is none.
func TraceID(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.HasTraceID() {
		return ""
	}
	return sc.TraceID().String()
}

// Off stops recording (tests; Setup's shutdown does the same).
func Off() { on.Store(false) }
