package messages

import (
	"errors"
	"time"

	"github.com/anthdm/hollywood/actor"
)

// PublishBatch hands the events of one poll to the publisher. The poller
// fetches again only after the publisher answers with BatchResolved.
type PublishBatch struct {
	// BatchID is the poller's own id for the batch, echoed in BatchResolved.
	BatchID uint64
	Route   Route
	Events  []Event
	// ReplyTo receives the BatchResolved.
	ReplyTo *actor.PID
	// Fence is the poller's lease tenure when leases are on, with the
	// deadline the poller knew; the publisher produces and marks only
	// while the tenure is current (it learns renewals and revocations
	// from the lease actor).
	Fence Fence
}

// Outcome is how one event of a batch ended.
type Outcome uint8

const (
	// OutcomeSent: published to Kafka and marked SENT.
	OutcomeSent Outcome = iota + 1
	// OutcomeFailed: publishing failed for good, the DLQ entry is written
	// and the event is marked FAILED.
	OutcomeFailed
	// OutcomeDeferred: the event was left PENDING on purpose and the next
	// poll tries it again: publishing failed and the DLQ entry could not be
	// written (Redis down), or a shutdown cut publishing short, or Kafka was
	// unreachable with HOBOM_KAFKA_OUTAGE=hold.
	OutcomeDeferred
	// OutcomeUnmarked: the event was published (or dead-lettered) but the
	// backend did not take the mark; it is remembered, so the next poll
	// retries only the mark.
	OutcomeUnmarked
	// OutcomeBusy: the event was still in flight from an earlier batch (a
	// poller restarted while the publisher held it); that flight resolves it.
	OutcomeBusy
	// OutcomeSkipped: the event cannot be processed at all (no eventId), it
	// stays PENDING and is logged.
	OutcomeSkipped
)

// String names the outcome for logs and metrics.
func (o Outcome) String() string {
	switch o {
	case OutcomeSent:
		return "sent"
	case OutcomeFailed:
		return "failed"
	case OutcomeDeferred:
		return "deferred"
	case OutcomeUnmarked:
		return "unmarked"
	case OutcomeBusy:
		return "busy"
	case OutcomeSkipped:
		return "skipped"
	}
	return "unknown"
}

// BatchResolved answers PublishBatch once every event of the batch has an
// outcome.
type BatchResolved struct {
	BatchID uint64
	// Counts is indexed by Outcome.
	Counts [OutcomeSkipped + 1]int
	Took   time.Duration
}

// Total is the number of events the batch held.
func (b BatchResolved) Total() int {
	n := 0
	for _, c := range b.Counts {
		n += c
	}
	return n
}

// AllResolved reports whether every event was SENT or FAILED.
func (b BatchResolved) AllResolved() bool {
	return b.Counts[OutcomeSent]+b.Counts[OutcomeFailed] == b.Total()
}

// DeadLetter asks the DLQ actor to keep an event that could not be
// published and then mark it FAILED.
type DeadLetter struct {
	Route   Route
	EventID string
	// Value is what the DLQ keeps: the record value as it would have been
	// published (a one-element array for log events).
	Value    []byte
	Reason   string
	Attempts int
	FailedAt time.Time
	// StoredAlready skips the Redis write: the entry exists and only the
	// FAILED mark is missing.
	StoredAlready bool
	ReplyTo       *actor.PID
	// Fence is the lease tenure the event was fetched under, with its
	// deadline as the publisher knew it when it handed the event over
	// (zero: leases off). Neither the entry nor the FAILED mark is written
	// once that deadline has passed: the event stays PENDING for the new
	// holder (docs/decisions/0004-leases-without-backend-fencing.md).
	Fence Fence
}

// DeadLetterResult answers DeadLetter with OutcomeFailed, OutcomeDeferred
// (entry not written, event left PENDING) or OutcomeUnmarked (entry written,
// FAILED mark not taken).
type DeadLetterResult struct {
	EventID string
	Outcome Outcome
	// Reason is the failure the FAILED mark carries, kept for its retry.
	Reason string
	// Fenced says the lease tenure ended before the entry or the mark
	// (Outcome is OutcomeDeferred): the new holder resolves the event, and
	// the publisher keeps its memory of it ("dead-lettered, only mark
	// FAILED"), which the new holder reads.
	Fenced bool
}

// Unmarked is an event whose last step succeeded (published, or written to
// the DLQ) but whose mark the backend did not take. It is remembered, in
// memory and in Redis, so that the next poll, or the next run, retries only
// the mark instead of publishing the event again.
type Unmarked struct {
	Status string // SENT or FAILED: the mark still to make
	Reason string // the FAILED mark's error text
	At     time.Time
}

// RememberUnmarked asks the DLQ actor (its writer child, the memory's only
// writer) to persist Unmarked for each of EventIDs. The writer writes
// whatever memory requests are queued in one pipelined round trip, in the
// order they came.
// When ReplyTo is set it answers Remembered once the write is done or failed,
// with the request's Seq.
type RememberUnmarked struct {
	EventIDs []string
	Unmarked
	ReplyTo *actor.PID
	// Seq is the requester's number for this request, echoed in Remembered
	// so that it can keep one entry per request rather than per event.
	Seq uint64
}

// Remembered answers RememberUnmarked. Err is the Redis error when the
// write failed: the events are then not remembered, and a crash before their
// marks would publish them again (a duplicate, never a loss).
type Remembered struct {
	EventIDs []string
	Err      error
	Seq      uint64 // RememberUnmarked.Seq
}

// ForgetUnmarked asks the DLQ actor to drop persisted Unmarked entries once
// their marks were taken.
type ForgetUnmarked struct{ EventIDs []string }

// Drain asks an actor to finish what it holds and answer Drained; it takes
// no new work from pollers after the supervisor stopped them.
type Drain struct {
	ReplyTo *actor.PID
	// Deadline is when the shutdown gives up (zero: none); an actor
	// cancels its own work in flight shortly before it.
	Deadline time.Time
}

// Drained answers Drain.
type Drained struct{ From *actor.PID }

// ChildCrashed tells the supervisor that a child's Receive panicked. The
// child drops every message after the panic until the supervisor stops it.
type ChildCrashed struct {
	Name   string
	PID    *actor.PID
	Reason string
	Stack  string
}

// PeerLost tells an actor that a peer it waits on crashed and lost what it
// held: answers it waited for will not come. Peer is "publisher" or "dlq".
type PeerLost struct{ Peer string }

// Shutdown asks the supervisor to stop the tree in order; Done is closed
// when every child has stopped.
type Shutdown struct {
	Done chan struct{}
	// Deadline is the shutdown's deadline (zero: none), passed on in Drain.
	Deadline time.Time
}

// FailedMark is one event of a batch FAILED mark and its lastError.
type FailedMark struct {
	EventID      string
	ErrorMessage string
}

// ErrBatchUnsupported says the backend does not implement the optional
// batch-mark rpc (it answered UNIMPLEMENTED): mark one event per call.
var ErrBatchUnsupported = errors.New("the backend does not implement batch marks")
