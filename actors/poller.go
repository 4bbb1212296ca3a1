package actors

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/rs/zerolog"

	"github.com/hobom/hobom-event-processor/messages"
)

// PollerConfig tunes a poller.
type PollerConfig struct {
	// Interval is the wait after an empty poll; failures back off from it.
	Interval time.Duration
	// MaxBackoff caps the wait while the backend, Kafka or Redis keeps failing.
	MaxBackoff time.Duration
	// FindLimit > 0 asks the backend for at most that many rows per poll.
	FindLimit int
	// FindTimeout bounds one find rpc.
	FindTimeout time.Duration
	// BatchTimeout is how long the poller waits for a batch to resolve
	// before it polls again anyway (the publisher lost it in a restart); the
	// publisher never publishes an event twice at once, so this is safe.
	BatchTimeout time.Duration
	// LeaseTTL > 0 makes the poller hold its event type's lease while it
	// polls, renewed every third of the TTL; LeaseOwner names this process.
	LeaseTTL   time.Duration
	LeaseOwner string
}

// Poller fetches the PENDING events of one route and hands them to the
// publisher, one batch at a time: it does not fetch again until the batch
// is resolved, which is the flow control the unbounded inboxes lack.
type Poller struct {
	route     messages.Route
	outbox    Outbox
	lease     Lease
	publisher *actor.PID
	cfg       PollerConfig
	log       zerolog.Logger
	metrics   Metrics

	engine *actor.Engine
	self   *actor.PID

	// seq numbers finds and batches; it starts at random so that a
	// restarted poller never takes an answer meant for its predecessor.
	seq        uint64
	finding    bool
	cancelFind context.CancelFunc
	batch      uint64 // id of the batch at the publisher, 0 when none
	batchSize  int
	batchStart time.Time
	failures   int
	batchTimer *time.Timer
	timer      *time.Timer
	timerGen   uint64

	// The lease, when cfg.LeaseTTL > 0.
	held       bool
	token      int64
	renewedAt  time.Time
	leaseBusy  bool
	leaseTimer *time.Timer
}

// NewPoller returns the producer of a poller for route.
func NewPoller(route messages.Route, outbox Outbox, lease Lease, publisher *actor.PID, cfg PollerConfig, log zerolog.Logger, m Metrics) actor.Producer {
	if lease == nil {
		cfg.LeaseTTL = 0
	}
	return func() actor.Receiver {
		return &Poller{
			route: route, outbox: outbox, lease: lease, publisher: publisher, cfg: cfg, metrics: orNop(m),
			log: log.With().Str("actor", "poller").Str("eventType", route.EventType).Logger(),
			seq: rand.Uint64() >> 1,
		}
	}
}

type (
	pollTick struct{ gen uint64 }
	findDone struct {
		seq    uint64
		events []messages.Event
		err    error
		took   time.Duration
	}
	batchTimeout struct{ batch uint64 }
	leaseTick    struct{}
	leaseDone    struct {
		renew   bool
		token   int64
		ok      bool
		err     error
		started time.Time
	}
)

func (p *Poller) Receive(c *actor.Context) {
	switch m := c.Message().(type) {
	case actor.Started:
		p.engine, p.self = c.Engine(), c.PID()
		if p.cfg.LeaseTTL > 0 {
			p.leaseOp() // polling starts once the lease is held
		} else {
			p.held = true
			p.schedule(0)
		}
	case leaseTick:
		p.leaseOp()
	case leaseDone:
		p.onLease(m)
	case actor.Stopped:
		if p.timer != nil {
			p.timer.Stop()
		}
		if p.batchTimer != nil {
			p.batchTimer.Stop()
		}
		if p.leaseTimer != nil {
			p.leaseTimer.Stop()
		}
		if p.cancelFind != nil {
			p.cancelFind() // a find has no side effects: cutting it short is safe
		}
	case pollTick:
		if m.gen == p.timerGen && !p.finding && p.batch == 0 && p.held {
			p.find()
		}
	case findDone:
		p.onFound(m)
	case messages.BatchResolved:
		p.onResolved(m)
	case messages.PeerLost:
		if p.batch != 0 {
			p.log.Warn().Uint64("batch", p.batch).Msg("publisher crashed holding this batch; polling again after a pause")
			p.batch = 0
			p.backoff()
		}
	case batchTimeout:
		if m.batch == p.batch && p.batch != 0 {
			p.log.Error().Uint64("batch", p.batch).Int("events", p.batchSize).Dur("waited", time.Since(p.batchStart)).
				Msg("batch not resolved in time; polling again (events still in flight are not published twice)")
			p.batch = 0
			p.backoff()
		}
	}
}

