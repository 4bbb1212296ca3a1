package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// RunWithBinary builds the main package in the current directory as name
// into a temporary folder, stores its path in *bin, runs the tests and
// removes the folder; it returns the exit code for os.Exit. Tests of a
// command use it to check what only a real process shows: exit statuses,
// signals and output.
func RunWithBinary(m *testing.M, name string, bin *string) int {
	dir, err := os.MkdirTemp("", name+"-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	*bin = filepath.Join(dir, name)
	if out, err := exec.Command("go", "build", "-o", *bin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build %s: %v\n%s", name, err, out)
		return 1
	}
	return m.Run()
}
