//go:build linux

package testkit

import (
	"os/exec"
	"syscall"
)

// OwnProcessGroup makes cmd the leader of a new process group, so that
// KillProcessGroup also reaches any children node starts. Pdeathsig kills
// the emulator even if the test binary dies without running its cleanups
// (panic, -timeout), so no orphaned node keeps a port.
func OwnProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// KillProcessGroup kills the process group led by pid (see OwnProcessGroup).
func KillProcessGroup(pid int) error {
	return syscall.Kill(-pid, syscall.SIGKILL)
}
