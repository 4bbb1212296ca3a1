package loadtest

import (
	"os/exec"
	"syscall"
)

// dieWithParent has the kernel kill the world process when the load test
// dies, so an interrupted run leaves no orphans.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
