// Command chaos runs the fault-injection suite (infra/testkit/chaos) against the
// processor: `make chaos`, or `make chaos SEED=... DURATION=...` to rerun a
// schedule. It exits 0 when nothing was lost, 1 when the run found a
// problem, 2 when it could not run.
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/hobom/hobom-event-processor/infra/testkit/chaos"
)

func main() { os.Exit(run()) }

func run() int {
	seed := flag.Uint64("seed", 0, "seed of the fault schedule (0: a random one, printed)")
	duration := flag.Duration("duration", 2*time.Minute, "how long faults are injected while events flow")
	rate := flag.Int("rate", 200, "events per second the generator adds (MESSAGE and HOBOM_LOG in turn)")
	binary := flag.String("binary", "", "processor binary for the subprocess instances (empty: go build ./cmd/hobom-event-processor)")
	dir := flag.String("dir", "", "where logs and Redis data go (empty: a new temporary directory)")
	drain := flag.Duration("drain-timeout", 2*time.Minute, "how long everything may take to drain once the faults are cleared")
	planOnly := flag.Bool("plan", false, "print the schedule and exit")
	bound := flag.Duration("resolve-bound", 0, "longest first fetch → SENT/FAILED of an event outside pending-by-design faults (0: attempts × write timeout + backoffs + 1 s)")
	budgetCap := flag.Int("dup-budget-cap", -1, "cap every cause's duplicate budget at this many records (-1: no cap; 0 shows the check fails)")
	flag.Parse()
	if *seed == 0 {
		*seed = rand.Uint64()%1_000_000_000 + 1
	}
	if *planOnly {
		fmt.Print(chaos.NewPlan(*seed, *duration, 3))
		return 0
	}
	if *binary == "" {
		tmp, err := os.MkdirTemp("", "hobom-chaos-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "chaos:", err)
			return 2
		}
		defer os.RemoveAll(tmp)
		*binary = filepath.Join(tmp, "hobom-event-processor")
		build := exec.Command("go", "build", "-o", *binary, "github.com/hobom/hobom-event-processor/cmd/hobom-event-processor")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "chaos: build the processor:", err)
			return 2
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := chaos.Run(ctx, chaos.Config{
		Seed: *seed, Duration: *duration, Rate: *rate, Binary: *binary, Dir: *dir, ResolveBound: *bound,
		DrainTimeout: *drain, Progress: os.Stderr, DupBudgetCap: capOrNil(*budgetCap),
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "chaos: seed %d: %v\n", *seed, err)
		return 2
	}
	fmt.Print(rep)
	if !rep.OK() {
		return 1
	}
	return 0
}

func capOrNil(n int) *int {
	if n < 0 {
		return nil
	}
	return &n
}
