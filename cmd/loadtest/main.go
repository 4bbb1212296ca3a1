// Command loadtest measures the processor end to end against a stand-in
// backend, kfake and Redis on loopback and prints one table of figures,
// ceilings and targets. The logic is in infra/testkit/loadtest.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/rs/zerolog"

	"github.com/hobom/hobom-event-processor/infra/testkit/loadtest"
)

func main() {
	if len(os.Args) == 2 && os.Args[1] == loadtest.WorldChildArg {
		os.Exit(loadtest.ServeWorldChild())
	}
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	quick := fs.Bool("quick", false, "CI-sized run (small backlogs, N = 1,100,1000, short windows); other flags override it")
	asJSON := fs.Bool("json", false, "print the report as JSON instead of the table")
	scenarios := fs.String("scenarios", strings.Join(loadtest.AllScenarios, ","), "comma-separated scenarios to run")
	events := fs.Int("events", 0, "backlog of each relay scenario and of the produce ceilings")
	sweepWindow := fs.Duration("sweep-window", 0, "how long each point of the ceiling sweeps is measured")
	sweepWarmup := fs.Duration("sweep-warmup", -1, "how long each point of the ceiling sweeps (mark and produce) runs before it is measured (negative: 300ms, or 150ms with --quick)")
	pollInterval := fs.Duration("poll-interval", 0, "poll interval of the backlog scenarios (latency and pollers use HOBOM_POLL_INTERVAL, 5s)")
	rate := fs.Int("latency-rate", 0, "offered load of the latency scenario, events/s")
	batchEvents := fs.Int("batch-events", 0, "backlog of the batch-mark relay")
	budgetTypes := fs.Int("budget-types", 0, "event types of the budget scenario")
	budgetPer := fs.Int("budget-per-type", 0, "pending events of each type of the budget scenario")
	latencyDur := fs.Duration("latency-duration", 0, "how long the load is offered")
	eventTypes := fs.String("event-types", "", "comma-separated counts N of synthetic event types (poller actors) to run, e.g. 1,100,10000")
	pollerEvents := fs.Int("poller-events", 0, "backlog spread over the N synthetic types for the throughput with N pollers")
	idle := fs.Duration("idle-window", 0, "CPU measurement window while the pollers poll an empty backlog")
	drain := fs.Int("drain-events", 0, "backlog drained from a backend honouring the find limit")
	old := fs.Int("old-backend-events", 0, "backlog drained from a backend ignoring the find limit")
	inProcess := fs.Bool("in-process", false, "run the stand-in backend and kfake in this process (their memory and CPU then count as the processor's)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the run to this file")
	relayProfiles := fs.String("relay-cpuprofiles", "", "write a CPU profile of each of the message, log and mix relays to this directory, from the processor's start to the last event SENT: relay-message.pprof, relay-hobom_log.pprof, relay-mix.pprof, and, with the ceilings scenario, floor-<type>.pprof and floorraw-<type>.pprof for the floor relays (gRPC and raw HTTP/2 marks) beside a single-type relay (not with --cpuprofile)")
	worldProfile := fs.String("world-cpuprofile", "", "write a CPU profile of the world's process (stand-in backend + kfake) to this file; with --in-process the world is in --cpuprofile")
	memProfile := fs.String("memprofile", "", "write a heap profile, taken near the run's heap peak, to this file")
	allocProfile := fs.String("allocprofile", "", "write the profile of every allocation of the run (sampled every 16 KB) to this file when it ends")
	timeout := fs.Duration("timeout", 0, "longest wait of one scenario for its events")
	logLevel := fs.String("log-level", "warn", "the processor's log level (its logs go to stderr)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	opts := loadtest.DefaultOptions()
	if *quick {
		opts = loadtest.QuickOptions()
	}
	opts.Scenarios = split(*scenarios)
	setInt(&opts.Events, *events)
	if *sweepWarmup >= 0 {
		opts.SweepWarmup = *sweepWarmup
	}
	if *sweepWindow > 0 {
		opts.SweepWindow = *sweepWindow
	}
	setInt(&opts.LatencyRate, *rate)
	setInt(&opts.BatchEvents, *batchEvents)
	setInt(&opts.BudgetTypes, *budgetTypes)
	setInt(&opts.BudgetPerType, *budgetPer)
	setInt(&opts.PollerEvents, *pollerEvents)
	setInt(&opts.DrainEvents, *drain)
	setInt(&opts.OldBackendEvents, *old)
	if *pollInterval > 0 {
		opts.PollInterval = *pollInterval
	}
	if *latencyDur > 0 {
		opts.LatencyDuration = *latencyDur
	}
	if *idle > 0 {
		opts.IdleWindow = *idle
	}
	if *timeout > 0 {
		opts.Timeout = *timeout
	}
	if *eventTypes != "" {
		opts.EventTypes = nil
		for _, s := range split(*eventTypes) {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 {
				fmt.Fprintf(os.Stderr, "loadtest: --event-types: %q is not a positive integer\n", s)
				return 2
			}
			opts.EventTypes = append(opts.EventTypes, n)
		}
	}
	if *cpuProfile != "" && *relayProfiles != "" {
		fmt.Fprintln(os.Stderr, "loadtest: --cpuprofile and --relay-cpuprofiles exclude each other (the runtime keeps one CPU profile at a time)")
		return 2
	}
	lvl, err := zerolog.ParseLevel(*logLevel)
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadtest: --log-level: %v\n", err)
		return 2
	}
	opts.LogLevel = lvl
	opts.InProcess = *inProcess
	opts.CPUProfile, opts.MemProfile, opts.AllocProfile = *cpuProfile, *memProfile, *allocProfile
	opts.WorldCPUProfile = *worldProfile
	opts.RelayProfiles = *relayProfiles
	opts.Progress = os.Stderr

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := loadtest.Run(ctx, opts)
	if rep != nil {
		if *asJSON {
			_ = rep.WriteJSON(os.Stdout)
		} else {
			_ = rep.WriteTable(os.Stdout)
		}
	}
	if err != nil {
		msg := err.Error()
		if !strings.HasPrefix(msg, "loadtest: ") {
			msg = "loadtest: " + msg
		}
		fmt.Fprintln(os.Stderr, msg)
		return 1
	}
	if !rep.Passed {
		return 3
	}
	return 0
}

func split(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func setInt(dst *int, v int) {
	if v > 0 {
		*dst = v
	}
}
