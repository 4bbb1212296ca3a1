package chaos_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hobom/hobom-event-processor/infra/testkit/chaos"
)

// defaultSeed is the schedule TestChaosShort runs unless HOBOM_CHAOS_SEED
// names another.
const defaultSeed = 1

// TestChaosShort is the short form of make chaos: a 12-second seeded
// schedule with every kind of fault, then the same checks. HOBOM_CHAOS_SEED
// runs another schedule (or reruns one make chaos printed).
func TestChaosShort(t *testing.T) {
	if testing.Short() {
		t.Skip("the chaos suite takes about 25 s; skipped under -short")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("HOBOM_TEST_REQUIRE_REDIS") == "1" {
			t.Fatal("redis-server not on PATH and HOBOM_TEST_REQUIRE_REDIS=1")
		}
		t.Skip("the chaos suite needs redis-server (it restarts it with AOF)")
	}
	// A fixed seed, so that make test runs the same schedule every time;
	// HOBOM_CHAOS_SEED picks another (make chaos draws a new one per run).
	seed := uint64(defaultSeed)
	if s := os.Getenv("HOBOM_CHAOS_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("HOBOM_CHAOS_SEED=%q: %v", s, err)
		}
	}
	// HOBOM_CHAOS_RESOLVE_BOUND overrides the time-to-resolve bound (a
	// too-small one shows the check fails).
	var bound time.Duration
	if s := os.Getenv("HOBOM_CHAOS_RESOLVE_BOUND"); s != "" {
		var err error
		if bound, err = time.ParseDuration(s); err != nil {
			t.Fatalf("HOBOM_CHAOS_RESOLVE_BOUND=%q: %v", s, err)
		}
	}
	// HOBOM_CHAOS_DUP_BUDGET_CAP caps every cause's duplicate budget (0
	// shows the budget check fails).
	var budgetCap *int
	if s := os.Getenv("HOBOM_CHAOS_DUP_BUDGET_CAP"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("HOBOM_CHAOS_DUP_BUDGET_CAP=%q: %v", s, err)
		}
		budgetCap = &n
	}
	t.Logf("seed %d (rerun: HOBOM_CHAOS_SEED=%d go test -run TestChaosShort ./infra/testkit/chaos)", seed, seed)
	// The subprocess instances run the real binary, built without -race
	// (the same build as cmd/hobom-event-processor's tests, so cached).
	bin := filepath.Join(t.TempDir(), "hobom-event-processor")
	build := exec.Command("go", "build", "-o", bin, "github.com/hobom/hobom-event-processor/cmd/hobom-event-processor")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the processor: %v\n%s", err, out)
	}
	dir := t.TempDir()
	var progress strings.Builder
	rep, err := chaos.Run(context.Background(), chaos.Config{
		Seed: seed, Duration: 12 * time.Second, Rate: 150, Binary: bin, Dir: dir,
		DrainTimeout: 60 * time.Second, Progress: &progress, ResolveBound: bound, DupBudgetCap: budgetCap,
	})
	if err != nil {
		t.Fatalf("seed %d: %v", seed, err)
	}
	t.Logf("%s\n%s", progress.String(), rep)
	if !rep.OK() {
		// Keep the logs: t.TempDir is removed when the test ends.
		keep, _ := os.MkdirTemp("", "hobom-chaos-failed-")
		_ = os.CopyFS(keep, os.DirFS(dir))
		t.Fatalf("chaos run with seed %d failed; logs kept in %s", seed, keep)
	}
	if rep.Lost() != 0 {
		t.Fatalf("lost %d events", rep.Lost())
	}
}
