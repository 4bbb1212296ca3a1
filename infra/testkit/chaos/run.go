// Package chaos is the fault-injection suite: it runs the processor against
// the stand-in backend, kfake and a real redis-server (with AOF, as in
// production) while a generator adds events and a seeded schedule injects
// faults (Kafka errors, holds and outages, a broker gone and back, Redis
// killed and restarted, failing and slow backend rpcs, panics in each
// actor, SIGTERM mid-batch, SIGKILL and restart). Then it lets everything
// drain and checks that no event was lost: each is SENT and in Kafka, or
// FAILED and in the DLQ, and in Kafka after the DLQ is replayed. cmd/chaos
// runs it (make chaos); chaos_test.go runs a short schedule under go test.
package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hobom/hobom-event-processor/infra/devkit/fakebackend"
	"github.com/hobom/hobom-event-processor/infra/testkit/redisproc"
	"github.com/hobom/hobom-event-processor/messages"
)

// Config is what a run is made of.
type Config struct {
	Seed     uint64
	Duration time.Duration
	// Rate is the events per second the generator adds (both types); 200
	// when 0.
	Rate int
	// Binary is the processor binary the subprocess instances run
	// (go build ./cmd/hobom-event-processor).
	Binary string
	// Dir keeps the logs (one per instance, redis.log, plan.txt) and
	// Redis's data; a new temporary directory when empty.
	Dir string
	// DrainTimeout bounds the wait for no PENDING event once the faults
	// are cleared; 2 minutes when 0.
	DrainTimeout time.Duration
	// Brokers in the Kafka cluster, 2 or more; 3 when 0.
	Brokers int
	// ResolveBound is the longest an event may take from its first fetch to
	// SENT or FAILED outside pending-by-design faults; DefaultResolveBound
	// when 0.
	ResolveBound time.Duration
	// DupBudgetCap, when not nil, caps every cause's duplicate budget (0
	// shows that the budget check fails when a run has duplicates).
	DupBudgetCap *int
	// Progress receives a line per fault and phase; nil discards.
	Progress io.Writer
}

// world is what the processor talks to.
type world struct {
	dir     string
	backend *fakebackend.Server
	kafka   *kafkaWorld
	redis   *redisproc.Server
}

func (w *world) close() {
	if w.backend != nil {
		w.backend.Close()
	}
	if w.kafka != nil {
		w.kafka.Close()
	}
	if w.redis != nil {
		_ = w.redis.Close()
	}
}

// moment is a time when events in flight could be published a second
// time: the process or the publisher lost what it knew about them.
type moment struct {
	kind      string
	at, until time.Time
	eventType string // the event type it concerns; "" for every one
	// when is the instant the fault happened (a lease's acquisition);
	// at when zero.
	when time.Time
}

func (m moment) instant() time.Time {
	if m.when.IsZero() {
		return m.at
	}
	return m.when
}

type runner struct {
	cfg   Config
	plan  Plan
	w     *world
	gen   *generator
	pan   *panicker
	out   io.Writer
	start time.Time
	rep   *Report

	// slots are the instances running side by side, sharing the event
	// types through leases: slot 0 changes kind between epochs (in-process
	// and subprocess, stopped by SIGTERM or SIGKILL), the others are
	// subprocesses, paused (SIGSTOP) and killed. nil while one is down.
	slots     []processor
	instances []processor
	seq       int

	mu       sync.Mutex // guards what window timers touch
	problems []string
	windows  map[int]*window
	moments  []moment
	// kafkaWindows are the Kafka faults, once ended.
	kafkaWindows []moment
	// faultLog is every windowed fault, once ended, and every instant one.
	faultLog []moment

	fetch *fetchClock
}

type window struct {
	timer *time.Timer
	once  sync.Once
	end   func()
}

