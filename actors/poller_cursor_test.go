package actors_test

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/anthdm/hollywood/actor"

	"github.com/hobom/hobom-event-processor/actors"
	"github.com/hobom/hobom-event-processor/messages"
)

// The find cursor (docs/contract.md §1) on a manual clock, with an outbox
// that applies it in the order its rows were added (skippingBackend).

// cursorWorld starts a tree over 12 MESSAGE events with a find limit of 3,
// the poller's interval, Kafka holding every record and a manual clock.
func cursorWorld(t *testing.T, interval time.Duration) (*world, *pollerLog, []string) {
	t.Helper()
	log := &pollerLog{}
	var ids []string
	w := start(t, func(cfg *actors.TreeConfig) {
		cfg.Poller.FindLimit = 3
		cfg.Poller.Interval, cfg.Poller.MaxBackoff, cfg.Poller.BatchTimeout = interval, 4*interval, 0
		cfg.ChildMiddleware = []actor.MiddlewareFunc{log.middleware}
	}, func(w *world) {
		w.clock = newManualClock()
		w.skipping = true
		ids = w.backend.add("e", 12)
		w.kafka.hold = true
	})
	return w, log, ids
}

// finds checks the cursor and limit of every find so far.
func finds(t *testing.T, w *world, cursors []string, limits []int) {
	t.Helper()
	if got := w.backend.findCursors(); !slices.Equal(got, cursors) {
		t.Fatalf("find cursors %q, want %q", got, cursors)
	}
	if got := w.backend.findLimits(); !slices.Equal(got, limits) {
		t.Fatalf("find limits %v, want %v", got, limits)
	}
}

// producedOnce waits for every event SENT and checks each was produced
// once.
func producedOnce(t *testing.T, w *world, ids []string) {
	t.Helper()
	w.kafka.release()
	eventually(t, "every event SENT", func() bool {
		if w.clock.Pending() > 0 {
			w.clock.Advance(time.Second)
		}
		return w.allStatus(messages.StatusSent, ids...)()
	})
	for _, id := range ids {
		if n := w.j.count("record " + id); n != 1 {
			t.Fatalf("%s produced %d times, want once; journal %s", id, n, w.j)
		}
	}
}

// TestPollerFindsAfterTheCursorWhileBatchesAreOut: the first find starts
// from the beginning; the one that overlaps a batch asks for the rows
// after the batch's last, with the rows in flight on top of the limit
// until the backend has shown it applies the cursor, and hands over no
// more than the limit of what came; later finds ask for the limit alone.
// Once fullFindEvery has passed since the last find from the beginning,
// the next one starts from the beginning again, though a batch is out, and
// its rows in flight are left out.
func TestPollerFindsAfterTheCursorWhileBatchesAreOut(t *testing.T) {
	w, log, ids := cursorWorld(t, time.Second)
	eventually(t, "two batches at Kafka", func() bool { return w.j.count("record e-5") == 1 })
	eventually(t, "the poller idle", func() bool { return log.handledAfter("actors.pollTick", "actors.findDone") })
	finds(t, w, []string{"", "e-2"}, []int{3, 6})
	if got, want := log.published(), [][]string{ids[:3], ids[3:6]}; !reflect.DeepEqual(got, want) {
		t.Fatalf("batches %q, want %q (the second cut to the limit)", got, want)
	}

	w.kafka.releaseFirst(3) // the first batch resolves; the second stays out
	eventually(t, "a third batch at Kafka", func() bool { return w.j.count("record e-8") == 1 })
	eventually(t, "the poller idle", func() bool { return log.handledAfter("actors.pollTick", "actors.findDone") })
	finds(t, w, []string{"", "e-2", "e-5"}, []int{3, 6, 3})

	w.clock.Advance(time.Second) // fullFindEvery since the first find
	w.kafka.releaseFirst(3)      // the second batch resolves; the third stays out
	eventually(t, "a fourth batch at Kafka", func() bool { return w.j.count("record e-11") == 1 })
	eventually(t, "the poller idle", func() bool { return log.handledAfter("actors.pollTick", "actors.findDone") })
	finds(t, w, []string{"", "e-2", "e-5", ""}, []int{3, 6, 3, 6})
	if got := w.backend.skippedByFind(); !reflect.DeepEqual(got[3], ids[6:9]) {
		t.Fatalf("the find from the beginning left out %q, want the third batch %q", got[3], ids[6:9])
	}
	if got, want := log.published(), [][]string{ids[:3], ids[3:6], ids[6:9], ids[9:]}; !reflect.DeepEqual(got, want) {
		t.Fatalf("batches %q, want %q", got, want)
	}
	producedOnce(t, w, ids)
}

// TestPollerFindsFromTheBeginningAfterEventsStayedPending: a batch whose
// marks failed leaves its events PENDING, before the cursor; the next find
// starts from the beginning, though the second batch is out, and hands
// them over again (the publisher marks them without producing them again).
func TestPollerFindsFromTheBeginningAfterEventsStayedPending(t *testing.T) {
	w, log, ids := cursorWorld(t, 100*time.Millisecond)
	eventually(t, "two batches at Kafka", func() bool { return w.j.count("record e-5") == 1 })
	eventually(t, "the poller idle", func() bool { return log.handledAfter("actors.pollTick", "actors.findDone") })
	finds(t, w, []string{"", "e-2"}, []int{3, 6})

	w.backend.set(func(b *memBackend) { b.failMarks = 3 })
	w.kafka.releaseFirst(3) // the first batch is produced, its marks fail
	eventually(t, "the poller backing off", func() bool { return w.clock.Pending() > 0 })
	d, _ := w.clock.NextDue()
	if d >= time.Second {
		t.Fatalf("backoff %v, want it well under fullFindEvery", d)
	}
	w.clock.Advance(d)
	eventually(t, "a third batch", func() bool { return len(log.published()) == 3 })
	got := w.backend.findCursors()
	if len(got) < 3 || got[2] != "" {
		t.Fatalf("find cursors %q, want the third from the beginning", got)
	}
	if b := log.published()[2]; !reflect.DeepEqual(b, ids[:3]) {
		t.Fatalf("third batch %q, want the events left PENDING %q", b, ids[:3])
	}
	producedOnce(t, w, ids)
}

// TestPollerCursorIsNeverARepairedEventID: the outbox client repairs an
// eventId that is not valid UTF-8 and marks the event defective; the
// backend does not know the repaired id, so the cursor is the last row
// handed over whose id came as it is.
func TestPollerCursorIsNeverARepairedEventID(t *testing.T) {
	log := &pollerLog{}
	w := start(t, func(cfg *actors.TreeConfig) {
		cfg.Poller.FindLimit = 3
		cfg.Poller.Interval, cfg.Poller.MaxBackoff, cfg.Poller.BatchTimeout = time.Second, 4*time.Second, 0
		cfg.ChildMiddleware = []actor.MiddlewareFunc{log.middleware}
	}, func(w *world) {
		w.clock = newManualClock()
		w.skipping = true
		w.backend.add("e", 6)
		w.backend.events[2].Defect = "invalid UTF-8 in eventId"
		w.kafka.hold = true
	})
	eventually(t, "two batches", func() bool { return len(log.published()) == 2 })
	eventually(t, "the poller idle", func() bool { return log.handledAfter("actors.pollTick", "actors.findDone") })
	if got := w.backend.findCursors(); len(got) < 2 || got[1] != "e-1" {
		t.Fatalf("find cursors %q, want the second after e-1 (e-2 was repaired)", got)
	}
}
