package actors

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hobom/hobom-event-processor/messages"
)

// ackAtOnce acks every record at once, from its own goroutine.
type ackAtOnce struct{}

func (ackAtOnce) Produce(_ context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	go promise(r, nil)
}

// markCounter is an outbox that only counts SENT marks.
// neverFull makes Client, a test client that only produces, an
// actors.Producer whose room never runs out: its TryProduce is its
// Produce.
type neverFull struct {
	Client interface {
		Produce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error))
	}
}

func (n neverFull) Produce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	n.Client.Produce(ctx, r, promise)
}

func (n neverFull) TryProduce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	n.Client.Produce(ctx, r, promise)
}

func (neverFull) Room() int { return math.MaxInt }

type markCounter struct {
	mu   sync.Mutex
	sent int
}

func (o *markCounter) Find(context.Context, messages.FindRPC, string, string, int) ([]messages.Event, error) {
	return nil, nil
}
func (o *markCounter) MarkSent(context.Context, string) error {
	o.mu.Lock()
	o.sent++
	o.mu.Unlock()
	return nil
}
func (o *markCounter) MarkFailed(context.Context, string, string) error { return nil }
func (o *markCounter) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.sent
}

// testPublisherConfig is the publisher configuration of the tests that
// spawn one alone: one attempt, four mark workers.
func testPublisherConfig() PublisherConfig {
	return PublisherConfig{Attempts: 1, Backoff: time.Millisecond, MaxRecordBytes: 990_000,
		MaxInflightRecords: 100, Mark: RetryPolicy{Attempts: 1, Timeout: time.Second}, MarkConcurrency: 4, UnmarkedMemory: 1000, Lookup: time.Second}
}

// spawnResolvedTo spawns the actor that a test's batches reply to; it
// hands their BatchResolved on to the returned channel.
func spawnResolvedTo(engine *actor.Engine) (*actor.PID, chan messages.BatchResolved) {
	resolved := make(chan messages.BatchResolved, 1)
	reply := engine.SpawnFunc(func(c *actor.Context) {
		if m, ok := c.Message().(messages.BatchResolved); ok {
			resolved <- m
		}
	}, "reply")
	return reply, resolved
}

// messageBatch is batch id of n MESSAGE events, "<prefix>a-event",
// "<prefix>b-event"..., answered to reply.
func messageBatch(id uint64, reply *actor.PID, prefix string, n int) messages.PublishBatch {
	b := messages.PublishBatch{BatchID: id, Route: messages.DefaultRoutes()[0], ReplyTo: reply}
	for i := range n {
		eid := prefix + string(rune('a'+i)) + "-event"
		b.Events = append(b.Events, messages.Event{ID: "row-" + eid, EventID: eid, EventType: messages.EventTypeMessage,
			Status: messages.StatusPending, Message: &messages.MessagePayload{Title: eid, Body: "b", Recipient: "r"}})
	}
	return b
}

// TestProduceAttemptTimerStopsWhenTheAttemptEnds: attempts acked in time
// leave no deadline timer behind, so the publisher's inbox sees no
// attemptsExpired message, neither while they run nor AttemptTimeout later.
func TestProduceAttemptTimerStopsWhenTheAttemptEnds(t *testing.T) {
	const events, timeout = 20, 200 * time.Millisecond
	engine, err := actor.NewEngine(actor.NewEngineConfig())
	if err != nil {
		t.Fatal(err)
	}
	var seen atomic.Int64
	count := func(next actor.ReceiveFunc) actor.ReceiveFunc {
		return func(c *actor.Context) {
			if _, ok := c.Message().(attemptsExpired); ok {
				seen.Add(1)
			}
			next(c)
		}
	}
	outbox := &markCounter{}
	cfg := testPublisherConfig()
	cfg.AttemptTimeout = timeout
	reply, resolved := spawnResolvedTo(engine)
	dlq := engine.SpawnFunc(func(*actor.Context) {}, "dlq")
	pub := engine.Spawn(NewPublisher(neverFull{Client: ackAtOnce{}}, outbox, nil, dlq, cfg, zerolog.Nop(), nil), "publisher", actor.WithMiddleware(count))
	t.Cleanup(func() { <-engine.Poison(pub).Done() })

	engine.Send(pub, messageBatch(1, reply, "", events))
	select {
	case m := <-resolved:
		if m.Counts[messages.OutcomeSent] != events {
			t.Fatalf("batch resolved with %v, want %d SENT", m.Counts, events)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("batch not resolved; %d marks", outbox.count())
	}
	time.Sleep(3 * timeout) // well past every attempt's deadline
	if n := seen.Load(); n != 0 {
		t.Fatalf("%d attemptsExpired messages after every attempt was acked: deadline timers of finished attempts still fired", n)
	}
}
