package session_test

import (
	"go/parser"
	"go/token"
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps the session package transport-free (no gRPC, no go-control-plane, no config),
// and the dev issuer's non-test files free of testing and httptest, so the production binary can serve
// its Hosted UI in `make run`.
func TestDependencies(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", "github.com/cognito-authz/cognito-authz/pkg/session").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"google.golang.org/grpc", "github.com/envoyproxy/go-control-plane",
			"github.com/cognito-authz/cognito-authz/pkg/config", "github.com/cognito-authz/cognito-authz/pkg/authz"} {
			if strings.HasPrefix(dep, banned) {
				t.Errorf("pkg/session depends on %s", dep)
			}
		}
	}
	// The Hosted UI file must build into the binary: no test-only imports.
	f, err := parser.ParseFile(token.NewFileSet(), "../devissuer/hostedui.go", nil, parser.ImportsOnly)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range f.Imports {
		if p := strings.Trim(imp.Path.Value, `"`); p == "testing" || p == "net/http/httptest" {
			t.Errorf("devissuer/hostedui.go imports %s", p)
		}
	}
}
