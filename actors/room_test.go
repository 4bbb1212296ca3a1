package actors

import (
	"context"
	"errors"
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
// kgo.Client with MaxBufferedRecords does: TryProduce stamps the record's
// context and refuses a record beyond that with kgo.ErrMaxBuffered,
// delivered in order on a goroutine of its own (franz-go's promise
// ring); a record whose context has ended fails when it is acked, as
// franz-go fails such a record when it next looks at it. The blocking
// Produce must not be called by the publisher.
type roomyProducer struct {
	capacity int
	// lies: Room reports the whole capacity, as when someone else takes
	// the room between the publisher's read and its produce.
	lies bool
	// failFirst: the first accepted attempt of every record fails.
	failFirst bool
	refusals  chan func()
	// hold, when not nil, keeps refusals back until it is closed.
	hold     chan struct{}
	mu       sync.Mutex
	held     []held
	maxHeld  int
	foreign  int // records of someone else, taking room
	accepted map[string]int
	failed   map[string]bool
	bounces  atomic.Int64
	blocking atomic.Int64
}

type held struct {
	rec     *kgo.Record
	promise func(*kgo.Record, error)
}

func newRoomyProducer(t *testing.T, capacity, foreign int, lies, failFirst bool) *roomyProducer {
	p := &roomyProducer{capacity: capacity, foreign: foreign, lies: lies, failFirst: failFirst,
		refusals: make(chan func(), 1024), accepted: map[string]int{}, failed: map[string]bool{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for f := range p.refusals {
			if p.hold != nil {
				<-p.hold
			}
			f()
		}
	}()
	t.Cleanup(func() { close(p.refusals); <-done })
	return p
}

func (p *roomyProducer) Room() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.lies {
		return p.capacity
	}
	return p.capacity - len(p.held) - p.foreign
}

func (p *roomyProducer) Produce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	p.blocking.Add(1)
	p.TryProduce(ctx, r, promise)
}

func (p *roomyProducer) TryProduce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	if r.Context == nil {
		r.Context = ctx
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.held)+p.foreign >= p.capacity {
		p.bounces.Add(1)
		p.refusals <- func() { promise(r, kgo.ErrMaxBuffered) }
		return
	}
	p.accepted[string(r.Key)]++
	p.held = append(p.held, held{r, promise})
	p.maxHeld = max(p.maxHeld, len(p.held)+p.foreign)
}

// ackOldest answers the oldest record held; false when none is.
func (p *roomyProducer) ackOldest() bool {
	p.mu.Lock()
	if len(p.held) == 0 {
		p.mu.Unlock()
		return false
	}
	h := p.held[0]
	p.held = p.held[1:]
	var err error
	key := string(h.rec.Key)
	switch {
	case h.rec.Context.Err() != nil:
		err = h.rec.Context.Err()
	case p.failFirst && !p.failed[key]:
		p.failed[key] = true
		err = errors.New("broker: not now")
	}
	p.mu.Unlock()
	h.promise(h.rec, err)
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
		// attempts, and whether the first accepted attempt of each record
		// fails; attemptTimeout gives attempts a context that ends.
		attempts       int
		failFirst      bool
		attemptTimeout time.Duration
	}{
		{name: "its own records fill the client", attempts: 1},
		{name: "someone else's records fill the client", foreign: capacity, attempts: 1},
		{name: "someone takes the room between the read and the produce", lies: true,
			attempts: 1, attemptTimeout: time.Second},
		{name: "someone takes the room, and every record's first attempt fails", lies: true,
			attempts: 2, failFirst: true},
		{name: "someone else's records fill the client that reports room", lies: true, foreign: capacity,
			attempts: 1, attemptTimeout: time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			engine, err := actor.NewEngine(actor.NewEngineConfig())
			if err != nil {
				t.Fatal(err)
			}
			producer := newRoomyProducer(t, capacity, c.foreign, c.lies, c.failFirst)
			outbox := &markCounter{}
			cfg := testPublisherConfig()
			cfg.Attempts, cfg.AttemptTimeout, cfg.MaxInflightRecords = c.attempts, c.attemptTimeout, 10
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
				t.Errorf("%d events dead-lettered: a refusal for want of room counted as an attempt, or left an ended context behind", n)
			}
			if n := producer.blocking.Load(); n != 0 {
				t.Errorf("the publisher called the blocking Produce %d times", n)
			}
			producer.mu.Lock()
			defer producer.mu.Unlock()
			if len(producer.accepted) != events {
				t.Errorf("the client took %d records, want %d", len(producer.accepted), events)
			}
			want := 1
			if c.failFirst {
				want = 2
			}
			for k, n := range producer.accepted {
				if n != want {
					t.Errorf("record %q taken %d times, want %d", k, n, want)
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

// TestPublisherDrainsWithRefusalsOnTheirWay: refusals that reach the
// publisher after a drain began leave their records' events PENDING, as
// every record waiting does, instead of queueing them again for a client
// that may stay full: the drain ends, and nothing is produced after it.
func TestPublisherDrainsWithRefusalsOnTheirWay(t *testing.T) {
	const events, capacity = 12, 3
	engine, err := actor.NewEngine(actor.NewEngineConfig())
	if err != nil {
		t.Fatal(err)
	}
	producer := newRoomyProducer(t, capacity, capacity, true, false) // full of someone else's records, reporting room
	producer.hold = make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(producer.hold) }) }
	t.Cleanup(release)
	cfg := testPublisherConfig()
	cfg.MaxInflightRecords = 10
	reply, resolved := spawnResolvedTo(engine)
	dlq := engine.SpawnFunc(func(*actor.Context) {}, "dlq")
	drained := make(chan struct{}, 1)
	inbox := engine.SpawnFunc(func(c *actor.Context) {
		if _, ok := c.Message().(messages.Drained); ok {
			drained <- struct{}{}
		}
	}, "drain-inbox")
	pub := engine.Spawn(NewPublisher(producer, &markCounter{}, nil, dlq, cfg, zerolog.Nop(), nil), "publisher")
	t.Cleanup(func() { <-engine.Poison(pub).Done() })

	engine.Send(pub, messageBatch(1, reply, "", events))
	deadline := time.Now().Add(5 * time.Second)
	for producer.bounces.Load() < 10 { // the in-flight bound's worth, refused and held back
		if time.Now().After(deadline) {
			t.Fatalf("%d records refused, want 10", producer.bounces.Load())
		}
		time.Sleep(time.Millisecond)
	}
	engine.Send(pub, messages.Drain{ReplyTo: inbox})
	release() // the refusals reach the publisher after the drain
	select {
	case <-drained:
	case <-time.After(5 * time.Second):
		t.Fatalf("not drained with the refusals handled; %d refusals", producer.bounces.Load())
	}
	select {
	case m := <-resolved:
		if m.Counts[messages.OutcomeDeferred] != events {
			t.Fatalf("batch resolved with %v, want all %d left PENDING", m.Counts, events)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("batch not resolved")
	}
	time.Sleep(3 * clientRoomRecheck)
	if n := producer.bounces.Load(); n != 10 {
		t.Errorf("%d records offered to the client, want the 10 before the drain only", n)
	}
}