// Run runs the suite and returns its report; the error is for a run that
// could not be carried out at all (no redis-server, no binary). A run that
// found a problem returns a Report whose OK is false.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Rate == 0 {
		cfg.Rate = 200
	}
	if cfg.DrainTimeout == 0 {
		cfg.DrainTimeout = 2 * time.Minute
	}
	if cfg.ResolveBound == 0 {
		cfg.ResolveBound = DefaultResolveBound()
	}
	if cfg.Brokers == 0 {
		cfg.Brokers = 3
	}
	if cfg.Brokers < 2 {
		return nil, fmt.Errorf("chaos: Config.Brokers is %d: a bounce takes a node out and keeps the controller, so it needs 2 or more", cfg.Brokers)
	}
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	if cfg.Binary == "" {
		return nil, errors.New("chaos: Config.Binary (the processor binary) is required")
	}
	if _, err := os.Stat(cfg.Binary); err != nil {
		return nil, fmt.Errorf("chaos: processor binary: %w", err)
	}
	if cfg.Dir == "" {
		d, err := os.MkdirTemp("", "hobom-chaos-")
		if err != nil {
			return nil, err
		}
		cfg.Dir = d
	} else if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	r := &runner{cfg: cfg, out: cfg.Progress, pan: newPanicker(), windows: map[int]*window{}}
	r.plan = NewPlan(cfg.Seed, cfg.Duration, cfg.Brokers)
	r.rep = &Report{Seed: cfg.Seed, Duration: cfg.Duration, Dir: cfg.Dir, Injected: map[Kind]int{}, Skipped: map[Kind]int{}}
	_ = os.WriteFile(filepath.Join(cfg.Dir, "plan.txt"), []byte(r.plan.String()), 0o644)

	w := &world{dir: cfg.Dir}
	defer w.close()
	var err error
	if w.redis, err = startRedis(cfg.Dir); err != nil {
		return nil, err
	}
	if w.backend, err = fakebackend.Start(fakebackend.Options{}); err != nil {
		return nil, err
	}
	if w.kafka, err = startKafka(cfg.Dir, cfg.Brokers, cfg.Seed); err != nil {
		return nil, err
	}
	r.w = w
	r.fetch = watchFetches(w.backend)
	r.gen = newGenerator(w.backend, cfg.Rate)
	// go-redis logs dial failures of the in-process instances (Redis is
	// down on purpose) with a global logger: into the logs, not the report.
	if f, err := os.Create(filepath.Join(cfg.Dir, "go-redis.log")); err == nil {
		defer f.Close()
		redis.SetLogger(fileLogger{f})
		defer redis.SetLogger(fileLogger{io.Discard})
	}

	r.logf("chaos: seed %d, schedule %v, %d events/s, %d faults planned, logs in %s", cfg.Seed, cfg.Duration, cfg.Rate, len(r.plan.Faults), cfg.Dir)
	for slot := range instances {
		kind := Subprocess
		if slot == 0 {
			kind = r.plan.First
		}
		r.slots = append(r.slots, nil)
		if err := r.startInstance(slot, kind, 0); err != nil {
			return nil, err
		}
	}
	r.w.kafka.op.Lock()
	r.w.kafka.onCrash = func(at time.Time) {
		r.logf("HARNESS: the broker process died by itself; restarting it empty")
		r.moment(abandonedLand, at.Add(-writeTimeout), at)
	}
	r.w.kafka.op.Unlock()
	r.start = time.Now()
	go r.gen.run()
	r.execute(ctx)
	r.gen.halt()
	r.clearFaults()
	r.logf("chaos: schedule done; faults cleared, %d events created; draining", len(r.gen.all()))
	if r.running() == nil {
		if err := r.startInstance(0, InProcess, 0); err != nil {
			r.problem("start an instance to drain: %v", err)
		}
	}
	r.drain(ctx)
	r.crashMoments()
	r.leaseMoments()
	r.verify(ctx)
	r.finish()
	r.rep.Problems = append(r.rep.Problems, r.problems...)
	return r.rep, nil
}

func (r *runner) logf(format string, args ...any) {
	prefix := ""
	if !r.start.IsZero() {
		prefix = fmt.Sprintf("t+%6.2fs ", time.Since(r.start).Seconds())
	}
	fmt.Fprintf(r.out, prefix+format+"\n", args...)
}

func (r *runner) problem(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.mu.Lock()
	r.problems = append(r.problems, msg)
	r.mu.Unlock()
	r.logf("PROBLEM: %s", msg)
}

func (r *runner) moment(kind string, at, until time.Time) {
	r.mu.Lock()
	r.moments = append(r.moments, moment{kind: kind, at: at, until: until})
	r.mu.Unlock()
}

// instances is how many processor instances run side by side, with leases
// on (the default): more than the two event types, so one waits to take
// over.
const instances = 3

// running returns a running instance (the first slot's first), nil if
// none runs.
func (r *runner) running() processor {
	for _, p := range r.slots {
		if p != nil {
			return p
		}
	}
	return nil
}

