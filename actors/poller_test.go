package actors_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/hobom/hobom-event-processor/actors"
	"github.com/hobom/hobom-event-processor/infra/testkit/testenv"
	"github.com/hobom/hobom-event-processor/messages"
)

// TestPollerKeepsAtMostTwoBatchesInFlight is the flow control the
// unbounded inboxes lack. The poller finds once more while a batch is in
// flight (the overlap), so it holds at most two batches at the publisher;
// with both out it does not find again until one resolves, and the rows
// still in flight, which every find returns while they are PENDING, are
// never handed over twice.
func TestPollerKeepsAtMostTwoBatchesInFlight(t *testing.T) {
	const limit, batches = 3, 2 // the find limit; the poller's maxBatches
	var ids []string
	w := start(t, func(c *actors.TreeConfig) { c.Poller.FindLimit = limit }, func(w *world) {
		ids = w.backend.add("e", (batches+1)*limit)
		w.kafka.hold = true // Kafka takes the records and does not answer
	})
	last := fmt.Sprintf("record e-%d", batches*limit-1)
	testenv.EventuallyEvery(t, wait, time.Millisecond, "two batches produced", func() bool {
		return w.backend.findCount() >= batches && w.j.count(last) == 1
	})
	time.Sleep(20 * testConfig().Poller.Interval) // twenty poll intervals
	if got := w.backend.findCount(); got != batches {
		t.Fatalf("%d finds with %d batches in flight, want %d (one per batch, none beyond)", got, batches, batches)
	}
	for i, id := range ids {
		want := 1
		if i >= batches*limit {
			want = 0 // beyond the two batches: not fetched yet
		}
		if n := w.j.count("record " + id); n != want {
			t.Fatalf("%s produced %d times with %d batches in flight, want %d; journal %s", id, n, batches, want, w.j)
		}
	}
	w.kafka.release()
	testenv.EventuallyEvery(t, wait, time.Millisecond, "every event SENT", w.allStatus(messages.StatusSent, ids...))
	for _, id := range ids {
		if n := w.j.count("record " + id); n != 1 {
			t.Fatalf("%s produced %d times, want once; journal %s", id, n, w.j)
		}
	}
	finds := w.backend.findCount()
	testenv.EventuallyEvery(t, wait, time.Millisecond, "polling resumed", func() bool { return w.backend.findCount() > finds })
}

// TestPollerBacksOffWhileTheFindFails: failed finds are retried after a
// wait doubling from Interval up to MaxBackoff (never a hot loop), and the
// poller relays again as soon as the backend answers.
func TestPollerBacksOffWhileTheFindFails(t *testing.T) {
	cfg := testConfig().Poller // 10 ms doubling to 40 ms, less up to 20 %
	w := start(t, nil, func(w *world) { w.backend.failFinds = -1 })
	const window = 400 * time.Millisecond
	began := time.Now()
	time.Sleep(window)
	finds, took := w.backend.findCount(), time.Since(began)
	// Waits of at least 8, 16, 32, 32, ... ms: at most 3 + (took-56ms)/32ms
	// finds after the first. Without the backoff there would be one every
	// 8 ms or less.
	most := 1 + 3 + int((took-56*time.Millisecond)/(cfg.MaxBackoff*4/5)) + 1
	if finds > most || finds < 2 {
		t.Fatalf("%d finds in %v of failures, want 2 to %d", finds, took.Round(time.Millisecond), most)
	}
	w.backend.set(func(b *memBackend) { b.failFinds = 0 })
	ids := w.backend.add("e", 2)
	testenv.EventuallyEvery(t, wait, time.Millisecond, "events SENT once the backend answers", w.allStatus(messages.StatusSent, ids...))
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
