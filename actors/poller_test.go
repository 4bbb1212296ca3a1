package actors_test

import (
	"fmt"
	"reflect"
	"slices"
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

// The poller's flow control and backoff on a manual clock: every wait is
// read off the clock when the poller schedules it, so the bounds are
// exact and nothing sleeps.

// pollerLog records the type of every message the pollers handle, so a
// test can tell that a poller has handled a message (a pollTick) and not
// acted on it.
type pollerLog struct {
	mu    sync.Mutex
	types []string
	// batches are the event ids of every batch the publisher got.
	batches [][]string
}

func (l *pollerLog) middleware(next actor.ReceiveFunc) actor.ReceiveFunc {
	return func(c *actor.Context) {
		if b, ok := c.Message().(messages.PublishBatch); ok {
			ids := make([]string, len(b.Events))
			for i, e := range b.Events {
				ids[i] = e.EventID
			}
			l.mu.Lock()
			l.batches = append(l.batches, ids)
			l.mu.Unlock()
		}
		next(c)
		if strings.Contains(c.PID().ID, "/poller/") {
			l.mu.Lock()
			l.types = append(l.types, fmt.Sprintf("%T", c.Message()))
			l.mu.Unlock()
		}
	}
}

// published returns the batches the publisher got.
func (l *pollerLog) published() [][]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.batches)
}

// handledAfter reports whether the poller handled a message of type want
// after its last message of type after.
func (l *pollerLog) handledAfter(want, after string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	last := -1
	for i, t := range l.types {
		if t == after {
			last = i
		}
	}
	return last >= 0 && slices.Contains(l.types[last+1:], want)
}

// TestPollerFlowControl: a poller keeps at most two batches at the
// publisher, and never more events than its share of the in-flight
// budget. With its batches out it does not find again, however far the
// clock moves, until one resolves; the find that overlaps a batch asks
// for the rows in flight too (they are still PENDING) and hands none of
// them over twice.
func TestPollerFlowControl(t *testing.T) {
	cases := []struct {
		name              string
		findLimit, budget int
		events            int
		wantLimits        []int // of the finds while Kafka holds the records
		wantProduced      int
	}{
		{name: "two batches of the find limit", findLimit: 3, events: 9, wantLimits: []int{3, 6}, wantProduced: 6},
		{name: "one batch of the share", findLimit: 100, budget: 5, events: 12, wantLimits: []int{5}, wantProduced: 5},
		{name: "two batches within the share", findLimit: 2, budget: 5, events: 12, wantLimits: []int{2, 4}, wantProduced: 4},
		{name: "the share left bounds the second find", findLimit: 4, budget: 5, events: 12, wantLimits: []int{4, 5}, wantProduced: 5},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			log := &pollerLog{}
			var ids []string
			w := start(t, func(cfg *actors.TreeConfig) {
				cfg.Poller.FindLimit, cfg.Poller.MaxInFlight = c.findLimit, c.budget
				cfg.Poller.Interval, cfg.Poller.MaxBackoff, cfg.Poller.BatchTimeout = time.Second, 4*time.Second, 0
				cfg.ChildMiddleware = []actor.MiddlewareFunc{log.middleware}
			}, func(w *world) {
				w.clock = newManualClock()
				ids = w.backend.add("e", c.events)
				w.kafka.hold = true // Kafka takes the records and does not answer
			})
			eventually(t, "the batches at Kafka", func() bool { return w.j.count(fmt.Sprintf("record e-%d", c.wantProduced-1)) == 1 })
			// The poller's last word: a pollTick after its last find, not
			// acted on.
			eventually(t, "the poller idle", func() bool { return log.handledAfter("actors.pollTick", "actors.findDone") })
			w.clock.Advance(time.Hour)
			if got := w.backend.findLimits(); !slices.Equal(got, c.wantLimits) {
				t.Fatalf("find limits %v with the batches out, want %v", got, c.wantLimits)
			}
			for i, id := range ids {
				want := 0
				if i < c.wantProduced {
					want = 1
				}
				if n := w.j.count("record " + id); n != want {
					t.Fatalf("%s produced %d times with the batches out, want %d; journal %s", id, n, want, w.j)
				}
			}
			producedOnce(t, w, ids)
		})
	}
}

