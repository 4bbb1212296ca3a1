//go:build !linux

package redisproc

import "os/exec"

// killWithParent is a no-op where the kernel has no parent-death signal;
// callers stop the server on a normal exit.
func killWithParent(*exec.Cmd) {}
