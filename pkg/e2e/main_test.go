package e2e

import (
	"fmt"
	"os"
	"testing"

	"github.com/cognito-authz/cognito-authz/pkg/testkit"
)

// TestMain stops the emulator that sharedCognitoLocal may have started.
func TestMain(m *testing.M) {
	code := m.Run()
	testkit.RemoveServiceBinary()
	if err := stopSharedCognitoLocal(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		code = 1
	}
	os.Exit(code)
}
