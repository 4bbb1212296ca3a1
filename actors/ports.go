package actors

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hobom/hobom-event-processor/messages"
)

// Outbox is the backend's outbox as the actors use it (docs/contract.md §1).
// Implemented over gRPC by infra/adapters/outbox.
type Outbox interface {
	// Find returns the rows of eventType with status through the route's
	// find rpc. limit > 0 asks the backend for at most limit rows; a backend
	// that ignores it returns them all.
	Find(ctx context.Context, rpc messages.FindRPC, eventType, status string, limit int) ([]messages.Event, error)
	MarkSent(ctx context.Context, eventID string) error
	MarkFailed(ctx context.Context, eventID, errorMessage string) error
}

// BatchMarker is an optional extension of Outbox (infra/adapters/outbox implements
// it): many marks in one call of the backend's batch rpc. The publisher
// uses it while BatchMarks is true and marks one event per call otherwise.
type BatchMarker interface {
	// BatchMarks reports whether the backend is believed to implement the
	// batch rpc (it is asked again now and then after UNIMPLEMENTED).
	BatchMarks() bool
	// MarkMany marks sent SENT and failed FAILED and returns the ids the
	// backend does not know. An error wrapping ErrBatchUnsupported means
	// nothing was marked and one call per event is needed.
	MarkMany(ctx context.Context, sent []string, failed []messages.FailedMark) (unknown []string, err error)
}

// SkippingFinder is an optional extension of Outbox (infra/adapters/outbox
// implements it): a find that does not make the poller pay again for the
// rows of its batches in flight, which are still PENDING, so every find
// that overlaps a batch would return them. Two ways, both asked for:
//   - the query's AfterEventID (the find cursor, docs/contract.md §1) asks
//     the backend not to send them at all; a backend without the cursor
//     ignores it;
//   - skip leaves out, without decoding them, the rows that come anyway.
//
// Decoding those rows only to drop them was about a fifth of the
// processor's CPU in a batch-mark relay; converting and sending them was a
// third of the stand-in backend's.
type SkippingFinder interface {
	// FindSkipping is the find of q without the rows whose eventId skip
	// reports (nil: none; a row whose eventId cannot be read as is,
	// invalid UTF-8, is not left out), and reports whether the backend applied
	// q.AfterEventID. skip runs on the caller's goroutine of FindSkipping
	// and must only read what nobody writes meanwhile.
	FindSkipping(ctx context.Context, q messages.FindQuery, skip func(eventID string) bool) (events []messages.Event, afterApplied bool, err error)
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

// DeadLetterStore is the Redis dead-letter queue (docs/contract.md §3). Only the
// DLQ actor's writer (dlq_writer.go) writes through it.
type DeadLetterStore interface {
	// Put stores value under key with ttl, and meta where old readers do not
	// see it. Storing an existing key again keeps its first failure time and
	// adds to its attempts.
	Put(ctx context.Context, key string, value []byte, meta DeadLetterMeta, ttl time.Duration) error
}

// Lease is the Redis side of the per-event-type leases shared by several
// processor instances (infra/adapters/redislease). It keeps no state: the
// lease actor (lease.go) owns which leases this instance holds, their
// tokens and their local deadlines, and calls it off its Receive.
type Lease interface {
	// Acquire takes the lease name for owner for ttl if it is free and
	// owner holds fewer than its fair share of the leases (held: how many
	// others it holds now), or keeps it if it is owner's already (the same
	// tenure, token unchanged). ok is false when another owner holds it or
	// owner is at its share.
	Acquire(ctx context.Context, name, owner string, ttl time.Duration, held int) (token int64, ok bool, err error)
	// Renew extends owner's tenure token by ttl and returns owner's fair
	// share of the leases (how many it may hold, given the live
	// instances); 0 when the tenure is lost.
	Renew(ctx context.Context, name, owner string, token int64, ttl time.Duration) (share int, err error)
	// Release gives the lease up if owner holds it.
	Release(ctx context.Context, name, owner string) error
}

// ErrWrongType is wrapped by DeadLetterAdmin.Value's error for a key that
// holds a Redis hash, list or other non-string: no dead letter of ours.
var ErrWrongType = errors.New("the key holds another Redis type than a string")

// DeadLetterAdmin is what the DLQ actor needs beyond Put to replay and
// discard entries for the management API, and to keep its audit trail.
// Implemented over Redis by infra/adapters/redisdlq; only the DLQ actor's
// replayer and its bulk jobs (dlq_replay.go, dlq_job.go) write through it.
type DeadLetterAdmin interface {
	// Value returns the bytes stored at key, unchanged, and their size;
	// found is false when the key holds nothing. A value larger than max
	// bytes is not read: value is nil and size says how large it is. A key
	// holding another Redis type than a string returns an error wrapping
	// ErrWrongType.
	Value(ctx context.Context, key string, max int) (value []byte, size int, found bool, err error)
	// Delete removes the entry at key and its metadata and reports whether
	// a value was there.
	Delete(ctx context.Context, key string) (bool, error)
	// Lock takes the exclusive lease of key's replays for ttl (across
	// processes); ok is false when someone else holds it. The token
	// identifies the holder to Refresh and Unlock.
	Lock(ctx context.Context, key string, ttl time.Duration) (token string, ok bool, err error)
	// Refresh extends the lease to ttl from now if token still holds it and
	// reports whether it does.
	Refresh(ctx context.Context, key, token string, ttl time.Duration) (bool, error)
	// Unlock releases the lease if token still holds it.
	Unlock(ctx context.Context, key, token string) error
	// Audit appends rec to the audit trail.
	Audit(ctx context.Context, rec messages.AuditRecord) error
	// Keep extends the time to live of the entry at key and its metadata
	// to ttl from now, never shortening it; found is false when there is
	// no entry. It returns the time to live after (0: no expiry).
	Keep(ctx context.Context, key string, ttl time.Duration) (after time.Duration, found bool, err error)
}

// UnmarkedStore persists the publisher's memory of published-but-unmarked
// events (infra/adapters/redisdlq): an event is remembered as soon as Kafka acked its
// record, before its SENT mark is tried, and forgotten once the mark is
// taken. The publisher looks up every batch in it, so that a restart, or
// another instance taking the event type over, only marks what was
// published already. Only the DLQ actor's writer writes it.
type UnmarkedStore interface {
	// Write applies ops in order, in one round trip.
	Write(ctx context.Context, ops []UnmarkedOp) error
	// Lookup returns the remembered entries among ids, in one round trip.
	Lookup(ctx context.Context, ids []string) (map[string]messages.Unmarked, error)
}

// UnmarkedOp remembers Unmarked for each of EventIDs or, with Forget, drops
// them.
type UnmarkedOp struct {
	Forget   bool
	EventIDs []string
	Unmarked messages.Unmarked
}

// Producer writes records to Kafka asynchronously; kafka.Healing
// implements it over a *kgo.Client. The promise runs on a client
// goroutine once the record is acked or has failed for good.
type Producer interface {
	// Produce blocks while the client holds as many records as it may
	// buffer (the DLQ's replays use it, off any actor's Receive).
	Produce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error))
	// TryProduce does not wait for room: when the client holds as many
	// records as it may buffer, the promise gets kgo.ErrMaxBuffered
	// instead. The publisher produces only this way, as an actor must not
	// block.
	TryProduce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error))
	// Room is how many more records the client takes now without
	// refusing any (its MaxBufferedRecords less what it holds); others
	// producing through it may take some of it meanwhile.
	Room() int
}

