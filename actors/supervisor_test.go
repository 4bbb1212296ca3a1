package actors_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anthdm/hollywood/actor"

	"github.com/hobom/hobom-event-processor/actors"
	"github.com/hobom/hobom-event-processor/infra/testkit/testenv"
	"github.com/hobom/hobom-event-processor/messages"
)

// restarts records the supervisor's restarts of each child.
type restarts struct {
	mu sync.Mutex
	at map[string][]time.Time
}

func (r *restarts) PollDone(string, time.Duration, int, error) {}
func (r *restarts) Resolved(string, messages.Outcome, int)     {}
func (r *restarts) ProduceDone(string, time.Duration, error)   {}
func (r *restarts) MarkDone(string, time.Duration, error)      {}
func (r *restarts) OldestPending(string, time.Duration)        {}
func (r *restarts) Replayed(string)                            {}
func (r *restarts) AuditPending(int)                           {}
func (r *restarts) AuditDropped()                              {}
func (r *restarts) ChildRestarted(child string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.at == nil {
		r.at = map[string][]time.Time{}
	}
	r.at[child] = append(r.at[child], time.Now())
}

func (r *restarts) of(child string) []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Time(nil), r.at[child]...)
}

// panicking makes the actors whose PID contains kind panic on ordinary
// messages while on is true (lifecycle messages pass).
func panicking(kind string, on *atomic.Bool) actor.MiddlewareFunc {
	return func(next actor.ReceiveFunc) actor.ReceiveFunc {
		return func(c *actor.Context) {
			switch c.Message().(type) {
			case actor.Initialized, actor.Started, actor.Stopped:
			default:
				if on.Load() && strings.Contains(c.PID().ID, "/"+kind+"/") {
					panic("injected panic in " + kind)
				}
			}
			next(c)
		}
	}
}

// TestSupervisorRestartsACrashingChildWithBackoff: a child that panics on
// every message is restarted again and again (hollywood's own restarts
// would have ended the process at the fourth), each time after a longer
// wait, up to MaxRestartBackoff; once it stops panicking it works again.
func TestSupervisorRestartsACrashingChildWithBackoff(t *testing.T) {
	for _, kind := range []string{"poller", "publisher", "dlq"} {
		t.Run(kind, func(t *testing.T) {
			var on atomic.Bool
			on.Store(true)
			m := &restarts{}
			var ids []string
			w := startWith(t, func(cfg *actors.TreeConfig) {
				cfg.ChildMiddleware = []actor.MiddlewareFunc{panicking(kind, &on)}
			}, func(w *world) {
				ids = w.backend.add("e", 2)
				w.kafka.fail = func(string, int) bool { return kind == "dlq" } // so the DLQ actor gets work
			}, m)
			child := kind
			if kind == "poller" {
				child = "poller:" + messages.EventTypeMessage
			}
			testenv.EventuallyEvery(t, wait, time.Millisecond, "six restarts", func() bool { return len(m.of(child)) >= 6 })
			at := m.of(child)
			// Waits of 5, 10, 20, 40, 40 ms less up to 20 %: the gaps grow
			// until the cap (not a hot loop, not a fixed delay).
			if gap := at[4].Sub(at[3]); gap < 3*testConfig().RestartBackoff {
				t.Errorf("4th restart %v after the 3rd, want about 40 ms: no backoff", gap)
			}
			on.Store(false)
			want := messages.StatusSent
			if kind == "dlq" {
				want = messages.StatusFailed
			}
			testenv.EventuallyEvery(t, wait, time.Millisecond, "the events resolved after the crashes", w.allStatus(want, ids...))
		})
	}
}

