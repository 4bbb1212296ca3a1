package actors_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hobom/hobom-event-processor/actors"
	"github.com/hobom/hobom-event-processor/messages"
)

// outcomes counts how the publisher resolved events.
type outcomes struct {
	restarts
	mu sync.Mutex
	n  map[messages.Outcome]int
}

func (o *outcomes) Resolved(_ string, out messages.Outcome, n int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.n == nil {
		o.n = map[messages.Outcome]int{}
	}
	o.n[out] += n
}

func (o *outcomes) of(out messages.Outcome) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n[out]
}

// TestSelfFencingInTheTree runs the whole tree with leases on a manual
// clock: the lease actor grants MESSAGE, the poller hands a batch over,
// Kafka holds the records; then the clock moves and Redis behaves as each
// case says, and Kafka answers. The publisher learns renewals only by
// message, and checks the deadline before every produce attempt and mark.
func TestSelfFencingInTheTree(t *testing.T) {
	const n = 3
	cases := []struct {
		name string
		// fault is applied to the lease port before the clock moves.
		fault func(w *world) (undo func())
		// firstAttemptFails: Kafka fails the held attempt, so the
		// record is produced again after the clock moved.
		firstAttemptFails bool
		want              messages.Outcome
		records           int // produce attempts per event
	}{
		{name: "renewed in time: marked past the first deadline", want: messages.OutcomeSent, records: 1},
		{
			name: "Redis down for 2/3 TTL: revoked, acked records not marked",
			fault: func(w *world) func() {
				w.lease.set(func(l *memLease) { l.down = true })
				return func() {}
			},
			want: messages.OutcomeUnmarked, records: 1,
		},
		{
			name: "Redis hangs: past the local deadline, without any revocation, not marked",
			fault: func(w *world) func() {
				h := make(chan struct{})
				w.lease.set(func(l *memLease) { l.hang = h })
				return func() { close(h) }
			},
			want: messages.OutcomeUnmarked, records: 1,
		},
		{
			name: "Redis hangs: a retry past the local deadline is not produced",
			fault: func(w *world) func() {
				h := make(chan struct{})
				w.lease.set(func(l *memLease) { l.hang = h })
				return func() { close(h) }
			},
			firstAttemptFails: true, want: messages.OutcomeDeferred, records: 1,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := &outcomes{}
			var ids []string
			w := startWith(t, func(cfg *actors.TreeConfig) {
				cfg.Lease.TTL = leaseTTL
				cfg.Poller.BatchTimeout = 0 // only the lease actor's timers on the clock
				cfg.Poller.Interval, cfg.Poller.MaxBackoff = time.Hour, time.Hour
			}, func(w *world) {
				w.clock, w.lease = newManualClock(), newLease(w.j)
				ids = w.backend.add("e", n)
				w.kafka.hold = true
				if c.firstAttemptFails {
					w.kafka.fail = func(_ string, attempt int) bool { return attempt == 1 }
				}
			}, m)
			t0 := w.clock.Now() // the lease was acquired at t0: first deadline t0 + 2.4 s
			last := fmt.Sprintf("e-%d", n-1)
			eventually(t, "the batch at Kafka", func() bool { return w.kafka.attempts(last) == 1 })
			eventually(t, "the renewal scheduled", func() bool { return w.clock.Pending() == 1 })
			if c.fault != nil {
				t.Cleanup(c.fault(w)) // before the tree stops
			}
			// 3 s: past the first deadline (2.4 s); renewals every 1 s.
			for range 6 {
				d, ok := w.clock.NextDue()
				if !ok || w.clock.Now().Add(d).After(t0.Add(leaseTTL)) {
					break
				}
				w.clock.Advance(d)
				if c.fault == nil {
					// Wait until the renewal's grant is sent: the
					// next renewal is scheduled after it.
					eventually(t, "the next renewal scheduled", func() bool { return w.clock.Pending() == 1 })
				}
			}
			w.clock.Advance(t0.Add(leaseTTL).Sub(w.clock.Now()))
			w.kafka.release()
			eventually(t, "every event resolved", func() bool { return m.of(c.want) == n })
			for _, id := range ids {
				if got := w.j.count("mark SENT " + id); (c.want == messages.OutcomeSent) != (got == 1) {
					t.Fatalf("%s: %d SENT marks, want outcome %v; journal %s", id, got, c.want, w.j)
				}
				if a := w.kafka.attempts(id); a != c.records {
					t.Fatalf("%s produced %d times, want %d", id, a, c.records)
				}
			}
		})
	}
}

