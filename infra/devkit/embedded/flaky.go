package embedded

import (
	"context"
	"errors"
	"math/rand/v2"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hobom/hobom-event-processor/actors"
)

// ErrInjected is the error of a publish attempt failed on purpose.
var ErrInjected = errors.New("embedded: publish failure injected by HOBOM_DEV_FAIL_RATE")

// flakyProducer fails a random share of produce attempts before they reach
// Kafka, so records exhaust their attempts and land in the DLQ. With
// HOBOM_PUBLISH_ATTEMPTS=n a record ends in the DLQ with probability
// rate^n.
type flakyProducer struct {
	next actors.Producer
	rate float64
}

func (f flakyProducer) Produce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	if !f.injected(r, promise) {
		f.next.Produce(ctx, r, promise)
	}
}

func (f flakyProducer) TryProduce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	if !f.injected(r, promise) {
		f.next.TryProduce(ctx, r, promise)
	}
}

func (f flakyProducer) Room() int { return f.next.Room() }

// injected fails r's attempt at the rate, reporting whether it did.
func (f flakyProducer) injected(r *kgo.Record, promise func(*kgo.Record, error)) bool {
	if rand.Float64() < f.rate {
		promise(r, ErrInjected)
		return true
	}
	return false
}
