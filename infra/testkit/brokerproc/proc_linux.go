//go:build linux

package brokerproc

import (
	"os/exec"
	"syscall"
)

// setDeathSignal has the kernel kill the broker when the process that
// started it dies (its stdin closing does the same on other systems).
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