// oldestAges records the OldestPending measurements.
type oldestAges struct {
	restarts
	mu   sync.Mutex
	ages []time.Duration
}

func (o *oldestAges) OldestPending(_ string, age time.Duration) {
	o.mu.Lock()
	o.ages = append(o.ages, age)
	o.mu.Unlock()
}

func (o *oldestAges) all() []time.Duration {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.ages)
}

// TestPollerSkipsRowsInFlight: with an outbox that can leave rows out of a
// find undecoded (actors.SkippingFinder) but does not know the find cursor,
// the find that overlaps a batch (the second) carries the cursor and asks
// for the batch's rows on top of the new ones; the outbox returns them and
// leaves them out undecoded, and only them. The events of the second batch
// are the next ones, every event is produced once, and the oldest pending
// age still counts the batch in flight, whose rows the find left out.
func TestPollerSkipsRowsInFlight(t *testing.T) {
	log, ages := &pollerLog{}, &oldestAges{}
	var ids []string
	w := startWith(t, func(cfg *actors.TreeConfig) {
		cfg.Poller.FindLimit = 3
		cfg.Poller.Interval, cfg.Poller.MaxBackoff, cfg.Poller.BatchTimeout = time.Second, 4*time.Second, 0
		cfg.ChildMiddleware = []actor.MiddlewareFunc{log.middleware}
	}, func(w *world) {
		w.clock = newManualClock()
		w.skipping, w.backend.ignoreCursor = true, true
		ids = w.backend.add("e", 9)
		old := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339Nano)
		for i, e := range w.backend.events {
			e.CreatedAt = time.Now().UTC().Format(time.RFC3339Nano)
			if i < 3 {
				e.CreatedAt = old
			}
		}
		w.kafka.hold = true
	}, ages)
	eventually(t, "two batches at Kafka", func() bool { return w.j.count("record e-5") == 1 })
	idle(t, log)
	if got, want := w.backend.skippedByFind(), [][]string{nil, ids[:3]}; !reflect.DeepEqual(got, want) {
		t.Fatalf("rows left out of each find %q, want %q", got, want)
	}
	finds(t, w, []string{"", "e-2"}, []int{3, 6}) // the rows in flight on top: the cursor was not applied
	if got, want := log.published(), [][]string{ids[:3], ids[3:6]}; !reflect.DeepEqual(got, want) {
		t.Fatalf("batches %q, want %q", got, want)
	}
	if a := ages.all(); len(a) != 2 || a[1] < time.Hour {
		t.Fatalf("oldest pending ages %v, want the second at least an hour (the batch in flight)", a)
	}
	producedOnce(t, w, ids)
}

// TestPollerBackoff: a failed find is followed by a wait that doubles from
// the poll interval up to MaxBackoff, less up to a fifth of it at random
// (never a hot loop, never in step with other pollers); a find that
// answers resets it to the poll interval.
func TestPollerBackoff(t *testing.T) {
	const interval, maxBackoff = time.Second, 4 * time.Second
	steps := []struct {
		fail bool          // the find fails
		wait time.Duration // the wait scheduled after it, before the jitter
	}{
		{true, interval}, {true, 2 * interval}, {true, 4 * interval}, {true, maxBackoff}, {true, maxBackoff},
		{false, interval}, // an empty find: the poll interval, and the count starts over
		{true, interval}, {true, 2 * interval},
		{false, interval},
	}
	failNext := func(b *memBackend, fail bool) {
		b.failFinds = 0
		if fail {
			b.failFinds = 1
		}
	}
	w := start(t, func(cfg *actors.TreeConfig) {
		cfg.Poller.Interval, cfg.Poller.MaxBackoff = interval, maxBackoff
	}, func(w *world) {
		w.clock = newManualClock()
		failNext(w.backend, steps[0].fail) // the first find runs at once
	})
	jittered := 0
	for i, s := range steps {
		if i > 0 {
			w.backend.set(func(b *memBackend) { failNext(b, s.fail) })
			d, _ := w.clock.NextDue()
			w.clock.Advance(d)
		}
		eventually(t, fmt.Sprintf("find %d done and the next one scheduled", i+1), func() bool {
			return w.backend.findCount() == i+1 && w.clock.Pending() == 1
		})
		d, _ := w.clock.NextDue()
		if d > s.wait || d < s.wait*4/5 {
			t.Fatalf("step %d (fail %v): waits %v, want %v less up to a fifth", i+1, s.fail, d, s.wait)
		}
		if d != s.wait {
			jittered++
		}
	}
	if jittered == 0 {
		t.Fatalf("no wait of %d was jittered", len(steps))
	}
	ids := w.backend.add("e", 2)
	d, _ := w.clock.NextDue()
	w.clock.Advance(d)
	testenv.EventuallyEvery(t, wait, time.Millisecond, "events SENT once the backend answers", w.allStatus(messages.StatusSent, ids...))
}

