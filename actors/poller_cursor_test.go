package actors_test

import (
	"fmt"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/rs/zerolog"

	"github.com/hobom/hobom-event-processor/actors"
	"github.com/hobom/hobom-event-processor/messages"
)

// The find cursor (docs/contract.md §1) on a manual clock, with an outbox
// that applies it in the order its rows were added (skippingBackend).

// cursorWorld starts a tree over 12 MESSAGE events with a find limit of 3,
// the poller's interval, Kafka holding every record and a manual clock;
// mutate adjusts the configuration, setup the world (both may be nil).
func cursorWorld(t *testing.T, interval time.Duration, mutate func(*actors.TreeConfig), setup func(*world)) (*world, *pollerLog, []string) {
	t.Helper()
	log := &pollerLog{}
	var ids []string
	w := start(t, func(cfg *actors.TreeConfig) {
		cfg.Poller.FindLimit = 3
		cfg.Poller.Interval, cfg.Poller.MaxBackoff, cfg.Poller.BatchTimeout = interval, 4*interval, 0
		cfg.ChildMiddleware = []actor.MiddlewareFunc{log.middleware}
		if mutate != nil {
			mutate(cfg)
		}
	}, func(w *world) {
		w.clock = newManualClock()
		w.skipping = true
		ids = w.backend.add("e", 12)
		w.kafka.hold = true
		if setup != nil {
			setup(w)
		}
	})
	t.Cleanup(w.kafka.release) // before the tree stops (cleanups run last first)
	return w, log, ids
}

