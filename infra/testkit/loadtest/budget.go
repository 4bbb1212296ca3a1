package loadtest

import (
	"context"
	"fmt"
	"time"

	"github.com/hobom/hobom-event-processor/infra/app"
	"github.com/hobom/hobom-event-processor/messages"
)

// targetBudgetHeap bounds the processor's heap with many event types, each
// with a backlog: the global in-flight budget, not types × find limit,
// decides what is held.
const targetBudgetHeap = 256 << 20

// budget runs BudgetTypes synthetic event types with BudgetPerType PENDING
// events each for BudgetWindow (it does not drain them all) and checks the
// peak heap and that every type made progress.
func (r *runner) budget(ctx context.Context) error {
	n, per := r.opts.BudgetTypes, r.opts.BudgetPerType
	addr, err := r.world.NewBackend(BackendSpec{})
	if err != nil {
		return err
	}
	// Release the seeded rows afterwards: they are the world's memory.
	defer func() { _, _ = r.world.NewBackend(BackendSpec{}) }()
	types := TypeSet{Synthetic: n}
	r.progress("budget: seeding %s event types × %s events", count(n), count(per))
	if err := r.world.Seed(SeedSpec{Types: types, PerType: per, SharedPayload: true}); err != nil {
		return err
	}
	freeMemory()
	m := &counters{}
	s := startSampler(10*time.Millisecond, r.opts.MemProfile != "")
	u := r.startUsage()
	cfg := r.processorConfig(addr, r.opts.PollInterval)
	a, err := app.New(cfg, r.log, app.Options{Routes: append(messages.DefaultRoutes(), SyntheticRoutes(n)...), Metrics: m})
	if err != nil {
		s.finish()
		return err
	}
	stop := runApp(a)
	t0 := time.Now()
	var prog Progress
	for time.Since(t0) < r.opts.BudgetWindow {
		if err := sleepCtx(ctx, progressEvery); err != nil {
			_ = stop()
			s.finish()
			return err
		}
		if prog, err = r.world.Progress(CountSpec{Types: types, Status: messages.StatusSent}); err != nil {
			_ = stop()
			s.finish()
			return err
		}
		r.progress("budget: %s SENT, %s types without progress yet, fewest SENT of a type %s", count(prog.Total), count(prog.Zero), count(prog.Min))
	}
	took := time.Since(t0)
	cpu, _, others := u.finish()
	serr := stop()
	peaks := s.finish()
	r.keepHeapProfile(s)
	if serr != nil {
		return fmt.Errorf("shutdown: %w", serr)
	}
	// The shutdown finished what was in flight: count again.
	if prog, err = r.world.Progress(CountSpec{Types: types, Status: messages.StatusSent}); err != nil {
		return err
	}
	share := max(1, cfg.MaxInFlight/(n+2))
	scen := fmt.Sprintf("budget: %s types × %s pending, HOBOM_MAX_IN_FLIGHT %s", count(n), count(per), count(cfg.MaxInFlight))
	heap := Row{Scenario: scen, Figure: "peak heap", Value: float64(peaks.HeapBytes), Text: mb(peaks.HeapBytes), Target: "< " + mb(targetBudgetHeap),
		Detail: fmt.Sprintf("RSS %s, %s goroutines; %s events per poller (find limit %s)", mb(uint64(peaks.RSSBytes)), count(int(peaks.Goroutines)), count(share), count(cfg.FindLimit))}
	heap.setPass(peaks.HeapBytes < targetBudgetHeap)
	r.report.add(heap)
	starved := Row{Scenario: scen, Figure: "types without progress", Value: float64(prog.Zero), Text: count(prog.Zero), Target: "0",
		Detail: fmt.Sprintf("%s SENT in %s (%s ev/s); fewest SENT of one type %s", count(prog.Total), dur(took), count(int(float64(prog.Total)/took.Seconds())), count(prog.Min))}
	starved.setPass(prog.Zero == 0 && prog.Total > 0)
	r.report.add(starved)
	r.report.add(Row{Scenario: scen, Figure: "CPU processor", Text: fmt.Sprintf("%.2f cores", cpu.Seconds()/took.Seconds()), Detail: fmt.Sprintf("other processes %.2f cores", others)})
	if an := m.anomalies(); !an.none() {
		r.report.add(Row{Scenario: scen, Figure: "anomalies", Text: fmt.Sprintf("%+v", an)})
	}
	r.report.raw("budget", map[string]any{"types": n, "perType": per, "maxInFlight": cfg.MaxInFlight, "share": share, "peaks": peaks,
		"sent": prog.Total, "typesWithoutProgress": prog.Zero, "fewestSent": prog.Min, "windowNs": took})
	return nil
}
