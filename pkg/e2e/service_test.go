package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/cognito-authz/cognito-authz/pkg/extauthz"
	"github.com/cognito-authz/cognito-authz/pkg/testkit"
)

// service is a running cognito-authz process.
type service struct {
	grpcAddr, adminAddr string
	conn                *grpc.ClientConn
}

// startService runs `cognito-authz serve -config FILE` with the given config on loopback ports, learns its
// addresses from its JSON log, waits until /readyz answers 200, and stops it with SIGTERM at cleanup.
func startService(t *testing.T, configYAML string) *service {
	t.Helper()
	bin := testkit.ServiceBinary(t)
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(configYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", "-config", path)
	cmd.Env = append(os.Environ(), "COGNITO_AUTHZ_LOG_FORMAT=json")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Error("cognito-authz did not exit within 15s of SIGTERM")
		}
	})
	addrs := make(chan [2]string, 1)
	var logMu sync.Mutex
	var logTail []string
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			logMu.Lock()
			logTail = append(logTail, line)
			logMu.Unlock()
			var rec struct{ Msg, GRPC, Admin string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "cognito-authz listening" {
				addrs <- [2]string{rec.GRPC, rec.Admin}
			}
		}
		cmd.Wait()
	}()
	var s service
	select {
	case a := <-addrs:
		s.grpcAddr, s.adminAddr = a[0], a[1]
	case <-exited:
		t.Fatalf("cognito-authz exited at start:\n%s", strings.Join(logTail, "\n"))
	case <-time.After(20 * time.Second):
		t.Fatal("cognito-authz did not log its addresses within 20s")
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + s.adminAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			logMu.Lock()
			defer logMu.Unlock()
			t.Fatalf("cognito-authz not ready within 20s:\n%s", strings.Join(logTail, "\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.conn, err = grpc.NewClient(s.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.conn.Close() })
	return &s
}

func (s *service) check(t *testing.T, tok string) extauthz.Summary {
	t.Helper()
	h := map[string]string{"x-auth-sub": "spoofed", "x-auth-groups": "root"}
	if tok != "" {
		h["authorization"] = "Bearer " + tok
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	resp, err := extauthz.Check(ctx, s.conn, extauthz.Probe{Method: "GET", Host: "api.example.com", Path: "/orders", Headers: h})
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	return extauthz.Summarize(resp)
}

// TestServiceWithCognitoLocal sends real emulator tokens, obtained through the AWS SDK, through the real
// cognito-authz program configured with issuer and jwks_url overrides.
func TestServiceWithCognitoLocal(t *testing.T) {
	cl := sharedCognitoLocal(t)
	s := cl.newAdminSession(t)
	svc := startService(t, fmt.Sprintf(`
server: {grpc_addr: "127.0.0.1:0", admin_addr: "127.0.0.1:0"}
pools:
  - name: local
    user_pool_id: %s
    client_ids: [%s]
    token_use: any
    issuer: %s
    jwks_url: %s
  - name: access-only
    user_pool_id: local_other
    client_ids: [%[2]s]
    token_use: access
    issuer: %[3]s-other
    jwks_url: %[4]s
`, s.poolID, s.clientID, s.issuer, s.jwksURL))

	tamper := func(tok string) string {
		i := strings.LastIndexByte(tok, '.') + 8
		c := byte('A')
		if tok[i] == 'A' {
			c = 'B'
		}
		return tok[:i] + string(c) + tok[i+1:]
	}
	tests := []struct {
		name       string
		token      string
		wantAllow  bool
		wantSet    []string
		wantReason string
	}{
		{name: "access_token", token: s.accessToken, wantAllow: true, wantSet: []string{
			"x-auth-sub: " + s.sub, "x-auth-username: " + s.username, "x-auth-groups: admins",
			"x-auth-client-id: " + s.clientID, "x-auth-token-use: access", "x-auth-pool: local",
		}},
		{name: "id_token", token: s.idToken, wantAllow: true, wantSet: []string{
			"x-auth-sub: " + s.sub, "x-auth-username: " + s.username, "x-auth-groups: admins",
			"x-auth-email: " + s.email, "x-auth-token-use: id",
		}},
		{name: "tampered_access_token", token: tamper(s.accessToken), wantReason: "signature_invalid"},
		{name: "tampered_id_token", token: tamper(s.idToken), wantReason: "signature_invalid"},
		{name: "no_token", wantReason: "token_missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := svc.check(t, tt.token)
			if got.Allowed != tt.wantAllow {
				t.Fatalf("allowed = %v (%d %s), want %v", got.Allowed, got.HTTPStatus, got.Reason, tt.wantAllow)
			}
			if !tt.wantAllow {
				if got.HTTPStatus != http.StatusUnauthorized || got.Reason != tt.wantReason {
					t.Fatalf("deny = %d %s, want 401 %s", got.HTTPStatus, got.Reason, tt.wantReason)
				}
				return
			}
			set := strings.Join(got.Set, "\n")
			for _, h := range tt.wantSet {
				if !strings.Contains(set+"\n", h+"\n") {
					t.Errorf("header %q not set; set:\n%s", h, set)
				}
			}
			if strings.Contains(set, "spoofed") || strings.Contains(set, "root") {
				t.Errorf("client-supplied identity header survived:\n%s", set)
			}
		})
	}
}