func (p *Poller) find() {
	p.seq++
	p.finding = true
	seq, route, limit := p.seq, p.route, p.cfg.FindLimit
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.FindTimeout)
	p.cancelFind = cancel
	engine, self, outbox := p.engine, p.self, p.outbox
	go func() {
		defer cancel()
		start := time.Now()
		events, err := outbox.Find(ctx, route.Find, route.EventType, messages.StatusPending, limit)
		engine.Send(self, findDone{seq: seq, events: events, err: err, took: time.Since(start)})
	}()
}

func (p *Poller) onFound(m findDone) {
	if m.seq != p.seq || !p.finding {
		return
	}
	p.finding, p.cancelFind = false, nil
	p.metrics.PollDone(p.route.EventType, m.took, len(m.events), m.err)
	if m.err == nil {
		p.metrics.OldestPending(p.route.EventType, oldestPendingAge(m.events, time.Now()))
	}
	if m.err != nil {
		p.log.Warn().Err(m.err).Int("failures", p.failures+1).Msg("find pending events failed")
		p.backoff()
		return
	}
	if len(m.events) == 0 {
		p.failures = 0
		p.schedule(p.cfg.Interval)
		return
	}
	if !p.held {
		// The lease was lost while the find ran: the events belong to the
		// new holder now, and publishing them here would duplicate them.
		p.log.Info().Int("events", len(m.events)).Msg("lease lost during the find; leaving the events to the new holder")
		return
	}
	p.batch, p.batchSize, p.batchStart = m.seq, len(m.events), time.Now()
	p.log.Debug().Uint64("batch", p.batch).Int("events", len(m.events)).Dur("took", m.took).Msg("fetched pending events")
	batch := messages.PublishBatch{BatchID: p.batch, Route: p.route, Events: m.events, ReplyTo: p.self}
	if p.cfg.LeaseTTL > 0 {
		batch.Fence = messages.Fence{Name: p.route.EventType, Token: p.token}
	}
	p.engine.Send(p.publisher, batch)
	if p.cfg.BatchTimeout > 0 {
		id, engine, self := p.batch, p.engine, p.self
		p.batchTimer = time.AfterFunc(p.cfg.BatchTimeout, func() { engine.Send(self, batchTimeout{batch: id}) })
	}
}

func (p *Poller) onResolved(m messages.BatchResolved) {
	if m.BatchID != p.batch || p.batch == 0 {
		return
	}
	p.batch = 0
	if p.batchTimer != nil {
		p.batchTimer.Stop()
	}
	ev := p.log.Info()
	if !m.AllResolved() {
		ev = p.log.Warn()
	}
	ev.Int("events", m.Total()).
		Int("sent", m.Counts[messages.OutcomeSent]).
		Int("failed", m.Counts[messages.OutcomeFailed]).
		Int("deferred", m.Counts[messages.OutcomeDeferred]).
		Int("unmarked", m.Counts[messages.OutcomeUnmarked]).
		Int("busy", m.Counts[messages.OutcomeBusy]).
		Int("skipped", m.Counts[messages.OutcomeSkipped]).
		Dur("took", time.Since(p.batchStart)).
		Msg("batch resolved")
	trouble := m.Counts[messages.OutcomeDeferred] + m.Counts[messages.OutcomeUnmarked] + m.Counts[messages.OutcomeBusy]
	progress := m.Counts[messages.OutcomeSent] + m.Counts[messages.OutcomeFailed]
	switch {
	case trouble > 0:
		// Something stayed PENDING (Redis or the backend failing): wait,
		// and wait longer the longer it lasts, so an outage is never a hot
		// loop.
		p.backoff()
	case progress > 0:
		// Every event left the PENDING state: more may wait behind a find
		// limit, so fetch again at once.
		p.failures = 0
		p.schedule(0)
	default:
		// Only rows that cannot be processed (logged): they come back with
		// every find, so wait the interval, but they are no outage.
		p.failures = 0
		p.schedule(p.cfg.Interval)
	}
}

