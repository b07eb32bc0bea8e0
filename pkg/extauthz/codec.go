package extauthz

import (
	"fmt"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/proto" // registers the "proto" codec this one falls back to
	"google.golang.org/grpc/mem"
)

// Codec is the server's gRPC codec. It decodes the Authorization service's requests straight from their
// bytes (checkRequest) and writes its answers as they were encoded (answer), without a copy; marshals every
// other message that go-control-plane generated vtprotobuf code for with MarshalVTStrict and SizeVT (no
// reflection); decodes with UnmarshalVT where a message has it; and hands everything else (health,
// reflection, a CheckRequest message) to grpc-go's own proto codec. What goes on the wire is the same
// protobuf either way.
//
// It is installed for one server with CodecOption, never registered globally: a global codec would
// change every gRPC client and server in the process.
type Codec struct{ fallback encoding.CodecV2 }

// NewCodec makes the codec.
func NewCodec() *Codec {
	c := &Codec{fallback: encoding.GetCodecV2("proto")}
	if c.fallback == nil {
		panic("extauthz: grpc-go's proto codec is not registered") // cannot happen: imported above
	}
	return c
}

// CodecOption installs a new Codec on one gRPC server.
func CodecOption() grpc.ServerOption { return grpc.ForceServerCodecV2(NewCodec()) }

// Name is "proto": the codec speaks the same protobuf as grpc-go's default, for the same content-subtype.
func (*Codec) Name() string { return "proto" }

type vtMarshaler interface {
	SizeVT() int
	MarshalToSizedBufferVTStrict([]byte) (int, error)
}

type vtUnmarshaler interface {
	UnmarshalVT([]byte) error
}

// Marshal encodes v.
func (c *Codec) Marshal(v any) (mem.BufferSlice, error) {
	if a, ok := v.(*answer); ok {
		return mem.BufferSlice{mem.SliceBuffer(a.b)}, nil // made for this response: nothing to free
	}
	if r, ok := v.(*authv3.CheckResponse); ok {
		if b, ok := preEncoded(r); ok {
			return mem.BufferSlice{mem.SliceBuffer(b)}, nil // immutable per response: nothing to free
		}
	}
	m, ok := v.(vtMarshaler)
	if !ok {
		return c.fallback.Marshal(v)
	}
	size := m.SizeVT()
	if mem.IsBelowBufferPoolingThreshold(size) {
		buf := make([]byte, size)
		n, err := m.MarshalToSizedBufferVTStrict(buf)
		if err != nil {
			return nil, fmt.Errorf("extauthz codec: marshal %T: %w", v, err)
		}
		return mem.BufferSlice{mem.SliceBuffer(buf[size-n:])}, nil
	}
	pool := mem.DefaultBufferPool()
	buf := pool.Get(size)
	n, err := m.MarshalToSizedBufferVTStrict(*buf)
	if err != nil {
		pool.Put(buf)
		return nil, fmt.Errorf("extauthz codec: marshal %T: %w", v, err)
	}
	if n != size { // cannot happen: SizeVT is what MarshalToSizedBufferVTStrict writes
		pool.Put(buf)
		return nil, fmt.Errorf("extauthz codec: marshal %T: wrote %d bytes of %d", v, n, size)
	}
	return mem.BufferSlice{mem.NewBuffer(buf, pool)}, nil
}

// Unmarshal decodes data into v.
func (c *Codec) Unmarshal(data mem.BufferSlice, v any) error {
	if r, ok := v.(*checkRequest); ok {
		if err := decodeCheckRequest(data, r); err != nil {
			return fmt.Errorf("extauthz codec: %w", err)
		}
		return nil
	}
	m, ok := v.(vtUnmarshaler)
	if !ok {
		return c.fallback.Unmarshal(data, v)
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	if err := m.UnmarshalVT(buf.ReadOnlyData()); err != nil {
		return fmt.Errorf("extauthz codec: unmarshal %T: %w", v, err)
	}
	return nil
}
