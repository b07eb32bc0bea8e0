package authz

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"strings"
	"time"

	"github.com/cognito-authz/cognito-authz/pkg/token"
	"github.com/cognito-authz/cognito-authz/pkg/tracing"
)

// Observer records decisions; *metrics.Metrics is one. Every argument is from a closed set.
type Observer interface {
	ObserveCheck(transport, outcome, reason, rule string, took time.Duration)
}

// Observed is how a transport asks the current Authorizer: it counts, times and logs the decision, and
// changes nothing in it (dry run and the cancellation guard are the Authorizer's, see Check). One Observed
// serves one transport ("grpc", "http").
type Observed struct {
	current   func() *Authorizer
	transport string
	obs       Observer
	log       *slog.Logger
}

// NewObserved wraps the Authorizer that current returns at each request (a reloaded config takes effect
// between requests). obs may be nil; log nil is slog.Default().
func NewObserved(current func() *Authorizer, transport string, obs Observer, log *slog.Logger) *Observed {
	if log == nil {
		log = slog.Default()
	}
	return &Observed{current: current, transport: transport, obs: obs, log: log}
}

// Check decides r with the current Authorizer, then records the decision.
func (o *Observed) Check(ctx context.Context, r *Request) Decision {
	start := time.Now()
	a := o.current()
	d := a.Check(ctx, r)
	if o.obs != nil {
		o.obs.ObserveCheck(o.transport, d.Label(), string(d.Reason), d.Rule, time.Since(start))
	}
	a.logDecision(ctx, o.log, o.transport, r, &d)
	return d
}

// Bounds on what a log line copies from the request: each of these is the client's to choose.
const (
	maxLogMethod = 16
	maxLogHost   = 256
	maxLogPath   = 512
	maxLogID     = 128
	maxLogKID    = 128
	maxLogError  = 512
)

// logDecision writes one line per deny at info ("deny", dry runs included, marked) and one per allow at
// debug ("allow"); with debug off an allow costs one Enabled call.
//
// Security invariant: a line never holds the token, the Authorization or Cookie header, or a claim set.
// It holds the first 12 hex digits of the token's SHA-256 (enough to correlate, useless to replay), the
// kid, and sub, client_id and token_use only when the token verified. Decision.Err is logged too: token
// and jwks errors name the failing check and at most a claim value or kid, never the token; a test runs a
// whole service and looks for every 16-byte window of every token it sent in the logs.
func (a *Authorizer) logDecision(ctx context.Context, log *slog.Logger, transport string, r *Request, d *Decision) {
	level, msg := slog.LevelInfo, "deny"
	if d.Allowed() && !d.DryRun {
		level, msg = slog.LevelDebug, "allow"
	}
	if !log.Enabled(ctx, level) {
		return
	}
	status := d.HTTPStatus()
	if d.DryRun {
		status = d.WouldBe.HTTPStatus() // what the client would have had; it was allowed
	}
	attrs := make([]slog.Attr, 0, 20)
	attrs = append(attrs,
		slog.String("reason", string(d.Reason)),
		slog.String("rule", d.Rule),
		slog.String("outcome", d.Label()),
		slog.Int("status", status),
		slog.String("transport", transport),
		slog.String("method", clip(r.Method, maxLogMethod)),
		slog.String("host", clip(r.Host, maxLogHost)),
		slog.String("path", clip(pathOnly(r.Path), maxLogPath)),
		slog.String("request_id", clip(r.RequestID, maxLogID)),
	)
	if d.DryRun {
		attrs = append(attrs, slog.Bool("dry_run", true))
	}
	if id := tracing.TraceID(ctx); id != "" {
		attrs = append(attrs, slog.String("trace_id", id))
	}
	kid := ""
	if id := d.Identity; id != nil {
		attrs = append(attrs, slog.String("sub", id.Subject), slog.String("client_id", id.ClientID),
			slog.String("token_use", id.TokenUse), slog.String("pool", id.Pool))
		kid = id.KID
	}
	if raw, err := token.Extract(r.Headers, a.opts.Sources, a.opts.MaxBytes); err == nil {
		sum := sha256.Sum256([]byte(raw))
		attrs = append(attrs, slog.String("token_sha256", hex.EncodeToString(sum[:6])))
		if kid == "" {
			kid = unverifiedKID(raw)
		}
	}
	if kid != "" {
		attrs = append(attrs, slog.String("kid", kid))
	}
	if d.Err != nil {
		attrs = append(attrs, slog.String("error", clip(d.Err.Error(), maxLogError)))
	}
	// The decision is made; its log line must not be lost because Envoy gave up meanwhile.
	log.LogAttrs(context.WithoutCancel(ctx), level, msg, attrs...)
}

// unverifiedKID reads the kid from the token header without verifying anything, for the log line of a
// deny. It is the client's to choose: anything long or unprintable is left out.
func unverifiedKID(raw string) string {
	seg, _, _ := strings.Cut(raw, ".")
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return ""
	}
	var h struct {
		KID string `json:"kid"`
	}
	if json.Unmarshal(b, &h) != nil || len(h.KID) > maxLogKID {
		return ""
	}
	for i := 0; i < len(h.KID); i++ {
		if c := h.KID[i]; c < 0x21 || c > 0x7e {
			return ""
		}
	}
	return h.KID
}

// pathOnly drops the query, the fragment and everything from the first path parameter on: they carry
// codes, state and sometimes tokens ("/cb;access_token=…", a Tomcat-style ";jsessionid=…").
func pathOnly(p string) string {
	if i := strings.IndexAny(p, "?#;"); i >= 0 {
		return p[:i]
	}
	return p
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
