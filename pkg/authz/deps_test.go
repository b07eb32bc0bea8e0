package authz_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLayering keeps dependencies pointing one way: the core (authz, token, jwks) and the build path
// (runtime) never import gRPC or go-control-plane, and no package but cmd and runtime imports config.
func TestLayering(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", "github.com/cognito-authz/cognito-authz/pkg/authz",
		"github.com/cognito-authz/cognito-authz/pkg/token", "github.com/cognito-authz/cognito-authz/pkg/jwks",
		"github.com/cognito-authz/cognito-authz/pkg/runtime").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"google.golang.org/grpc", "github.com/envoyproxy/go-control-plane"} {
			if strings.HasPrefix(dep, banned) {
				t.Errorf("a core package depends on %s", dep)
			}
		}
	}
	out, err = exec.Command("go", "list", "-f", `{{.ImportPath}}: {{join .Imports " "}}`, "github.com/cognito-authz/cognito-authz/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const cfg = "github.com/cognito-authz/cognito-authz/pkg/config"
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imports, _ := strings.Cut(line, ": ")
		if strings.Contains(" "+imports+" ", " "+cfg+" ") && !strings.Contains(pkg, "/cmd/") && !strings.HasSuffix(pkg, "/pkg/runtime") {
			t.Errorf("%s imports %s: only cmd and runtime may", pkg, cfg)
		}
	}
}
