// Package extauthz speaks Envoy's external-authorization wire formats: it translates a CheckRequest into an
// authz.Request and an authz.Decision into a CheckResponse. It is the only importer of go-control-plane and
// holds no decision logic.
package extauthz

import (
	"context"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"go.opentelemetry.io/otel/trace"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/cognito-authz/cognito-authz/pkg/authz"
	"github.com/cognito-authz/cognito-authz/pkg/tracing"
)

// Checker decides requests; *authz.Authorizer is one.
type Checker interface {
	Check(ctx context.Context, r *authz.Request) authz.Decision
}

// Server is the envoy.service.auth.v3.Authorization gRPC service.
type Server struct {
	authv3.UnimplementedAuthorizationServer
	checker  Checker
	identity bool // identity fields in the dynamic metadata
}

// ServerOption configures a Server.
type ServerOption func(*Server)

// WithIdentityMetadata adds the identity's sub, client_id, token_use and pool to every answer's dynamic
// metadata (config dynamic_metadata.identity). Off, the metadata holds outcome, reason, rule and dry_run.
func WithIdentityMetadata(on bool) ServerOption { return func(s *Server) { s.identity = on } }

// NewServer serves c's decisions. A reloadable service passes a Checker that asks the current generation
// (authz.Observed): that is the one indirection a reload goes through.
func NewServer(c Checker, opts ...ServerOption) *Server {
	s := &Server{checker: c}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Register adds s to g as the envoy.service.auth.v3.Authorization service; pkg/server takes it as
// Options.Register, so only this package knows Envoy's types. The server must use this package's codec
// (CodecOption): the service decodes a CheckRequest straight from its bytes (checkRequest) and answers
// pre-encoded bytes, which only Codec reads and writes; any other codec fails every Check, closed.
func (s *Server) Register(g *grpc.Server) { g.RegisterService(&serviceDesc, s) }

// serviceDesc is Envoy's Authorization service (authv3.Authorization_ServiceDesc, same name, method and
// proto file) with a Check handler that decodes only what a Check reads.
var serviceDesc = grpc.ServiceDesc{
	ServiceName: authv3.Authorization_ServiceDesc.ServiceName,
	HandlerType: (*authv3.AuthorizationServer)(nil),
	Methods:     []grpc.MethodDesc{{MethodName: "Check", Handler: checkHandler}},
	Metadata:    authv3.Authorization_ServiceDesc.Metadata,
}

func checkHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	s := srv.(*Server)
	in := new(checkRequest)
	if err := dec(in); err != nil {
		return nil, err
	}
	if interceptor == nil {
		return s.check(ctx, in), nil
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: authv3.Authorization_Check_FullMethodName}
	return interceptor(ctx, in, info, func(ctx context.Context, req any) (any, error) {
		return s.check(ctx, req.(*checkRequest)), nil
	})
}

// Check implements envoy.service.auth.v3.Authorization/Check for a caller in this process that holds a
// decoded CheckRequest; over gRPC, the same check reads the request's bytes. It always answers with a
// CheckResponse: a gRPC error would count as an authorization-service failure in Envoy, which a deny is
// not.
//
// The answer is pre-encoded (see encode): its fields travel as bytes, with only Status set as a field.
// Read it in this process with Summarize, or Decode.
func (s *Server) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	r := fromMessage(req)
	return s.check(ctx, &r).response(), nil
}

// check decides one request and encodes the answer.
func (s *Server) check(ctx context.Context, req *checkRequest) *answer {
	r := req.request()
	var span trace.Span // nil while tracing is off
	if tracing.Enabled() {
		// Envoy's gRPC client puts its own span in the call's metadata; without Envoy tracing, the
		// request's headers may still carry the trace the mesh started.
		md, _ := metadata.FromIncomingContext(ctx)
		ctx, span = tracing.StartCheck(ctx, "ext_authz.Check", tracing.Values(md), headerCarrier{r.Headers})
	}
	d := s.checker.Check(ctx, &r)
	if span != nil {
		endCheck(span, "grpc", &d)
	}
	return s.encode(&d)
}

// grpcCode maps an outcome onto the status of the CheckResponse.
var grpcCode = map[authz.Outcome]codes.Code{
	authz.Allow:           codes.OK,
	authz.Unauthenticated: codes.Unauthenticated,
	authz.Forbidden:       codes.PermissionDenied,
	authz.Unavailable:     codes.Unavailable,
	authz.BadRequest:      codes.InvalidArgument,
	authz.Answered:        codes.Unauthenticated, // any code but OK: Envoy sends the denied_response as it is
}

// Response maps a transport-free decision onto Envoy's CheckResponse, with the default (lean) metadata.
// Server.Check answers the same message, encoded from bytes made once.
func Response(d *authz.Decision) *authv3.CheckResponse { return response(d, false) }

func response(d *authz.Decision, identity bool) *authv3.CheckResponse {
	if d.Allowed() {
		return &authv3.CheckResponse{
			Status: &rpcstatus.Status{Code: int32(codes.OK)},
			HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
				Headers:         overwrite(d.Headers), // OVERWRITE_IF_EXISTS_OR_ADD, and append=false for older Envoys
				HeadersToRemove: d.Remove,             // every identity header without a value: no spoofing

				// x-auth-dry-run on a dry run; Set-Cookie of a refreshed session, each its own option.
				ResponseHeadersToAdd: append(dryRunHeaders(d), options(d.ResponseHeaders)...),
			}},
			DynamicMetadata: Metadata(d, identity),
		}
	}
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(grpcCode[d.Outcome]), Message: string(d.Reason)},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(d.HTTPStatus())},
			Headers: options(d.Headers), // www-authenticate on 401, location and set-cookie of sign-in; never token contents
			Body:    d.Body,
		}},
		DynamicMetadata: Metadata(d, identity),
	}
}

// appendFalse is the legacy append flag of every header option: one immutable message, only ever read by
// the codec, instead of one allocation per header per response.
var appendFalse = wrapperspb.Bool(false)

// appendTrue is the legacy append flag of a header that repeats.
var appendTrue = wrapperspb.Bool(true)

// options makes the header options of a downstream response: each Set-Cookie appended as its own header
// (a browser needs every one), every other header overwriting.
func options(hs []authz.Header) []*corev3.HeaderValueOption {
	out := overwrite(hs)
	for _, o := range out {
		if strings.EqualFold(o.Header.Key, "set-cookie") {
			o.AppendAction, o.Append = corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD, appendTrue
		}
	}
	return out
}

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
