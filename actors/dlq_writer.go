package actors

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/rs/zerolog"

	"github.com/hobom/hobom-event-processor/messages"
)

// dlqWriter is the DLQ actor's child that handles failures: it writes DLQ
// entries (DeadLetterStore.Put) and marks their events FAILED, and it
// writes the publisher's memory of unmarked events. The order is the
// point: an event is marked FAILED only after its entry is in Redis, so a
// failed event is never lost between the two systems; and an event is
// remembered before the publisher marks it SENT (the publisher waits for
// Remembered).
//
// It is the only writer of the DLQ entries and of that memory. The
// replayer (dlq_replay.go) deletes entries, extends their expiry and
// writes the locks and the audit trail; other Redis keys have other
// writers (the lease actor the leases). Nothing the management
// API does goes through this actor's inbox or work queues.
//
// Fencing: a DeadLetter fetched under a lease tenure whose local deadline
// (DeadLetter.Fence, as the publisher knew it) has passed on the clock
// gets neither its entry nor its FAILED mark: the
// event stays PENDING for the new holder, who publishes it or dead-letters
// it itself (docs/decisions/0004-leases-without-backend-fencing.md). The
// fence is checked before every try of the write and of the mark, and
// each try's context ends at the deadline (RetryPolicy.runFenced).
type dlqWriter struct {
	cfg     DLQConfig
	store   DeadLetterStore
	memory  UnmarkedStore
	outbox  Outbox
	log     zerolog.Logger
	metrics Metrics

	engine *actor.Engine
	self   *actor.PID
	work   *workQueue
	// memq writes the publisher's memory of unmarked events, one write at
	// a time so that a Forget never overtakes the Remember it undoes;
	// requests that come meanwhile wait in memOps and go together in the
	// next write (one pipelined round trip for many events).
	memq    *workQueue
	memOps  []memRequest
	drainTo *actor.PID
}

type deadLettered struct {
	req     messages.DeadLetter
	outcome messages.Outcome
	err     error
	took    time.Duration
	// fenced says the lease tenure ended before or during the write
	// (written false) or before the mark (written true).
	fenced, written bool
}

func newDLQWriter(store DeadLetterStore, memory UnmarkedStore, outbox Outbox, cfg DLQConfig, log zerolog.Logger, m Metrics) actor.Producer {
	return func() actor.Receiver {
		return &dlqWriter{
			cfg: cfg, store: store, memory: memory, outbox: outbox, metrics: orNop(m),
			log:  log.With().Str("actor", "dlq").Str("child", "writer").Logger(),
			work: newWorkQueue(cfg.Concurrency),
			memq: newWorkQueue(1),
		}
	}
}

func (w *dlqWriter) Receive(c *actor.Context) {
	switch m := c.Message().(type) {
	case actor.Started:
		w.engine, w.self = c.Engine(), c.PID()
		w.work.bind(w.engine, w.self)
		w.memq.bind(w.engine, w.self)
	case messages.DeadLetter:
		w.onDeadLetter(m)
	case messages.RememberUnmarked:
		w.writeMemory(memRequest{op: UnmarkedOp{EventIDs: m.EventIDs, Unmarked: m.Unmarked}, replyTo: m.ReplyTo, seq: m.Seq})
	case messages.ForgetUnmarked:
		w.writeMemory(memRequest{op: UnmarkedOp{Forget: true, EventIDs: m.EventIDs}})
	case workDone:
		switch m.q {
		case w.work:
			w.work.done()
			w.onStored(m.result.(deadLettered))
		case w.memq:
			w.memq.done()
			w.onMemoryWritten(m.result.(memoryWritten))
		default:
			return // a job of a crashed predecessor; the publisher gave up on it
		}
		w.checkDrained()
	case messages.Drain:
		w.drainTo = m.ReplyTo
		w.checkDrained()
	}
}

type memRequest struct {
	op      UnmarkedOp
	replyTo *actor.PID
	seq     uint64 // echoed in Remembered
}

type memoryWritten struct {
	reqs []memRequest
	err  error
}

// writeMemory queues a write of the publisher's memory of unmarked events
// and starts it unless one is in flight. It is a best effort (a lost write
// costs at most a duplicate publish), so one try.
func (w *dlqWriter) writeMemory(r memRequest) {
	if w.memory == nil {
		w.onMemoryWritten(memoryWritten{reqs: []memRequest{r}})
		return
	}
	w.memOps = append(w.memOps, r)
	w.flushMemory()
}

