// Package loadtest measures the processor end to end: it runs the
// stand-in backend and kfake on loopback, Redis, and the processor's actor
// tree (app.New) in this process, drives backlogs and an offered load
// through it, and reports throughput, latency, memory and CPU against
// ceilings measured in the same run. cmd/loadtest is its command line.
package loadtest

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hobom/hobom-event-processor/infra/app"
	"github.com/hobom/hobom-event-processor/infra/config"
	"github.com/hobom/hobom-event-processor/messages"
)

// Scenario names, in the order they run.
const (
	ScenarioCeilings = "ceilings"
	ScenarioMessage  = "message"
	ScenarioLog      = "log"
	ScenarioMix      = "mix"
	ScenarioMemory   = "memory-cost"
	ScenarioBatch    = "batch"
	ScenarioLatency  = "latency"
	ScenarioBudget   = "budget"
	ScenarioPollers  = "pollers"
	ScenarioDrain    = "drain"
	ScenarioOld      = "old-backend"
)

// AllScenarios is every scenario in running order.
var AllScenarios = []string{ScenarioCeilings, ScenarioMessage, ScenarioLog, ScenarioMix, ScenarioMemory, ScenarioBatch, ScenarioLatency, ScenarioBudget, ScenarioPollers, ScenarioDrain, ScenarioOld}

// Options are the load test's sizes and switches.
type Options struct {
	Scenarios []string
	// Events is the backlog of each relay scenario (MESSAGE, HOBOM_LOG,
	// and the mix, split evenly) and of the produce ceilings.
	Events int
	// SweepInFlight and SweepConns are the points of the mark ceiling's
	// sweep (every pair); each point runs SweepWarmup unmeasured, then
	// SweepWindow measured. The produce ceiling sweeps ProduceClients ×
	// ProduceLingers the same way: SweepWarmup, then SweepWindow each.
	SweepInFlight  []int
	SweepConns     []int
	SweepWarmup    time.Duration
	SweepWindow    time.Duration
	ProduceClients []int
	ProduceLingers []time.Duration
	// PollInterval is the short interval of the backlog scenarios; the
	// latency and poller scenarios use the configured one (5 s default).
	PollInterval time.Duration
	// LatencyRate events/s are offered for LatencyDuration, with the
	// processor polling every LatencyInterval.
	LatencyRate     int
	LatencyDuration time.Duration
	LatencyInterval time.Duration
	// BatchEvents is the backlog of the batch-mark relay.
	BatchEvents int
	// BudgetTypes event types with BudgetPerType PENDING events each run
	// for BudgetWindow under the global in-flight budget.
	BudgetTypes, BudgetPerType int
	BudgetWindow               time.Duration
	// EventTypes are the synthetic route counts of the poller scenario.
	EventTypes []int
	// PollerEvents is the backlog spread over the synthetic types for the
	// throughput with N pollers.
	PollerEvents int
	// IdleWindow is how long CPU is measured while the pollers poll an
	// empty backlog, for the largest N and for the others (0: not
	// measured); each is at least one poll interval.
	IdleWindow, IdleWindowSmall time.Duration
	// DrainEvents is the backlog drained from a backend honouring the find
	// limit; OldBackendEvents the one drained from a backend ignoring it.
	DrainEvents      int
	OldBackendEvents int
	// InProcess runs the backend and kfake in this process instead of a
	// child; memory, RSS and CPU figures then include them.
	InProcess bool
	// WorldExe is the binary started with WorldChildArg for the world;
	// empty means this executable.
	WorldExe string
	// CPUProfile and MemProfile are files to write profiles to; the heap
	// profile is taken near the highest heap peak of the run.
	CPUProfile, MemProfile string
	// RelayProfiles is a directory to write CPU profiles of this process
	// to, one for each relay of the message, log and mix scenarios:
	// relay-<type>.pprof (relay-message, relay-hobom_log, relay-mix) while
	// the processor relays, and, when the ceilings ran, floor-<type>.pprof
	// and floorraw-<type>.pprof while the floor relays beside a
	// single-type relay do (marking with the gRPC and the raw client). Each covers
	// the timed part of its relay, from the start of the processor (or of
	// the floor relay's workers) until the last event is marked SENT, so
	// the two can be set side by side (`go tool pprof -top`); with
	// InProcess the world's work is in both. It excludes CPUProfile: the
	// runtime keeps one CPU profile at a time.
	RelayProfiles string
	// WorldCPUProfile is a file the world's child process writes its CPU
	// profile to (ignored with InProcess, whose world is in CPUProfile).
	WorldCPUProfile string
	// AllocProfile is a file to write, when the run ends, the profile of
	// everything the load test's process allocated (pprof's "allocs";
	// `-sample_index=alloc_objects` counts allocations). With it the
	// process samples every 16 KB allocated instead of every 512 KB, so
	// that the per-event allocations of a short run show up.
	AllocProfile string
	// Timeout bounds one scenario's wait for its events.
	Timeout  time.Duration
	LogLevel zerolog.Level
	Getenv   func(string) string
	// Progress receives progress lines (stderr); nil discards them.
	Progress io.Writer
}

// DefaultOptions is the full run of `make loadtest`. Its 150,000 events
// make a relay last 5 to 10 s on a 2-core VM: the processor's start (dial,
// Kafka metadata, lease, first find: about 90 ms) then weighs under 2 % of
// a relay's time, as the floor relay's clock starts once its clients are up.
func DefaultOptions() Options {
	return Options{
		Scenarios:        slices.Clone(AllScenarios),
		Events:           150_000,
		SweepInFlight:    []int{1, 4, 16, 32, 64, 128, 256, 512},
		SweepConns:       []int{1, 2, 3, 4},
		SweepWarmup:      300 * time.Millisecond,
		SweepWindow:      400 * time.Millisecond,
		ProduceClients:   []int{1, 2},
		ProduceLingers:   []time.Duration{0, 10 * time.Millisecond},
		PollInterval:     20 * time.Millisecond,
		LatencyRate:      10_000,
		LatencyDuration:  8 * time.Second,
		LatencyInterval:  200 * time.Millisecond,
		BatchEvents:      300_000,
		BudgetTypes:      1000,
		BudgetPerType:    5000,
		BudgetWindow:     10 * time.Second,
		EventTypes:       []int{1, 100, 10_000},
		PollerEvents:     20_000,
		IdleWindow:       10 * time.Second,
		IdleWindowSmall:  0,
		DrainEvents:      1_000_000,
		OldBackendEvents: 50_000,
		Timeout:          5 * time.Minute,
		LogLevel:         zerolog.WarnLevel,
		Getenv:           os.Getenv,
	}
}

// QuickOptions is a CI-sized run of well under a minute.
func QuickOptions() Options {
	o := DefaultOptions()
	o.Events = 10_000
	o.SweepInFlight = []int{1, 16, 64, 256, 512}
	o.SweepConns = []int{1, 4}
	o.SweepWarmup = 150 * time.Millisecond
	o.SweepWindow = 250 * time.Millisecond
	o.LatencyDuration = 5 * time.Second
	o.BatchEvents = 50_000
	o.BudgetPerType = 200
	o.BudgetWindow = 5 * time.Second
	o.EventTypes = []int{1, 100, 1000}
	o.PollerEvents = 5_000
	o.IdleWindow = 5 * time.Second
	o.IdleWindowSmall = 0
	o.DrainEvents = 50_000
	o.OldBackendEvents = 10_000
	return o
}

