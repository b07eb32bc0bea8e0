package e2e

import (
	"context"
	"errors"
	"net"
	"net/http"
	"testing"
)

// TestCognitoLocalStop checks that an emulator of a test's own is gone, and
// its port closed, once stop returns, and that stop may be called twice (as
// t.Cleanup does after an explicit stop).
func TestCognitoLocalStop(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an emulator of its own")
	}
	t.Parallel()
	cl := startCognitoLocal(t)
	if !cl.healthy(t.Context(), http.DefaultClient) {
		t.Fatalf("%s not healthy after start", cl.endpoint)
	}
	if err := cl.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	select {
	case <-cl.exited:
	default:
		t.Fatal("process not reaped after stop")
	}
	if cl.healthy(t.Context(), http.DefaultClient) {
		t.Errorf("%s still answers after stop", cl.endpoint)
	}
	if err := cl.stop(); err != nil {
		t.Errorf("second stop: %v", err)
	}
}

// TestCognitoLocalPortInUse checks that a start on a taken port fails with
// errAddrInUse, which launchCognitoLocal retries on another port.
func TestCognitoLocalPortInUse(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an emulator of its own")
	}
	t.Parallel()
	inst := requireCognitoLocal(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(t.Context(), cognitoLocalStartTimeout)
	defer cancel()
	cl, err := startCognitoLocalOn(ctx, inst, t.TempDir(), l.Addr().(*net.TCPAddr).Port)
	if err == nil {
		t.Errorf("startCognitoLocalOn on a taken port succeeded; stop: %v", cl.stop())
		return
	}
	if !errors.Is(err, errAddrInUse) {
		t.Errorf("startCognitoLocalOn on a taken port: %v, want errAddrInUse", err)
	}
}
