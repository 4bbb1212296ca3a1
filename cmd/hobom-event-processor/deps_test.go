package main_test

import (
	"os/exec"
	"strings"
	"testing"
)

// testDoubles are the packages that only tests and the dev mode may link:
// the Kafka fake, the Redis emulation (with its Lua interpreter), and
// everything under infra/devkit (dev mode, stand-in backend) and
// infra/testkit (test harness, chaos suite, load test).
var testDoubles = []string{
	"github.com/twmb/franz-go/pkg/kfake",
	"github.com/alicebob/miniredis",
	"github.com/yuin/gopher-lua",
	"github.com/hobom/hobom-event-processor/infra/devkit",
	"github.com/hobom/hobom-event-processor/infra/testkit",
}

// linkedDoubles lists the packages of testDoubles that pkg links.
func linkedDoubles(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", pkg).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	var found []string
	for _, dep := range strings.Fields(string(out)) {
		for _, d := range testDoubles {
			if dep == d || strings.HasPrefix(dep, d+"/") {
				found = append(found, dep)
			}
		}
	}
	return found
}

// TestProductBinaryLinksNoTestDouble: the binary that ships links the real
// adapters only; the dev mode's fakes live in cmd/hobom-dev.
func TestProductBinaryLinksNoTestDouble(t *testing.T) {
	if found := linkedDoubles(t, "github.com/hobom/hobom-event-processor/cmd/hobom-event-processor"); len(found) > 0 {
		t.Errorf("the product binary links test doubles:\n  %s", strings.Join(found, "\n  "))
	}
	// The check can fail: the dev binary does link them.
	if found := linkedDoubles(t, "github.com/hobom/hobom-event-processor/cmd/hobom-dev"); len(found) < 3 {
		t.Errorf("the check finds only %q in cmd/hobom-dev, which links kfake, miniredis and the stand-in backend", found)
	}
}

// TestEmbeddedIsRefusedWithAPointerToTheDevBinary: --embedded on the product
// binary is a configuration error naming where the dev mode went.
func TestEmbeddedIsRefusedWithAPointerToTheDevBinary(t *testing.T) {
	for _, c := range []struct {
		env  []string
		args []string
	}{{nil, []string{"--embedded"}}, {[]string{"HOBOM_EMBEDDED=true"}, nil}} {
		code, out := runBinary(t, c.env, c.args...)
		if code != 2 || !strings.Contains(out, "make dev") || !strings.Contains(out, "cmd/hobom-dev") {
			t.Errorf("%v %v: exit %d, output %q; want 2 pointing to make dev and cmd/hobom-dev", c.env, c.args, code, out)
		}
	}
}
