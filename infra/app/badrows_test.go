package app_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/hobom/hobom-event-processor/infra/app"
	"github.com/hobom/hobom-event-processor/infra/config"
	"github.com/hobom/hobom-event-processor/infra/devkit/fakebackend"
	"github.com/hobom/hobom-event-processor/infra/testkit/testenv"
	"github.com/hobom/hobom-event-processor/messages"
)

// TestRowsWithoutAnEventIDAtTheHeadDoNotStarveTheRowsBehind: over the
// real stand-in and gRPC, more rows without an eventId than the find limit
// sit at the head of the MESSAGE outbox, and nothing is in flight. Every
// find from the beginning brings them first; the poller asks for them on
// top of its limit, so the events behind are SENT and in Kafka once. The
// rows themselves stay PENDING, and the poller does not find in a hot loop
// while only they are left (about one find per poll interval).
func TestRowsWithoutAnEventIDAtTheHeadDoNotStarveTheRowsBehind(t *testing.T) {
	const findLimit, bad, good = 3, 5, 10
	e := newEnv(t, func(c *config.Config) { c.FindLimit = findLimit }, app.Options{})
	rows := make([]messages.Event, bad)
	for i := range rows {
		rows[i] = message("", messages.MessagePayload{Title: "t", Body: "b", Recipient: "r"})
		rows[i].ID = fmt.Sprintf("row-without-event-id-%d", i)
	}
	e.backend.AddWithoutEventID(rows...)
	ids := make([]string, good)
	for i := range ids {
		ids[i] = fmt.Sprintf("behind-%d", i)
		e.backend.Add(message(ids[i], messages.MessagePayload{Title: "t", Body: "b", Recipient: "r"}))
	}
	testenv.Eventually(t, 10*time.Second, "the events behind SENT", allStatus(e, messages.StatusSent, ids...))
	if n := e.backend.Count(messages.EventTypeMessage, messages.StatusPending); n != bad {
		t.Fatalf("%d MESSAGE rows PENDING, want the %d without an eventId", n, bad)
	}
	counts := map[string]int{}
	for _, r := range e.kafka.ReadAll(t, "hobom.messages", 300*time.Millisecond) {
		counts[string(r.Key)]++
	}
	for _, id := range ids {
		if counts[id] != 1 {
			t.Errorf("%s in Kafka %d times, want once", id, counts[id])
		}
	}
	if len(counts) != good {
		t.Errorf("records for %d keys in Kafka, want %d: %v", len(counts), good, counts)
	}
	// About one find per poll interval (the interval less its jitter of up
	// to a fifth): 1.05 per interval measured, 0.95-1.00 before the jitter;
	// a find at once after each batch of those rows came to 1.9-2.0 per
	// interval without the jitter.
	before := e.backend.Calls(fakebackend.FindMessages)
	time.Sleep(time.Second)
	perInterval := float64(e.backend.Calls(fakebackend.FindMessages)-before) / float64(time.Second/e.cfg.PollInterval)
	t.Logf("%.2f MESSAGE finds per poll interval with only rows without an eventId left", perInterval)
	if perInterval > 1.5 {
		t.Fatalf("%.2f MESSAGE finds per poll interval (%v) with only rows without an eventId left; want at most 1.5", perInterval, e.cfg.PollInterval)
	}
}