// startInstance starts the next processor instance of kind in slot.
func (r *runner) startInstance(slot int, kind ProcKind, panicEvery int) error {
	r.seq++
	port, err := freePort()
	if err != nil {
		return err
	}
	var p processor
	if kind == Subprocess {
		name := fmt.Sprintf("p%d-s%d-subprocess", r.seq, slot)
		p, err = startSubProc(r.w, name, port, r.cfg.Binary, panicEvery)
	} else {
		p, err = startInProc(r.w, fmt.Sprintf("p%d-s%d-in-process", r.seq, slot), port, r.pan)
	}
	if err != nil {
		return err
	}
	r.slots[slot] = p
	r.instances = append(r.instances, p)
	extra := ""
	if panicEvery > 0 {
		extra = fmt.Sprintf(" (HOBOM_FAULT_PANIC_EVERY=%d)", panicEvery)
	}
	r.logf("instance %s started%s", p.Name(), extra)
	return nil
}

// execute runs the plan: windows start and end on timers, instant faults
// and process faults run here, in order.
func (r *runner) execute(ctx context.Context) {
	for i, f := range r.plan.Faults {
		if !r.sleepUntil(ctx, f.At) {
			return
		}
		switch f.Kind {
		case PanicPoller, PanicPublisher, PanicDLQ:
			r.injectPanic(f)
		case SIGTERM, SIGKILL:
			r.restart(f)
		default:
			r.beginWindow(i, f)
		}
	}
	r.sleepUntil(ctx, r.plan.Duration)
}

