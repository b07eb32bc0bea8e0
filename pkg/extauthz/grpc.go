// Package extauthz speaks Envoy's external-authorization wire formats: it translates a CheckRequest into an
// authz.Request and an authz.Decision into a CheckResponse. It is the only importer of go-control-plane and
// holds no decision logic.
package extauthz

import (
	"context"
	"slices"
	"strings"
	"sync"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/cognito-authz/cognito-authz/pkg/authz"
	"github.com/cognito-authz/cognito-authz/pkg/token"
)

// Checker decides requests; *authz.Authorizer is one.
type Checker interface {
	Check(ctx context.Context, r *authz.Request) authz.Decision
}

// Server is the envoy.service.auth.v3.Authorization gRPC service.
type Server struct {
	authv3.UnimplementedAuthorizationServer
	checker Checker
	denied  sync.Map // authz.Reason → *deniedResponse
}

// deniedResponse is the fixed part of one reason's deny, built once: the status and the denied HTTP
// response (status, headers, body) are the same for every deny of a reason, so every such response shares
// them. That is safe because a message returned from a gRPC handler is only read, by the codec (its cached
// sizes are atomic), and nothing on this server's path writes to it: no interceptor or stats handler here
// touches responses. The envelope and its dynamic metadata (rule, sub, dry run) are built per request. The
// decision it was built from is kept, so a deny that differs gets parts of its own.
type deniedResponse struct {
	outcome authz.Outcome
	body    string
	headers []authz.Header
	status  *rpcstatus.Status
	http    *authv3.DeniedHttpResponse
}

// NewServer serves c's decisions. A reloadable service passes a Checker that asks the current generation
// (authz.Observed): that is the one indirection a reload goes through.
func NewServer(c Checker) *Server { return &Server{checker: c} }

// Check implements envoy.service.auth.v3.Authorization/Check. It always answers with a CheckResponse: a
// gRPC error would count as an authorization-service failure in Envoy, which a deny is not.
func (s *Server) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	r := Request(req)
	d := s.checker.Check(ctx, &r)
	if !d.Allowed() {
		return s.deny(&d), nil
	}
	return Response(&d), nil
}

// deny answers d with the shared fixed part of its reason's deny, building it on first use, and d's own
// dynamic metadata.
func (s *Server) deny(d *authz.Decision) *authv3.CheckResponse {
	var p *deniedResponse
	if v, ok := s.denied.Load(d.Reason); ok {
		if c := v.(*deniedResponse); c.outcome == d.Outcome && c.body == d.Body && slices.Equal(c.headers, d.Headers) {
			p = c
		}
	}
	if p == nil {
		r := Response(d)
		p = &deniedResponse{outcome: d.Outcome, body: d.Body, headers: slices.Clone(d.Headers), status: r.Status, http: r.GetDeniedResponse()}
		s.denied.Store(d.Reason, p)
	}
	return &authv3.CheckResponse{
		Status:          p.status,
		HttpResponse:    &authv3.CheckResponse_DeniedResponse{DeniedResponse: p.http},
		DynamicMetadata: Metadata(d),
	}
}

// Request translates a CheckRequest. Header names arrive lower-cased from Envoy, in the headers map or, with
// encode_raw_headers, in header_map with raw byte values; duplicates are comma-joined as Envoy does.
func Request(req *authv3.CheckRequest) authz.Request {
	attrs := req.GetAttributes()
	http := attrs.GetRequest().GetHttp()
	r := authz.Request{
		Method:            http.GetMethod(),
		Host:              http.GetHost(),
		Path:              http.GetPath(),
		RequestID:         http.GetId(),
		ContextExtensions: attrs.GetContextExtensions(),
	}
	if hm := http.GetHeaderMap(); hm != nil && len(hm.GetHeaders()) > 0 {
		r.Headers = rawHeaders(hm.GetHeaders())
	} else {
		r.Headers = token.HeaderMap(http.GetHeaders())
	}
	if r.RequestID == "" {
		r.RequestID = r.Headers.Get("x-request-id")
	}
	return r
}

func rawHeaders(hs []*corev3.HeaderValue) token.HeaderMap {
	m := make(token.HeaderMap, len(hs))
	for _, h := range hs {
		k := strings.ToLower(h.GetKey())
		v := h.GetValue()
		if raw := h.GetRawValue(); len(raw) > 0 {
			v = string(raw)
		}
		if prev, ok := m[k]; ok {
			v = prev + "," + v
		}
		m[k] = v
	}
	return m
}

// grpcCode maps an outcome onto the status of the CheckResponse.
var grpcCode = map[authz.Outcome]codes.Code{
	authz.Allow:           codes.OK,
	authz.Unauthenticated: codes.Unauthenticated,
	authz.Forbidden:       codes.PermissionDenied,
	authz.Unavailable:     codes.Unavailable,
}

// Response maps a transport-free decision onto Envoy's CheckResponse.
func Response(d *authz.Decision) *authv3.CheckResponse {
	if d.Allowed() {
		return &authv3.CheckResponse{
			Status: &rpcstatus.Status{Code: int32(codes.OK)},
			HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
				Headers:         overwrite(d.Headers), // OVERWRITE_IF_EXISTS_OR_ADD, and append=false for older Envoys
				HeadersToRemove: d.Remove,             // every identity header without a value: no spoofing

				ResponseHeadersToAdd: dryRunHeaders(d), // x-auth-dry-run to the client on a dry run
			}},
			DynamicMetadata: Metadata(d),
		}
	}
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(grpcCode[d.Outcome]), Message: string(d.Reason)},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(d.Outcome.HTTPStatus())},
			Headers: overwrite(d.Headers), // www-authenticate on 401; never token contents
			Body:    d.Body,
		}},
		DynamicMetadata: Metadata(d),
	}
}

// appendFalse is the legacy append flag of every header option: one immutable message, only ever read by
// the codec, instead of one allocation per header per response.
var appendFalse = wrapperspb.Bool(false)

// overwrite makes header options that replace any value the request already has. Recent Envoys read
// append_action; older ones read only the legacy append flag (envoyproxy/envoy#42857), so both are set.
func overwrite(hs []authz.Header) []*corev3.HeaderValueOption {
	out := make([]*corev3.HeaderValueOption, len(hs))
	for i, h := range hs {
		out[i] = &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: h.Name, Value: h.Value},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
			Append:       appendFalse,
		}
	}
	return out
}
