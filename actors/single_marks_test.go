package actors

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/rs/zerolog"

	"github.com/hobom/hobom-event-processor/messages"
)

// gatedOutbox is an Outbox whose first SENT mark waits for gate; it
// records every SENT mark.
type gatedOutbox struct {
	Outbox
	gate    chan struct{}
	entered chan struct{}
	mu      sync.Mutex
	marked  []string
}

func (o *gatedOutbox) MarkSent(_ context.Context, id string) error {
	o.mu.Lock()
	o.marked = append(o.marked, id)
	first := len(o.marked) == 1
	o.mu.Unlock()
	if first {
		close(o.entered)
		<-o.gate
	}
	return nil
}

// pubHarness runs a Publisher and lets the test queue single marks on it
// from its own goroutine.
type pubHarness struct{ p *Publisher }

func (h *pubHarness) Receive(c *actor.Context) {
	if items, ok := c.Message().([]markItem); ok {
		for _, it := range items {
			h.p.markOne(it.id, it.fence)
		}
		return
	}
	h.p.Receive(c)
}

// TestACrashedPublishersWorkersStartNoQueuedMark: when the publisher
// panics, the marks it queued and had not started are dropped at once:
// its workers finish the mark under way and start none of them (the
// instance no longer learns of revocations).
func TestACrashedPublishersWorkersStartNoQueuedMark(t *testing.T) {
	e, err := actor.NewEngine(actor.NewEngineConfig())
	if err != nil {
		t.Fatal(err)
	}
	crashed := make(chan messages.ChildCrashed, 1)
	sup := e.SpawnFunc(func(c *actor.Context) {
		if m, ok := c.Message().(messages.ChildCrashed); ok {
			crashed <- m
		}
	}, "supervisor")
	out := &gatedOutbox{gate: make(chan struct{}), entered: make(chan struct{})}
	var ungate sync.Once
	defer ungate.Do(func() { close(out.gate) })
	cfg := PublisherConfig{MarkConcurrency: 1, Mark: RetryPolicy{Attempts: 1, Timeout: time.Second}}
	p := NewPublisher(nil, out, nil, nil, cfg, zerolog.Nop(), nil)().(*Publisher)
	pid := e.Spawn(func() actor.Receiver { return &pubHarness{p: p} }, "publisher",
		actor.WithMiddleware(recoverChild("publisher", sup)))
	defer func() { <-e.Poison(pid).Done() }()

	e.Send(pid, []markItem{{id: "under-way"}, {id: "queued"}})
	select {
	case <-out.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the first mark did not start")
	}
	// A batch without an encoding: dispatching it panics.
	e.Send(pid, messages.PublishBatch{Events: []messages.Event{{EventID: "x"}}})
	select {
	case <-crashed:
	case <-time.After(10 * time.Second):
		t.Fatal("the publisher did not crash")
	}
	ungate.Do(func() { close(out.gate) })
	q := p.single
	waitNoMarkRunning(t, q, "the mark under way to end")
	out.mu.Lock()
	defer out.mu.Unlock()
	if len(out.marked) != 1 {
		t.Fatalf("marks made %v, want only the one under way at the crash", out.marked)
	}
}
