package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestBinaryLinksNoTestCode: the service binary links neither package testing, nor net/http/httptest, nor
// the test helpers (pkg/testkit): test code in a production binary is attack surface and start-up cost.
func TestBinaryLinksNoTestCode(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", "github.com/cognito-authz/cognito-authz/cmd/cognito-authz").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		switch dep {
		case "testing", "net/http/httptest", "github.com/cognito-authz/cognito-authz/pkg/testkit":
			t.Errorf("cmd/cognito-authz links %s", dep)
		}
	}
}