// Targets the processor is held to; the README's Performance section
// lists each with its figure.
const (
	targetMarkRatio  = 0.85
	targetAllocBytes = 3 << 10
	// maxFloorRatio is how far above the mark ceiling a floor relay may
	// run: it marks as one of the ceiling's clients does and does more
	// besides (and is timed from its first call), so above it the sweep
	// missed the backend's maximum, or the machine slowed down between
	// them.
	maxFloorRatio       = 1.00
	targetMemoryCost    = 0.90 // relay rate with the unmarked memory ÷ without
	targetLatencySlack  = 50 * time.Millisecond
	targetSpawn         = 2 * time.Second
	targetPollerHeap    = 100 << 20
	targetPollerCPU     = 1.0 // cores
	targetPollersN      = 10_000
	targetDrainHeap     = 256 << 20
	targetDrainEvents   = 1_000_000
	progressEvery       = time.Second
	completionPollEvery = 10 * time.Millisecond
)

// runner holds what the scenarios share.
type runner struct {
	opts    Options
	cfg     config.Config // the processor's configuration, addresses filled per scenario
	world   World
	info    WorldInfo
	redis   *redisEnv
	admin   *kgo.Client
	start   time.Time
	log     zerolog.Logger
	report  *Report
	ceiling struct {
		// top is the faster client's sweep, whose maximum is the mark
		// ceiling; grpc and raw are each client's.
		top, grpc, raw clientSweep
		// rpcAllocBytes and rpcAllocObjects are the minimal client's
		// allocations per mark rpc over the sweep.
		rpcAllocBytes, rpcAllocObjects float64
		prodMsg, prodLog               float64
		prodMix                        float64
		haveMark, haveProds            bool
	}
	heapPro    []byte
	heapProAt  uint64
	idleHeap0  uint64 // heap with the default pollers only (N = 0)
	idleHeap0N bool
}

// Run runs the selected scenarios and returns the report; the error is
// for a run that could not be carried out (a missed target is not one).
func Run(ctx context.Context, opts Options) (*Report, error) {
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	if opts.Progress == nil {
		opts.Progress = io.Discard
	}
	if len(opts.Scenarios) == 0 {
		return nil, fmt.Errorf("loadtest: no scenario selected (have %s)", strings.Join(AllScenarios, ", "))
	}
	for _, s := range opts.Scenarios {
		if !slices.Contains(AllScenarios, s) {
			return nil, fmt.Errorf("loadtest: unknown scenario %q (have %s)", s, strings.Join(AllScenarios, ", "))
		}
	}
	if opts.CPUProfile != "" && opts.RelayProfiles != "" {
		return nil, errors.New("loadtest: CPUProfile and RelayProfiles exclude each other (the runtime keeps one CPU profile at a time)")
	}
	if opts.RelayProfiles != "" {
		if fi, err := os.Stat(opts.RelayProfiles); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("loadtest: relay profiles: %s is not a directory", opts.RelayProfiles)
		}
	}
	r := &runner{opts: opts, start: time.Now(), report: newReport(opts)}
	r.log = zerolog.New(zerolog.ConsoleWriter{Out: opts.Progress, TimeFormat: "15:04:05.000"}).
		Level(opts.LogLevel).With().Timestamp().Logger()

	var err error
	// The load test's API listens on loopback and is driven without a key.
	getenv := func(k string) string {
		if v := opts.Getenv(k); v != "" || k != "HOBOM_INTERNAL_API_OPEN" {
			return v
		}
		return "true"
	}
	r.cfg, err = config.Load(flag.NewFlagSet("loadtest", flag.ContinueOnError), nil, getenv, io.Discard)
	if err != nil {
		return nil, fmt.Errorf("loadtest: configuration: %w", err)
	}
	r.cfg.HTTPAddr = "127.0.0.1:0"

	if opts.AllocProfile != "" {
		runtime.MemProfileRate = allocProfileRate
	}
	if opts.CPUProfile != "" {
		f, err := os.Create(opts.CPUProfile)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, err
		}
		defer pprof.StopCPUProfile()
	}

	r.progress("starting Redis and the world (stand-in backend + kfake, %s)", map[bool]string{true: "in this process", false: "child process"}[opts.InProcess])
	if r.redis, err = startRedis(opts.Getenv); err != nil {
		return nil, err
	}
	defer r.redis.close()
	r.cfg.RedisAddr = r.redis.Addr
	if opts.InProcess {
		r.world, err = newLocalWorld()
	} else {
		exe := opts.WorldExe
		if exe == "" {
			if exe, err = os.Executable(); err != nil {
				return nil, err
			}
		}
		r.world, err = StartChildWorld(exe, opts.WorldCPUProfile)
	}
	if err != nil {
		return nil, err
	}
	defer r.world.Close()
	if r.info, err = r.world.Info(); err != nil {
		return nil, err
	}
	r.cfg.KafkaBrokers = r.info.KafkaAddrs
	if r.admin, err = kgo.NewClient(kgo.SeedBrokers(r.info.KafkaAddrs...)); err != nil {
		return nil, err
	}
	defer r.admin.Close()
	r.report.setEnv(r)

	steps := map[string]func(context.Context) error{
		ScenarioCeilings: r.ceilings,
		ScenarioMemory:   r.memoryCost,
		ScenarioMessage: func(ctx context.Context) error {
			return r.relayScenario(ctx, "relay MESSAGE", TypeSet{Names: []string{messages.EventTypeMessage}}, r.opts.Events, &r.ceiling.prodMsg)
		},
		ScenarioLog: func(ctx context.Context) error {
			return r.relayScenario(ctx, "relay HOBOM_LOG", TypeSet{Names: []string{messages.EventTypeHoBomLog}}, r.opts.Events, &r.ceiling.prodLog)
		},
		ScenarioMix: func(ctx context.Context) error {
			return r.relayScenario(ctx, "relay mix", TypeSet{Names: []string{messages.EventTypeMessage, messages.EventTypeHoBomLog}}, r.opts.Events/2, &r.ceiling.prodMix)
		},
		ScenarioBatch:   r.batchRelay,
		ScenarioLatency: r.latency,
		ScenarioBudget:  r.budget,
		ScenarioPollers: r.pollers,
		ScenarioDrain:   r.drain,
		ScenarioOld:     r.oldBackend,
	}
	for _, name := range AllScenarios {
		if !slices.Contains(opts.Scenarios, name) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return r.report, err
		}
		r.progress("== %s", name)
		if err := steps[name](ctx); err != nil {
			r.report.fail(name, err)
			r.progress("%s failed: %v", name, err)
		}
	}
	if opts.MemProfile != "" && r.heapPro != nil {
		if err := os.WriteFile(opts.MemProfile, r.heapPro, 0o644); err != nil {
			return r.report, err
		}
		r.progress("heap profile taken at %s written to %s", mb(r.heapProAt), opts.MemProfile)
	}
	if opts.AllocProfile != "" {
		if err := writeProfile(opts.AllocProfile, "allocs"); err != nil {
			return r.report, err
		}
		r.progress("allocation profile of the whole run written to %s", opts.AllocProfile)
	}
	r.report.Took = time.Since(r.start).Round(time.Millisecond)
	return r.report, nil
}