func (r *runner) sleepUntil(ctx context.Context, at time.Duration) bool {
	d := time.Until(r.start.Add(at))
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (r *runner) injectPanic(f Fault) {
	cur := r.slots[0]
	if cur == nil || cur.Kind() != InProcess {
		r.rep.Skipped[f.Kind]++
		r.logf("%s skipped: a subprocess runs (its panics come from HOBOM_FAULT_PANIC_EVERY)", f.Kind)
		return
	}
	if err := cur.Panic(f.Kind, f.Route); err != nil {
		r.problem("%s: %v", f.Kind, err)
		return
	}
	r.rep.Injected[f.Kind]++
	now := time.Now()
	r.mu.Lock()
	r.faultLog = append(r.faultLog, moment{kind: string(f.Kind), at: now, until: now.Add(time.Second)})
	r.mu.Unlock()
	if f.Kind == PanicPublisher {
		r.moment(causePublisherPanic, now, now.Add(time.Second))
	}
	r.logf("%s", f)
}

// restart stops the running instance, by SIGTERM or SIGKILL, in the middle
// of a batch if one comes within a few seconds, and starts the next.
func (r *runner) restart(f Fault) {
	old := r.slots[f.Slot]
	if old == nil {
		r.rep.Skipped[f.Kind]++
		return
	}
	kind := f.Kind
	if kind == SIGKILL && old.Kind() != Subprocess {
		kind = SIGTERM // an instance of this process cannot be killed
	}
	mid := r.waitMidBatch(3 * time.Second)
	if mid {
		r.rep.MidBatch++
	}
	at := time.Now()
	r.slots[f.Slot] = nil
	if old.Kind() == InProcess {
		r.pan.disarm() // the next in-process instance has the same PIDs
	}
	switch kind {
	case SIGKILL:
		if err := old.Kill(); err != nil {
			r.problem("SIGKILL %s: %v", old.Name(), err)
		}
		r.logf("%s %s (mid-batch: %v)", kind, old.Name(), mid)
	default:
		r.stopGracefully(old)
		r.logf("%s %s (mid-batch: %v) took %v", kind, old.Name(), mid, time.Since(at).Round(time.Millisecond))
	}
	r.rep.Injected[kind]++
	next := f.Next
	if f.Slot > 0 {
		next = Subprocess
	}
	if err := r.startInstance(f.Slot, next, f.PanicEvery); err != nil {
		r.problem("start %s: %v", f.Next, err)
		return
	}
	cause := causeSIGTERM
	if kind == SIGKILL {
		cause = causeKill
	}
	r.moment(cause, at, time.Now())
}

// waitMidBatch waits until SENT marks are being made (a batch is half
// done) or limit passes.
func (r *runner) waitMidBatch(limit time.Duration) bool {
	b := r.w.backend
	deadline := time.Now().Add(limit)
	last := b.Calls(fakebackend.MarkSent)
	for time.Now().Before(deadline) {
		time.Sleep(3 * time.Millisecond)
		n := b.Calls(fakebackend.MarkSent)
		if n > last && b.Count(messages.EventTypeMessage, messages.StatusPending)+b.Count(messages.EventTypeHoBomLog, messages.StatusPending) > 0 {
			return true
		}
		last = n
	}
	return false
}

func (r *runner) beginWindow(i int, f Fault) {
	end, err := r.begin(f)
	if errors.Is(err, errSkip) {
		r.rep.Skipped[f.Kind]++
		r.logf("%s: skipped (%v)", f, err)
		return
	}
	if err != nil {
		r.problem("%s: %v", f.Kind, err)
		return
	}
	r.rep.Injected[f.Kind]++
	r.logf("%s", f)
	{
		start, inner := time.Now(), end
		end = func() {
			inner()
			r.mu.Lock()
			r.faultLog = append(r.faultLog, moment{kind: string(f.Kind), at: start, until: time.Now()})
			r.mu.Unlock()
		}
	}
	if isKafka(f.Kind) {
		// Kafka windows explain events that failed although their record
		// was appended (the client saw a failure).
		start, inner := time.Now(), end
		end = func() {
			inner()
			r.mu.Lock()
			r.kafkaWindows = append(r.kafkaWindows, moment{kind: string(f.Kind), at: start, until: time.Now().Add(f.Hold)})
			r.mu.Unlock()
		}
	}
	win := &window{end: end}
	r.mu.Lock()
	r.windows[i] = win
	r.mu.Unlock()
	d := f.For
	if f.Kind == KafkaBrokerKilled {
		// Ends when planned, although a stop before it may have delayed its
		// start: the broker process faults planned after it stay possible.
		d = max(time.Until(r.start.Add(f.At+f.For)), time.Second)
	}
	win.timer = time.AfterFunc(d, func() { r.endWindow(i) })
}

func (r *runner) endWindow(i int) {
	r.mu.Lock()
	win := r.windows[i]
	delete(r.windows, i)
	r.mu.Unlock()
	if win != nil {
		win.once.Do(win.end)
	}
}

// abandonedLand names the moments of the broker process faults: attempts the
// publisher ended at its write timeout while no broker took them keep their
// records in the client's buffer, and those land once a broker answers
// again, next to the retry's record (a duplicate, as documented). Such a
// moment runs from a write timeout before the fault (an attempt begun then
// was still unanswered) to its end, and explains a duplicate whose first
// record was taken by the client within it.
const abandonedLand = "kafka broker process fault (abandoned attempts landed later)"

// errSkip marks a fault that does not apply when due.
var errSkip = errors.New("not applicable now")

func isKafka(k Kind) bool { return strings.HasPrefix(string(k), "kafka-") }

// begin starts a windowed fault and returns what ends it.
func (r *runner) begin(f Fault) (func(), error) {
	k, b := r.w.kafka, r.w.backend
	kerr := func(what string, err error) {
		if err != nil {
			r.problem("%s: %v", what, err)
		}
	}
	switch f.Kind {
	case KafkaProduceError:
		if err := k.setErrWindow(&f); err != nil {
			return nil, err
		}
		return func() { kerr("end produce errors", k.setErrWindow(nil)) }, nil
	case KafkaProduceTimeout:
		if err := k.setHoldWindow(&f); err != nil {
			return nil, err
		}
		start := time.Now()
		return func() {
			kerr("end produce holds", k.setHoldWindow(nil))
			if f.Append {
				// A request held past the client's patience and appended
				// after all is published twice if the client retried it.
				r.moment(causeHeld, start.Add(-writeTimeout), time.Now())
			}
		}, nil
	case KafkaDown:
		if err := k.setDown(true); err != nil {
			return nil, err
		}
		return func() { kerr("kafka up", k.setDown(false)) }, nil
	case KafkaBrokerKilled:
		if !k.b.Running() {
			return nil, fmt.Errorf("%w: the broker is not running", errSkip)
		}
		start := time.Now()
		k.kill(string(f.Kind))
		return func() {
			kerr("restart the killed broker", k.restart())
			r.moment(abandonedLand, start.Add(-writeTimeout), time.Now())
		}, nil
	case KafkaRestartEmpty, KafkaTopicRecreated, KafkaHung:
		if !k.b.Running() {
			return nil, fmt.Errorf("%w: the broker is killed", errSkip)
		}
		if f.Kind == KafkaTopicRecreated && k.isDown() {
			return nil, fmt.Errorf("%w: kafka-down closes the admin client's connections too", errSkip)
		}
		start := time.Now()
		switch f.Kind {
		case KafkaRestartEmpty:
			err := k.restart()
			r.moment(abandonedLand, start.Add(-writeTimeout), time.Now())
			return func() {}, err
		case KafkaTopicRecreated:
			err := k.recreateTopic(context.Background(), f.Topic)
			r.moment(abandonedLand, start.Add(-writeTimeout), time.Now())
			return func() {}, err
		}
		if err := k.pause(); err != nil {
			return nil, err
		}
		return func() {
			kerr("resume the broker", k.resume())
			r.moment(abandonedLand, start.Add(-writeTimeout), time.Now())
		}, nil
	case KafkaBrokerBounce:
		if err := k.removeNode(f.Node); err != nil {
			return nil, err
		}
		return func() {
			if err := k.addNode(f.Node); err != nil {
				r.problem("add kafka node %d back: %v", f.Node, err)
			}
		}, nil
	case RedisRestart:
		// Stop fails only if the kill fails or the port stays open; then the
		// restart that ends the window fails too and reports it.
		_ = r.w.redis.Stop()
		start := time.Now()
		return func() {
			if err := r.w.redis.Restart(); err != nil {
				r.problem("restart redis: %v", err)
			}
			// The memory of published, unmarked events cannot be written
			// or read meanwhile (docs/decisions/0003).
			r.moment(causeRedis, start.Add(-writeTimeout), time.Now())
		}, nil
	case SIGSTOP:
		sp, ok := r.slots[f.Slot].(*subProc)
		if !ok {
			return nil, fmt.Errorf("%w: no subprocess in slot %d", errSkip, f.Slot)
		}
		if err := sp.Pause(); err != nil {
			return nil, err
		}
		start := time.Now()
		r.logf("SIGSTOP %s for %v (lease TTL %v)", sp.Name(), f.For.Round(time.Millisecond), leaseTTL)
		return func() {
			if err := sp.Resume(); err != nil {
				r.problem("SIGCONT %s: %v", sp.Name(), err)
			}
			// Records it had handed to its Kafka client before the pause
			// may land after another instance took its types over.
			r.moment(causePause, start, time.Now().Add(2*writeTimeout))
		}, nil
	case BackendFindError, BackendMarkError, BackendFindSlow, BackendMarkSlow:
		ff := fakebackend.Fault{Code: f.GRPCCode, Delay: f.Delay}
		for _, rpc := range f.Backend {
			b.SetFault(rpc, ff)
		}
		return func() {
			for _, rpc := range f.Backend {
				b.SetFault(rpc, fakebackend.Fault{})
			}
		}, nil
	}
	return nil, fmt.Errorf("unknown fault kind %q", f.Kind)
}

// clearFaults ends every window now and disarms panics.
func (r *runner) clearFaults() {
	r.mu.Lock()
	ids := make([]int, 0, len(r.windows))
	for i, w := range r.windows {
		w.timer.Stop()
		ids = append(ids, i)
	}
	r.mu.Unlock()
	sort.Ints(ids)
	for _, i := range ids {
		r.endWindow(i)
	}
	r.pan.disarm()
	if err := r.w.kafka.clear(); err != nil {
		r.problem("clear the Kafka faults: %v", err)
	}
	r.w.backend.ClearFaults()
	if err := r.w.redis.Restart(); err != nil {
		r.problem("redis: %v", err)
	}
	// A subprocess that panics every n messages is a fault too: replace it
	// with one that does not.
	for slot, p := range r.slots {
		if sp, ok := p.(*subProc); ok && sp.panicEvery > 0 {
			r.logf("clearing faults: replacing %s (HOBOM_FAULT_PANIC_EVERY=%d) with a clean instance", sp.Name(), sp.panicEvery)
			r.slots[slot] = nil
			r.stopGracefully(sp)
			if err := r.startInstance(slot, Subprocess, 0); err != nil {
				r.problem("start a clean instance: %v", err)
			}
		}
	}
}

// stopGracefully stops p as SIGTERM does and counts how that went.
func (r *runner) stopGracefully(p processor) {
	clean, err := p.Stop(shutdownTimeout + stopGrace)
	switch {
	case err != nil:
		r.problem("SIGTERM %s: shutdown hung: %v", p.Name(), err)
	case !clean:
		r.rep.UncleanStops++
		r.rep.Unclean = append(r.rep.Unclean, fmt.Sprintf("%s at t+%.1fs, see %s", p.Name(), time.Since(r.start).Seconds(), p.LogPath()))
		r.logf("SIGTERM %s: shutdown reported an error (see %s)", p.Name(), p.LogPath())
	default:
		r.rep.CleanStops++
	}
}

// drain waits until no event is PENDING.
func (r *runner) drain(ctx context.Context) {
	start := time.Now()
	b := r.w.backend
	pending := func() int {
		return b.Count(messages.EventTypeMessage, messages.StatusPending) + b.Count(messages.EventTypeHoBomLog, messages.StatusPending)
	}
	for pending() > 0 {
		if time.Since(start) > r.cfg.DrainTimeout || ctx.Err() != nil {
			r.problem("%d events still PENDING %v after the faults were cleared (a hang?)", pending(), r.cfg.DrainTimeout)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.rep.DrainTook = time.Since(start)
	r.logf("drained in %v", r.rep.DrainTook.Round(time.Millisecond))
	// Requests a hold window kept at the broker may still be appended.
	time.Sleep(3 * time.Second)
}

// leaseMoments adds every lease that changed hands (an acquisition after
// the type's first) to the moments that explain duplicates: the previous
// holder's batches in flight up to a TTL before are fetched again by the
// new one (docs/decisions/0004).
func (r *runner) leaseMoments() {
	var all []leaseAcquisition
	for _, p := range r.instances {
		all = append(all, leasesIn(p.LogPath(), p.Name())...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].at.Before(all[j].at) })
	first := map[string]bool{}
	for _, a := range all {
		if !first[a.eventType] {
			first[a.eventType] = true
			continue
		}
		r.rep.Takeovers++
		r.mu.Lock()
		r.moments = append(r.moments, moment{kind: causeTakeover, at: a.at.Add(-leaseTTL), until: a.at.Add(2 * writeTimeout), eventType: a.eventType, when: a.at})
		r.faultLog = append(r.faultLog, moment{kind: causeTakeover, at: a.at.Add(-leaseTTL), until: a.at, eventType: a.eventType})
		r.mu.Unlock()
	}
}

// crashMoments adds the publisher crashes the subprocesses logged (the
// in-process ones are known when injected) to the moments that explain
// duplicates.
func (r *runner) crashMoments() {
	for _, p := range r.instances {
		if p.Kind() != Subprocess {
			continue
		}
		for _, c := range p.Crashes() {
			r.mu.Lock()
			r.faultLog = append(r.faultLog, moment{kind: string(childKind(c.child)), at: c.at, until: c.at.Add(time.Second)})
			r.mu.Unlock()
			if childKind(c.child) == PanicPublisher {
				r.moment(causePublisherPanic, c.at, c.at.Add(time.Second))
			}
		}
	}
}

// finish stops the last instance and counts the crashes every instance
// logged: a subprocess's are the panics HOBOM_FAULT_PANIC_EVERY injected;
// any crash that was not injected is a problem.
func (r *runner) finish() {
	for slot, p := range r.slots {
		if p == nil {
			continue
		}
		clean, err := p.Stop(shutdownTimeout + stopGrace)
		switch {
		case err != nil:
			r.problem("final shutdown of %s hung: %v", p.Name(), err)
		case !clean:
			r.problem("final shutdown of %s was not clean with nothing failing (see %s)", p.Name(), p.LogPath())
		}
		r.slots[slot] = nil
	}
	for _, p := range r.instances {
		r.rep.Instances = append(r.rep.Instances, p.Name())
		for _, c := range p.Crashes() {
			if p.Kind() == Subprocess {
				r.rep.Injected[childKind(c.child)]++
				r.rep.EnvPanics++
			}
			if !c.injected {
				r.problem("%s: %s crashed by itself (not an injected panic): %s", p.Name(), c.child, c.reason)
			}
		}
	}
}

type fileLogger struct{ w io.Writer }

func (l fileLogger) Printf(_ context.Context, format string, v ...any) {
	fmt.Fprintf(l.w, time.Now().Format(time.RFC3339Nano)+" "+format+"\n", v...)
}

func childKind(child string) Kind {
	switch {
	case child == "publisher":
		return PanicPublisher
	case child == "dlq" || strings.HasPrefix(child, "dlq:"): // the DLQ actor or its writer or replayer
		return PanicDLQ
	}
	return PanicPoller
}
