package actors_test

import (
	"strings"
	"testing"
	"time"

	"github.com/hobom/hobom-event-processor/actors"
	"github.com/hobom/hobom-event-processor/infra/testkit/testenv"
	"github.com/hobom/hobom-event-processor/messages"
)

const wait = 5 * time.Second

// TestPublisherRetriesThenDeadLettersThenMarks: a record gets Attempts
// produce attempts; an event whose attempts all fail gets its DLQ entry
// first and its FAILED mark second; without the entry it stays PENDING.
func TestPublisherRetriesThenDeadLettersThenMarks(t *testing.T) {
	for _, c := range []struct {
		name         string
		failAttempts int // produce attempts that fail, per record (3: all)
		dlqDown      bool
		want         string // the event's final status
		wantAttempts int
	}{
		{"acked at once", 0, false, messages.StatusSent, 1},
		{"acked at the last attempt", 2, false, messages.StatusSent, 3},
		{"every attempt fails: DLQ entry, then FAILED", 3, false, messages.StatusFailed, 3},
		// Never FAILED without its entry: PENDING, and the next poll's
		// attempt (the fourth) succeeds.
		{"every attempt fails and the DLQ is down: PENDING, published by the next poll", 3, true, messages.StatusSent, 4},
	} {
		t.Run(c.name, func(t *testing.T) {
			var id string
			w := start(t, nil, func(w *world) {
				id = w.backend.add("e", 1)[0]
				w.kafka.fail = func(_ string, attempt int) bool { return attempt <= c.failAttempts }
				if c.dlqDown {
					w.dlq.failPuts = -1
				}
			})
			key := "dlq:menu:" + id
			testenv.EventuallyEvery(t, wait, time.Millisecond, "status "+c.want, w.allStatus(c.want, id))
			if got := w.kafka.attempts(id); got != c.wantAttempts {
				t.Errorf("%d produce attempts, want %d", got, c.wantAttempts)
			}
			meta, ok := w.dlq.entry(key)
			if c.want == messages.StatusSent {
				if ok {
					t.Errorf("DLQ entry for a published event: %+v", meta)
				}
				if n := w.j.count("mark FAILED " + id); n != 0 {
					t.Errorf("marked FAILED %d times without a DLQ entry", n)
				}
				return
			}
			if !ok || meta.Attempts != 3 || !strings.HasPrefix(meta.Reason, "kafka: ") || meta.EventID != id {
				t.Fatalf("DLQ entry %+v (present %v), want 3 attempts and a kafka reason", meta, ok)
			}
			if e, m := w.j.index("dlq "+key), w.j.index("mark FAILED "+id); e < 0 || m < e {
				t.Fatalf("journal %s: want the DLQ entry before the FAILED mark", w.j)
			}
		})
	}
}

// TestAFailedSENTMarkIsRetriedWithoutPublishingAgain: the next poll finds
// the event still PENDING and only marks it.
func TestAFailedSENTMarkIsRetriedWithoutPublishingAgain(t *testing.T) {
	var ids []string
	w := start(t, nil, func(w *world) {
		ids = w.backend.add("e", 3)
		w.backend.failMarks = 3
	})
	testenv.EventuallyEvery(t, wait, time.Millisecond, "every event SENT", w.allStatus(messages.StatusSent, ids...))
	for _, id := range ids {
		if n := w.j.count("record " + id); n != 1 {
			t.Errorf("%s published %d times, want once", id, n)
		}
	}
}

// TestUnmarkedMemoryIsBounded: published events whose marks failed are
// remembered up to UnmarkedMemory; past the bound the least recently
// remembered are forgotten and published again by the next poll (a
// duplicate, never a loss).
func TestUnmarkedMemoryIsBounded(t *testing.T) {
	for _, c := range []struct {
		bound, events, wantRepublished int
	}{
		{bound: 100, events: 5, wantRepublished: 0},
		{bound: 3, events: 5, wantRepublished: 2},
		{bound: 1, events: 5, wantRepublished: 4},
	} {
		var ids []string
		w := start(t, func(cfg *actors.TreeConfig) { cfg.Publisher.UnmarkedMemory = c.bound }, func(w *world) {
			ids = w.backend.add("e", c.events)
			w.backend.failMarks = c.events // the first round's marks all fail
		})
		testenv.EventuallyEvery(t, wait, time.Millisecond, "every event SENT", w.allStatus(messages.StatusSent, ids...))
		republished := 0
		for _, id := range ids {
			republished += w.j.count("record "+id) - 1
		}
		if republished != c.wantRepublished {
			t.Errorf("bound %d, %d events: %d published again, want %d (journal %s)", c.bound, c.events, republished, c.wantRepublished, w.j)
		}
		w.stop(t)
	}
}
