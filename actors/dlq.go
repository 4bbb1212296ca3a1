package actors

import (
	"context"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/rs/zerolog"

	"github.com/hobom/hobom-event-processor/messages"
)

// DLQConfig tunes the DLQ actor.
type DLQConfig struct {
	TTL time.Duration
	// Write bounds one Redis write; when its attempts are spent the event
	// is left PENDING and comes back with the next poll.
	Write RetryPolicy
	// Mark bounds one FAILED mark.
	Mark        RetryPolicy
	Concurrency int
	// MaxReasonBytes bounds the error text sent with a FAILED mark.
	MaxReasonBytes int
}

// DLQ owns every write to the dead-letter queue and the FAILED marks. The
// order is the point: an event is marked FAILED only after its entry is in
// Redis, so a failed event is never lost between the two systems.
type DLQ struct {
	cfg     DLQConfig
	store   DeadLetterStore
	outbox  Outbox
	log     zerolog.Logger
	metrics Metrics

	engine  *actor.Engine
	self    *actor.PID
	work    *workQueue
	drainTo *actor.PID
}

type deadLettered struct {
	req     messages.DeadLetter
	outcome messages.Outcome
	err     error
	took    time.Duration
}

// NewDLQ returns the producer of the DLQ actor.
func NewDLQ(store DeadLetterStore, outbox Outbox, cfg DLQConfig, log zerolog.Logger, m Metrics) actor.Producer {
	return func() actor.Receiver {
		return &DLQ{
			cfg: cfg, store: store, outbox: outbox, metrics: orNop(m),
			log:  log.With().Str("actor", "dlq").Logger(),
			work: newWorkQueue(cfg.Concurrency),
		}
	}
}

func (d *DLQ) Receive(c *actor.Context) {
	switch m := c.Message().(type) {
	case actor.Started:
		d.engine, d.self = c.Engine(), c.PID()
		d.work.bind(d.engine, d.self)
	case messages.DeadLetter:
		d.onDeadLetter(m)
	case workDone:
		if m.q != d.work {
			return // a job of a crashed predecessor; the publisher gave up on it
		}
		d.work.done()
		d.onStored(m.result.(deadLettered))
		d.checkDrained()
	case messages.Drain:
		d.drainTo = m.ReplyTo
		d.checkDrained()
	}
}

func (d *DLQ) onDeadLetter(m messages.DeadLetter) {
	if len(m.Reason) > d.cfg.MaxReasonBytes {
		m.Reason = m.Reason[:d.cfg.MaxReasonBytes]
	}
	store, outbox, cfg := d.store, d.outbox, d.cfg
	d.work.push(func() any {
		start := time.Now()
		if !m.StoredAlready {
			meta := DeadLetterMeta{
				EventType: m.Route.EventType, EventID: m.EventID, Topic: m.Route.Topic,
				Reason: m.Reason, Attempts: m.Attempts, FailedAt: m.FailedAt,
			}
			key := m.Route.DLQKey(m.EventID)
			if _, err := cfg.Write.run(func(ctx context.Context) error {
				return store.Put(ctx, key, m.Value, meta, cfg.TTL)
			}); err != nil {
				return deadLettered{req: m, outcome: messages.OutcomeDeferred, err: err, took: time.Since(start)}
			}
		}
		_, err := cfg.Mark.run(func(ctx context.Context) error { return outbox.MarkFailed(ctx, m.EventID, m.Reason) })
		if err != nil {
			return deadLettered{req: m, outcome: messages.OutcomeUnmarked, err: err, took: time.Since(start)}
		}
		return deadLettered{req: m, outcome: messages.OutcomeFailed, took: time.Since(start)}
	})
}

func (d *DLQ) onStored(r deadLettered) {
	log := d.log.With().Str("eventId", r.req.EventID).Str("eventType", r.req.Route.EventType).Logger()
	switch r.outcome {
	case messages.OutcomeFailed:
		d.metrics.MarkDone(messages.StatusFailed, r.took, nil)
		log.Info().Str("reason", r.req.Reason).Dur("took", r.took).Msg("dead-lettered and marked FAILED")
	case messages.OutcomeDeferred:
		log.Error().Err(r.err).Msg("DLQ write failed; event left PENDING and retried by a later poll")
	case messages.OutcomeUnmarked:
		d.metrics.MarkDone(messages.StatusFailed, r.took, r.err)
		log.Warn().Err(r.err).Msg("dead-lettered but the FAILED mark failed; the next poll retries the mark")
	}
	if r.req.ReplyTo != nil {
		d.engine.Send(r.req.ReplyTo, messages.DeadLetterResult{EventID: r.req.EventID, Outcome: r.outcome, Reason: r.req.Reason})
	}
}

func (d *DLQ) checkDrained() {
	if d.drainTo == nil || !d.work.idle() {
		return
	}
	d.log.Info().Msg("drained")
	d.engine.Send(d.drainTo, messages.Drained{From: d.self})
	d.drainTo = nil
}
