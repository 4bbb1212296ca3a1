package testenv

import (
	"os"
	"strings"
)

// ChildEnv is the environment for a processor a test starts as a child
// process: the test's own environment (PATH, HOME, the Go cache) without
// any HOBOM_* variable, followed by extra ("NAME=value"). Like Config, it
// keeps the developer's settings out of the test.
func ChildEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HOBOM_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}