// TestSupervisorRestartBackoffOnTheClock: a poller that panics on every
// message is restarted after waits read off the manual clock: 5, 10, 20,
// 40, 40 ms (RestartBackoff doubling to MaxRestartBackoff), each less up
// to a fifth at random; a child that ran for StableAfter before it
// crashed starts over at RestartBackoff.
func TestSupervisorRestartBackoffOnTheClock(t *testing.T) {
	base, limit := testConfig().RestartBackoff, testConfig().MaxRestartBackoff // 5 ms, 40 ms
	cases := []struct {
		name string
		// stable: the child runs for StableAfter without crashing before
		// the crash whose wait is checked last.
		stable bool
		want   []time.Duration // the waits before the jitter
	}{
		{name: "doubling to the cap", want: []time.Duration{base, 2 * base, 4 * base, limit, limit, limit}},
		{name: "starts over after a stable run", stable: true, want: []time.Duration{base, 2 * base, 4 * base, base}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var on atomic.Bool
			on.Store(true)
			m := &restarts{}
			w := startWith(t, func(cfg *actors.TreeConfig) {
				cfg.ChildMiddleware = []actor.MiddlewareFunc{panicking("poller", &on)}
				cfg.Poller.Interval, cfg.Poller.MaxBackoff = time.Hour, time.Hour // no poll timer is ever due
			}, func(w *world) { w.clock = newManualClock() }, m)
			child := "poller:" + messages.EventTypeMessage
			jittered := 0
			for i, want := range c.want {
				if c.stable && i == len(c.want)-1 {
					// Respawned; it runs without crashing past StableAfter,
					// polls once an hour, and crashes on its next tick.
					on.Store(false)
					d, _ := w.clock.NextDue()
					w.clock.Advance(d)
					eventually(t, "the poller's next poll scheduled", func() bool { return w.clock.Pending() == 1 })
					w.clock.Advance(testConfig().StableAfter)
					on.Store(true)
					d, _ = w.clock.NextDue()
					w.clock.Advance(d)
				} else if i > 0 {
					d, _ := w.clock.NextDue()
					w.clock.Advance(d)
				}
				eventually(t, fmt.Sprintf("crash %d and its restart scheduled", i+1), func() bool {
					return len(m.of(child)) == i+1 && w.clock.Pending() == 1
				})
				d, _ := w.clock.NextDue()
				if d > want || d < want*4/5 {
					t.Fatalf("restart %d after %v, want %v less up to a fifth", i+1, d, want)
				}
				if d != want {
					jittered++
				}
			}
			if jittered == 0 {
				t.Fatal("no restart wait was jittered")
			}
			on.Store(false)
			ids := w.backend.add("e", 2)
			d, _ := w.clock.NextDue()
			w.clock.Advance(d)
			eventually(t, "the events SENT by the restarted poller", w.allStatus(messages.StatusSent, ids...))
		})
	}
}

// TestShutdownStopsPollersThenDrainsThePublisherThenTheDLQ: the pollers
// stop first, then the publisher is asked to drain and finishes the record
// Kafka still holds (its call is not cancelled), and only then is the DLQ
// actor asked to drain; with leases, the lease actor is drained last and
// releases the leases only after the drain's marks. Stop returns after
// all of it.
func TestShutdownStopsPollersThenDrainsThePublisherThenTheDLQ(t *testing.T) {
	cases := []struct {
		name   string
		leases bool
		want   string
	}{
		{name: "leases off", want: "poller stopped, publisher drains, dlq drains"},
		{name: "leases on", leases: true, want: "poller stopped, publisher drains, dlq drains, lease drains"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var mu sync.Mutex
			var steps []string
			step := func(s string) {
				mu.Lock()
				steps = append(steps, s)
				mu.Unlock()
			}
			record := func(next actor.ReceiveFunc) actor.ReceiveFunc {
				return func(c *actor.Context) {
					id := c.PID().ID
					switch c.Message().(type) {
					case actor.Stopped:
						if strings.Contains(id, "/poller/") {
							step("poller stopped")
						}
					case messages.Drain:
						for _, kind := range []string{"publisher", "dlq", "lease"} {
							// The supervisor's children only: the DLQ actor's own
							// children drain when it passes the Drain on.
							if strings.HasSuffix(id, "/"+kind+"/0") {
								step(kind + " drains")
							}
						}
					}
					next(c)
				}
			}
			var ids []string
			w := start(t, func(cfg *actors.TreeConfig) {
				cfg.ChildMiddleware = []actor.MiddlewareFunc{record}
				if c.leases {
					cfg.Lease.TTL = time.Minute
				}
			}, func(w *world) {
				ids = w.backend.add("e", 2)
				w.kafka.hold = true
				if c.leases {
					w.lease = newLease(w.j)
				}
			})
			testenv.EventuallyEvery(t, wait, time.Millisecond, "the batch produced", func() bool { return w.j.count("record e-1") == 1 })
			done := make(chan error, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), wait)
				defer cancel()
				done <- w.tree.Stop(ctx)
			}()
			select {
			case err := <-done:
				t.Fatalf("Stop returned (%v) with a record in flight", err)
			case <-time.After(50 * time.Millisecond):
			}
			w.kafka.release()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if !w.allStatus(messages.StatusSent, ids...)() {
				t.Fatalf("in-flight events not SENT by the drain: %s", w.j)
			}
			if c.leases {
				rel := w.j.index("release " + messages.EventTypeMessage)
				if rel < 0 || rel < w.j.index("mark SENT e-0") || rel < w.j.index("mark SENT e-1") {
					t.Fatalf("lease not released after the drain's marks: %s", w.j)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if got := strings.Join(steps, ", "); got != c.want {
				t.Fatalf("shutdown steps %q, want %q", got, c.want)
			}
		})
	}
}
