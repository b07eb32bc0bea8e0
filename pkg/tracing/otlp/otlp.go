// Package otlp turns tracing on from the standard OTEL_* variables: an OTLP exporter over gRPC or HTTP, the
// SDK's sampler and batch processor as the variables set them, and the resource from OTEL_SERVICE_NAME and
// OTEL_RESOURCE_ATTRIBUTES. Only the service's main calls it.
package otlp

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"

	"github.com/cognito-authz/cognito-authz/pkg/tracing"
)

// ErrConfig marks an OTEL_* setting this service cannot honour.
var ErrConfig = errors.New("tracing: unsupported setting")

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
	tracing.Install(tp)
	return func(ctx context.Context) error {
		tracing.Off()
		return tp.Shutdown(ctx)
	}, nil
}
