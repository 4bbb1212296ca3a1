package actors

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hobom/hobom-event-processor/messages"
)

// Outbox is the backend's outbox as the actors use it (CONTRACT.md §1).
// Implemented over gRPC by infra/outbox.
type Outbox interface {
	// Find returns the rows of eventType with status through the route's
	// find rpc. limit > 0 asks the backend for at most limit rows; a backend
	// that ignores it returns them all.
	Find(ctx context.Context, rpc messages.FindRPC, eventType, status string, limit int) ([]messages.Event, error)
	MarkSent(ctx context.Context, eventID string) error
	MarkFailed(ctx context.Context, eventID, errorMessage string) error
}

// DeadLetterMeta is what the DLQ keeps about an entry beside its value.
type DeadLetterMeta struct {
	EventType string
	EventID   string
	Topic     string
	Reason    string
	Attempts  int
	FailedAt  time.Time
}

// DeadLetterStore is the Redis dead-letter queue (CONTRACT.md §3). Only the
// DLQ actor writes through it.
type DeadLetterStore interface {
	// Put stores value under key with ttl, and meta where old readers do not
	// see it. Storing an existing key again keeps its first failure time and
	// adds to its attempts.
	Put(ctx context.Context, key string, value []byte, meta DeadLetterMeta, ttl time.Duration) error
}

// Producer writes records to Kafka asynchronously; *kgo.Client implements
// it. The promise runs on a client goroutine once the record is acked or
// has failed for good.
type Producer interface {
	Produce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error))
}

// Metrics receives what the actors measure. Labels stay low-cardinality:
// event types and outcomes, never ids. A nil Metrics is allowed.
type Metrics interface {
	PollDone(eventType string, took time.Duration, fetched int, err error)
	Resolved(eventType string, outcome messages.Outcome, n int)
	ProduceDone(eventType string, took time.Duration, err error)
	MarkDone(status string, took time.Duration, err error)
	ChildRestarted(child string)
}

type nopMetrics struct{}

func (nopMetrics) PollDone(string, time.Duration, int, error) {}
func (nopMetrics) Resolved(string, messages.Outcome, int)     {}
func (nopMetrics) ProduceDone(string, time.Duration, error)   {}
func (nopMetrics) MarkDone(string, time.Duration, error)      {}
func (nopMetrics) ChildRestarted(string)                      {}

func orNop(m Metrics) Metrics {
	if m == nil {
		return nopMetrics{}
	}
	return m
}
