package actors

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/rs/zerolog"

	"github.com/hobom/hobom-event-processor/infra/testkit/testenv"
	"github.com/hobom/hobom-event-processor/messages"
)

// emptyMemory remembers nothing: every lookup finds no earlier publish.
type emptyMemory struct{}

func (emptyMemory) Write(context.Context, []UnmarkedOp) error { return nil }
func (emptyMemory) Lookup(context.Context, []string) (map[string]messages.Unmarked, error) {
	return nil, nil
}

// heldMarks is an outbox whose SENT marks wait until released, counted by
// event id.
type heldMarks struct {
	release chan struct{}
	mu      sync.Mutex
	started int
	sent    map[string]int
}

func newHeldMarks() *heldMarks {
	return &heldMarks{release: make(chan struct{}), sent: map[string]int{}}
}

func (o *heldMarks) Find(context.Context, messages.FindRPC, string, string, int) ([]messages.Event, error) {
	return nil, nil
}
func (o *heldMarks) MarkSent(ctx context.Context, id string) error {
	o.mu.Lock()
	o.started++
	o.mu.Unlock()
	select {
	case <-o.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	o.mu.Lock()
	o.sent[id]++
	o.mu.Unlock()
	return nil
}
func (o *heldMarks) MarkFailed(context.Context, string, string) error { return nil }
func (o *heldMarks) waiting() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.started
}
func (o *heldMarks) marks() (events, calls int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, n := range o.sent {
		calls += n
	}
	return len(o.sent), calls
}

// silentDLQ stands for a DLQ actor that takes the memory writes asked of
// it and never answers.
type silentDLQ struct {
	mu    sync.Mutex
	asked []messages.RememberUnmarked
}

func (d *silentDLQ) spawn(engine *actor.Engine) *actor.PID {
	return engine.SpawnFunc(func(c *actor.Context) {
		if m, ok := c.Message().(messages.RememberUnmarked); ok && m.ReplyTo != nil {
			d.mu.Lock()
			d.asked = append(d.asked, m)
			d.mu.Unlock()
		}
	}, "dlq")
}

// requests returns the writes asked so far and their events.
func (d *silentDLQ) requests() (reqs []messages.RememberUnmarked, ids int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, r := range d.asked {
		ids += len(r.EventIDs)
	}
	return append(reqs, d.asked...), ids
}

// TestPublisherMarksWhatItWasRememberingWhenTheDLQActorIsLost: acked events
// wait for the DLQ actor to remember them before their marks; when that
// actor is lost, the publisher marks them without the answer, and an answer
// that arrives after all the same (from the lost actor's write) marks
// nothing a second time, even while the first marks are still in flight.
func TestPublisherMarksWhatItWasRememberingWhenTheDLQActorIsLost(t *testing.T) {
	const events = 20
	engine, err := actor.NewEngine(actor.NewEngineConfig())
	if err != nil {
		t.Fatal(err)
	}
	outbox := newHeldMarks()
	cfg := testPublisherConfig()
	cfg.Mark.Timeout = 10 * time.Second // the marks wait for the test to release them
	reply, resolved := spawnResolvedTo(engine)
	silent := &silentDLQ{}
	dlq := silent.spawn(engine)
	pub := engine.Spawn(NewPublisher(neverFull{Client: ackAtOnce{}}, outbox, emptyMemory{}, dlq, cfg, zerolog.Nop(), nil), "publisher")
	t.Cleanup(func() {
		select {
		case <-outbox.release:
		default:
			close(outbox.release)
		}
		<-engine.Poison(pub).Done()
	})

	engine.Send(pub, messageBatch(1, reply, "", events))
	testenv.Eventually(t, 5*time.Second, "every acked event handed to the DLQ actor to remember", func() bool {
		_, ids := silent.requests()
		return ids == events
	})
	reqs, _ := silent.requests()
	for _, r := range reqs {
		if r.Seq == 0 || r.ReplyTo == nil {
			t.Fatalf("memory request without a number or a reply address: %+v", r)
		}
	}

	time.Sleep(100 * time.Millisecond)
	if n := outbox.waiting(); n != 0 {
		t.Fatalf("%d SENT marks started before the events were remembered", n)
	}
	engine.Send(pub, messages.PeerLost{Peer: "dlq"})
	testenv.Eventually(t, 5*time.Second, "marks started without the memory's answer", func() bool {
		return outbox.waiting() == cfg.MarkConcurrency
	})
	// The lost actor's answers arrive after all, while the marks the loss
	// started still wait for the backend.
	for _, r := range reqs {
		engine.Send(pub, messages.Remembered{EventIDs: r.EventIDs, Seq: r.Seq})
	}
	time.Sleep(100 * time.Millisecond) // the answers are handled before the marks are let through
	close(outbox.release)

	select {
	case m := <-resolved:
		if m.Counts[messages.OutcomeSent] != events {
			t.Fatalf("batch resolved with %v, want %d SENT", m.Counts, events)
		}
	case <-time.After(5 * time.Second):
		n, calls := outbox.marks()
		t.Fatalf("batch not resolved after the DLQ actor was lost: %d events marked in %d calls", n, calls)
	}
	time.Sleep(100 * time.Millisecond) // room for a second mark of an event, if one was queued
	if n, calls := outbox.marks(); n != events || calls != events {
		t.Fatalf("%d events marked in %d SENT calls, want each of the %d once", n, calls, events)
	}
}

