//go:build linux

package proxytest

import (
	"os/exec"
	"syscall"
)

// ownProcessGroup makes cmd the leader of a new process group, so that killProcessGroup also reaches the
// workers nginx forks. Pdeathsig kills the process even if the test binary dies without running its
// cleanups (panic, -timeout), so no orphaned proxy keeps a port.
func ownProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// killProcessGroup kills the process group led by pid (see ownProcessGroup).
func killProcessGroup(pid int) error {
	return syscall.Kill(-pid, syscall.SIGKILL)
}