// TestAFencedFailedMarkRetryKeepsTheMemory: an event remembered as
// "dead-lettered, only mark FAILED" whose FAILED mark retry is fenced (its
// first try fails, and the tenure's deadline passes before the second)
// stays in the memory of unmarked events: the new holder reads it there
// and marks the event instead of publishing it again.
func TestAFencedFailedMarkRetryKeepsTheMemory(t *testing.T) {
	m := &outcomes{}
	w := startWith(t, func(cfg *actors.TreeConfig) {
		cfg.Lease.TTL = leaseTTL
		cfg.Poller.BatchTimeout = 0
		cfg.Poller.Interval, cfg.Poller.MaxBackoff = time.Hour, time.Hour
		cfg.DLQ.Mark = actors.RetryPolicy{Attempts: 2, Timeout: time.Second}
	}, func(w *world) {
		w.clock, w.lease = newManualClock(), newLease(w.j)
		w.memory = newMemory(w.j)
		w.backend.add("e", 1)
		w.memory.m["e-0"] = messages.Unmarked{Status: messages.StatusFailed, Reason: "kafka: down", At: w.clock.Now()}
		w.backend.failMarks = 1
		var once sync.Once
		w.backend.markHook = func(id, status string) {
			// The first try fails after the deadline (t0 + 2.4 s)
			// passed; Redis is down, so the lease is not renewed and
			// no later poll retries the mark.
			once.Do(func() {
				w.lease.set(func(l *memLease) { l.down = true })
				w.clock.Advance(leaseTTL)
			})
		}
	}, m)
	eventually(t, "the event resolved", func() bool { return m.of(messages.OutcomeDeferred) == 1 })
	w.stop(t) // the publisher drains its forgets through the DLQ actor, which writes them
	if got := w.backend.statusOf("e-0"); got != messages.StatusPending {
		t.Fatalf("e-0 is %s, want PENDING (fenced): %s", got, w.j)
	}
	if _, ok := w.memory.m["e-0"]; !ok || w.j.count("forget e-0") != 0 {
		t.Fatalf("the memory of e-0 was deleted by a fenced FAILED mark: %s", w.j)
	}
}

