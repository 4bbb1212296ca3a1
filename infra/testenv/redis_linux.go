//go:build linux

package testenv

import (
	"os/exec"
	"syscall"
)

// killWithParent asks the kernel to kill redis-server when the test binary
// dies, so a test run killed by a timeout or ^C leaves no orphan servers.
func killWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
