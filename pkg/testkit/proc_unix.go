//go:build unix && !linux

package testkit

import (
	"os/exec"
	"syscall"
)

// OwnProcessGroup makes cmd the leader of a new process group, so that
// KillProcessGroup also reaches any children node starts.
func OwnProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// KillProcessGroup kills the process group led by pid (see OwnProcessGroup).
func KillProcessGroup(pid int) error {
	return syscall.Kill(-pid, syscall.SIGKILL)
}
