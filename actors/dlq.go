package actors

import (
	"context"
	"strings"
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
	// Replay tunes replays, discards and bulk jobs of the management API;
	// zero fields take the defaults of ReplayConfig.
	Replay ReplayConfig
}

// DLQ owns every write to the dead-letter queue and the FAILED marks. The
// order is the point: an event is marked FAILED only after its entry is in
// Redis, so a failed event is never lost between the two systems.
//
// It also serves the management API (dlq_replay.go): replays, discards,
// bulk replay jobs and the audit trail, so that every write to the DLQ keys,
// their metadata, locks and audit trail goes through this one actor. (Other
// Redis keys have other writers: the publisher writes its memory of
// unmarked events, the pollers' lease adapter the leases.)
type DLQ struct {
	cfg     DLQConfig
	store   DeadLetterStore
	memory  UnmarkedStore
	outbox  Outbox
	log     zerolog.Logger
	metrics Metrics
	replay  replayState

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
	// auditLog writes the audit trail and keeps what Redis refused
	// (dlq_audit.go); auditArmed says a flush is armed or running,
	// auditRound counts the flushes without progress (for the backoff).
	auditLog   *auditLog
	auditArmed bool
	auditRound int
}

type deadLettered struct {
	req     messages.DeadLetter
	outcome messages.Outcome
	err     error
	took    time.Duration
}

// NewDLQ returns the producer of the DLQ actor. rd is what the management
// API's replays need; without its Admin or Producer they are refused.
func NewDLQ(store DeadLetterStore, memory UnmarkedStore, outbox Outbox, cfg DLQConfig, log zerolog.Logger, m Metrics, rd ReplayDeps) actor.Producer {
	cfg.Replay = cfg.Replay.withDefaults()
	var audit *auditLog
	if rd.Admin != nil {
		audit = newAuditLog(rd.Admin, cfg.Replay.RedisTimeout, cfg.Replay.AuditBacklog, m)
	}
	return func() actor.Receiver {
		return &DLQ{
			auditLog: audit,
			cfg:      cfg, store: store, memory: memory, outbox: outbox, metrics: orNop(m),
			log:    log.With().Str("actor", "dlq").Logger(),
			work:   newWorkQueue(cfg.Concurrency),
			memq:   newWorkQueue(1),
			replay: newReplayState(rd, cfg.Replay),
		}
	}
}

func (d *DLQ) Receive(c *actor.Context) {
	switch m := c.Message().(type) {
	case actor.Started:
		d.engine, d.self = c.Engine(), c.PID()
		d.work.bind(d.engine, d.self)
		d.memq.bind(d.engine, d.self)
		d.replay.queue.bind(d.engine, d.self)
		d.kickAudit() // a backlog left by a crashed predecessor
	case messages.DeadLetter:
		d.onDeadLetter(m)
	case messages.RememberUnmarked:
		d.writeMemory(memRequest{op: UnmarkedOp{EventIDs: m.EventIDs, Unmarked: m.Unmarked}, replyTo: m.ReplyTo})
	case messages.ForgetUnmarked:
		d.writeMemory(memRequest{op: UnmarkedOp{Forget: true, EventIDs: m.EventIDs}})
	case workDone:
		switch m.q {
		case d.work:
			d.work.done()
			switch r := m.result.(type) {
			case deadLettered:
				d.onStored(r)
			default:
				d.onAdminWork(r)
				d.kickAudit()
			}
		case d.memq:
			d.memq.done()
			d.onMemoryWritten(m.result.(memoryWritten))
		case d.replay.queue:
			d.replay.queue.done()
			d.onAdminWork(m.result)
			d.kickAudit()
		default:
			return // a job of a crashed predecessor; the publisher gave up on it
		}
		d.checkDrained()
	case messages.Drain:
		d.drainTo = m.ReplyTo
		d.onDrain()
		d.checkDrained()
	default:
		d.receiveAdmin(c)
	}
}

type memRequest struct {
	op      UnmarkedOp
	replyTo *actor.PID
}

type memoryWritten struct {
	reqs []memRequest
	err  error
}

// writeMemory queues a write of the publisher's memory of unmarked events
// and starts it unless one is in flight. It is a best effort (a lost write
// costs at most a duplicate publish), so one try.
func (d *DLQ) writeMemory(r memRequest) {
	if d.memory == nil {
		d.onMemoryWritten(memoryWritten{reqs: []memRequest{r}})
		return
	}
	d.memOps = append(d.memOps, r)
	d.flushMemory()
}

func (d *DLQ) flushMemory() {
	if !d.memq.idle() || len(d.memOps) == 0 {
		return
	}
	reqs := d.memOps
	d.memOps = nil
	memory, timeout := d.memory, d.cfg.Write.Timeout
	d.memq.push(func() any {
		ops := make([]UnmarkedOp, len(reqs))
		for i, r := range reqs {
			ops[i] = r.op
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		return memoryWritten{reqs: reqs, err: memory.Write(ctx, ops)}
	})
}

func (d *DLQ) onMemoryWritten(w memoryWritten) {
	if w.err != nil {
		n := 0
		for _, r := range w.reqs {
			n += len(r.op.EventIDs)
		}
		d.log.Warn().Err(w.err).Int("events", n).Msg("memory of published-but-unmarked events not written: a crash before their marks would publish them again")
	}
	for _, r := range w.reqs {
		if r.replyTo != nil {
			d.engine.Send(r.replyTo, messages.Remembered{EventIDs: r.op.EventIDs, Err: w.err})
		}
	}
	d.flushMemory()
}

func (d *DLQ) onDeadLetter(m messages.DeadLetter) {
	if len(m.Reason) > d.cfg.MaxReasonBytes {
		// Cut on a character boundary: proto3 refuses invalid UTF-8, and
		// the mark would then fail on every try.
		m.Reason = strings.ToValidUTF8(m.Reason[:d.cfg.MaxReasonBytes], "")
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
	if d.drainTo == nil || !d.work.idle() || !d.memq.idle() || len(d.memOps) > 0 || !d.replay.queue.idle() {
		return
	}
	d.log.Info().Msg("drained")
	d.engine.Send(d.drainTo, messages.Drained{From: d.self})
	d.drainTo = nil
}
