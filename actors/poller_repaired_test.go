package actors

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/anthdm/hollywood/actor"
	"github.com/rs/zerolog"

	"github.com/hobom/hobom-event-processor/messages"
)

// repairingOutbox is a SkippingFinder that keeps the outbox client's
// contract (infra/adapters/outbox, decode.go): a row whose eventId is not
// valid UTF-8 is never left out but returned with the id repaired and a
// defect. Its rows stay PENDING.
type repairingOutbox struct{ raws []string }

func (o *repairingOutbox) rows(skip func(string) bool) []messages.Event {
	var out []messages.Event
	for _, raw := range o.raws {
		if skip != nil && utf8.ValidString(raw) && skip(raw) {
			continue
		}
		e := messages.Event{ID: "row-" + raw, EventID: raw, EventType: messages.EventTypeMessage, Status: messages.StatusPending}
		if !utf8.ValidString(raw) {
			e.EventID = strings.ToValidUTF8(raw, "\uFFFD")
			e.Defect = "invalid UTF-8 in eventId"
		}
		out = append(out, e)
	}
	return out
}
func (o *repairingOutbox) Find(context.Context, messages.FindRPC, string, string, int) ([]messages.Event, error) {
	return o.rows(nil), nil
}
func (o *repairingOutbox) FindSkipping(_ context.Context, _ messages.FindQuery, skip func(string) bool) ([]messages.Event, bool, error) {
	return o.rows(skip), false, nil // it does not know the cursor
}
func (o *repairingOutbox) MarkSent(context.Context, string) error           { return nil }
func (o *repairingOutbox) MarkFailed(context.Context, string, string) error { return nil }

// TestPollerDoesNotHandOverARepairedRowInFlightAgain: the find that
// overlaps a batch gets back that batch's row whose eventId the outbox
// repaired (it cannot be skipped by its id); the poller must not hand it
// to the publisher a second time.
func TestPollerDoesNotHandOverARepairedRowInFlightAgain(t *testing.T) {
	engine, err := actor.NewEngine(actor.NewEngineConfig())
	if err != nil {
		t.Fatal(err)
	}
	outbox := &repairingOutbox{raws: []string{"ok-1", "bad-\xff"}}
	var mu sync.Mutex
	var batches [][]string
	publisher := engine.SpawnFunc(func(c *actor.Context) {
		if m, ok := c.Message().(messages.PublishBatch); ok {
			var ids []string
			for _, e := range m.Events {
				ids = append(ids, e.EventID)
			}
			mu.Lock()
			batches = append(batches, ids)
			mu.Unlock()
			// never resolved: the batch stays in flight
		}
	}, "publisher")
	cfg := PollerConfig{Interval: 50 * time.Millisecond, MaxBackoff: time.Second, FindTimeout: time.Second}
	p := engine.Spawn(NewPoller(messages.DefaultRoutes()[0], outbox, nil, publisher, cfg, zerolog.Nop(), nil), "poller")
	defer func() { <-engine.Poison(p).Done() }()
	time.Sleep(300 * time.Millisecond) // several finds overlap the batch
	mu.Lock()
	defer mu.Unlock()
	if len(batches) != 1 {
		t.Fatalf("%d batches handed over, want 1 (the repaired row in flight was handed over again): %q", len(batches), batches)
	}
}
