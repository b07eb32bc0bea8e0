package e2e

import (
	"fmt"
	"os"
	"testing"
)

// TestMain stops the emulator that sharedCognitoLocal may have started.
func TestMain(m *testing.M) {
	code := m.Run()
	removeServiceBinary()
	if err := stopSharedCognitoLocal(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		code = 1
	}
	os.Exit(code)
}
