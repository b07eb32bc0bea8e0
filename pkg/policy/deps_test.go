package policy_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestPure keeps the policy package pure: no network stack, no transport, no config, no token (fmt brings
// os, which is fine: nothing here opens anything).
func TestPure(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", "github.com/cognito-authz/cognito-authz/pkg/policy").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"net", "google.golang.org/grpc", "github.com/envoyproxy/go-control-plane",
			"github.com/cognito-authz/cognito-authz/pkg/config", "github.com/cognito-authz/cognito-authz/pkg/token"} {
			if dep == banned || strings.HasPrefix(dep, banned+"/") {
				t.Errorf("pkg/policy depends on %s", dep)
			}
		}
	}
}
