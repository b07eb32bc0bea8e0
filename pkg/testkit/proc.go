package testkit

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
)

// RepoRoot is the nearest directory at or above the working directory (the package directory under go
// test) that holds go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// InCI reports whether the tests run in CI, where a missing tool (an emulator, a proxy, a browser) is a
// failure instead of a skip. Any value of CI but "", "0" and "false" counts, since CI systems set it to
// "true", "1" or their own name.
func InCI() bool {
	v := os.Getenv("CI")
	if b, err := strconv.ParseBool(v); err == nil {
		return b
	}
	return v != ""
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

// ServiceBinary builds cmd/cognito-authz once per test binary, so that end-to-end tests run the real
// program. Call RemoveServiceBinary from TestMain.
func ServiceBinary(tb testing.TB) string {
	tb.Helper()
	binOnce.Do(func() {
		root, err := RepoRoot()
		if err != nil {
			binErr = err
			return
		}
		if binDir, err = os.MkdirTemp("", "cognito-authz-test-"); err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(binDir, "cognito-authz")
		out, err := exec.Command("go", "build", "-o", binPath, filepath.Join(root, "cmd", "cognito-authz")).CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		tb.Fatal(binErr)
	}
	return binPath
}

// RemoveServiceBinary removes what ServiceBinary built, if anything.
func RemoveServiceBinary() {
	if binDir != "" {
		os.RemoveAll(binDir)
	}
}
