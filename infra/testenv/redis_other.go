//go:build !linux

package testenv

import "os/exec"

// killWithParent is a no-op where the kernel has no parent-death signal;
// t.Cleanup still stops the server on a normal test exit.
func killWithParent(*exec.Cmd) {}
