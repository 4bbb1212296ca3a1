package actors_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hobom/hobom-event-processor/actors"
	"github.com/hobom/hobom-event-processor/infra/adapters/redisdlq"
	"github.com/hobom/hobom-event-processor/infra/testkit/testenv"
	"github.com/hobom/hobom-event-processor/messages"
)

// memOutbox serves one batch, then nothing, and checks at every SENT mark
// that the event is in the Redis memory already: remembered at the ack,
// before the mark.
type memOutbox struct {
	rdb       *redis.Client
	mu        sync.Mutex
	batch     []messages.Event
	marked    map[string]int
	notBefore []string // marked while not remembered
}

func (o *memOutbox) Find(context.Context, messages.FindRPC, string, string, int) ([]messages.Event, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	b := o.batch
	o.batch = nil
	return b, nil
}

func (o *memOutbox) MarkSent(ctx context.Context, id string) error {
	found, err := redisdlq.NewUnmarked(o.rdb).Lookup(ctx, []string{id})
	remembered := err == nil && len(found) == 1
	o.mu.Lock()
	defer o.mu.Unlock()
	o.marked[id]++
	if !remembered {
		o.notBefore = append(o.notBefore, id)
	}
	return nil
}

func (o *memOutbox) MarkFailed(context.Context, string, string) error { return nil }

func (o *memOutbox) marks() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.marked)
}

// keyProducer acks every record at once and counts records per key.
type keyProducer struct {
	mu   sync.Mutex
	keys map[string]int
}

func (p *keyProducer) Produce(_ context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	p.mu.Lock()
	p.keys[string(r.Key)]++
	p.mu.Unlock()
	promise(r, nil)
}

// pipelines counts the round trips of a go-redis client.
type pipelines struct{ n atomic.Int64 }

func (*pipelines) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *pipelines) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { c.n.Add(1); return next(ctx, cmd) }
}
func (c *pipelines) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { c.n.Add(1); return next(ctx, cmds) }
}

func TestPublisherRemembersAtTheAckMarksAfterAndForgetsOnceMarked(t *testing.T) {
	srv := testenv.Redis(t)
	rdb, check := srv.Client(t), srv.Client(t)
	trips := &pipelines{}
	rdb.AddHook(trips)
	const n, before = 2000, 300
	batch := benchEvents(messages.EventTypeMessage, n)
	// An earlier run (or another instance) published the first events and
	// did not mark them.
	var old []string
	for _, e := range batch[:before] {
		old = append(old, e.EventID)
	}
	ctx := context.Background()
	if err := redisdlq.NewUnmarked(check).Write(ctx, []actors.UnmarkedOp{{EventIDs: old, Unmarked: messages.Unmarked{Status: messages.StatusSent, At: time.Now()}}}); err != nil {
		t.Fatal(err)
	}
	ob := &memOutbox{rdb: check, batch: batch, marked: map[string]int{}}
	prod := &keyProducer{keys: map[string]int{}}
	engine, err := actor.NewEngine(actor.NewEngineConfig())
	if err != nil {
		t.Fatal(err)
	}
	cfg := benchTreeConfig([]messages.Route{messages.DefaultRoutes()[0]})
	tree, err := actors.StartTree(engine, cfg, actors.Deps{
		Outbox: ob, Producer: actors.NeverFull{Client: prod}, Store: nopStore{}, Memory: redisdlq.NewUnmarked(rdb), Log: zerolog.Nop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := tree.Stop(ctx); err != nil {
			t.Error(err)
		}
	}()
	testenv.Eventually(t, 20*time.Second, "every event marked SENT", func() bool { return ob.marks() == n })
	testenv.Eventually(t, 10*time.Second, "the memory empty once every mark was taken", func() bool {
		ids := make([]string, len(batch))
		for i, e := range batch {
			ids[i] = e.EventID
		}
		found, err := redisdlq.NewUnmarked(check).Lookup(ctx, ids)
		return err == nil && len(found) == 0
	})
	ob.mu.Lock()
	defer ob.mu.Unlock()
	if len(ob.notBefore) > 0 {
		t.Errorf("%d events marked before they were remembered, e.g. %s", len(ob.notBefore), ob.notBefore[0])
	}
	for _, id := range old {
		if prod.keys[id] != 0 {
			t.Fatalf("%s was remembered as published and was published again", id)
		}
	}
	if len(prod.keys) != n-before {
		t.Errorf("%d events published, want %d", len(prod.keys), n-before)
	}
	// One lookup, and the remembering and forgetting of 2,000 events in
	// groups, not one round trip per event.
	if got := trips.n.Load(); got > n/50 {
		t.Errorf("%d Redis round trips for %d events, want at most %d", got, n, n/50)
	}
	t.Logf("%d Redis round trips for %d events", trips.n.Load(), n)
}
