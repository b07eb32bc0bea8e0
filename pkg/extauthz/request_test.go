package extauthz_test

import (
	"bytes"
	"context"
	"maps"
	"slices"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/cognito-authz/cognito-authz/pkg/authz"
	"github.com/cognito-authz/cognito-authz/pkg/extauthz"
)

// wire marshals m, deterministically.
func wire(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// headerNames is every header name a comparison looks up: those the message holds, in their case and
// upper-cased, and the ones a Check reads.
func headerNames(req *authv3.CheckRequest) []string {
	names := []string{"authorization", "cookie", "x-request-id", "traceparent", "Cookie", "AUTHORIZATION", ""}
	http := req.GetAttributes().GetRequest().GetHttp()
	for k := range http.GetHeaders() {
		names = append(names, k, strings.ToUpper(k))
	}
	for _, h := range http.GetHeaderMap().GetHeaders() {
		names = append(names, h.GetKey(), strings.ToUpper(h.GetKey()))
	}
	return names
}

// sameRequest reports how got differs from want, a Check's reading of the decoded message.
func sameRequest(want, got authz.Request, names []string) []string {
	var diffs []string
	for _, f := range []struct{ name, want, got string }{
		{"method", want.Method, got.Method}, {"host", want.Host, got.Host}, {"path", want.Path, got.Path},
		{"request id", want.RequestID, got.RequestID},
	} {
		if f.want != f.got {
			diffs = append(diffs, f.name+": "+f.got+", want "+f.want)
		}
	}
	if !maps.Equal(want.ContextExtensions, got.ContextExtensions) {
		diffs = append(diffs, "context extensions differ")
	}
	for _, n := range names {
		if w, g := want.Headers.Get(n), got.Headers.Get(n); w != g {
			diffs = append(diffs, "header "+n+": "+g+", want "+w)
		}
	}
	return diffs
}

// TestDecodeRequestMatchesProto: the wire decoder reads what a Check reads exactly as protobuf decoding
// and the translation of the decoded message do, for the shapes protobuf allows and Envoy may send.
func TestDecodeRequestMatchesProto(t *testing.T) {
	t.Parallel()
	probe := extauthz.Probe{Method: "GET", Host: "api.example.com", Path: "/orders?x=1", Headers: map[string]string{
		"authorization": "Bearer a.b.c", "x-request-id": "r-1", "cookie": "a=1", ":path": "/orders?x=1",
	}, ContextExtensions: map[string]string{"service": "orders", "": "empty key"}}
	plain := wire(t, probe.CheckRequest())
	rawReq := probe.CheckRequest()
	rawReq.Attributes.Request.Http.Headers = nil
	rawReq.Attributes.Request.Http.HeaderMap = &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
		{Key: "Authorization", RawValue: []byte("Bearer d.e.f")}, {Key: "cookie", Value: "a=1"}, {Key: "cookie", RawValue: []byte("b=2")},
	}}
	both := probe.CheckRequest()
	both.Attributes.Request.Http.HeaderMap = &corev3.HeaderMap{Headers: []*corev3.HeaderValue{{Key: "authorization", Value: "Bearer raw.wins.here"}}}
	emptyHeaderMap := probe.CheckRequest()
	emptyHeaderMap.Attributes.Request.Http.HeaderMap = &corev3.HeaderMap{}
	second := extauthz.Probe{Method: "POST", Path: "/admin", Headers: map[string]string{"authorization": "Bearer second.token.x"},
		ContextExtensions: map[string]string{"service": "admin"}}.CheckRequest()
	second.Attributes.Request.Http.HeaderMap = &corev3.HeaderMap{Headers: []*corev3.HeaderValue{{Key: "x-extra", Value: "2"}}}
	bodyReq := probe.CheckRequest()
	bodyReq.Attributes.Request.Http.Body = strings.Repeat("b", 4096)
	bodyReq.Attributes.Request.Http.RawBody = []byte{0xff, 0x00}
	bodyReq.Attributes.TlsSession = &authv3.AttributeContext_TLSSession{Sni: "api.example.com"}

	// Field-level shapes protobuf encoders may produce, built with protowire.
	httpField := func(b []byte) []byte { // a CheckRequest holding one HttpRequest with these bytes
		req := protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), b)
		attrs := protowire.AppendBytes(protowire.AppendTag(nil, 4, protowire.BytesType), req)
		return protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), attrs)
	}
	str := func(num protowire.Number, v string) []byte {
		return protowire.AppendString(protowire.AppendTag(nil, num, protowire.BytesType), v)
	}
	entry := func(k, v string) []byte {
		return protowire.AppendBytes(protowire.AppendTag(nil, 3, protowire.BytesType), append(str(1, k), str(2, v)...))
	}
	tests := []struct {
		name string
		b    []byte
	}{
		{name: "empty", b: nil},
		{name: "envoy_shaped", b: plain},
		{name: "raw_header_map", b: wire(t, rawReq)},
		{name: "header_map_wins_over_headers", b: wire(t, both)},
		{name: "empty_header_map_reads_headers", b: wire(t, emptyHeaderMap)},
		{name: "two_messages_merge", b: append(slices.Clone(plain), wire(t, second)...)},
		{name: "body_tls_and_peers_skipped", b: wire(t, bodyReq)},
		{name: "last_scalar_wins", b: httpField(slices.Concat(str(4, "/first"), str(2, "GET"), str(4, "/admin")))},
		{name: "last_map_entry_wins", b: httpField(slices.Concat(entry("authorization", "Bearer one"), entry("authorization", "Bearer two")))},
		{name: "entry_without_key", b: httpField(protowire.AppendBytes(protowire.AppendTag(nil, 3, protowire.BytesType), str(2, "v")))},
		{name: "entry_key_repeated", b: httpField(protowire.AppendBytes(protowire.AppendTag(nil, 3, protowire.BytesType), slices.Concat(str(1, "x-a"), str(1, "authorization"), str(2, "Bearer k"))))},
		{name: "path_as_varint_is_unknown", b: httpField(slices.Concat(str(4, "/admin"), protowire.AppendVarint(protowire.AppendTag(nil, 4, protowire.VarintType), 7)))},
		{name: "unknown_fields_and_group", b: httpField(slices.Concat(
			protowire.AppendFixed64(protowire.AppendTag(nil, 99, protowire.Fixed64Type), 1),
			protowire.AppendTag(nil, 50, protowire.StartGroupType), str(1, "in group"), protowire.AppendTag(nil, 50, protowire.EndGroupType),
			str(4, "/after")))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var ref authv3.CheckRequest
			if err := proto.Unmarshal(tt.b, &ref); err != nil {
				t.Fatalf("the case is not a valid CheckRequest: %v", err)
			}
			got, err := extauthz.DecodeRequest(tt.b)
			if err != nil {
				t.Fatalf("DecodeRequest: %v", err)
			}
			if diffs := sameRequest(extauthz.Request(&ref), got, headerNames(&ref)); len(diffs) > 0 {
				t.Errorf("DecodeRequest differs from proto.Unmarshal and Request:\n%s", strings.Join(diffs, "\n"))
			}
		})
	}
}

