//go:build !unix

package proxytest

import (
	"os"
	"os/exec"
)

// ownProcessGroup is a no-op where process groups are not available.
func ownProcessGroup(*exec.Cmd) {}

// killProcessGroup kills only the process itself where process groups are not available.
func killProcessGroup(pid int) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	return p.Kill()
}
