package app_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hobom/hobom-event-processor/infra/app"
	"github.com/hobom/hobom-event-processor/infra/config"
	"github.com/hobom/hobom-event-processor/infra/devkit/fakebackend"
	"github.com/hobom/hobom-event-processor/infra/testkit/testenv"
	"github.com/hobom/hobom-event-processor/messages"
	"github.com/hobom/hobom-event-processor/proto/gen/outboxlogv1"
	"github.com/hobom/hobom-event-processor/proto/gen/outboxmessagev1"
)

// TestPollersShareTheBudgetAndHandOverEachEventOnce drains two backlogs
// with a small global in-flight budget and slow marks, so that each
// poller's next find runs while its previous batch is still being marked:
// no find asks for more than the poller's share, and every event reaches
// Kafka exactly once. It runs twice: against the stand-in's find cursor,
// where most of the finds that overlap a batch carry it and the backend
// applies it, and against a backend that drops the field (an old one),
// where those finds return the rows in flight and the processor leaves
// them out.
func TestPollersShareTheBudgetAndHandOverEachEventOnce(t *testing.T) {
	for _, oldFind := range []bool{false, true} {
		t.Run(map[bool]string{false: "cursor", true: "old find"}[oldFind], func(t *testing.T) {
			shareBudgetOnce(t, oldFind)
		})
	}
}

func shareBudgetOnce(t *testing.T, oldFind bool) {
	const perType, budget, findLimit = 400, 100, 40
	share := budget / 2 // two pollers
	var mu sync.Mutex
	var maxLimit int32
	var finds, cursors, wideCursors int
	note := func(limit int32, after **string) {
		mu.Lock()
		defer mu.Unlock()
		finds++
		maxLimit = max(maxLimit, limit)
		if *after != nil {
			cursors++
			if limit > findLimit {
				wideCursors++ // the rows in flight asked for on top
			}
		}
		if oldFind {
			*after = nil
		}
	}
	e := newEnv(t, func(c *config.Config) {
		c.MaxInFlight, c.FindLimit = budget, findLimit
		c.PollInterval = 20 * time.Millisecond
	}, app.Options{})
	e.backend.SetHook(fakebackend.FindMessages, func(req any) error {
		r := req.(*outboxmessagev1.Request)
		note(r.GetLimit(), &r.AfterEventId)
		return nil
	})
	e.backend.SetHook(fakebackend.FindLogs, func(req any) error {
		r := req.(*outboxlogv1.Request)
		note(r.GetLimit(), &r.AfterEventId)
		return nil
	})
	e.backend.SetFault(fakebackend.MarkSent, fakebackend.Fault{Delay: 2 * time.Millisecond})
	e.backend.Seed(messages.EventTypeMessage, perType, nil)
	e.backend.Seed(messages.EventTypeHoBomLog, perType, nil)

	testenv.Eventually(t, 60*time.Second, "every event SENT", func() bool {
		return e.backend.Count(messages.EventTypeMessage, messages.StatusSent) == perType &&
			e.backend.Count(messages.EventTypeHoBomLog, messages.StatusSent) == perType
	})
	mu.Lock()
	if maxLimit > int32(share) || maxLimit == 0 {
		t.Errorf("largest find limit %d, want 1..%d (the poller's share of %d)", maxLimit, share, budget)
	}
	// 20 batches of each type at least, all but the first few overlapping
	// the one before.
	if cursors < finds/3 {
		t.Errorf("%d of %d finds carried the cursor, want a third at least", cursors, finds)
	}
	// Once a response has said the cursor was applied, a find with it
	// asks for the find limit alone: the first of each poller at most
	// asks for the rows in flight on top. Against an old find, every one.
	if !oldFind && wideCursors > 2 {
		t.Errorf("%d finds with the cursor asked for the rows in flight on top, want one per poller at most", wideCursors)
	}
	if oldFind && wideCursors < cursors/2 {
		t.Errorf("%d of %d finds with the cursor asked for the rows in flight on top against an old find, want most", wideCursors, cursors)
	}
	t.Logf("%d finds, %d with the cursor, %d of them with the rows in flight on top", finds, cursors, wideCursors)
	mu.Unlock()

	seen := map[string]int{}
	for _, r := range e.kafka.ReadTopic(t, "hobom.messages", perType, 10*time.Second) {
		seen[string(r.Key)]++
	}
	logs := 0
	for _, r := range e.kafka.ReadAll(t, "hobom.logs", time.Second) {
		for _, h := range r.Headers {
			if h.Key == messages.HeaderEventID {
				for _, id := range strings.Split(string(h.Value), ",") {
					seen[id]++
					logs++
				}
			}
		}
	}
	if len(seen) != 2*perType || logs != perType {
		t.Errorf("%d distinct events and %d log events in Kafka, want %d and %d", len(seen), logs, 2*perType, perType)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("event %s is %d times in Kafka", id, n)
		}
	}
}
