package actors

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hobom/hobom-event-processor/messages"
)

// holdingProducer keeps every record's first attempt, as a client that
// cannot reach a broker does, until giveBack; it acks later attempts (a
// retry's copy of the record) at once.
type holdingProducer struct {
	mu   sync.Mutex
	held map[*kgo.Record]func(*kgo.Record, error)
	seen map[string]bool // event ids with an attempt so far
}

func (h *holdingProducer) Produce(_ context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	id := string(r.Key)
	h.mu.Lock()
	first := !h.seen[id]
	h.seen[id] = true
	if first {
		h.held[r] = promise
	}
	h.mu.Unlock()
	if !first {
		go promise(r, nil)
	}
}

// records returns the records it holds.
func (h *holdingProducer) records() []*kgo.Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []*kgo.Record
	for r := range h.held {
		out = append(out, r)
	}
	return out
}

// giveBack runs the promises of the records it holds, as the client does
// once it fails them, and forgets them.
func (h *holdingProducer) giveBack(err error) {
	h.mu.Lock()
	held := h.held
	h.held = map[*kgo.Record]func(*kgo.Record, error){}
	h.mu.Unlock()
	for r, promise := range held {
		promise(r, err)
	}
}

// TestPublisherEmptiesAStrayRecordOnceTheClientGivesItBack: a record
// whose first attempt ended at its deadline while the client still held
// it is left intact while the client holds it (its retry has been acked
// and its events marked meanwhile), and emptied once the client's promise
// for that attempt has run, not when some later record uses up its slab.
func TestPublisherEmptiesAStrayRecordOnceTheClientGivesItBack(t *testing.T) {
	const events = 20
	engine, err := actor.NewEngine(actor.NewEngineConfig())
	if err != nil {
		t.Fatal(err)
	}
	producer := &holdingProducer{held: map[*kgo.Record]func(*kgo.Record, error){}, seen: map[string]bool{}}
	outbox := &markCounter{}
	cfg := testPublisherConfig()
	cfg.Attempts, cfg.AttemptTimeout = 2, 100*time.Millisecond
	reply, resolved := spawnResolvedTo(engine)
	dlq := engine.SpawnFunc(func(*actor.Context) {}, "dlq")
	pub := engine.Spawn(NewPublisher(producer, outbox, nil, dlq, cfg, zerolog.Nop(), nil), "publisher")
	t.Cleanup(func() { <-engine.Poison(pub).Done() })

	await := func(batch uint64) {
		t.Helper()
		select {
		case m := <-resolved:
			if m.BatchID != batch || m.Counts[messages.OutcomeSent] != events {
				t.Fatalf("batch %d resolved with %v, want batch %d with %d SENT", m.BatchID, m.Counts, batch, events)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("batch %d not resolved; %d marks", batch, outbox.count())
		}
	}
	engine.Send(pub, messageBatch(1, reply, "", events))
	await(1) // first attempts timed out, retries acked, events marked SENT
	held := producer.records()
	if len(held) != events {
		t.Fatalf("the client holds %d records, want %d", len(held), events)
	}
	for _, r := range held {
		if r.Value == nil || len(r.Headers) == 0 {
			t.Fatal("a record the client still holds was emptied")
		}
	}

	producer.giveBack(context.DeadlineExceeded)
	// The late promises reach the publisher before the next batch does
	// (one sender, one inbox); the next batch's answer orders the test's
	// reads after the publisher's writes.
	engine.Send(pub, messageBatch(2, reply, "next-", events))
	await(2)
	for _, r := range held {
		if r.Value != nil || r.Headers != nil {
			t.Fatalf("record %q kept its value or headers after the client gave it back", r.Key)
		}
	}
}