// TestPollerJittersTheRegularInterval: the wait after an empty find is the
// poll interval less a random share of up to a fifth, so that pollers
// spawned together do not find in step for their whole life. It is never
// longer than the interval, which bounds how long an event waits.
func TestPollerJittersTheRegularInterval(t *testing.T) {
	const interval, finds = time.Second, 20
	w := start(t, func(cfg *actors.TreeConfig) {
		cfg.Poller.Interval = interval
	}, func(w *world) { w.clock = newManualClock() })
	waits := map[time.Duration]bool{}
	for i := range finds {
		if i > 0 {
			d, _ := w.clock.NextDue()
			w.clock.Advance(d)
		}
		eventually(t, fmt.Sprintf("empty find %d done and the next one scheduled", i+1), func() bool {
			return w.backend.findCount() == i+1 && w.clock.Pending() == 1
		})
		d, _ := w.clock.NextDue()
		if d > interval || d < interval*4/5 {
			t.Fatalf("find %d: waits %v, want %v less up to a fifth", i+1, d, interval)
		}
		waits[d] = true
	}
	// Twenty draws from 200 ms of nanoseconds: equal waits mean no jitter.
	if len(waits) < finds/2 {
		t.Fatalf("%d empty finds were followed by only %d different waits: the interval is not jittered", finds, len(waits))
	}
}

// TestPollerKeepsRelayingPastARowWithoutEventID: a row without an eventId
// stays PENDING and comes back with every find; it must not use up the
// poller's share of the in-flight budget, or the poller would stop finding
// for good after MaxInFlight polls.
func TestPollerKeepsRelayingPastARowWithoutEventID(t *testing.T) {
	const share = 5
	w := start(t, func(c *actors.TreeConfig) { c.Poller.MaxInFlight = share }, func(w *world) {
		w.backend.addWithoutEventID("row-without-id")
	})
	// Well past the share: each find returns the row again.
	testenv.EventuallyEvery(t, wait, time.Millisecond, "finds past the share", func() bool { return w.backend.findCount() > 3*share })
	ids := w.backend.add("e", 2)
	testenv.EventuallyEvery(t, wait, time.Millisecond, "later events SENT", w.allStatus(messages.StatusSent, ids...))
}