// allocProfileRate is runtime.MemProfileRate while an allocation profile
// is taken: one sample per 16 KB allocated.
const allocProfileRate = 16 << 10

// writeProfile writes the runtime profile name to file.
func writeProfile(file, name string) error {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if err := pprof.Lookup(name).WriteTo(f, 0); err != nil {
		f.Close()
		return fmt.Errorf("write %s profile: %w", name, err)
	}
	return f.Close()
}

func (r *runner) progress(format string, args ...any) {
	fmt.Fprintf(r.opts.Progress, "[%6.1fs] %s\n", time.Since(r.start).Seconds(), fmt.Sprintf(format, args...))
}

// processorConfig is the configuration of one scenario's processor.
func (r *runner) processorConfig(backend string, pollInterval time.Duration) config.Config {
	cfg := r.cfg
	cfg.GRPCAddr = backend
	if pollInterval > 0 {
		cfg.PollInterval = pollInterval
		cfg.PollMaxBackoff = max(cfg.PollMaxBackoff, pollInterval)
	}
	return cfg
}

// ---- ceilings ----

func (r *runner) ceilings(ctx context.Context) error {
	// The mark ceiling: the stand-in backend's best over the sweep, with
	// clients of the load test's own. One mark rpc per event is the floor
	// of work the contract allows. On these shared cores what a client
	// spends per call is CPU the backend does not get, so the backend
	// answers a cheaper client faster: two clients are swept, the
	// generated gRPC-Go stubs and the mark rpc on raw HTTP/2 frames
	// (rawmark.go), and the ceiling is the faster one's maximum.
	o := r.opts
	r.progress("mark ceiling: sweeping %v in flight × %v connections with each client, %s each after %s of warm-up", o.SweepInFlight, o.SweepConns, dur(o.SweepWindow), dur(o.SweepWarmup))
	grpcSweep, err := r.sweepClient(ctx, "gRPC-Go client", r.grpcMarkers)
	if err != nil {
		return fmt.Errorf("gRPC-Go client: %w", err)
	}
	r.ceiling.rpcAllocBytes, r.ceiling.rpcAllocObjects = grpcSweep.allocBytes(), grpcSweep.allocObjects()
	r.reportSweep(grpcSweep, "the generated stubs on gRPC-Go connections")
	r.report.raw("ceilingMarkSweep", grpcSweep.pts)
	r.progress("gRPC-Go client: %s ev/s at %s", count(int(grpcSweep.best.Rate)), grpcSweep.best.label())
	rawSweep, err := r.sweepClient(ctx, "raw HTTP/2 client", r.rawMarkers)
	if err != nil {
		return fmt.Errorf("raw HTTP/2 client: %w", err)
	}
	r.reportSweep(rawSweep, fmt.Sprintf("the mark rpc on HTTP/2 frames (rawmark.go); %.2f of the gRPC-Go client's maximum",
		rawSweep.best.Rate/max(grpcSweep.best.Rate, 1)))
	r.report.raw("ceilingMarkSweepRaw", rawSweep.pts)
	r.progress("raw HTTP/2 client: %s ev/s at %s", count(int(rawSweep.best.Rate)), rawSweep.best.label())

	top := fasterSweep(grpcSweep, rawSweep)
	r.ceiling.top, r.ceiling.grpc, r.ceiling.raw, r.ceiling.haveMark = top, grpcSweep, rawSweep, true
	r.report.add(Row{Scenario: "ceiling: mark rpc sweep", Figure: "maximum (the mark ceiling)", Value: top.best.Rate, Unit: "ev/s",
		Detail: fmt.Sprintf("the %s's, at %s: the most the backend was seen to answer; every ratio to the mark ceiling is to it, measured again beside each relay", top.name, top.best.label())})
	r.progress("mark ceiling: %s ev/s, %s at %s", count(int(top.best.Rate)), top.name, top.best.label())

	// The produce ceiling: the same records the relay writes (values,
	// keys, headers, log arrays split as the publisher splits them)
	// through plain franz-go clients with the processor's acks.
	tc := app.TreeConfig(r.cfg, nil)
	e := max(r.opts.Events, 20_000)
	prod := tc.Publisher.Producer
	msgs := buildMessageRecords(e, prod)
	logs := buildLogRecords(e, r.cfg.FindLimit, tc.Publisher.MaxRecordBytes, prod)
	mixMsgs, mixLogs := buildMessageRecords(e/2, prod), buildLogRecords(e/2, r.cfg.FindLimit, tc.Publisher.MaxRecordBytes, prod)
	for _, c := range []struct {
		name string
		sets []ceilingRecords
		dst  *float64
	}{
		{"MESSAGE", []ceilingRecords{msgs}, &r.ceiling.prodMsg},
		{"HOBOM_LOG", []ceilingRecords{logs}, &r.ceiling.prodLog},
		{"mix", []ceilingRecords{mixMsgs, mixLogs}, &r.ceiling.prodMix},
	} {
		r.progress("produce ceiling %s: sweeping %v clients × linger %v, %s each after %s of warm-up", c.name, o.ProduceClients, o.ProduceLingers, dur(o.SweepWindow), dur(o.SweepWarmup))
		pts, err := r.produceSweep(ctx, c.name, c.sets, o.ProduceClients, o.ProduceLingers, o.SweepWarmup, o.SweepWindow)
		if err != nil {
			return err
		}
		best := bestProduce(pts)
		*c.dst = best.Rate
		line := ""
		for _, p := range pts {
			line += fmt.Sprintf("%s: %s; ", p.label(), count(int(p.Rate)))
		}
		r.report.add(Row{Scenario: "ceiling: produce sweep (plain franz-go)", Figure: c.name + " records, maximum", Value: best.Rate, Unit: "ev/s",
			Detail: fmt.Sprintf("at %s; %s", best.label(), strings.TrimSuffix(line, "; "))})
		r.report.raw("ceilingProduce"+c.name, pts)
	}
	r.ceiling.haveProds = true
	return nil
}

// adjacentMarkCeiling runs the mark ceiling's best point and its
// neighbours again with the client that reached it, right beside a relay,
// and returns their maximum and that client's name: the machine is
// shared, so the ceiling a relay is held to is measured in the same
// minute. It also runs the gRPC-Go client's best point, for the relay's
// ratio to that client (whose maximum was the ceiling of the runs before
// the raw client took part), and returns its rate.
func (r *runner) adjacentMarkCeiling(ctx context.Context) (ceiling, grpc float64, client string, err error) {
	if !r.ceiling.haveMark {
		return 0, 0, "", nil
	}
	top := r.ceiling.top
	pts, err := r.markSweep(ctx, top.client, neighbours(top.best, top.inFlight), []int{top.best.Conns}, r.opts.SweepWarmup, r.opts.SweepWindow)
	if err != nil {
		return 0, 0, "", fmt.Errorf("adjacent mark ceiling, %s: %w", top.name, err)
	}
	ceiling = bestMark(pts).Rate
	if top.name == r.ceiling.grpc.name {
		return ceiling, ceiling, top.name, nil
	}
	g := r.ceiling.grpc.best
	p, err := r.markPointWith(ctx, r.ceiling.grpc.client, g.InFlight, g.Conns, r.opts.SweepWarmup, r.opts.SweepWindow)
	if err != nil {
		return 0, 0, "", fmt.Errorf("adjacent mark ceiling, %s: %w", r.ceiling.grpc.name, err)
	}
	return ceiling, p.Rate, top.name, nil
}

