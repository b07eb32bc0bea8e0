package extauthz

import (
	"sync"
	"sync/atomic"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/cognito-authz/cognito-authz/pkg/authz"
)

// Metadata is the CheckResponse's dynamic_metadata: Envoy stores it under the filter's namespace
// (envoy.filters.http.ext_authz) for access logs, e.g. %DYNAMIC_METADATA(envoy.filters.http.ext_authz:reason)%,
// and for later filters. It is kept lean, as every Envoy decodes it on every request: outcome, reason, rule
// and dry_run always (outcome is dry_run_<outcome> on a dry run, as in the metrics). With identity (the
// config's dynamic_metadata.identity) it also has sub, client_id, token_use and pool when the token
// verified: the upstream already gets them as headers, so only ask for them to log them in Envoy.
//
// It never holds the token or a claim set. Values from closed sets (outcomes, reasons, rules, pools,
// token uses) are built once and shared: protobuf messages may be marshalled concurrently, and nothing
// writes them after they are interned. Server.Check encodes the same Struct without building it; this is
// the reference it is tested against, and what Response carries.
func Metadata(d *authz.Decision, identity bool) *structpb.Struct {
	n := 4
	if identity {
		n = 8
	}
	f := make(map[string]*structpb.Value, n)
	f[keyOutcome] = intern(d.Label())
	f[keyReason] = intern(string(d.Reason))
	f[keyRule] = intern(d.Rule)
	f[keyDryRun] = boolValue[d.DryRun]
	if id := d.Identity; id != nil && identity {
		if id.Subject != "" {
			f[keySub] = structpb.NewStringValue(id.Subject)
		}
		if id.ClientID != "" {
			f[keyClientID] = intern(id.ClientID) // closed: the configured app clients
		}
		if id.TokenUse != "" {
			f[keyTokenUse] = intern(id.TokenUse)
		}
		if id.Pool != "" {
			f[keyPool] = intern(id.Pool)
		}
	}
	return &structpb.Struct{Fields: f}
}

var boolValue = map[bool]*structpb.Value{true: structpb.NewBoolValue(true), false: structpb.NewBoolValue(false)}

// maxInterned bounds the interned values: every caller passes closed-set strings, but the bound keeps a
// mistake from growing memory; past it, values are made per call.
const maxInterned = 4096

var (
	interned  sync.Map // string → *structpb.Value
	nInterned atomic.Int64
)

func intern(s string) *structpb.Value {
	if v, ok := interned.Load(s); ok {
		return v.(*structpb.Value)
	}
	v := structpb.NewStringValue(s)
	if nInterned.Load() >= maxInterned {
		return v
	}
	if prev, loaded := interned.LoadOrStore(s, v); loaded {
		return prev.(*structpb.Value)
	}
	nInterned.Add(1)
	return v
}

// dryRunHeaders marks a dry-run allow for the downstream client (OkHttpResponse.response_headers_to_add):
// x-auth-dry-run: <would-be reason>. Nil for every other decision.
func dryRunHeaders(d *authz.Decision) []*corev3.HeaderValueOption {
	if !d.DryRun {
		return nil
	}
	return []*corev3.HeaderValueOption{{
		Header:       &corev3.HeaderValue{Key: authz.DryRunHeader, Value: string(d.Reason)},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		Append:       wrapperspb.Bool(false),
	}}
}