// TestPollerPollsOnlyWhileGranted: with leases a poller finds only while
// the lease actor grants it its event type and the grant's deadline has
// not passed.
func TestPollerPollsOnlyWhileGranted(t *testing.T) {
	findGate, findsEntered := make(chan struct{}), &atomic.Int32{}
	lapseGate, lapseFinds := make(chan struct{}), &atomic.Int32{}
	cases := []struct {
		name     string
		interval time.Duration // of the poller; 0: an hour, no tick is ever due
		setup    func(w *world)
		run      func(t *testing.T, w *world, log *pollerLog)
	}{
		{
			name:  "never granted: another instance holds the lease",
			setup: func(w *world) { w.lease.holder["MESSAGE"], w.lease.tokens["MESSAGE"] = "another-instance", 7 },
			run: func(t *testing.T, w *world, _ *pollerLog) {
				for range 5 { // acquisitions refused, retried on the clock
					eventually(t, "an acquisition scheduled", func() bool { return w.clock.Pending() == 1 })
					d, _ := w.clock.NextDue()
					w.clock.Advance(d)
				}
				if n := w.backend.findCount(); n != 0 {
					t.Fatalf("%d finds without the lease", n)
				}
			},
		},
		{
			name:     "revoked: stops finding, before its deadline",
			interval: leaseTTL / 2, // a tick at 1.5 s: after the revocation at 1 s, before the deadline at 2.4 s
			run: func(t *testing.T, w *world, log *pollerLog) {
				eventually(t, "the first find", func() bool { return w.backend.findCount() == 1 })
				w.lease.steal("MESSAGE")
				w.clock.Advance(leaseTTL / 3) // the renewal finds the lease lost
				eventually(t, "the lease revoked", func() bool { return log.handledAfter("messages.LeaseRevoked", "actors.findDone") })
				ids := w.backend.add("e", 2)
				w.clock.Advance(leaseTTL/2 - leaseTTL/3) // the poller's next tick
				eventually(t, "the tick handled", func() bool { return log.handledAfter("actors.pollTick", "messages.LeaseRevoked") })
				if n := w.backend.findCount(); n != 1 {
					t.Fatalf("%d finds, want only the one before the revocation", n)
				}
				for _, id := range ids {
					if w.j.count("record "+id) != 0 {
						t.Fatalf("%s produced after the revocation: %s", id, w.j)
					}
				}
			},
		},
		{
			name: "a renewal that comes after the deadline resumes polling at once",
			run: func(t *testing.T, w *world, _ *pollerLog) {
				eventually(t, "the first find and the renewal scheduled", func() bool {
					return w.backend.findCount() == 1 && w.clock.Pending() == 2
				})
				h := make(chan struct{})
				w.lease.set(func(l *memLease) { l.hang = h }) // the renewal at 1 s hangs
				w.clock.Advance(leaseTTL * 5 / 6)             // 2.5 s: past the deadline of 2.4 s
				ids := w.backend.add("e", 2)
				close(h) // renewed, from its start at 1 s: until 3.4 s
				eventually(t, "the events produced without a poll interval passing", func() bool {
					return w.j.count("record "+ids[0]) == 1 && w.j.count("record "+ids[1]) == 1
				})
			},
		},
		{
			name:     "past its deadline without a renewal: no find, and the interval waited with its jitter",
			interval: leaseTTL + leaseTTL/6, // 3.5 s: every tick falls after the deadline of 2.4 s
			run: func(t *testing.T, w *world, _ *pollerLog) {
				const interval = leaseTTL + leaseTTL/6
				eventually(t, "the first find, its next tick and the renewal scheduled", func() bool {
					return w.backend.findCount() == 1 && w.clock.Pending() == 2
				})
				h := make(chan struct{})
				t.Cleanup(func() { close(h) })
				w.lease.set(func(l *memLease) { l.hang = h }) // the renewal at 1 s hangs
				w.clock.Advance(leaseTTL / 3)
				waits := map[time.Duration]bool{}
				for i := range 5 {
					d, _ := w.clock.NextDue()
					w.clock.Advance(d) // the poller's tick, past the deadline
					eventually(t, fmt.Sprintf("tick %d handled and the next one scheduled", i+1), func() bool { return w.clock.Pending() == 1 })
					d, _ = w.clock.NextDue()
					if d > interval || d < interval*4/5 {
						t.Fatalf("tick %d past the deadline: waits %v, want %v less up to a fifth", i+1, d, interval)
					}
					waits[d] = true
				}
				if len(waits) < 3 {
					t.Fatalf("5 ticks past the deadline were followed by only %d different waits: the interval is not jittered", len(waits))
				}
				if n := w.backend.findCount(); n != 1 {
					t.Fatalf("%d finds, want only the one before the deadline", n)
				}
			},
		},
		{
			name:     "past its deadline during a find: its rows are not handed on, and the interval waited with its jitter",
			interval: leaseTTL + leaseTTL/6,
			setup: func(w *world) {
				w.backend.add("e", 2)
				w.backend.findHook = func() {
					if lapseFinds.Add(1) == 1 {
						<-lapseGate // the first find returns after the deadline
					}
				}
			},
			run: func(t *testing.T, w *world, log *pollerLog) {
				const interval = leaseTTL + leaseTTL/6
				var once sync.Once
				open := func() { once.Do(func() { close(lapseGate) }) }
				t.Cleanup(open)
				eventually(t, "the first find under way and the renewal scheduled", func() bool {
					return lapseFinds.Load() == 1 && w.clock.Pending() == 1
				})
				h := make(chan struct{})
				t.Cleanup(func() { close(h) })
				w.lease.set(func(l *memLease) { l.hang = h }) // the renewal at 1 s hangs
				w.clock.Advance(leaseTTL * 5 / 6)             // 2.5 s: past the deadline of 2.4 s
				open()
				eventually(t, "the find's answer handled and the next tick scheduled", func() bool { return w.clock.Pending() == 1 })
				if d, _ := w.clock.NextDue(); d >= interval || d < interval*4/5 {
					t.Fatalf("the next find is due in %v, want %v less up to a fifth", d, interval)
				}
				// The publisher's fencing would refuse them too; the
				// poller does not even hand them on.
				if b := log.published(); len(b) != 0 {
					t.Fatalf("batches %v handed to the publisher from a find that returned past the deadline", b)
				}
				if w.j.count("record e-0") != 0 || w.j.count("record e-1") != 0 {
					t.Fatalf("rows found under a lapsed lease were produced: %s", w.j)
				}
			},
		},
		{
			name: "re-granted under a new tenure during a find: its rows are fetched again under it",
			setup: func(w *world) {
				w.backend.add("e", 2)
				w.backend.findHook = func() {
					if findsEntered.Add(1) == 1 {
						<-findGate // the first find runs while the tenure changes
					}
				}
			},
			run: func(t *testing.T, w *world, log *pollerLog) {
				var once sync.Once
				open := func() { once.Do(func() { close(findGate) }) }
				t.Cleanup(open)
				eventually(t, "the first find under way and the renewal scheduled", func() bool {
					return findsEntered.Load() == 1 && w.clock.Pending() == 1
				})
				w.lease.steal("MESSAGE")
				w.clock.Advance(leaseTTL / 3) // the renewal finds the lease lost
				eventually(t, "the lease revoked", func() bool { return log.handledAfter("messages.LeaseRevoked", "messages.LeaseGranted") })
				w.backend.add("f", 1)                                          // not in the rows of the find under way
				w.lease.set(func(l *memLease) { delete(l.holder, "MESSAGE") }) // the other holder's lease expired
				eventually(t, "the acquisition scheduled", func() bool { return w.clock.Pending() == 1 })
				d, _ := w.clock.NextDue()
				w.clock.Advance(d)
				eventually(t, "granted under a new token", func() bool { return log.handledAfter("messages.LeaseGranted", "messages.LeaseRevoked") })
				open()
				eventually(t, "the events produced", func() bool {
					return w.j.count("record e-0") == 1 && w.j.count("record e-1") == 1 && w.j.count("record f-0") == 1
				})
				// The find under the revoked tenure did not see f-0: the
				// first batch is the next find's, made under the new one.
				if b := log.published(); len(b) == 0 || !slices.Contains(b[0], "f-0") {
					t.Fatalf("batches %v: the rows of the find made under the revoked tenure were handed on", b)
				}
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			log := &pollerLog{}
			interval := c.interval
			if interval == 0 {
				interval = time.Hour
			}
			w := start(t, func(cfg *actors.TreeConfig) {
				cfg.Lease.TTL = leaseTTL
				cfg.Poller.Interval, cfg.Poller.MaxBackoff, cfg.Poller.BatchTimeout = interval, interval, 0
				cfg.ChildMiddleware = []actor.MiddlewareFunc{log.middleware}
			}, func(w *world) {
				w.clock, w.lease = newManualClock(), newLease(w.j)
				if c.setup != nil {
					c.setup(w)
				}
			})
			c.run(t, w, log)
		})
	}
}