func (w *dlqWriter) flushMemory() {
	if !w.memq.idle() || len(w.memOps) == 0 {
		return
	}
	reqs := w.memOps
	w.memOps = nil
	memory, timeout := w.memory, w.cfg.Write.Timeout
	w.memq.push(func() any {
		ops := make([]UnmarkedOp, len(reqs))
		for i, r := range reqs {
			ops[i] = r.op
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		return memoryWritten{reqs: reqs, err: memory.Write(ctx, ops)}
	})
}

func (w *dlqWriter) onMemoryWritten(m memoryWritten) {
	if m.err != nil {
		n := 0
		for _, r := range m.reqs {
			n += len(r.op.EventIDs)
		}
		w.log.Warn().Err(m.err).Int("events", n).Msg("memory of published-but-unmarked events not written: a crash before their marks would publish them again")
	}
	for _, r := range m.reqs {
		if r.replyTo != nil {
			w.engine.Send(r.replyTo, messages.Remembered{EventIDs: r.op.EventIDs, Err: m.err, Seq: r.seq})
		}
	}
	w.flushMemory()
}

func (w *dlqWriter) onDeadLetter(m messages.DeadLetter) {
	if len(m.Reason) > w.cfg.MaxReasonBytes {
		// Cut on a character boundary: proto3 refuses invalid UTF-8, and
		// the mark would then fail on every try.
		m.Reason = strings.ToValidUTF8(m.Reason[:w.cfg.MaxReasonBytes], "")
	}
	store, outbox, cfg, now := w.store, w.outbox, w.cfg, w.cfg.Clock.Now
	w.work.push(func() any {
		start := time.Now()
		r := deadLettered{req: m, written: m.StoredAlready}
		if !m.StoredAlready {
			meta := DeadLetterMeta{
				EventType: m.Route.EventType, EventID: m.EventID, Topic: m.Route.Topic,
				Reason: m.Reason, Attempts: m.Attempts, FailedAt: m.FailedAt,
			}
			key := m.Route.DLQKey(m.EventID)
			// Fenced before every try, not once: a retry can come seconds
			// after the first try, past the tenure's deadline.
			if _, err := cfg.Write.runFenced(m.Fence, now, func(ctx context.Context) error {
				return store.Put(ctx, key, m.Value, meta, cfg.TTL)
			}); err != nil {
				r.outcome, r.err, r.took = messages.OutcomeDeferred, err, time.Since(start)
				r.fenced = errors.Is(err, errFenced)
				return r
			}
			r.written = true
		}
		_, err := cfg.Mark.runFenced(m.Fence, now, func(ctx context.Context) error {
			return outbox.MarkFailed(ctx, m.EventID, m.Reason)
		})
		r.took = time.Since(start)
		switch {
		case errors.Is(err, errFenced):
			// The event stays PENDING; with its entry written, the new
			// holder's own failure writes it again (attempts add up) or
			// its publish makes the entry a stale copy (see 0004).
			r.outcome, r.err, r.fenced = messages.OutcomeDeferred, err, true
		case err != nil:
			r.outcome, r.err = messages.OutcomeUnmarked, err
		default:
			r.outcome = messages.OutcomeFailed
		}
		return r
	})
}

func (w *dlqWriter) onStored(r deadLettered) {
	log := w.log.With().Str("eventId", r.req.EventID).Str("eventType", r.req.Route.EventType).Logger()
	switch {
	case r.fenced:
		if r.written {
			w.metrics.MarkDone(messages.StatusFailed, r.took, r.err)
		}
		log.Warn().Bool("entryWritten", r.written).Int64("token", r.req.Fence.Token).
			Msg("the lease tenure is over or past its local deadline: not marked FAILED, the event stays PENDING for whoever holds the lease next")
	case r.outcome == messages.OutcomeFailed:
		w.metrics.MarkDone(messages.StatusFailed, r.took, nil)
		log.Info().Str("reason", r.req.Reason).Dur("took", r.took).Msg("dead-lettered and marked FAILED")
	case r.outcome == messages.OutcomeDeferred:
		log.Error().Err(r.err).Msg("DLQ write failed; event left PENDING and retried by a later poll")
	case r.outcome == messages.OutcomeUnmarked:
		w.metrics.MarkDone(messages.StatusFailed, r.took, r.err)
		log.Warn().Err(r.err).Msg("dead-lettered but the FAILED mark failed; the next poll retries the mark")
	}
	if r.req.ReplyTo != nil {
		w.engine.Send(r.req.ReplyTo, messages.DeadLetterResult{EventID: r.req.EventID, Outcome: r.outcome, Reason: r.req.Reason, Fenced: r.fenced})
	}
}

func (w *dlqWriter) checkDrained() {
	if w.drainTo == nil || !w.work.idle() || !w.memq.idle() || len(w.memOps) > 0 {
		return
	}
	w.log.Info().Msg("drained")
	w.engine.Send(w.drainTo, messages.Drained{From: w.self})
	w.drainTo = nil
}
