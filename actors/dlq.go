package actors

import (
	"context"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/rs/zerolog"

	"github.com/hobom/hobom-event-processor/messages"
)

// DLQConfig tunes the DLQ actor and its two children.
type DLQConfig struct {
	TTL time.Duration
	// Write bounds one Redis write; when its attempts are spent the event
	// is left PENDING and comes back with the next poll.
	Write RetryPolicy
	// Mark bounds one FAILED mark, and one SENT mark after a replay.
	Mark RetryPolicy
	// Concurrency bounds the writer's DLQ writes and FAILED marks in
	// flight, and apart from them the replayer's SENT marks and audit
	// writes.
	Concurrency int
	// MaxReasonBytes bounds the error text sent with a FAILED mark.
	MaxReasonBytes int
	// Replay tunes replays, discards and bulk jobs of the management API;
	// zero fields take the defaults of ReplayConfig.
	Replay ReplayConfig
	// Clock schedules the retries, the restarts of the children and the
	// pace of bulk jobs (nil: SystemClock).
	Clock Clock
	// RestartBackoff, MaxRestartBackoff and StableAfter pace the restarts
	// of a crashed child as the supervisor's do (zero: 100ms, 30s, 1m);
	// the supervisor sets them from TreeConfig.
	RestartBackoff    time.Duration
	MaxRestartBackoff time.Duration
	StableAfter       time.Duration
	// ChildMiddleware wraps the Receive of the writer, the replayer and
	// the bulk jobs inside their panic recovery (TreeConfig's, set by the
	// supervisor).
	ChildMiddleware []actor.MiddlewareFunc
}

func (c DLQConfig) withDefaults() DLQConfig {
	c.Replay = c.Replay.withDefaults()
	if c.Clock == nil {
		c.Clock = SystemClock
	}
	if c.RestartBackoff <= 0 {
		c.RestartBackoff = 100 * time.Millisecond
	}
	if c.MaxRestartBackoff <= 0 {
		c.MaxRestartBackoff = 30 * time.Second
	}
	if c.StableAfter <= 0 {
		c.StableAfter = time.Minute
	}
	return c
}

// DLQ is the address the publisher and the management API send to. It is
// a small parent that does no I/O itself: it forwards each message by type
// to one of two children with their own inboxes and work queues, so that
// operators never slow failure handling, and restarts a crashed child
// itself (with backoff, as the supervisor does; hollywood's own restarts
// are never used, docs/decisions/0001-custom-supervision.md):
//
//   - the writer (dlq_writer.go): DLQ entries and FAILED marks, in that
//     order, and the publisher's memory of unmarked events;
//   - the replayer (dlq_replay.go): replays, discards, keeps, the SENT
//     marks after replays, the audit trail and bulk jobs, each bulk job in
//     an actor of its own (dlq_job.go).
//
// A panic in the replayer or in a job does not touch the writer: the
// publisher keeps dead-lettering meanwhile. A writer restart loses the
// answers it owed, so the parent tells the actors that sent it work
// (PeerLost), as the supervisor does when the whole DLQ actor restarts.
type DLQ struct {
	cfg     DLQConfig
	log     zerolog.Logger
	metrics Metrics

	ctx      *actor.Context
	writer   *dlqChild
	replayer *dlqChild
	// dependents are the actors that asked the writer for an answer
	// (the publisher): told PeerLost when a writer restart lost it.
	dependents map[string]*actor.PID
	// draining: a shutdown is under way; crashed children are not
	// restarted. drainTo waits for the answer.
	draining bool
	drainTo  *actor.PID
}

// dlqChild is one of the DLQ actor's two children.
type dlqChild struct {
	name     string // for logs and the restart metric
	kind     string
	producer actor.Producer
	pid      *actor.PID
	alive    bool // spawned and not poisoned
	stopped  context.Context
	restarts int
	started  time.Time
	drained  bool
}

// dlqRespawn is the restart timer's message.
type dlqRespawn struct {
	from *DLQ
	name string
}

