package extauthz

import (
	"context"
	"fmt"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
)

// Probe describes a request to ask the service about, as Envoy would describe it.
type Probe struct {
	Method, Host, Path string
	Headers            map[string]string // names are lower-cased
	ContextExtensions  map[string]string
}

// CheckRequest builds the CheckRequest Envoy would send for p.
func (p Probe) CheckRequest() *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:            &authv3.AttributeContext_Peer{Address: sockAddr("127.0.0.1", 50000)},
		Destination:       &authv3.AttributeContext_Peer{Address: sockAddr("127.0.0.1", 8080)},
		ContextExtensions: p.ContextExtensions,
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: p.Headers["x-request-id"], Method: p.Method, Host: p.Host, Path: p.Path, Scheme: "http",
			Protocol: "HTTP/1.1", Headers: p.Headers,
		}},
	}}
}

func sockAddr(ip string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

// Check sends p to the Authorization service on conn.
func Check(ctx context.Context, conn grpc.ClientConnInterface, p Probe) (*authv3.CheckResponse, error) {
	return authv3.NewAuthorizationClient(conn).Check(ctx, p.CheckRequest())
}

// Summary is a CheckResponse in the terms an operator asks about.
type Summary struct {
	Allowed    bool
	Code       codes.Code // the CheckResponse status
	Reason     string     // the deny reason (status message)
	HTTPStatus int        // deny only
	Set        []string   // "name: value", headers set on the request (allow) or the response (deny)
	Remove     []string   // headers removed from the request (allow)
	Body       string     // deny body
}

// Decode returns r with every field decoded: a pre-encoded answer of Server.Check (in this process, its
// fields are bytes but for Status) as the CheckResponse Envoy receives; any other r as it is.
func Decode(r *authv3.CheckResponse) (*authv3.CheckResponse, error) {
	b, ok := preEncoded(r)
	if !ok {
		return r, nil
	}
	out := &authv3.CheckResponse{}
	if err := proto.Unmarshal(b, out); err != nil {
		return nil, fmt.Errorf("extauthz: decode a pre-encoded CheckResponse: %w", err)
	}
	return out, nil
}

// Summarize reads a CheckResponse, a pre-encoded one too. One that does not decode reads as its status
// alone (never an allow unless the status is OK).
func Summarize(r *authv3.CheckResponse) Summary {
	if full, err := Decode(r); err == nil {
		r = full
	}
	s := Summary{Code: codes.Code(r.GetStatus().GetCode()), Reason: r.GetStatus().GetMessage()}
	s.Allowed = s.Code == codes.OK
	header := func(hs []*corev3.HeaderValueOption) []string {
		out := make([]string, 0, len(hs))
		for _, h := range hs {
			out = append(out, fmt.Sprintf("%s: %s", h.GetHeader().GetKey(), h.GetHeader().GetValue()))
		}
		return out
	}
	if ok := r.GetOkResponse(); ok != nil {
		s.Set, s.Remove = header(ok.GetHeaders()), ok.GetHeadersToRemove()
	}
	if d := r.GetDeniedResponse(); d != nil {
		s.HTTPStatus, s.Set, s.Body = int(d.GetStatus().GetCode()), header(d.GetHeaders()), d.GetBody()
	}
	return s
}