// idle waits until the poller has handled a pollTick after its last find
// without acting on it.
func idle(t *testing.T, log *pollerLog) {
	t.Helper()
	eventually(t, "the poller idle", func() bool { return log.handledAfter("actors.pollTick", "actors.findDone") })
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

// producedOnce releases Kafka, waits for every event SENT (moving the
// manual clock past any poll interval) and checks each was produced once.
func producedOnce(t *testing.T, w *world, ids []string) {
	t.Helper()
	w.kafka.release()
	eventually(t, "every event SENT", func() bool {
		if w.clock.Pending() > 0 { // an empty find's poll interval
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
// Once fullFindEvery has passed since the last find from the beginning
// (finds with the cursor in between do not count), the next one starts
// from the beginning again, though a batch is out, and its rows in flight
// are left out.
func TestPollerFindsAfterTheCursorWhileBatchesAreOut(t *testing.T) {
	w, log, ids := cursorWorld(t, time.Second, nil, nil)
	eventually(t, "two batches at Kafka", func() bool { return w.j.count("record e-5") == 1 })
	idle(t, log)
	finds(t, w, []string{"", "e-2"}, []int{3, 6})
	if got, want := log.published(), [][]string{ids[:3], ids[3:6]}; !reflect.DeepEqual(got, want) {
		t.Fatalf("batches %q, want %q (the second cut to the limit)", got, want)
	}

	w.clock.Advance(600 * time.Millisecond)
	w.kafka.releaseFirst(3) // the first batch resolves; the second stays out
	eventually(t, "a third batch at Kafka", func() bool { return w.j.count("record e-8") == 1 })
	idle(t, log)
	finds(t, w, []string{"", "e-2", "e-5"}, []int{3, 6, 3})

	w.clock.Advance(600 * time.Millisecond) // past fullFindEvery since the first find
	w.kafka.releaseFirst(3)                 // the second batch resolves; the third stays out
	eventually(t, "a fourth batch at Kafka", func() bool { return w.j.count("record e-11") == 1 })
	idle(t, log)
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
	w, log, ids := cursorWorld(t, 100*time.Millisecond, nil, nil)
	eventually(t, "two batches at Kafka", func() bool { return w.j.count("record e-5") == 1 })
	idle(t, log)
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
	w, log, _ := cursorWorld(t, time.Second, nil, func(w *world) {
		w.backend.events[2].Defect = "invalid UTF-8 in eventId"
	})
	eventually(t, "two batches", func() bool { return len(log.published()) == 2 })
	idle(t, log)
	if got := w.backend.findCursors(); len(got) < 2 || got[1] != "e-1" {
		t.Fatalf("find cursors %q, want the second after e-1 (e-2 was repaired)", got)
	}
}

// TestPollerFindsFromTheBeginningWithNothingOut: with a share of one
// batch, the poller finds only once its batch is resolved, and with
// nothing out it finds from the beginning, however recent its last such
// find.
func TestPollerFindsFromTheBeginningWithNothingOut(t *testing.T) {
	w, log, _ := cursorWorld(t, time.Second, func(cfg *actors.TreeConfig) { cfg.Poller.MaxInFlight = 3 }, nil)
	eventually(t, "a batch at Kafka", func() bool { return w.j.count("record e-2") == 1 })
	idle(t, log)
	w.kafka.releaseFirst(3)
	eventually(t, "a second batch at Kafka", func() bool { return w.j.count("record e-5") == 1 })
	finds(t, w, []string{"", ""}, []int{3, 3})
}

// TestPollerFindsFromTheBeginningAfterDroppingItsBatches: a batch that
// times out is dropped while a find with the cursor runs; that find still
// hands its rows over, and the next find starts from the beginning, so the
// dropped batch's events are handed over again at once.
func TestPollerFindsFromTheBeginningAfterDroppingItsBatches(t *testing.T) {
	var gate atomic.Pointer[chan struct{}]
	w, log, ids := cursorWorld(t, time.Second, func(cfg *actors.TreeConfig) { cfg.Poller.BatchTimeout = 500 * time.Millisecond },
		func(w *world) {
			w.backend.findHook = func() {
				if g := gate.Load(); g != nil {
					<-*g
				}
			}
		})
	eventually(t, "two batches at Kafka", func() bool { return w.j.count("record e-5") == 1 })
	idle(t, log)
	w.clock.Advance(400 * time.Millisecond)
	block := make(chan struct{})
	gate.Store(&block)
	w.kafka.releaseFirst(3) // the first batch resolves; a find with the cursor starts and waits
	eventually(t, "the third find running", func() bool { return w.backend.findCount() == 3 })
	w.clock.Advance(100 * time.Millisecond) // the second batch times out and is dropped
	eventually(t, "the second batch dropped", func() bool { return log.count("actors.batchTimeout") == 1 })
	gate.Store(nil)
	close(block)
	eventually(t, "a fourth batch", func() bool { return len(log.published()) == 4 })
	finds(t, w, []string{"", "e-2", "e-5", ""}, []int{3, 6, 3, 6})
	if got, want := log.published()[2:], [][]string{ids[6:9], ids[3:6]}; !reflect.DeepEqual(got, want) {
		t.Fatalf("third and fourth batches %q, want %q (the dropped batch again)", got, want)
	}
}

// TestPollerHandsOverNoMoreThanItsWant: rows the cursor passed over come
// first in the next find from the beginning, before the rows in flight the
// limit counted on top; the poller hands over no more than it may hold.
func TestPollerHandsOverNoMoreThanItsWant(t *testing.T) {
	w, log, _ := cursorWorld(t, time.Second, func(cfg *actors.TreeConfig) { cfg.Poller.MaxInFlight = 6 }, nil)
	eventually(t, "two batches at Kafka", func() bool { return w.j.count("record e-5") == 1 })
	idle(t, log)
	w.backend.set(func(b *memBackend) { // rows with an earlier place than every row in flight
		var late []*messages.Event
		for i := range 6 {
			id := fmt.Sprintf("late-%d", i)
			late = append(late, &messages.Event{ID: "row-" + id, EventID: id, EventType: messages.EventTypeMessage,
				Status: messages.StatusPending, Message: &messages.MessagePayload{Title: id, Body: "b", Recipient: "r"}})
			b.status[id] = messages.StatusPending
		}
		b.events = append(late, b.events...)
	})
	w.clock.Advance(time.Second) // fullFindEvery since the first find
	w.kafka.releaseFirst(3)      // the first batch resolves; the second (3 events) stays out
	eventually(t, "a third batch", func() bool { return len(log.published()) >= 3 })
	idle(t, log)
	finds(t, w, []string{"", "e-2", ""}, []int{3, 6, 6})
	if b := log.published()[2]; !reflect.DeepEqual(b, []string{"late-0", "late-1", "late-2"}) {
		t.Fatalf("third batch %q with 3 events in flight and a share of 6, want the first three late rows", b)
	}
	// The cursor is after the third late row, not after the rows in
	// flight: the next find with it brings the other late rows.
	w.kafka.releaseFirst(3)
	eventually(t, "a fourth batch", func() bool { return len(log.published()) >= 4 })
	if c := w.backend.findCursors()[3]; c != "late-2" {
		t.Fatalf("fourth find's cursor %q, want late-2", c)
	}
}

// TestPollerHandsOverAnOldBackendsWholeBacklog: a backend that ignores the
// limit (and the cursor) returns the whole backlog; the poller hands all
// of it over rather than cut it to its want and find it all again for
// every want.
func TestPollerHandsOverAnOldBackendsWholeBacklog(t *testing.T) {
	w, log, ids := cursorWorld(t, time.Second, nil, func(w *world) {
		w.backend.ignoreLimit, w.backend.ignoreCursor = true, true
		w.kafka.hold = false
	})
	eventually(t, "a batch", func() bool { return len(log.published()) >= 1 })
	if b := log.published()[0]; !reflect.DeepEqual(b, ids) {
		t.Fatalf("first batch %q, want the whole backlog %q", b, ids)
	}
	producedOnce(t, w, ids)
}

// TestPollerFindsFromTheBeginningUnderANewTenure: a poller granted its
// event type again under a new token, with batches of the old tenure
// still out, finds from the beginning: another holder may have left rows
// PENDING before its cursor meanwhile.
func TestPollerFindsFromTheBeginningUnderANewTenure(t *testing.T) {
	engine, err := actor.NewEngine(actor.NewEngineConfig())
	if err != nil {
		t.Fatal(err)
	}
	backend := newBackend(&journal{})
	backend.add("e", 12)
	var mu sync.Mutex
	var batches []messages.PublishBatch
	publisher := engine.SpawnFunc(func(c *actor.Context) {
		if m, ok := c.Message().(messages.PublishBatch); ok {
			mu.Lock()
			batches = append(batches, m)
			mu.Unlock()
		}
	}, "publisher")
	leases := engine.SpawnFunc(func(*actor.Context) {}, "leases")
	clock := newManualClock()
	cfg := actors.PollerConfig{FindLimit: 3, Interval: time.Hour, MaxBackoff: time.Hour, FindTimeout: time.Second, Clock: clock}
	route := messages.DefaultRoutes()[0]
	p := engine.Spawn(actors.NewPoller(route, skippingBackend{backend}, leases, publisher, cfg, zerolog.Nop(), nil), "poller")
	t.Cleanup(func() { <-engine.Poison(p).Done() })
	handed := func() []messages.PublishBatch {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(batches)
	}
	grant := func(token int64) messages.Fence {
		f := messages.Fence{Name: route.EventType, Token: token, Until: clock.Now().Add(time.Hour)}
		engine.Send(p, messages.LeaseGranted{Fence: f})
		return f
	}
	resolve := func(b messages.PublishBatch) {
		r := messages.BatchResolved{BatchID: b.BatchID}
		r.Counts[messages.OutcomeSent] = len(b.Events)
		engine.Send(p, r)
	}

	old := grant(1)
	eventually(t, "two batches", func() bool { return len(handed()) == 2 })
	resolve(handed()[0])
	eventually(t, "a third batch", func() bool { return len(handed()) == 3 })
	if got := backend.findCursors(); !slices.Equal(got, []string{"", "e-2", "e-5"}) {
		t.Fatalf("find cursors %q under the first tenure", got)
	}
	engine.Send(p, messages.LeaseRevoked{Fence: old})
	grant(2)
	resolve(handed()[1]) // a batch of the old tenure resolves; the third is still out
	eventually(t, "a fourth find", func() bool { return len(backend.findCursors()) == 4 })
	if c := backend.findCursors()[3]; c != "" {
		t.Fatalf("first find under the new tenure carried the cursor %q", c)
	}
}

// rowsWithoutEventIDFirst puts n rows without an eventId before the
// world's events.
func rowsWithoutEventIDFirst(w *world, n int) {
	w.backend.mu.Lock()
	events := w.backend.events
	w.backend.events = nil
	w.backend.mu.Unlock()
	for i := range n {
		w.backend.addWithoutEventID(fmt.Sprintf("row-without-id-%d", i))
	}
	w.backend.mu.Lock()
	w.backend.events = append(w.backend.events, events...)
	w.backend.mu.Unlock()
}

// TestPollerReachesRowsBehindRowsWithoutAnEventID: rows without an eventId
// stay PENDING (nothing can mark them) and come first in every find from
// the beginning, and none of them can be the cursor. When they fill a
// find's limit, the next finds ask for them on top of the rows they may
// hand over, so that the rows behind them are reached, with nothing out
// as with batches out; a row without an eventId does not count against
// what a find hands over.
func TestPollerReachesRowsBehindRowsWithoutAnEventID(t *testing.T) {
	w, _, ids := cursorWorld(t, time.Second, nil, func(w *world) {
		rowsWithoutEventIDFirst(w, 5) // more than the find limit (3)
		w.kafka.hold = false
	})
	eventually(t, "every event SENT", func() bool {
		if w.clock.Pending() > 0 { // the interval after a find that brought only those rows
			w.clock.Advance(time.Second)
		}
		return w.allStatus(messages.StatusSent, ids...)()
	})
	for _, id := range ids {
		if n := w.j.count("record " + id); n != 1 {
			t.Fatalf("%s produced %d times, want once; journal %s", id, n, w.j)
		}
	}
	// Those rows come before the cursor: finds after it (but the first,
	// which also asks for the rows in flight) ask for the limit alone,
	// and leave the count for the finds from the beginning as it was.
	cursors, limits := w.backend.findCursors(), w.backend.findLimits()
	first := slices.IndexFunc(cursors, func(c string) bool { return c != "" })
	if first < 0 {
		t.Fatalf("no find with a cursor: cursors %q", cursors)
	}
	for i := 1; i < len(cursors); i++ {
		switch {
		case cursors[i] != "" && i > first && limits[i] != 3:
			t.Fatalf("find %d after cursor %s asked for %d rows, want 3 (cursors %q, limits %v)", i, cursors[i], limits[i], cursors, limits)
		case cursors[i] == "" && limits[i] < 3+3:
			t.Fatalf("find %d from the beginning asked for %d rows, want the limit and 3 of the rows without an eventId at least (cursors %q, limits %v)", i, limits[i], cursors, limits)
		}
	}
	if n := w.logs.count("rows behind them are not reached"); n != 0 {
		t.Fatalf("stuck finds logged %d times, though the rows behind were reached", n)
	}
}

// findBehindRowsWithoutAnEventID starts cursorWorld (mutate adjusts it)
// with 7 rows without an eventId first, more than the find limit (3) and
// the cap together, and lets the poller find through seven poll
// intervals.
func findBehindRowsWithoutAnEventID(t *testing.T, mutate func(*actors.TreeConfig)) *world {
	t.Helper()
	w, _, _ := cursorWorld(t, time.Second, mutate, func(w *world) {
		rowsWithoutEventIDFirst(w, 7)
		w.kafka.hold = false
	})
	for range 6 {
		eventually(t, "the next find scheduled", func() bool { return w.clock.Pending() > 0 })
		w.clock.Advance(time.Second)
	}
	eventually(t, "the next find scheduled", func() bool { return w.clock.Pending() > 0 })
	return w
}

// TestPollerAsksForNoMoreRowsWithoutAnEventIDThanTheFindLimit: the rows
// without an eventId a find asks for on top of its limit are capped at
// the limit, so a find never takes more than twice its limit (and the
// rows in flight) however many such rows there are; the rows behind as
// many of them as the cap and the limit together, or more, wait until
// they are fixed.
func TestPollerAsksForNoMoreRowsWithoutAnEventIDThanTheFindLimit(t *testing.T) {
	w := findBehindRowsWithoutAnEventID(t, nil)
	if got := w.backend.findLimits(); len(got) < 6 || !slices.Equal(got[:3], []int{3, 6, 6}) || slices.Max(got) != 6 {
		t.Fatalf("find limits %v, want 3, then 3 on top of the limit of 3, never more", got)
	}
	// Stuck from the third find on: said once, not at every find.
	if n := w.logs.count("rows behind them are not reached"); n != 1 {
		t.Fatalf("the stuck finds logged %d times, want once", n)
	}
}

// TestPollerWaitsTheIntervalAfterAFindOfOnlyRowsWithoutAnEventID: a find
// that brings nothing but rows without an eventId hands them over (to be
// logged) and then waits the poll interval, whether their batch resolves
// before the next find or while it runs; it does not find again at once,
// which was a hot loop of finds while the clock stood still.
func TestPollerWaitsTheIntervalAfterAFindOfOnlyRowsWithoutAnEventID(t *testing.T) {
	w, _, _ := cursorWorld(t, time.Second, nil, func(w *world) {
		w.backend.mu.Lock()
		w.backend.events = nil
		w.backend.mu.Unlock()
		w.backend.addWithoutEventID("row-without-id")
		w.backend.findHook = func() { time.Sleep(5 * time.Millisecond) } // the batch resolves while the next find runs
		w.kafka.hold = false
	})
	time.Sleep(300 * time.Millisecond) // the manual clock stands still
	if n := w.backend.findCount(); n > 2 {
		t.Fatalf("%d finds with the clock standing still, want at most 2 (one, and one more at most while its batch was out)", n)
	}
	eventually(t, "the next find scheduled", func() bool { return w.clock.Pending() > 0 })
	// The interval less its jitter (decision 0011): an exact second is a
	// chance of one in 2e8.
	if d, _ := w.clock.NextDue(); d >= time.Second || d < 800*time.Millisecond {
		t.Fatalf("the next find is due in %v, want the interval of 1s less up to a fifth", d)
	}
	before := w.backend.findCount()
	w.clock.Advance(time.Second)
	eventually(t, "a find after the interval", func() bool { return w.backend.findCount() > before })
}

// TestPollerCapsRowsWithoutAnEventIDAtTheShare: with a share of the
// in-flight budget smaller than the find limit, the cap on the rows
// without an eventId a find asks for on top is the share, so that a find
// takes no more than twice the share however many such rows there are.
func TestPollerCapsRowsWithoutAnEventIDAtTheShare(t *testing.T) {
	w := findBehindRowsWithoutAnEventID(t, func(cfg *actors.TreeConfig) { cfg.Poller.MaxInFlight = 2 })
	if got := w.backend.findLimits(); len(got) < 6 || !slices.Equal(got[:3], []int{2, 4, 4}) || slices.Max(got) != 4 {
		t.Fatalf("find limits %v, want 2 (the share), then 2 on top, never more", got)
	}
}

// TestPollerAsksForRowsWithoutAnEventIDAfterTheCursor: rows without an
// eventId after the cursor come first in the finds after it; those finds
// ask for them on top of their limit too, and reach the rows behind them.
func TestPollerAsksForRowsWithoutAnEventIDAfterTheCursor(t *testing.T) {
	w, log, ids := cursorWorld(t, time.Second, nil, func(w *world) {
		w.backend.mu.Lock()
		events := w.backend.events
		w.backend.events = slices.Clone(events[:6])
		w.backend.mu.Unlock()
		for i := range 3 { // after e-5
			w.backend.addWithoutEventID(fmt.Sprintf("row-without-id-%d", i))
		}
		w.backend.mu.Lock()
		w.backend.events = append(w.backend.events, events[6:]...)
		w.backend.mu.Unlock()
	})
	eventually(t, "two batches at Kafka", func() bool { return w.j.count("record e-5") == 1 })
	idle(t, log)
	finds(t, w, []string{"", "e-2"}, []int{3, 6})
	w.kafka.releaseFirst(3) // the first batch resolves; the second (e-3..e-5 and the 3 rows) stays out
	eventually(t, "a third batch at Kafka", func() bool { return w.j.count("record e-8") == 1 })
	idle(t, log)
	finds(t, w, []string{"", "e-2", "e-5"}, []int{3, 6, 6})
	producedOnce(t, w, ids)
}

// TestPollerCountsAnUnappliedCursorFindAsOneFromTheBeginning: a backend
// that does not apply the cursor answers from the beginning, so the rows
// without an eventId its answer brings count for the next such find: rows
// committed late at the head while batches are out are passed within a
// poll interval, not only after the next find without the cursor.
func TestPollerCountsAnUnappliedCursorFindAsOneFromTheBeginning(t *testing.T) {
	const interval = 200 * time.Millisecond
	w, log, _ := cursorWorld(t, interval, nil, func(w *world) { w.backend.ignoreCursor = true })
	eventually(t, "two batches at Kafka", func() bool { return w.j.count("record e-5") == 1 })
	idle(t, log)
	rowsWithoutEventIDFirst(w, 5) // committed late, at the head

	w.kafka.releaseFirst(3) // the first batch resolves; the second stays out
	produced := func() bool { return w.j.count("record e-6") > 0 }
	for step := 0; ; step++ {
		eventually(t, "e-6 produced, or the next find scheduled", func() bool { return produced() || w.clock.Pending() > 0 })
		if produced() {
			return
		}
		if step == 4 { // 800 ms: short of fullFindEvery since the last find from the beginning
			t.Fatalf("e-6 not produced within %v; finds %q, limits %v", 4*interval, w.backend.findCursors(), w.backend.findLimits())
		}
		w.clock.Advance(interval)
	}
}
