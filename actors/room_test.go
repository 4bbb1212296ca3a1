package actors

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hobom/hobom-event-processor/messages"
)

// roomyProducer is a client that buffers at most capacity records, as
// kgo.Client with MaxBufferedRecords does: TryProduce refuses a record
// beyond that with kgo.ErrMaxBuffered (on another goroutine, as franz-go
// does); the blocking Produce must not be called by the publisher.
type roomyProducer struct {
	capacity int
	// lies: Room reports the whole capacity, as when someone else takes
	// the room between the publisher's read and its produce.
	lies     bool
	mu       sync.Mutex
	held     []held
	maxHeld  int
	foreign  int // records of someone else, taking room
	accepted map[string]int
	bounces  atomic.Int64
	blocking atomic.Int64
}

func (p *roomyProducer) Room() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.lies {
		return p.capacity
	}
	return p.capacity - len(p.held) - p.foreign
}

type held struct {
	rec     *kgo.Record
	promise func(*kgo.Record, error)
}

func (p *roomyProducer) Produce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	p.blocking.Add(1)
	p.TryProduce(ctx, r, promise)
}

func (p *roomyProducer) TryProduce(_ context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.held)+p.foreign >= p.capacity {
		p.bounces.Add(1)
		go promise(r, kgo.ErrMaxBuffered)
		return
	}
	p.accepted[string(r.Key)]++
	p.held = append(p.held, held{r, promise})
	p.maxHeld = max(p.maxHeld, len(p.held)+p.foreign)
}

// ackOldest acks the oldest record held; false when none is.
func (p *roomyProducer) ackOldest() bool {
	p.mu.Lock()
	if len(p.held) == 0 {
		p.mu.Unlock()
		return false
	}
	h := p.held[0]
	p.held = p.held[1:]
	p.mu.Unlock()
	h.promise(h.rec, nil)
	return true
}

// TestPublisherWaitsForRoomInAFullClient: the publisher produces only
// while the Kafka client has room, so its Receive never blocks in the
// client's Produce. Records wait, in order, while the client is full of
// the publisher's records or of someone else's (whose end it does not
// see), and a record refused because someone took the room first
// (kgo.ErrMaxBuffered) is no attempt: with one attempt allowed, nothing
// may reach the DLQ. Every event is marked SENT, every record taken by
// the client once.
func TestPublisherWaitsForRoomInAFullClient(t *testing.T) {
	const events, capacity = 24, 3
	cases := []struct {
		name    string
		foreign int  // records of someone else in the client at the start, let go after 200 ms
		lies    bool // Room reports the whole capacity
	}{
		{name: "its own records fill the client"},
		{name: "someone else's records fill the client", foreign: capacity},
		{name: "someone takes the room between the read and the produce", lies: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			engine, err := actor.NewEngine(actor.NewEngineConfig())
			if err != nil {
				t.Fatal(err)
			}
			producer := &roomyProducer{capacity: capacity, lies: c.lies, foreign: c.foreign, accepted: map[string]int{}}
			outbox := &markCounter{}
			cfg := testPublisherConfig()
			cfg.Attempts, cfg.MaxInflightRecords = 1, 10
			reply, resolved := spawnResolvedTo(engine)
			var deadLettered atomic.Int64
			dlq := engine.SpawnFunc(func(c *actor.Context) {
				if _, ok := c.Message().(messages.DeadLetter); ok {
					deadLettered.Add(1)
				}
			}, "dlq")
			pub := engine.Spawn(NewPublisher(producer, outbox, nil, dlq, cfg, zerolog.Nop(), nil), "publisher")
			t.Cleanup(func() { <-engine.Poison(pub).Done() })

			stop := make(chan struct{})
			acker := make(chan struct{})
			go func() { // the client's broker: acks a record every millisecond
				defer close(acker)
				if c.foreign > 0 {
					time.Sleep(200 * time.Millisecond)
					producer.mu.Lock()
					producer.foreign = 0
					producer.mu.Unlock()
				}
				for {
					select {
					case <-stop:
						return
					case <-time.After(time.Millisecond):
						producer.ackOldest()
					}
				}
			}()
			defer func() { close(stop); <-acker }()

			engine.Send(pub, messageBatch(1, reply, "", events))
			select {
			case m := <-resolved:
				if m.Counts[messages.OutcomeSent] != events {
					t.Fatalf("batch resolved with %v, want %d SENT", m.Counts, events)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("batch not resolved; %d marks, %d refusals", outbox.count(), producer.bounces.Load())
			}
			if n := deadLettered.Load(); n != 0 {
				t.Errorf("%d events dead-lettered: a refusal for want of room was counted as an attempt", n)
			}
			if n := producer.blocking.Load(); n != 0 {
				t.Errorf("the publisher called the blocking Produce %d times", n)
			}
			producer.mu.Lock()
			defer producer.mu.Unlock()
			if len(producer.accepted) != events {
				t.Errorf("the client took %d records, want %d", len(producer.accepted), events)
			}
			for k, n := range producer.accepted {
				if n != 1 {
					t.Errorf("record %q taken %d times", k, n)
				}
			}
			if producer.maxHeld > capacity {
				t.Errorf("the client held %d records, over its capacity of %d", producer.maxHeld, capacity)
			}
			b := producer.bounces.Load()
			if c.lies && b == 0 {
				t.Fatal("the client never refused a record: the test did not take its room")
			}
			if !c.lies && b != 0 {
				t.Errorf("the client refused %d records although the publisher read its room first", b)
			}
			t.Logf("%d refusals", b)
		})
	}
}
