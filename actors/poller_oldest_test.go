package actors_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/anthdm/hollywood/actor"

	"github.com/hobom/hobom-event-processor/actors"
)

func (l *pollerLog) count(typ string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return occurrences(l.types, typ)
}

// TestOldestPendingCountsRowsSkippedByAFind: a batch of hour-old events
// resolves with its marks failed (still PENDING) while the next find runs.
// A plain find returns the rows and OldestPending reports an hour; a
// skipping find leaves them out, and must still report their age (taken
// when the find started), though their batch resolved meanwhile.
func TestOldestPendingCountsRowsSkippedByAFind(t *testing.T) {
	for _, skipping := range []bool{false, true} {
		t.Run(map[bool]string{false: "Find", true: "FindSkipping"}[skipping], func(t *testing.T) {
			log, ages := &pollerLog{}, &oldestAges{}
			gate, entered := make(chan struct{}), make(chan int, 16)
			var finds atomic.Int32
			startWith(t, func(cfg *actors.TreeConfig) {
				cfg.Poller.Interval, cfg.Poller.MaxBackoff, cfg.Poller.BatchTimeout = time.Second, 8*time.Second, 0
				cfg.ChildMiddleware = []actor.MiddlewareFunc{log.middleware}
			}, func(w *world) {
				w.clock = newManualClock()
				w.skipping = skipping
				w.backend.add("e", 3)
				old := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339Nano)
				for _, e := range w.backend.events {
					e.CreatedAt = old
				}
				w.backend.failMarks = -1
				w.backend.findHook = func() {
					if n := int(finds.Add(1)); n >= 2 {
						entered <- n
						<-gate
					}
				}
			}, ages)
			t.Cleanup(func() { close(gate) })
			<-entered
			eventually(t, "batch resolved during find 2", func() bool { return log.count("messages.BatchResolved") == 1 })
			gate <- struct{}{}
			eventually(t, "find 2 handled", func() bool { return log.count("actors.findDone") == 2 })
			a := ages.all()
			t.Logf("OldestPending samples: %v", a)
			if len(a) != 2 || a[1] < time.Hour {
				t.Errorf("second OldestPending %v, want ≥ 1h: the batch's events are still PENDING", a)
			}
		})
	}
}