// TestPublisherTakesNoAnswerMeantForItsPredecessor: a restarted publisher
// (the same PID, as under the supervisor) numbers its memory writes anew
// while the DLQ actor may still answer its predecessor's; such an answer
// must not start the marks of the successor's events before their own
// write is answered.
func TestPublisherTakesNoAnswerMeantForItsPredecessor(t *testing.T) {
	const events = 3
	engine, err := actor.NewEngine(actor.NewEngineConfig())
	if err != nil {
		t.Fatal(err)
	}
	outbox := newHeldMarks()
	defer close(outbox.release)
	cfg := testPublisherConfig()
	cfg.Mark.Timeout = 10 * time.Second // the marks wait for the test to release them
	reply := engine.SpawnFunc(func(*actor.Context) {}, "reply")
	silent := &silentDLQ{}
	dlq := silent.spawn(engine)
	producer := NewPublisher(neverFull{Client: ackAtOnce{}}, outbox, emptyMemory{}, dlq, cfg, zerolog.Nop(), nil)
	pub := engine.Spawn(producer, "publisher", actor.WithID("0"))
	engine.Send(pub, messageBatch(1, reply, "old-", events))
	testenv.Eventually(t, 5*time.Second, "the predecessor's writes asked for", func() bool {
		_, ids := silent.requests()
		return ids == events
	})
	old, _ := silent.requests()
	// The predecessor stops before the DLQ actor answers; the successor
	// takes the same PID.
	<-engine.Poison(pub).Done()
	successor := engine.Spawn(producer, "publisher", actor.WithID("0"))
	if !successor.Equals(pub) {
		t.Fatalf("the successor's PID %v is not its predecessor's %v", successor, pub)
	}
	defer func() { <-engine.Poison(successor).Done() }()
	engine.Send(successor, messageBatch(2, reply, "new-", events))
	testenv.Eventually(t, 5*time.Second, "the successor's writes asked for", func() bool {
		_, ids := silent.requests()
		return ids == 2*events
	})
	for _, r := range old {
		engine.Send(successor, messages.Remembered{EventIDs: r.EventIDs, Seq: r.Seq})
	}
	time.Sleep(200 * time.Millisecond) // the late answers are handled
	if n := outbox.waiting(); n != 0 {
		all, _ := silent.requests()
		t.Fatalf("%d SENT marks of the successor's events started on its predecessor's answers, before their own write was answered (writes asked: %+v)", n, all)
	}
}
