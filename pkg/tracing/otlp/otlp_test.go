package otlp_test

import (
	"context"
	"errors"
	"testing"

	"github.com/cognito-authz/cognito-authz/pkg/tracing"
	"github.com/cognito-authz/cognito-authz/pkg/tracing/otlp"
)

func env(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }

func TestSetup(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		wantOn  bool
		wantErr error
	}{
		{name: "unset_is_off", env: nil},
		{name: "none_is_off", env: map[string]string{"OTEL_TRACES_EXPORTER": "none"}},
		{name: "unknown_exporter_refused", env: map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, wantErr: otlp.ErrConfig},
		{name: "unknown_protocol_refused", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, wantErr: otlp.ErrConfig},
		{name: "otlp_http_default", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}, wantOn: true},
		{name: "otlp_grpc", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}, wantOn: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { // not parallel: the provider is process-wide
			shutdown, err := otlp.Setup(t.Context(), env(tt.env))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Setup() error = %v, want %v", err, tt.wantErr)
			}
			if got := tracing.Enabled(); got != tt.wantOn {
				t.Errorf("Enabled() = %v, want %v", got, tt.wantOn)
			}
			ctx, cancel := context.WithCancel(context.Background())
			cancel() // nothing listens on the endpoint: do not wait for the flush
			_ = shutdown(ctx)
			if tracing.Enabled() {
				t.Error("still enabled after shutdown")
			}
		})
	}
}
