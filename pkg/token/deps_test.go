package token_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies: token depends on no key-set implementation (jwks satisfies token.KeySource, not the
// other way round), and rs256 is a leaf that imports no package of this module.
func TestDependencies(t *testing.T) {
	t.Parallel()
	const mod = "github.com/cognito-authz/cognito-authz/"
	tests := []struct {
		name    string
		pkg     string
		allowed []string // packages of this module it may depend on
	}{
		{name: "token", pkg: mod + "pkg/token", allowed: []string{mod + "pkg/token", mod + "pkg/rs256"}},
		{name: "rs256", pkg: mod + "pkg/rs256", allowed: []string{mod + "pkg/rs256"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, err := exec.Command("go", "list", "-deps", tt.pkg).Output()
			if err != nil {
				t.Fatalf("go list -deps %s: %v", tt.pkg, err)
			}
			for _, dep := range strings.Fields(string(out)) {
				if strings.HasPrefix(dep, mod) && !strings.Contains(strings.Join(tt.allowed, " ")+" ", dep+" ") {
					t.Errorf("%s depends on %s", tt.pkg, dep)
				}
			}
		})
	}
}
