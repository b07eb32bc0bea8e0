package server_test

import (
	"os/exec"
	"strings"
	"testing"
)

const (
	module       = "github.com/cognito-authz/cognito-authz"
	controlPlane = "github.com/envoyproxy/go-control-plane"
)

// controlPlaneImporters may import go-control-plane in non-test code: pkg/extauthz speaks Envoy's wire
// formats; cmd/authz-load is a load generator that plays Envoy, so it builds CheckRequests itself.
var controlPlaneImporters = map[string]bool{
	module + "/pkg/extauthz":   true,
	module + "/cmd/authz-load": true,
}

// TestOnlyExtauthzImportsControlPlane keeps Envoy's types in one package: pkg/server (listeners, health,
// bounds) takes a registration function and does not depend on go-control-plane even indirectly, and no
// other package of the module imports it (tests may, to play Envoy).
func TestOnlyExtauthzImportsControlPlane(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", module+"/pkg/server").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, controlPlane) {
			t.Errorf("pkg/server depends on %s", dep)
		}
	}
	out, err = exec.Command("go", "list", "-f", `{{.ImportPath}}: {{join .Imports " "}}`, module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imports, _ := strings.Cut(line, ": ")
		for _, imp := range strings.Fields(imports) {
			if strings.HasPrefix(imp, controlPlane) && !controlPlaneImporters[pkg] {
				t.Errorf("%s imports %s: only pkg/extauthz may (pkg/server takes a registration function)", pkg, imp)
			}
		}
	}
}