// NewDLQ returns the producer of the DLQ actor. rd is what the management
// API's replays need; without its Admin or Producer they are refused.
func NewDLQ(store DeadLetterStore, memory UnmarkedStore, outbox Outbox, cfg DLQConfig, log zerolog.Logger, m Metrics, rd ReplayDeps) actor.Producer {
	cfg = cfg.withDefaults()
	var audit *auditLog
	if rd.Admin != nil {
		// Held by the producer, so that a restart loses no backlog.
		audit = newAuditLog(rd.Admin, cfg.Replay.RedisTimeout, cfg.Replay.AuditBacklog, m)
	}
	writer := newDLQWriter(store, memory, outbox, cfg, log, m)
	replayer := newDLQReplayer(outbox, cfg, log, m, rd, audit)
	return func() actor.Receiver {
		return &DLQ{
			cfg: cfg, metrics: orNop(m),
			log:        log.With().Str("actor", "dlq").Logger(),
			writer:     &dlqChild{name: "dlq:writer", kind: "writer", producer: writer},
			replayer:   &dlqChild{name: "dlq:replayer", kind: "replayer", producer: replayer},
			dependents: make(map[string]*actor.PID),
		}
	}
}

func (d *DLQ) Receive(c *actor.Context) {
	switch m := c.Message().(type) {
	case actor.Started:
		d.ctx = c
		d.spawn(d.writer)
		d.spawn(d.replayer)
	case messages.DeadLetter:
		d.toWriter(m, m.ReplyTo)
	case messages.RememberUnmarked:
		d.toWriter(m, m.ReplyTo)
	case messages.ForgetUnmarked:
		d.toWriter(m, nil)
	case messages.Replay, messages.Discard, messages.Keep, messages.BulkReplay,
		messages.JobQuery, messages.CancelJob, messages.Audit:
		// The sender is kept: the HTTP handlers ask with engine.Request
		// and the replayer answers it.
		c.Engine().SendWithSender(d.replayer.pid, m, c.Sender())
	case messages.ChildCrashed:
		d.onCrash(m)
	case dlqRespawn:
		if ch := d.child(m.name); ch != nil && m.from == d && !ch.alive && !d.draining {
			d.spawn(ch)
			if ch == d.writer {
				d.tellDependents()
			}
		}
	case messages.Drain:
		d.onDrain(m)
	case messages.Drained:
		if ch := d.childByPID(m.From); ch != nil {
			ch.drained = true
			d.checkDrained()
		}
	case actor.Stopped:
		d.stopChildren()
	}
}

// toWriter forwards m to the writer and remembers who waits for its answer.
func (d *DLQ) toWriter(m any, replyTo *actor.PID) {
	if replyTo != nil {
		if _, ok := d.dependents[replyTo.ID]; !ok {
			d.dependents[replyTo.ID] = replyTo
		}
	}
	d.ctx.Engine().Send(d.writer.pid, m)
}

func (d *DLQ) child(name string) *dlqChild {
	switch name {
	case d.writer.name:
		return d.writer
	case d.replayer.name:
		return d.replayer
	}
	return nil
}

func (d *DLQ) childByPID(pid *actor.PID) *dlqChild {
	for _, ch := range []*dlqChild{d.writer, d.replayer} {
		if ch.pid != nil && ch.pid.Equals(pid) {
			return ch
		}
	}
	return nil
}

// spawn starts ch under a fixed id below this actor's, so its PID stays the
// same across restarts. It is spawned beside this actor, not as its
// hollywood child: hollywood stops a parent's children by poisoning each,
// and poisoning a child that is already stopping (one this actor is
// restarting) hangs in v1.0.5 (docs/engine-notes.md). This actor stops its
// children itself, each once (stopChildren).
func (d *DLQ) spawn(ch *dlqChild) {
	opts := []actor.OptFunc{
		actor.WithID("0"),
		actor.WithMiddleware(recoverChild(ch.name, d.ctx.PID())),
		actor.WithMiddleware(d.cfg.ChildMiddleware...),
	}
	ch.pid = d.ctx.Engine().Spawn(ch.producer, d.ctx.PID().ID+"/"+ch.kind, opts...)
	ch.alive, ch.started, ch.drained = true, d.cfg.Clock.Now(), false
}

