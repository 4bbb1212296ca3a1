package actors_test

import (
	"context"
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

// TestShutdownStopsPollersThenDrainsThePublisherThenTheDLQ: the pollers
// stop first, then the publisher is asked to drain and finishes the record
// Kafka still holds (its call is not cancelled), and only then is the DLQ
// actor asked to drain; Stop returns after all of it.
func TestShutdownStopsPollersThenDrainsThePublisherThenTheDLQ(t *testing.T) {
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
				for _, kind := range []string{"publisher", "dlq"} {
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
	w := start(t, func(cfg *actors.TreeConfig) { cfg.ChildMiddleware = []actor.MiddlewareFunc{record} }, func(w *world) {
		ids = w.backend.add("e", 2)
		w.kafka.hold = true
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
	mu.Lock()
	defer mu.Unlock()
	if got := strings.Join(steps, ", "); got != "poller stopped, publisher drains, dlq drains" {
		t.Fatalf("shutdown steps %q, want the poller stopped, then the publisher drained, then the DLQ actor", got)
	}
}
