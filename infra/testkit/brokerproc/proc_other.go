//go:build !linux

package brokerproc

import "os/exec"

// setDeathSignal: without Pdeathsig the broker exits when its stdin closes.
func setDeathSignal(*exec.Cmd) {}