// poison stops ch once; poisoning an actor twice hangs (docs/engine-notes.md).
func (d *DLQ) poison(ch *dlqChild) context.Context {
	if ch.alive {
		ch.alive = false
		ch.stopped = d.ctx.Engine().Poison(ch.pid)
	}
	if ch.stopped == nil {
		return context.Background()
	}
	return ch.stopped
}

// onCrash stops the crashed child and spawns a fresh one after a backoff
// that doubles with each crash, as the supervisor does for its children.
// During a drain a crashed child is not restarted: it counts as drained.
func (d *DLQ) onCrash(m messages.ChildCrashed) {
	ch := d.child(m.Name)
	if ch == nil || !ch.alive || !ch.pid.Equals(m.PID) {
		return
	}
	d.log.Error().Str("child", ch.name).Str("reason", m.Reason).Str("stack", m.Stack).Msg("child crashed")
	d.metrics.ChildRestarted(ch.name)
	stopped := d.poison(ch)
	if d.draining {
		ch.drained = true
		if ch == d.writer {
			d.tellDependents()
		}
		d.checkDrained()
		return
	}
	now := d.cfg.Clock.Now()
	if now.Sub(ch.started) > d.cfg.StableAfter {
		ch.restarts = 0
	}
	ch.restarts++
	wait := Doubling(d.cfg.RestartBackoff, d.cfg.MaxRestartBackoff, ch.restarts)
	d.log.Warn().Str("child", ch.name).Int("restarts", ch.restarts).Dur("in", wait).Msg("restarting child")
	engine, self, clock, msg := d.ctx.Engine(), d.ctx.PID(), d.cfg.Clock, dlqRespawn{from: d, name: ch.name}
	go func() {
		<-stopped.Done() // the same PID may be spawned only once the old one is gone
		clock.AfterFunc(wait, func() { engine.Send(self, msg) })
	}()
}

// tellDependents tells the actors that waited on the writer's answers that
// those will not come. Sent after the respawn, so that what they send from
// then on reaches the fresh writer.
func (d *DLQ) tellDependents() {
	for _, pid := range d.dependents {
		d.ctx.Engine().Send(pid, messages.PeerLost{Peer: "dlq"})
	}
}

// onDrain passes the drain on to both children; the DLQ actor answers once
// both have drained (a crashed one counts as drained).
func (d *DLQ) onDrain(m messages.Drain) {
	if d.draining {
		return
	}
	d.draining, d.drainTo = true, m.ReplyTo
	for _, ch := range []*dlqChild{d.writer, d.replayer} {
		if ch.alive {
			d.ctx.Engine().Send(ch.pid, messages.Drain{ReplyTo: d.ctx.PID(), Deadline: m.Deadline})
		} else {
			ch.drained = true
		}
	}
	d.checkDrained()
}

func (d *DLQ) checkDrained() {
	if d.drainTo == nil || !d.writer.drained || !d.replayer.drained {
		return
	}
	d.answerDrained()
}

// stopChildren stops the children when this actor stops (cleanly or after
// a crash) and waits until they are gone, so that this actor's stop means
// theirs, and a fresh instance can spawn them under the same PIDs. It runs
// in Stopped, after this actor's inbox closed; a child stops once the
// messages queued before its poison pill are handled, which never block.
func (d *DLQ) stopChildren() {
	if d.ctx == nil {
		return // never started
	}
	for _, ch := range []*dlqChild{d.writer, d.replayer} {
		if done := d.poison(ch).Done(); done != nil { // nil: never spawned
			<-done
		}
	}
}

func (d *DLQ) answerDrained() {
	if d.drainTo == nil {
		return
	}
	d.log.Info().Msg("drained")
	d.ctx.Engine().Send(d.drainTo, messages.Drained{From: d.ctx.PID()})
	d.drainTo = nil
}