// TestDecodeRequestMalformed: bytes that are not a well-formed message are refused, wherever the fault is,
// read or skipped.
func TestDecodeRequestMalformed(t *testing.T) {
	t.Parallel()
	good := wire(t, extauthz.Probe{Method: "GET", Path: "/", Headers: map[string]string{"authorization": "Bearer a.b.c"}}.CheckRequest())
	tests := []struct {
		name string
		b    []byte
	}{
		{name: "truncated", b: good[:len(good)-3]},
		{name: "length_overruns", b: []byte{0x0a, 0x7f, 0x22}},
		{name: "field_number_zero", b: []byte{0x02, 0x00}},
		{name: "bad_wire_type", b: []byte{0x0f}},
		{name: "unterminated_varint", b: []byte{0x08, 0xff, 0xff}},
		{name: "unmatched_end_group", b: []byte{0x0c}},
		{name: "nested_overrun", b: []byte{0x0a, 0x03, 0x22, 0x05, 0x12}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if err := proto.Unmarshal(tt.b, &authv3.CheckRequest{}); err == nil {
				t.Fatal("the case is a valid CheckRequest")
			}
			if _, err := extauthz.DecodeRequest(tt.b); err == nil {
				t.Error("DecodeRequest accepted malformed bytes")
			}
		})
	}
}

// rawCodec sends a request's bytes as they are (a client that is not a protobuf encoder, as Envoy's is not
// for header values) and decodes answers with protobuf.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(v.([]byte))}, nil
}
func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	return proto.Unmarshal(data.Materialize(), v.(proto.Message))
}
func (rawCodec) Name() string { return "proto" }

