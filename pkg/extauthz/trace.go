package extauthz

import (
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/cognito-authz/cognito-authz/pkg/authz"
	"github.com/cognito-authz/cognito-authz/pkg/token"
)

// headerCarrier reads trace context (traceparent, b3, x-b3-*) from a CheckRequest's headers, which
// Envoy sends with lower-case names.
type headerCarrier struct{ h token.Headers }

func (c headerCarrier) Get(key string) string { return c.h.Get(key) }
func (headerCarrier) Set(string, string)      {}
func (headerCarrier) Keys() []string          { return nil }

// endCheck ends a Check's span with what was decided; never a token, a header value or a claim.
func endCheck(span trace.Span, transport string, d *authz.Decision) {
	span.SetAttributes(
		attribute.String("authz.transport", transport),
		attribute.String("authz.outcome", d.Label()),
		attribute.String("authz.reason", string(d.Reason)),
		attribute.String("authz.rule", d.Rule),
	)
	if d.Outcome == authz.Unavailable {
		span.SetStatus(codes.Error, string(d.Reason))
	}
	span.End()
}
