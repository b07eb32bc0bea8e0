//go:build !unix

package testkit

import (
	"os"
	"os/exec"
)

// OwnProcessGroup is a no-op where process groups are not available.
func OwnProcessGroup(*exec.Cmd) {}

// KillProcessGroup kills only the process itself where process groups are
// not available.
func KillProcessGroup(pid int) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	return p.Kill()
}