// TestCheckJudgesInvalidUTF8: a header, path or host that is not UTF-8 (Envoy passes header values as
// they came) is judged like any other over gRPC, never answered with a gRPC error, which Envoy's
// failure_mode_allow would let through.
func TestCheckJudgesInvalidUTF8(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	conn := serveGRPCWith(t, extauthz.NewServer(f.a))
	valid := f.iss.MustMint(t, at(f.iss.Access()))
	const mark = "@@MARK@@"
	bad := "\xff\xfe@@@@\xc3("
	tests := []struct {
		name    string
		probe   extauthz.Probe
		allowed bool
		status  int
	}{
		{name: "user_agent_with_token", allowed: true,
			probe: extauthz.Probe{Method: "GET", Host: "h", Path: "/", Headers: map[string]string{"authorization": "Bearer " + valid, "user-agent": mark}}},
		{name: "user_agent_without_token", status: 401,
			probe: extauthz.Probe{Method: "GET", Host: "h", Path: "/", Headers: map[string]string{"user-agent": mark}}},
		{name: "path_with_token", allowed: true,
			probe: extauthz.Probe{Method: "GET", Host: "h", Path: "/" + mark, Headers: map[string]string{"authorization": "Bearer " + valid}}},
		{name: "token_itself", status: 401,
			probe: extauthz.Probe{Method: "GET", Host: "h", Path: "/", Headers: map[string]string{"authorization": "Bearer " + valid[:20] + mark}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := bytes.ReplaceAll(wire(t, tt.probe.CheckRequest()), []byte(mark), []byte(bad)) // same length
			var ref authv3.CheckRequest
			if proto.Unmarshal(b, &ref) == nil {
				t.Fatal("the request is valid protobuf: the case tests nothing")
			}
			var resp authv3.CheckResponse
			if err := conn.Invoke(context.Background(), authv3.Authorization_Check_FullMethodName, b, &resp, grpc.ForceCodecV2(rawCodec{})); err != nil {
				t.Fatalf("Check answered a gRPC error: %v", err)
			}
			s := extauthz.Summarize(&resp)
			if s.Allowed != tt.allowed || (!s.Allowed && s.HTTPStatus != tt.status) {
				t.Errorf("allowed %v, HTTP %d (%s); want allowed %v, HTTP %d", s.Allowed, s.HTTPStatus, s.Reason, tt.allowed, tt.status)
			}
		})
	}
}

// FuzzDecodeRequest: on any bytes, the wire decoder never panics; on every valid CheckRequest it reads what
// protobuf decoding and the translation of the decoded message read. (It may accept bytes protobuf refuses
// only for what it does not read, or for non-UTF-8 strings.)
func FuzzDecodeRequest(f *testing.F) {
	probe := extauthz.Probe{Method: "GET", Host: "h", Path: "/a;b/%2e%2e/c", Headers: map[string]string{
		"authorization": "Bearer a.b.c", "x-request-id": "r", "cookie": "id=1"}, ContextExtensions: map[string]string{"k": "v"}}
	plain := wire(f, probe.CheckRequest())
	raw := probe.CheckRequest()
	raw.Attributes.Request.Http.HeaderMap = &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
		{Key: "Cookie", RawValue: []byte("a=1")}, {Key: "cookie", Value: "b=2"}, {Key: "authorization", RawValue: []byte("Bearer r.a.w")}}}
	f.Add(plain)
	f.Add(wire(f, raw))
	f.Add(append(slices.Clone(plain), wire(f, raw)...))
	f.Add([]byte{0x0a, 0x03, 0x22, 0x01, 0x12})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := extauthz.DecodeRequest(b)
		var ref authv3.CheckRequest
		if proto.Unmarshal(b, &ref) != nil {
			return
		}
		if err != nil {
			t.Fatalf("DecodeRequest refused a valid CheckRequest: %v", err)
		}
		if diffs := sameRequest(extauthz.Request(&ref), got, headerNames(&ref)); len(diffs) > 0 {
			t.Fatalf("DecodeRequest differs from proto.Unmarshal and Request:\n%s", strings.Join(diffs, "\n"))
		}
	})
}

// TestRawHeaderMapLookalike: with encode_raw_headers, a look-alike identity header in header_map is refused
// over gRPC like one in the headers map.
func TestRawHeaderMapLookalike(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	conn := serveGRPCWith(t, extauthz.NewServer(f.a))
	req := extauthz.Probe{Method: "GET", Host: "h", Path: "/"}.CheckRequest()
	req.Attributes.Request.Http.HeaderMap = &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
		{Key: "authorization", RawValue: []byte("Bearer " + f.iss.MustMint(t, at(f.iss.Access())))},
		{Key: "X_Auth_Groups", RawValue: []byte("admins")},
	}}
	resp, err := authv3.NewAuthorizationClient(conn).Check(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if s := extauthz.Summarize(resp); s.Allowed || s.HTTPStatus != 400 || s.Reason != string(authz.ReasonIdentitySpoofed) {
		t.Fatalf("allowed %v, HTTP %d, reason %s; want 400 identity_spoofed", s.Allowed, s.HTTPStatus, s.Reason)
	}
}