// TestAMarkTryEndsAtTheTenuresDeadline: each mark try's context ends at
// the lease tenure's local deadline when that comes before the policy's
// timeout (10 s here), so a try that passed its fence check cannot go on
// writing long after the deadline: SENT marks of the publisher (deadline
// t0 + 2.4 s) and FAILED marks of the DLQ writer (deadline now + 500 ms).
func TestAMarkTryEndsAtTheTenuresDeadline(t *testing.T) {
	long := actors.RetryPolicy{Attempts: 1, Timeout: 10 * time.Second}
	t.Run("SENT", func(t *testing.T) {
		w := start(t, func(cfg *actors.TreeConfig) {
			cfg.Lease.TTL = leaseTTL
			cfg.Poller.BatchTimeout = 0
			cfg.Poller.Interval, cfg.Poller.MaxBackoff = time.Hour, time.Hour
			cfg.Publisher.Mark = long
		}, func(w *world) {
			w.clock, w.lease = newManualClock(), newLease(w.j)
			w.backend.add("e", 2)
		})
		eventually(t, "the events SENT", w.allStatus(messages.StatusSent, "e-0", "e-1"))
		if n := len(w.backend.marksLeft()); n != 2 {
			t.Fatalf("%d SENT marks, want 2", n)
		}
		for _, left := range w.backend.marksLeft() {
			if left <= 0 || left > 2400*time.Millisecond {
				t.Fatalf("a SENT mark's context had %v left, want at most the 2.4 s to the tenure's deadline", left)
			}
		}
	})
	t.Run("FAILED", func(t *testing.T) {
		r := startDLQ(t, func(cfg *actors.DLQConfig) { cfg.Mark = long })
		route := messages.DefaultRoutes()[0]
		r.engine.Send(r.pid, messages.DeadLetter{Route: route, EventID: "x", Value: []byte(`{}`), Reason: "kafka: down",
			Fence: messages.Fence{Name: route.EventType, Token: 1, Until: r.clock.Now().Add(500 * time.Millisecond)}, ReplyTo: r.inbox})
		if res, ok := r.reply(t).(messages.DeadLetterResult); !ok || res.Outcome != messages.OutcomeFailed {
			t.Fatalf("answer %+v, want failed", res)
		}
		left := r.backend.marksLeft()
		if len(left) != 1 || left[0] <= 0 || left[0] > 500*time.Millisecond {
			t.Fatalf("the FAILED mark's context had %v left, want at most the 500 ms to the tenure's deadline", left)
		}
	})
}

// TestAQueuedMarkTakesTheDeadlineKnownWhenItStarts: a SENT mark that waits
// behind MarkConcurrency others takes its tenure's deadline when it
// starts, not when it was queued: renewed meanwhile, it is made, past the
// deadline the tenure had when the mark was queued.
func TestAQueuedMarkTakesTheDeadlineKnownWhenItStarts(t *testing.T) {
	block := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(block) }) }
	t.Cleanup(unblock)
	var entered atomic.Int32
	m := &outcomes{}
	w := startWith(t, func(cfg *actors.TreeConfig) {
		cfg.Lease.TTL = leaseTTL
		cfg.Poller.BatchTimeout = 0
		cfg.Poller.Interval, cfg.Poller.MaxBackoff = time.Hour, time.Hour
		cfg.Publisher.MarkConcurrency = 1
	}, func(w *world) {
		w.clock, w.lease = newManualClock(), newLease(w.j)
		w.backend.add("e", 2)
		w.backend.markHook = func(string, string) {
			if entered.Add(1) == 1 {
				<-block // the other mark waits in the queue meanwhile
			}
		}
	}, m)
	t0 := w.clock.Now() // first deadline t0 + 2.4 s
	eventually(t, "the first mark under way", func() bool { return entered.Load() == 1 })
	eventually(t, "the second mark queued", func() bool { return w.kafka.attempts("e-0") == 1 && w.kafka.attempts("e-1") == 1 })
	eventually(t, "the renewal scheduled", func() bool { return w.clock.Pending() == 1 })
	// Renewed at 1 s and 2 s, then the clock at 3 s: past the deadline
	// known when e-1's mark was queued, before the renewed one (4.4 s).
	for range 6 {
		d, ok := w.clock.NextDue()
		if !ok || w.clock.Now().Add(d).After(t0.Add(leaseTTL)) {
			break
		}
		w.clock.Advance(d)
		eventually(t, "the next renewal scheduled", func() bool { return w.clock.Pending() == 1 })
	}
	w.clock.Advance(t0.Add(leaseTTL).Sub(w.clock.Now()))
	unblock()
	eventually(t, "both events resolved", func() bool { return m.of(messages.OutcomeSent)+m.of(messages.OutcomeUnmarked) >= 2 })
	if n := m.of(messages.OutcomeUnmarked); n != 0 {
		t.Fatalf("%d marks fenced although the lease was renewed: %s", n, w.j)
	}
}
