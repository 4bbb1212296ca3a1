//go:build linux

package redisproc

import (
	"os/exec"
	"syscall"
)

// killWithParent asks the kernel to kill redis-server when its parent dies,
// so a run killed by a timeout or ^C leaves no orphan servers.
func killWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
