package kafka

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Healing produces through a client and adopts topics that were deleted and
// recreated under the same name (by an operator, or by a cluster restarted
// empty that auto-creates them again).
//
// franz-go keeps a produced topic's ID and fails every later record for it
// with UNKNOWN_TOPIC_ID once the topic has a new one; it does not look the
// topic up again until the application purges it. On that error Healing
// purges the topic from the producer (PurgeTopicsFromProducing; the next
// record re-adds it with fresh metadata) and only then runs the record's
// promise, so the caller's next attempt goes to the new topic. The purge
// runs on a goroutine of its own: it waits for the client's metadata loop,
// which must not be blocked from a promise.
//
// Records that failed with UNKNOWN_TOPIC_ID together trigger one purge:
// a record produced before the latest purge of its topic waits for that
// purge instead of starting another, which would fail records already
// produced to the new topic.
type Healing struct {
	cl  *kgo.Client
	log zerolog.Logger
	// maxBuffered is the client's MaxBufferedRecords, read once: reading
	// an option reflects over the client's configuration.
	maxBuffered int64

	mu     sync.Mutex
	topics map[string]*topicState
}

type topicState struct {
	gen     uint64        // completed purges
	purging chan struct{} // closed when the running purge is done; nil when none runs
}

// NewHealing returns a Healing producing through cl.
func NewHealing(cl *kgo.Client, log zerolog.Logger) *Healing {
	h := &Healing{cl: cl, log: log.With().Str("component", "kafka").Logger(), topics: make(map[string]*topicState)}
	switch v := cl.OptValue(kgo.MaxBufferedRecords).(type) {
	case int64:
		h.maxBuffered = v
	case int:
		h.maxBuffered = int64(v)
	default:
		// Unknown: Room then never holds the publisher back, and a full
		// client refuses records (TryProduce) instead.
		h.maxBuffered = math.MaxInt64 / 2
		h.log.Warn().Str("type", fmt.Sprintf("%T", v)).Msg("the client's MaxBufferedRecords is unreadable: room not tracked")
	}
	return h
}

// Produce produces r like kgo.Client.Produce. The promise runs on a client
// goroutine, or, after an UNKNOWN_TOPIC_ID, on a goroutine that purged the
// topic first.
func (h *Healing) Produce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	h.produce(ctx, r, promise, h.cl.Produce)
}

// TryProduce is Produce through kgo.Client.TryProduce: when the client
// holds as many records as it may buffer, the promise gets
// kgo.ErrMaxBuffered instead of the call waiting for room.
func (h *Healing) TryProduce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	h.produce(ctx, r, promise, h.cl.TryProduce)
}

// Room is how many more records the client takes now without refusing
// any: its MaxBufferedRecords less the records it holds.
func (h *Healing) Room() int {
	return int(h.maxBuffered - h.cl.BufferedProduceRecords())
}

func (h *Healing) produce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error),
	produce func(context.Context, *kgo.Record, func(*kgo.Record, error))) {
	gen := h.generation(r.Topic)
	produce(ctx, r, func(r *kgo.Record, err error) {
		if !errors.Is(err, kerr.UnknownTopicID) {
			promise(r, err)
			return
		}
		go func() {
			h.heal(r.Topic, gen)
			promise(r, err)
		}()
	})
}

// Purges returns how many times topic was purged, for tests and logs.
func (h *Healing) Purges(topic string) uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	if t := h.topics[topic]; t != nil {
		return t.gen
	}
	return 0
}

func (h *Healing) generation(topic string) uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	t := h.topics[topic]
	if t == nil {
		t = &topicState{}
		h.topics[topic] = t
	}
	return t.gen
}

// heal purges topic unless it was purged since gen, and returns once no
// purge of it is running.
func (h *Healing) heal(topic string, gen uint64) {
	h.mu.Lock()
	t := h.topics[topic]
	if wait := t.purging; wait != nil || t.gen != gen {
		h.mu.Unlock()
		if wait != nil {
			<-wait
		}
		return
	}
	done := make(chan struct{})
	t.purging = done
	h.mu.Unlock()

	start := time.Now()
	h.cl.PurgeTopicsFromProducing(topic)

	h.mu.Lock()
	t.gen++
	t.purging = nil
	n := t.gen
	h.mu.Unlock()
	close(done)
	h.log.Warn().Str("topic", topic).Uint64("purges", n).Dur("took", time.Since(start)).
		Msg("topic has a new ID (deleted and recreated, or the cluster restarted empty): purged it from the producer; the next attempt re-adds it")
}
