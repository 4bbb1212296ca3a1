package actors_test

import (
	"fmt"
	"sync"
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
