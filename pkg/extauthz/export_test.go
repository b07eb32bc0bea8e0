package extauthz

import (
	"context"

	"google.golang.org/grpc/mem"

	"github.com/cognito-authz/cognito-authz/pkg/authz"
)

// ResponseFor is the reference CheckResponse of a decision, with or without identity metadata: what the
// pre-encoded answers are tested against.
var ResponseFor = response

// DecodeRequest decodes a CheckRequest's bytes as the gRPC service does.
func DecodeRequest(b []byte) (authz.Request, error) {
	var r checkRequest
	err := decodeCheckRequest(mem.BufferSlice{mem.SliceBuffer(b)}, &r)
	return r.request(), err
}

// ServeCheck runs the gRPC Check handler on a request's bytes as grpc-go runs it with codec c, and returns
// the bytes c writes.
func ServeCheck(ctx context.Context, s *Server, c *Codec, b []byte) (mem.BufferSlice, error) {
	in := mem.BufferSlice{mem.SliceBuffer(b)}
	out, err := checkHandler(s, ctx, func(v any) error { return c.Unmarshal(in, v) }, nil)
	if err != nil {
		return nil, err
	}
	return c.Marshal(out)
}