func (p *Poller) backoff() {
	p.failures++
	p.schedule(doubling(p.cfg.Interval, max(p.cfg.MaxBackoff, p.cfg.Interval), p.failures))
}

// schedule arranges one pollTick after d; a newer schedule voids older ones.
func (p *Poller) schedule(d time.Duration) {
	p.timerGen++
	gen := p.timerGen
	if p.timer != nil {
		p.timer.Stop()
	}
	if d <= 0 {
		p.engine.Send(p.self, pollTick{gen: gen})
		return
	}
	engine, self := p.engine, p.self
	p.timer = time.AfterFunc(d, func() { engine.Send(self, pollTick{gen: gen}) })
}

// leaseOp acquires the lease, or renews it while held, off the actor's
// goroutine.
func (p *Poller) leaseOp() {
	if p.leaseBusy {
		return
	}
	p.leaseBusy = true
	lease, name, owner, ttl, held, token := p.lease, p.route.EventType, p.cfg.LeaseOwner, p.cfg.LeaseTTL, p.held, p.token
	engine, self := p.engine, p.self
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), ttl/3)
		defer cancel()
		d := leaseDone{renew: held, token: token, started: time.Now()}
		if held {
			d.ok, d.err = lease.Renew(ctx, name, owner, token, ttl)
			if !d.ok && d.err == nil {
				// Lost, or above this instance's share: hand it over now.
				_ = lease.Release(ctx, name, owner)
			}
		} else {
			d.token, d.ok, d.err = lease.Acquire(ctx, name, owner, ttl)
		}
		engine.Send(self, d)
	}()
}

func (p *Poller) onLease(d leaseDone) {
	p.leaseBusy = false
	ttl := p.cfg.LeaseTTL
	next := ttl / 3
	switch {
	case !d.renew && d.ok:
		p.held, p.token, p.renewedAt = true, d.token, d.started
		p.log.Info().Int64("token", d.token).Msg("lease acquired; polling")
		p.schedule(0)
	case !d.renew:
		if d.err != nil {
			p.log.Warn().Err(d.err).Msg("lease acquisition failed")
		}
		// Jitter, so instances do not race for every free lease at once.
		next += time.Duration(rand.Int64N(int64(ttl/3) + 1))
	case d.ok:
		p.renewedAt = d.started
	case d.err != nil && time.Since(p.renewedAt) < ttl*2/3:
		// Redis did not answer; the lease is surely still ours for a while.
		p.log.Warn().Err(d.err).Msg("lease renewal failed; retrying")
		next = ttl / 6
	default:
		p.held = false
		p.log.Warn().Err(d.err).Int64("token", p.token).Msg("lease lost or handed over; polling stops until it is ours again")
		next = ttl // let the other instance take it
		if d.err != nil {
			// Redis did not answer for too long: give the tenure up, so
			// that this instance's share is counted right when it is back.
			lease, name, owner := p.lease, p.route.EventType, p.cfg.LeaseOwner
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), ttl/3)
				defer cancel()
				_ = lease.Release(ctx, name, owner)
			}()
		}
	}
	engine, self := p.engine, p.self
	p.leaseTimer = time.AfterFunc(next, func() { engine.Send(self, leaseTick{}) })
}
