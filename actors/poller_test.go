package actors_test

import (
	"testing"
	"time"

	"github.com/hobom/hobom-event-processor/actors"
	"github.com/hobom/hobom-event-processor/infra/testenv"
	"github.com/hobom/hobom-event-processor/messages"
)

// TestPollerDoesNotFetchWhileItsBatchIsInFlight is the flow control the
// unbounded inboxes lack: no find until every event of the batch is
// resolved, then polling resumes.
func TestPollerDoesNotFetchWhileItsBatchIsInFlight(t *testing.T) {
	var ids []string
	w := start(t, nil, func(w *world) {
		ids = w.backend.add("e", 3)
		w.kafka.hold = true // Kafka takes the records and does not answer
	})
	testenv.EventuallyEvery(t, wait, time.Millisecond, "the batch produced", func() bool { return w.j.count("record e-2") == 1 })
	finds := w.backend.findCount()
	time.Sleep(20 * testConfig().Poller.Interval) // twenty poll intervals
	if got := w.backend.findCount(); got != finds {
		t.Fatalf("%d finds while the batch was in flight, want none", got-finds)
	}
	w.kafka.release()
	testenv.EventuallyEvery(t, wait, time.Millisecond, "the batch SENT", w.allStatus(messages.StatusSent, ids...))
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