// KafkaHealth says whether any Kafka broker answers (infra/adapters/kafka.Reach).
// The publisher reports each produce attempt's outcome; with
// HOBOM_KAFKA_OUTAGE=hold, the publisher keeps the events of a record that
// failed for want of a broker PENDING instead of dead-lettering them, and
// the pollers do not fetch while no broker answers.
type KafkaHealth interface {
	Reachable() bool
	Observe(err error)
	// Outage says err is part of a Kafka outage rather than a broker
	// rejecting the record: no broker took the request, or the record's
	// topic has a new ID the producer did not know yet (a cluster
	// restarted empty), which the next attempt heals. With
	// HOBOM_KAFKA_OUTAGE=hold such a record's events stay PENDING.
	Outage(err error) bool
	// Explain adds to an error that says no broker took the request why
	// the client could not connect, when it knows (a refused dial, an
	// untrusted TLS certificate); it is what the dead letter's reason
	// says. Other errors come back unchanged.
	Explain(err error) error
}

// Metrics receives what the actors measure. Labels stay low-cardinality:
// event types and outcomes, never ids. A nil Metrics is allowed.
type Metrics interface {
	PollDone(eventType string, took time.Duration, fetched int, err error)
	Resolved(eventType string, outcome messages.Outcome, n int)
	ProduceDone(eventType string, took time.Duration, err error)
	MarkDone(status string, took time.Duration, err error)
	ChildRestarted(child string)
	// OldestPending is the age of the oldest event of a successful find
	// (from its createdAt), 0 when the find returned none.
	OldestPending(eventType string, age time.Duration)
	// Replayed counts a DLQ entry the management API replayed to Kafka.
	Replayed(eventType string)
	// AuditPending is how many audit records wait in memory for Redis.
	AuditPending(n int)
	// AuditDropped counts an audit record dropped from a full backlog.
	AuditDropped()
}

type nopMetrics struct{}

func (nopMetrics) PollDone(string, time.Duration, int, error) {}
func (nopMetrics) Resolved(string, messages.Outcome, int)     {}
func (nopMetrics) ProduceDone(string, time.Duration, error)   {}
func (nopMetrics) MarkDone(string, time.Duration, error)      {}
func (nopMetrics) Replayed(string)                            {}
func (nopMetrics) ChildRestarted(string)                      {}
func (nopMetrics) OldestPending(string, time.Duration)        {}
func (nopMetrics) AuditPending(int)                           {}
func (nopMetrics) AuditDropped()                              {}

func orNop(m Metrics) Metrics {
	if m == nil {
		return nopMetrics{}
	}
	return m
}