// ---- relay runs ----

// relaySpec is one run of the processor over a seeded backlog.
type relaySpec struct {
	name     string
	backend  BackendSpec
	routes   []messages.Route
	types    TypeSet
	perType  int
	interval time.Duration
	// noMemory runs the processor without its unmarked memory (memory-cost).
	noMemory bool
	// profile names the relay's CPU profile (Options.RelayProfiles).
	profile string
}

// relayResult is what one run measured.
type relayResult struct {
	Events      int           `json:"events"`
	Took        time.Duration `json:"tookNs"`
	Rate        float64       `json:"rate"`
	Spawn       time.Duration `json:"spawnNs"`
	CPU         time.Duration `json:"cpuNs"`
	Peaks       Peaks         `json:"peaks"`
	Sent        int           `json:"sent"`
	InKafka     int           `json:"inKafka"`
	KafkaRecs   int           `json:"kafkaRecords"`
	Finds       int64         `json:"findRpcs"`
	Anomalies   Anomalies     `json:"anomalies"`
	FullFinds   int64         `json:"nonEmptyFinds"`
	FindTime    time.Duration `json:"nonEmptyFindNs"`
	World       ProcUsage     `json:"worldUsage"`
	KafkaDetail string        `json:"kafkaDetail"`
	// AllocBytes and AllocObjects are what the processor's process
	// allocated during the run, per relayed event.
	AllocBytes   float64 `json:"allocBytesPerEvent"`
	AllocObjects float64 `json:"allocsPerEvent"`
	// MarkCalls are the mark rpcs the backend received: single and batch.
	MarkCalls, BatchCalls int64
	// Others is the CPU other processes of the machine used meanwhile.
	Others float64 `json:"otherProcessesCores"`
}

// runRelay seeds the backlog, starts the processor and waits until every
// event is SENT, then checks that Kafka holds each of them once.
func (r *runner) runRelay(ctx context.Context, spec relaySpec) (relayResult, error) {
	var res relayResult
	addr, err := r.world.NewBackend(spec.backend)
	if err != nil {
		return res, err
	}
	total := spec.perType * spec.types.len()
	r.progress("%s: seeding %s events", spec.name, count(total))
	if err := r.world.Seed(SeedSpec{Types: spec.types, PerType: spec.perType}); err != nil {
		return res, err
	}
	before, err := snapshotTopics(ctx, r.admin)
	if err != nil {
		return res, err
	}
	calls0, err := r.world.Calls()
	if err != nil {
		return res, err
	}
	world0, _ := r.world.Usage()
	freeMemory()
	stopProfile, err := r.startRelayProfile(spec.profile)
	if err != nil {
		return res, err
	}
	m := &counters{}
	s := startSampler(10*time.Millisecond, r.opts.MemProfile != "")
	busy0 := machineBusy()
	ab0, ao0 := allocs()
	cpu0, t0 := cpuTime(), time.Now()
	a, err := app.New(r.processorConfig(addr, spec.interval), r.log, app.Options{Routes: spec.routes, Metrics: m, WithoutUnmarkedMemory: spec.noMemory})
	if err != nil {
		s.finish()
		_ = stopProfile()
		return res, err
	}
	res.Spawn = time.Since(t0)
	stop := runApp(a)
	err = r.waitSent(ctx, spec.name, spec.types, total, calls0, t0)
	res.Took = time.Since(t0)
	res.CPU = cpuTime() - cpu0
	ab1, ao1 := allocs()
	// After the figures, so that writing the profile is not in them.
	if perr := stopProfile(); perr != nil && err == nil {
		err = perr
	}
	res.Peaks = s.finish()
	r.keepHeapProfile(s)
	world1, _ := r.world.Usage()
	res.World = ProcUsage{CPU: world1.CPU - world0.CPU, RSSBytes: world1.RSSBytes, HeapBytes: world1.HeapBytes}
	if r.opts.InProcess {
		res.World.CPU = 0 // counted in res.CPU
	}
	res.Others = othersCores(machineBusy()-busy0, res.CPU+res.World.CPU, res.Took)
	if serr := stop(); serr != nil && err == nil {
		err = fmt.Errorf("shutdown: %w", serr)
	}
	res.Anomalies = m.anomalies()
	res.FullFinds, res.FindTime = m.fullFinds.Load(), time.Duration(m.fullFindTime.Load())
	if err != nil {
		return res, err
	}
	res.Events = total
	res.Rate = float64(total) / res.Took.Seconds()
	res.AllocBytes, res.AllocObjects = float64(ab1-ab0)/float64(total), float64(ao1-ao0)/float64(total)
	calls1, _ := r.world.Calls()
	res.Finds = calls1.Find - calls0.Find
	res.MarkCalls, res.BatchCalls = calls1.MarkSent-calls0.MarkSent, calls1.MarkMany-calls0.MarkMany
	res.Sent, _ = r.world.Count(CountSpec{Types: spec.types, Status: messages.StatusSent})

	after, err := snapshotTopics(ctx, r.admin)
	if err != nil {
		return res, err
	}
	// Messages (and synthetic types) are one record per event; log events
	// are elements of array records.
	var wantMsg, wantLog int
	spec.types.each(func(t string) {
		if t == messages.EventTypeHoBomLog {
			wantLog += spec.perType
		} else {
			wantMsg += spec.perType
		}
	})
	msgRecs := int(after[TopicMessages].since(before[TopicMessages]) + after[TopicSynthetic].since(before[TopicSynthetic]))
	res.InKafka, res.KafkaRecs = msgRecs, msgRecs
	var details []string
	if wantMsg > 0 {
		details = append(details, fmt.Sprintf("%s message records", count(msgRecs)))
	}
	if wantLog > 0 {
		recs, elems, err := countLogElements(ctx, r.info.KafkaAddrs, before[TopicLogs], after[TopicLogs])
		if err != nil {
			return res, err
		}
		res.InKafka += elems
		res.KafkaRecs += recs
		details = append(details, fmt.Sprintf("%s log events in %s arrays", count(elems), count(recs)))
	}
	res.KafkaDetail = strings.Join(details, ", ")
	r.progress("%s: %s events in %s = %s ev/s; in Kafka: %s", spec.name, count(total), dur(res.Took), count(int(res.Rate)), res.KafkaDetail)
	return res, nil
}

// runApp serves the processor until the returned stop is called, which
// shuts it down as production does and returns Run's error.
func runApp(a *app.App) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	return func() error {
		cancel()
		return <-done
	}
}

