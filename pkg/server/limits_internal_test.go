package server

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
)

// BenchmarkReceiveDeadline is what the receive deadline and the receiving budget add to every unary RPC:
// the tap at its headers, the interceptor at its handler, and the stream's end.
func BenchmarkReceiveDeadline(b *testing.B) {
	r := &receiving{timeout: 10 * time.Second, max: 256, onCut: func(string) {}}
	h := func(context.Context, any) (any, error) { return nil, nil }
	b.ReportAllocs()
	for b.Loop() {
		sctx, end := context.WithCancel(context.Background())
		ctx, err := r.tap(sctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		r.unary(ctx, nil, &grpc.UnaryServerInfo{}, h)
		end()
	}
	if n := r.n.Load(); n != 0 {
		b.Fatalf("%d streams still counted as receiving", n)
	}
}

// TestReceivingBalanced: every way a stream leaves the receiving state (handler start, stream end before
// the handler, the deadline) undoes its arm exactly once.
func TestReceivingBalanced(t *testing.T) {
	t.Parallel()
	r := &receiving{timeout: time.Hour, max: 2, onCut: func(string) {}}
	h := func(context.Context, any) (any, error) { return nil, nil }
	// Handler started.
	sctx, end := context.WithCancel(context.Background())
	ctx, _ := r.tap(sctx, nil)
	r.unary(ctx, nil, &grpc.UnaryServerInfo{}, h)
	end()
	// Stream ended (reset) before its handler ran: the budget is freed without waiting for the deadline.
	sctx2, end2 := context.WithCancel(context.Background())
	ctx2, _ := r.tap(sctx2, nil)
	end2()
	<-ctx2.Done()
	for r.n.Load() != 0 { // context.AfterFunc runs the disarm in its own goroutine
		time.Sleep(time.Millisecond)
	}
	// Two armed: a third is refused.
	a, endA := context.WithCancel(context.Background())
	defer endA()
	b, endB := context.WithCancel(context.Background())
	defer endB()
	r.tap(a, nil)
	r.tap(b, nil)
	if _, err := r.tap(context.Background(), nil); err == nil {
		t.Fatal("a third stream was admitted over max 2")
	}
	if n := r.n.Load(); n != 2 {
		t.Fatalf("receiving = %d, want 2", n)
	}
	// The deadline: a short one fires, cancels the stream with its cause and frees the slot.
	r2 := &receiving{timeout: time.Millisecond, max: 1, onCut: func(string) {}}
	ctx3, _ := r2.tap(context.Background(), nil)
	<-ctx3.Done()
	if context.Cause(ctx3) != errReceiveTimeout {
		t.Errorf("cause = %v, want errReceiveTimeout", context.Cause(ctx3))
	}
	for r2.n.Load() != 0 {
		time.Sleep(time.Millisecond)
	}
}
