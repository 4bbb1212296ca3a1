//go:build linux

package chaos

import (
	"os/exec"
	"syscall"
)

// killWithParent has the kernel kill the child when the suite dies, so an
// interrupted run leaves no processor behind (redisproc does the same for
// redis-server).
func killWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