// waitSent waits until total events of types are SENT, printing progress.
// The backend's mark counter is the cheap trigger; the SENT count the
// authority.
func (r *runner) waitSent(ctx context.Context, name string, types TypeSet, total int, calls0 Calls, t0 time.Time) error {
	deadline := t0.Add(r.opts.Timeout)
	lastProgress := t0
	for {
		c, err := r.world.Calls()
		if err != nil {
			return err
		}
		marks := int(c.Sent() - calls0.Sent())
		if marks >= total {
			n, err := r.world.Count(CountSpec{Types: types, Status: messages.StatusSent})
			if err != nil {
				return err
			}
			if n >= total {
				return nil
			}
		}
		now := time.Now()
		if now.Sub(lastProgress) >= progressEvery {
			lastProgress = now
			r.progress("%s: %s/%s marked SENT (%s ev/s)", name, count(marks), count(total), count(int(float64(marks)/now.Sub(t0).Seconds())))
		}
		if now.After(deadline) {
			return fmt.Errorf("%s: %d of %d events marked after %v", name, marks, total, r.opts.Timeout)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		time.Sleep(completionPollEvery)
	}
}

func (r *runner) keepHeapProfile(s *sampler) {
	if p, at := s.heapProfile(); p != nil && at > r.heapProAt {
		r.heapPro, r.heapProAt = p, at
	}
}

// relayScenario runs one of the backlog scenarios and reports it against
// the ceilings.
func (r *runner) relayScenario(ctx context.Context, name string, types TypeSet, perType int, prodCeiling *float64) error {
	// The machine is shared: the mark ceiling's best point and its
	// neighbours run again right before and after the relay, and the ratio
	// is taken to the mean of the two maxima.
	var bracket, grpcBracket []float64
	var adjacentClient string
	measure := func() error {
		c, g, client, err := r.adjacentMarkCeiling(ctx)
		if c > 0 && g > 0 {
			bracket, grpcBracket, adjacentClient = append(bracket, c), append(grpcBracket, g), client
		}
		return err
	}
	if err := measure(); err != nil {
		return err
	}
	key := strings.ToLower(strings.TrimPrefix(name, "relay "))
	res, err := r.runRelay(ctx, relaySpec{name: name, types: types, perType: perType, interval: r.opts.PollInterval, profile: "relay-" + key})
	if err != nil {
		return err
	}
	// A relay of one event type runs beside the floor relays of that
	// type, one for each client of the sweep, in the same bracket of
	// ceilings.
	var floor, rawFloor floorResult
	if route, ok := singleRoute(types); ok && r.ceiling.haveMark {
		g, rw := r.ceiling.grpc, r.ceiling.raw
		r.progress("floor relay: %s %s events, gRPC-Go marks at %s", count(res.Events), route.EventType, g.best.label())
		if floor, err = r.floorRelay(ctx, route, res.Events, g.client, g.best, "floor-"+key); err != nil {
			return err
		}
		r.progress("floor relay: %s %s events, raw HTTP/2 marks at %s", count(res.Events), route.EventType, rw.best.label())
		if rawFloor, err = r.floorRelay(ctx, route, res.Events, rw.client, rw.best, "floorraw-"+key); err != nil {
			return fmt.Errorf("raw marks: %w", err)
		}
	}
	if err := measure(); err != nil {
		return err
	}
	r.report.raw("relay_"+key, map[string]any{"relay": res, "adjacentMarkCeilings": bracket, "adjacentClient": adjacentClient,
		"adjacentGRPCBest": grpcBracket, "floorRelay": floor, "rawFloorRelay": rawFloor})
	ceil := 0.0
	if len(bracket) == 2 {
		ceil = (bracket[0] + bracket[1]) / 2
	}
	scen := fmt.Sprintf("%s (%s)", name, count(res.Events))
	row := Row{Scenario: scen, Figure: "end-to-end rate", Value: res.Rate, Unit: "ev/s",
		Detail: fmt.Sprintf("%s in %s; %s finds, %s with events, %.0f%% of the run", count(res.Events), dur(res.Took),
			count(int(res.Finds)), count(int(res.FullFinds)), 100*res.FindTime.Seconds()/res.Took.Seconds())}
	var ratios []string
	if ceil > 0 {
		ratio := res.Rate / ceil
		ratios = append(ratios, fmt.Sprintf("%.2f of mark ceiling", ratio))
		g := (grpcBracket[0] + grpcBracket[1]) / 2
		row.Detail += fmt.Sprintf("; adjacent mark ceiling %s ev/s with the %s (%s before, %s after; sweep maximum %s); %.2f of the gRPC-Go client's best point beside it (%s ev/s: %s before, %s after)",
			count(int(ceil)), adjacentClient, count(int(bracket[0])), count(int(bracket[1])), count(int(r.ceiling.top.best.Rate)),
			res.Rate/g, count(int(g)), count(int(grpcBracket[0])), count(int(grpcBracket[1])))
		row.Target = fmt.Sprintf("≥ %.2f of mark ceiling", targetMarkRatio)
		row.setPass(ratio >= targetMarkRatio)
	}
	if floor.Rate > 0 {
		ratios = append(ratios, fmt.Sprintf("%.2f of floor relay", res.Rate/floor.Rate))
	}
	if r.ceiling.haveProds && *prodCeiling > 0 {
		ratios = append(ratios, fmt.Sprintf("%.2f of produce", res.Rate / *prodCeiling))
	}
	row.VsCeiling = strings.Join(ratios, ", ")
	r.report.add(row)
	r.addFloorRow(scen, "floor relay (no actors)", floor, ceil, "marks by generated stubs on gRPC-Go")
	r.addFloorRow(scen, "floor relay, raw HTTP/2 marks", rawFloor, ceil, "marks by the raw HTTP/2 client")
	r.addCommonRows(scen, res)
	return nil
}

// addFloorRow reports a floor relay against the mark ceiling beside it.
// A floor relay marks as one of the ceiling's clients does and finds,
// encodes and produces besides: well above the ceiling, it shows a sweep
// that missed the backend's maximum (every ratio to it then flatters the
// relay) or a machine that slowed down between them. Below it, its ratio
// is the most a relay with one mark per event marking that way was seen
// to reach here.
func (r *runner) addFloorRow(scen, figure string, floor floorResult, ceil float64, marks string) {
	if floor.Rate <= 0 {
		return
	}
	row := Row{Scenario: scen, Figure: figure, Value: floor.Rate, Unit: "ev/s",
		Detail: fmt.Sprintf("the least a relay with one mark per event does, beside it: %s in %s, %s finds, %s at %d in flight × %d conn, plain franz-go; CPU here / world %.2f / %.2f cores",
			count(floor.Events), dur(floor.Took), count(floor.Finds), marks, floor.InFlight, floor.Conns,
			floor.CPU.Seconds()/floor.Took.Seconds(), floor.World.Seconds()/floor.Took.Seconds())}
	if ceil > 0 {
		ratio := floor.Rate / ceil
		row.VsCeiling = fmt.Sprintf("%.2f of mark ceiling", ratio)
		row.Target = fmt.Sprintf("≤ %.2f of mark ceiling (the ceiling is one)", maxFloorRatio)
		row.setPass(ratio <= maxFloorRatio)
	}
	r.report.add(row)
}

// singleRoute is the default route of types when they are that one type.
func singleRoute(types TypeSet) (messages.Route, bool) {
	if types.Synthetic != 0 || len(types.Names) != 1 {
		return messages.Route{}, false
	}
	for _, rt := range messages.DefaultRoutes() {
		if rt.EventType == types.Names[0] {
			return rt, true
		}
	}
	return messages.Route{}, false
}

// addDeliveryRows reports the run's delivery check (every event SENT and
// in Kafka, once) and any anomalies the world counted.
func (r *runner) addDeliveryRows(scen string, res relayResult, detail string) {
	check := Row{Scenario: scen, Figure: "SENT / in Kafka", Text: fmt.Sprintf("%s / %s", count(res.Sent), count(res.InKafka)),
		Target: "all, once", Detail: detail}
	check.setPass(res.Sent == res.Events && res.InKafka == res.Events)
	r.report.add(check)
	if !res.Anomalies.none() {
		r.report.add(Row{Scenario: scen, Figure: "anomalies", Text: fmt.Sprintf("%+v", res.Anomalies)})
	}
}

// addCommonRows reports delivery, memory, goroutines and CPU of a run.
func (r *runner) addCommonRows(scen string, res relayResult) {
	r.addDeliveryRows(scen, res, res.KafkaDetail)
	r.report.add(Row{Scenario: scen, Figure: "peak heap / RSS", Text: mb(res.Peaks.HeapBytes) + " / " + mb(uint64(res.Peaks.RSSBytes))})
	alloc := Row{Scenario: scen, Figure: "allocated per event", Value: res.AllocBytes, Unit: "B",
		Text: fmt.Sprintf("%s B, %.1f allocs", count(int(res.AllocBytes)), res.AllocObjects), Target: "≤ 3 KB",
		Detail: fmt.Sprintf("%s single mark rpcs, %s batch mark rpcs", count(int(res.MarkCalls)), count(int(res.BatchCalls)))}
	if r.ceiling.rpcAllocBytes > 0 && res.MarkCalls > 0 {
		alloc.Detail += fmt.Sprintf("; a minimal gRPC client allocates %s B per mark rpc", count(int(r.ceiling.rpcAllocBytes)))
	}
	alloc.setPass(res.AllocBytes <= targetAllocBytes)
	r.report.add(alloc)
	r.report.add(Row{Scenario: scen, Figure: "peak goroutines", Value: float64(res.Peaks.Goroutines), Text: count(int(res.Peaks.Goroutines))})
	r.report.add(Row{Scenario: scen, Figure: "CPU processor / world", Text: fmt.Sprintf("%.2f / %.2f cores",
		res.CPU.Seconds()/res.Took.Seconds(), res.World.CPU.Seconds()/res.Took.Seconds()),
		Detail: fmt.Sprintf("%.1f µs processor CPU per event; other processes %.2f cores", perEventMicros(res.CPU, res.Events), res.Others)})
}

// ---- latency ----

func (r *runner) latency(ctx context.Context) error {
	interval := r.opts.LatencyInterval
	if interval <= 0 {
		interval = r.cfg.PollInterval
	}
	addr, err := r.world.NewBackend(BackendSpec{})
	if err != nil {
		return err
	}
	freeMemory()
	m := &counters{}
	s := startSampler(10*time.Millisecond, r.opts.MemProfile != "")
	u := r.startUsage()
	t0 := time.Now()
	a, err := app.New(r.processorConfig(addr, interval), r.log, app.Options{Metrics: m})
	if err != nil {
		s.finish()
		return err
	}
	stop := runApp(a)
	defer func() { _ = stop() }()
	spec := LatencySpec{Rate: r.opts.LatencyRate, Duration: r.opts.LatencyDuration}
	r.progress("latency: offering %d MESSAGE events/s for %s, poll interval %s", spec.Rate, spec.Duration, interval)
	if err := r.world.StartLatency(spec); err != nil {
		return err
	}
	for end := time.Now().Add(spec.Duration); time.Now().Before(end); {
		if err := sleepCtx(ctx, min(progressEvery, time.Until(end))); err != nil {
			return err
		}
		c, _ := r.world.Calls()
		r.progress("latency: %s marked SENT so far", count(int(c.Sent())))
	}
	res, err := r.world.LatencyResult(2*interval + 10*time.Second)
	took := time.Since(t0)
	cpu, _, others := u.finish()
	peaks := s.finish()
	r.keepHeapProfile(s)
	if err != nil {
		return err
	}
	if serr := stop(); serr != nil {
		return fmt.Errorf("shutdown: %w", serr)
	}
	stop = func() error { return nil }
	if len(res.Latencies) == 0 {
		return fmt.Errorf("no generated event reached Kafka (%d generated)", res.Generated)
	}
	p50, p99, pmax := pct(res.Latencies, 0.50), pct(res.Latencies, 0.99), res.Latencies[len(res.Latencies)-1]
	scen := fmt.Sprintf("latency (%s ev/s offered, %s poll)", count(spec.Rate), dur(interval))
	target := interval + targetLatencySlack
	row := Row{Scenario: scen, Figure: "creation → Kafka ack p99", Value: p99.Seconds() * 1000, Unit: "ms",
		Detail: fmt.Sprintf("p50 %s, max %s", dur(p50), dur(pmax)), Target: "≤ " + dur(target)}
	row.setPass(p99 <= target)
	r.report.add(Row{Scenario: scen, Figure: "creation → Kafka ack p50", Value: p50.Seconds() * 1000, Unit: "ms"})
	r.report.add(row)
	if sl := res.SentLatencies; len(sl) > 0 {
		r.report.add(Row{Scenario: scen, Figure: "creation → SENT p99", Value: ms(pct(sl, 0.99)), Unit: "ms",
			Detail: fmt.Sprintf("p50 %s, max %s; %s events SENT", dur(pct(sl, 0.5)), dur(sl[len(sl)-1]), count(len(sl)))})
	}
	check := Row{Scenario: scen, Figure: "offered / in Kafka", Text: fmt.Sprintf("%s / %s", count(res.Generated), count(res.Seen)),
		Target: "all, once", Detail: fmt.Sprintf("offered at %.0f ev/s; %d duplicates", res.AchievedRate, res.Duplicates)}
	check.setPass(res.Seen == res.Generated && res.Duplicates == 0)
	r.report.add(check)
	if an := m.anomalies(); !an.none() {
		r.report.add(Row{Scenario: scen, Figure: "anomalies", Text: fmt.Sprintf("%+v", an)})
	}
	r.report.add(Row{Scenario: scen, Figure: "peak heap / RSS", Text: mb(peaks.HeapBytes) + " / " + mb(uint64(peaks.RSSBytes))})
	r.report.add(Row{Scenario: scen, Figure: "peak goroutines / CPU", Text: fmt.Sprintf("%s / %.2f cores", count(int(peaks.Goroutines)), cpu.Seconds()/took.Seconds()),
		Detail: fmt.Sprintf("other processes %.2f cores", others)})
	r.report.raw("latency", map[string]any{"otherProcessesCores": others, "offeredRate": spec.Rate, "achievedRate": res.AchievedRate, "generated": res.Generated,
		"seen": res.Seen, "duplicates": res.Duplicates, "p50Ms": ms(p50), "p90Ms": ms(pct(res.Latencies, 0.9)), "p99Ms": ms(p99),
		"p999Ms": ms(pct(res.Latencies, 0.999)), "maxMs": ms(pmax), "pollInterval": interval.String(),
		"sentP50Ms": ms(pct(res.SentLatencies, 0.5)), "sentP99Ms": ms(pct(res.SentLatencies, 0.99)), "peaks": peaks, "cpuSeconds": cpu.Seconds()})
	r.progress("latency: p50 %s, p99 %s, max %s over %s events", dur(p50), dur(p99), dur(pmax), count(len(res.Latencies)))
	return nil
}

func pct(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ---- many pollers ----

// idleResult is the poller scenario's idle phase.
type idleResult struct {
	Pollers        int           `json:"pollers"`
	Spawn          time.Duration `json:"spawnNs"`
	HeapBefore     uint64        `json:"heapBeforeBytes"`
	HeapIdle       uint64        `json:"heapIdleBytes"`
	PeakHeap       uint64        `json:"peakHeapBytes"`
	PeakRSS        int64         `json:"peakRSSBytes"`
	Goroutines     uint64        `json:"goroutinesIdle"`
	PerPollerBytes float64       `json:"heapPerPollerBytes"`
	Window         time.Duration `json:"cpuWindowNs"`
	CPU            time.Duration `json:"cpuNs"`
	WorldCPU       time.Duration `json:"worldCpuNs"`
	Others         float64       `json:"otherProcessesCores"`
	Finds          int64         `json:"findsInWindow"`
	Shutdown       time.Duration `json:"shutdownNs"`
}

func (r *runner) pollers(ctx context.Context) error {
	ns := slices.Clone(r.opts.EventTypes)
	slices.Sort(ns)
	largest := 0
	if len(ns) > 0 {
		largest = ns[len(ns)-1]
	}
	// N = 0 (the two default pollers) is the baseline of heap per poller.
	base, err := r.idle(ctx, 0, 0)
	if err != nil {
		return err
	}
	r.idleHeap0, r.idleHeap0N = base.HeapIdle, true
	for _, n := range ns {
		// The CPU window spans at least one poll interval, so that every
		// poller polls in it; only the largest N gets the full window.
		window := r.opts.IdleWindow
		if n != largest {
			window = r.opts.IdleWindowSmall
		}
		if window > 0 {
			window = max(window, r.cfg.PollInterval)
		}
		idle, err := r.idle(ctx, n, window)
		if err != nil {
			return fmt.Errorf("%d pollers idle: %w", n, err)
		}
		r.report.raw(fmt.Sprintf("pollers_%d_idle", n), idle)
		scen := fmt.Sprintf("pollers N=%s (+2 default)", count(n))
		spawn := Row{Scenario: scen, Figure: "spawn (app.New)", Value: ms(idle.Spawn), Unit: "ms", Detail: "shutdown " + dur(idle.Shutdown)}
		heap := Row{Scenario: scen, Figure: "idle heap after GC", Text: mb(idle.HeapIdle),
			Detail: fmt.Sprintf("%s per poller; peak %s, RSS %s, %s goroutines", perPoller(idle), mb(idle.PeakHeap), mb(uint64(idle.PeakRSS)), count(int(idle.Goroutines)))}
		cores := idle.CPU.Seconds() / idle.Window.Seconds()
		cpu := Row{Scenario: scen, Figure: fmt.Sprintf("CPU idle-polling (%s)", dur(r.cfg.PollInterval)), Value: cores, Unit: "cores",
			Detail: fmt.Sprintf("%s finds in %s; world %.2f cores, other processes %.2f", count(int(idle.Finds)), dur(idle.Window),
				idle.WorldCPU.Seconds()/idle.Window.Seconds(), idle.Others)}
		if n >= targetPollersN {
			spawn.Target, heap.Target, cpu.Target = "< "+dur(targetSpawn), "< "+mb(targetPollerHeap), fmt.Sprintf("< %.0f core", targetPollerCPU)
			spawn.setPass(idle.Spawn < targetSpawn)
			heap.setPass(idle.HeapIdle < targetPollerHeap)
			cpu.setPass(cores < targetPollerCPU)
		}
		r.report.add(spawn)
		r.report.add(heap)
		if idle.Window > 0 {
			r.report.add(cpu)
		}

		per := max(1, r.opts.PollerEvents/n)
		res, err := r.runRelay(ctx, relaySpec{name: fmt.Sprintf("%d pollers", n), routes: append(messages.DefaultRoutes(), SyntheticRoutes(n)...),
			types: TypeSet{Synthetic: n}, perType: per, interval: r.cfg.PollInterval})
		if err != nil {
			return fmt.Errorf("%d pollers relay: %w", n, err)
		}
		r.report.raw(fmt.Sprintf("pollers_%d_relay", n), res)
		row := Row{Scenario: scen, Figure: "end-to-end rate", Value: res.Rate, Unit: "ev/s",
			Detail: fmt.Sprintf("%s events (%s per type) in %s, %s finds", count(res.Events), count(per), dur(res.Took), count(int(res.Finds)))}
		if r.ceiling.haveMark {
			row.VsCeiling = fmt.Sprintf("%.2f of mark rpc", res.Rate/r.ceiling.top.best.Rate)
		}
		r.report.add(row)
		r.addDeliveryRows(scen, res, "")
	}
	return nil
}

// perPoller is the idle heap per poller actor over the N = 0 baseline;
// below 100 pollers it drowns in the noise of the rest of the heap.
func perPoller(r idleResult) string {
	if r.Pollers-2 < 100 {
		return "n/a (N < 100)"
	}
	return strconv.FormatFloat(r.PerPollerBytes/1024, 'f', 1, 64) + " KB"
}

// idle starts the processor with n synthetic routes on an empty backlog
// and measures spawn time, heap after the first polls and CPU over window.
func (r *runner) idle(ctx context.Context, n int, window time.Duration) (idleResult, error) {
	res := idleResult{Pollers: n + 2, Window: window}
	addr, err := r.world.NewBackend(BackendSpec{})
	if err != nil {
		return res, err
	}
	routes := append(messages.DefaultRoutes(), SyntheticRoutes(n)...)
	res.HeapBefore = liveHeapAfterGC()
	freeMemory()
	calls0, err := r.world.Calls()
	if err != nil {
		return res, err
	}
	s := startSampler(10*time.Millisecond, r.opts.MemProfile != "")
	t0 := time.Now()
	a, err := app.New(r.processorConfig(addr, r.cfg.PollInterval), r.log, app.Options{Routes: routes})
	if err != nil {
		s.finish()
		return res, err
	}
	res.Spawn = time.Since(t0)
	stop := runApp(a)
	defer func() {
		if stop != nil {
			_ = stop()
		}
	}()
	r.progress("pollers N=%d: spawned %d pollers in %s; waiting for the first round of finds", n, n+2, dur(res.Spawn))
	for {
		c, err := r.world.Calls()
		if err != nil {
			return res, err
		}
		if c.Find-calls0.Find >= int64(n+2) {
			break
		}
		if time.Since(t0) > r.opts.Timeout {
			return res, fmt.Errorf("only %d of %d first finds after %v", c.Find-calls0.Find, n+2, r.opts.Timeout)
		}
		if err := sleepCtx(ctx, completionPollEvery); err != nil {
			return res, err
		}
	}
	// Let the answers reach the pollers and their timers get set.
	if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
		return res, err
	}
	res.HeapIdle = liveHeapAfterGC()
	_, g, _ := heapNow()
	res.Goroutines = g
	if r.opts.MemProfile != "" && n > 0 {
		// The heap of idle pollers, for the per-poller cost.
		name := fmt.Sprintf("%s.idle-%d", r.opts.MemProfile, n)
		if f, err := os.Create(name); err == nil {
			_ = pprof.Lookup("heap").WriteTo(f, 0)
			_ = f.Close()
			r.progress("pollers N=%d: idle heap profile written to %s", n, name)
		}
	}
	if n > 0 && r.idleHeap0N {
		res.PerPollerBytes = (float64(res.HeapIdle) - float64(r.idleHeap0)) / float64(n)
	}
	if window > 0 {
		r.progress("pollers N=%d: measuring CPU over %s of idle polling", n, dur(window))
		c0, _ := r.world.Calls()
		u := r.startUsage()
		if err := sleepCtx(ctx, window); err != nil {
			return res, err
		}
		res.CPU, res.WorldCPU, res.Others = u.finish()
		c1, _ := r.world.Calls()
		res.Finds = c1.Find - c0.Find
	}
	peaks := s.finish()
	r.keepHeapProfile(s)
	res.PeakHeap, res.PeakRSS = peaks.HeapBytes, peaks.RSSBytes
	ts := time.Now()
	err = stop()
	stop = nil
	res.Shutdown = time.Since(ts)
	if err != nil {
		return res, fmt.Errorf("shutdown: %w", err)
	}
	r.progress("pollers N=%d: idle heap %s, %.2f cores idle, shutdown %s", n, mb(res.HeapIdle), res.CPU.Seconds()/max(window.Seconds(), 1e-9), dur(res.Shutdown))
	return res, nil
}

// ---- drains ----

func (r *runner) drain(ctx context.Context) error {
	// MESSAGE, then HOBOM_LOG: a log array is one Kafka record for some
	// 1,700 events here, so what the publisher keeps per record (and per
	// slab of records) weighs differently on the heap than for messages.
	for _, typ := range []string{messages.EventTypeMessage, messages.EventTypeHoBomLog} {
		if err := r.drainOf(ctx, typ); err != nil {
			return err
		}
	}
	return nil
}

func (r *runner) drainOf(ctx context.Context, eventType string) error {
	n := r.opts.DrainEvents
	// With batch marks, so that a million events drain in seconds; what
	// is held at once is bounded by the find limit and the in-flight
	// budget either way.
	res, err := r.runRelay(ctx, relaySpec{name: "drain " + eventType, backend: BackendSpec{BatchMarks: true},
		types: TypeSet{Names: []string{eventType}}, perType: n, interval: r.opts.PollInterval})
	if err != nil {
		return err
	}
	raw := "drain"
	if eventType != messages.EventTypeMessage {
		raw = "drain " + eventType
	}
	r.report.raw(raw, res)
	scen := fmt.Sprintf("drain %s %s, find limit %s, batch marks", count(n), eventType, count(r.cfg.FindLimit))
	heap := Row{Scenario: scen, Figure: "peak heap", Value: float64(res.Peaks.HeapBytes), Text: mb(res.Peaks.HeapBytes), Detail: "RSS " + mb(uint64(res.Peaks.RSSBytes))}
	if n >= targetDrainEvents {
		heap.Target = "< " + mb(targetDrainHeap)
		heap.setPass(res.Peaks.HeapBytes < targetDrainHeap)
	}
	r.report.add(heap)
	r.report.add(Row{Scenario: scen, Figure: "end-to-end rate", Value: res.Rate, Unit: "ev/s",
		Detail: fmt.Sprintf("%s in %s, %s finds", count(res.Events), dur(res.Took), count(int(res.Finds)))})
	r.addDeliveryRows(scen, res, "")
	r.report.add(Row{Scenario: scen, Figure: "peak goroutines / CPU", Text: fmt.Sprintf("%s / %.2f cores", count(int(res.Peaks.Goroutines)), res.CPU.Seconds()/res.Took.Seconds())})
	return nil
}

func (r *runner) oldBackend(ctx context.Context) error {
	n := r.opts.OldBackendEvents
	res, err := r.runRelay(ctx, relaySpec{name: "old backend", backend: BackendSpec{OldFind: true},
		types: TypeSet{Names: []string{messages.EventTypeMessage}}, perType: n, interval: r.opts.PollInterval})
	if err != nil {
		return err
	}
	r.report.raw("oldBackend", res)
	scen := fmt.Sprintf("old backend (limit and cursor ignored), %s MESSAGE", count(n))
	r.report.add(Row{Scenario: scen, Figure: "peak heap", Value: float64(res.Peaks.HeapBytes), Text: mb(res.Peaks.HeapBytes),
		Detail: "RSS " + mb(uint64(res.Peaks.RSSBytes)) + ", whole backlog in one find response"})
	r.report.add(Row{Scenario: scen, Figure: "end-to-end rate", Value: res.Rate, Unit: "ev/s",
		Detail: fmt.Sprintf("%s in %s, %s finds", count(res.Events), dur(res.Took), count(int(res.Finds)))})
	r.addDeliveryRows(scen, res, "")
	return nil
}

// machine describes where the run happened.
func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		if k, v, ok := strings.Cut(strings.SplitN(string(data), "\n", 2)[0], ":"); ok && k == "MemTotal" {
			m.Memory = strings.TrimSpace(v)
		}
	}
	return m
}

// startRelayProfile starts a CPU profile of this process written to
// Options.RelayProfiles/name.pprof, and returns what stops it and closes
// the file; without that option it starts nothing.
func (r *runner) startRelayProfile(name string) (stop func() error, err error) {
	if r.opts.RelayProfiles == "" || name == "" {
		return func() error { return nil }, nil
	}
	path := filepath.Join(r.opts.RelayProfiles, name+".pprof")
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("loadtest: relay profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("loadtest: relay profile %s: %w", path, err)
	}
	return func() error {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			return fmt.Errorf("loadtest: relay profile %s: %w", path, err)
		}
		return nil
	}, nil
}

// sumPoints adds up the calls, CPU and allocations of a sweep's points.
func sumPoints(pts []markPoint) markPoint {
	var sum markPoint
	for _, p := range pts {
		sum.Calls += p.Calls
		sum.CPU, sum.World = sum.CPU+p.CPU, sum.World+p.World
		sum.AllocBytes, sum.AllocObjects = sum.AllocBytes+p.AllocBytes, sum.AllocObjects+p.AllocObjects
	}
	return sum
}
