package actors

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/rs/zerolog"

	"github.com/hobom/hobom-event-processor/messages"
)

// LeaseConfig turns leases on (TTL > 0): several instances share the event
// types instead of each polling all of them (docs/decisions/0004).
type LeaseConfig struct {
	// TTL is each lease's time to live in Redis; a held lease is renewed
	// every third of it. 0: leases off, no lease actor, every poller polls.
	TTL time.Duration
	// Owner names this instance in the leases (HOBOM_INSTANCE_ID).
	Owner string
	// Concurrency bounds the Redis calls in flight (0: 64).
	Concurrency int
}

// FenceMargin is how long before the TTL's end, counted from the start of
// the last successful acquisition or renewal, a holder stops fetching,
// publishing and marking: a fifth of the TTL (3 s of 15 s). It covers a
// clock on this host running up to a fifth slower than Redis's, and a
// write already past its check when the deadline passes.
func FenceMargin(ttl time.Duration) time.Duration { return ttl / 5 }

// LeaseActor owns every lease of this instance: it alone acquires, renews
// and releases them in Redis (through the stateless Lease port, off its
// Receive), knows how many it holds and so its fair share, and grants and
// revokes event types to the pollers by message. A poller polls only
// while granted.
//
// Self-fencing: each tenure has a local deadline, the start of its last
// successful acquisition or renewal (read before the Redis call is made)
// + TTL − FenceMargin. Redis expires the lease no sooner than TTL after
// the call ran, which is after that start, so before the deadline no other
// instance can hold the lease. Every grant carries the deadline
// (messages.Fence), to the poller and to the publisher, which check it
// locally, without I/O, before handing a batch on, before every produce
// attempt and before every mark try. A renewal that fails moves nothing:
// a Redis error is "not held", and the tenure ends at its deadline. One
// that has failed for two thirds of the TTL revokes the lease outright.
type LeaseActor struct {
	cfg       LeaseConfig
	lease     Lease
	clock     Clock
	log       zerolog.Logger
	names     []string
	pollerOf  func(name string) *actor.PID
	publisher *actor.PID

	engine *actor.Engine
	self   *actor.PID
	work   *workQueue
	slots  map[string]*leaseSlot
	held   int // slots held
	// frozen: a shutdown began; the pollers are stopped and the publisher
	// drains what they fetched, which can outlast a lease. Held leases are
	// renewed, never given up for the fair share, and nothing new is
	// acquired.
	frozen bool
	// draining is set once the publisher and the DLQ actor drained: the
	// leases are released and drainTo answered Drained when that is done.
	draining  bool
	drainTo   *actor.PID
	releasing int
	deadline  time.Time
}

// leaseSlot is one event type's lease as this instance sees it.
type leaseSlot struct {
	name      string
	held      bool
	token     int64
	until     time.Time // local deadline; meaningful while held
	renewedAt time.Time // start of the last successful acquisition or renewal
	busy      bool      // a Redis call for it is in flight
	renewing  bool      // that call is a renewal
	timer     Timer
	gen       uint64 // voids the ticks of replaced timers
}

type (
	leaseTick struct {
		name string
		gen  uint64
	}
	leaseDone struct {
		name    string
		renew   bool
		token   int64
		ok      bool // acquired
		share   int  // renewed: the fair share; 0 lost
		err     error
		started time.Time
	}
	leaseReleased struct {
		name string
		err  error
	}
	// leaseFreeze starts a shutdown (from the supervisor).
	leaseFreeze struct{}
)

// NewLeaseActor returns the producer of the lease actor for the leases
// names (event types). pollerOf gives the poller each lease is granted to;
// grants, renewals and revocations go to it and to publisher.
func NewLeaseActor(lease Lease, names []string, pollerOf func(string) *actor.PID, publisher *actor.PID, cfg LeaseConfig, clock Clock, log zerolog.Logger) actor.Producer {
	if clock == nil {
		clock = SystemClock
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 64
	}
	return func() actor.Receiver {
		return &LeaseActor{
			cfg: cfg, lease: lease, clock: clock, names: names, pollerOf: pollerOf, publisher: publisher,
			log:  log.With().Str("actor", "lease").Logger(),
			work: newWorkQueue(cfg.Concurrency),
		}
	}
}

func (a *LeaseActor) Receive(c *actor.Context) {
	switch m := c.Message().(type) {
	case actor.Started:
		a.engine, a.self = c.Engine(), c.PID()
		a.work.bind(a.engine, a.self)
		a.slots = make(map[string]*leaseSlot, len(a.names))
		for _, n := range a.names {
			s := &leaseSlot{name: n}
			a.slots[n] = s
			a.op(s)
		}
	case leaseTick:
		if s := a.slots[m.name]; s != nil && s.gen == m.gen {
			a.op(s)
		}
	case workDone:
		if m.q != a.work {
			return // a call of a crashed predecessor
		}
		a.work.done()
		switch r := m.result.(type) {
		case leaseDone:
			a.onDone(r)
		case leaseReleased:
			a.onReleased(r)
		}
	case messages.LeaseWanted:
		if s := a.slots[m.Name]; s != nil && s.held && a.clock.Now().Before(s.until) {
			a.engine.Send(m.ReplyTo, messages.LeaseGranted{Fence: s.fence()})
		}
	case messages.PeerLost:
		if m.Peer == "publisher" {
			// A fresh publisher knows no deadline: tell it every tenure.
			for _, n := range a.names {
				if s := a.slots[n]; s.held {
					a.engine.Send(a.publisher, messages.LeaseGranted{Fence: s.fence()})
				}
			}
		}
	case leaseFreeze:
		a.frozen = true
		for _, s := range a.slots {
			if !s.held && s.timer != nil {
				s.timer.Stop() // no acquisitions during a shutdown
			}
		}
	case messages.Drain:
		a.onDrain(m)
	case actor.Stopped:
		for _, s := range a.slots {
			if s.timer != nil {
				s.timer.Stop()
			}
		}
	}
}

func (s *leaseSlot) fence() messages.Fence {
	return messages.Fence{Name: s.name, Token: s.token, Until: s.until}
}

// op acquires the lease, or renews it while held, off the Receive
// goroutine. The start is read before the call is queued: a deadline
// counted from it is early, never late.
func (a *LeaseActor) op(s *leaseSlot) {
	if s.busy || a.draining || (a.frozen && !s.held) {
		return
	}
	s.busy, s.renewing = true, s.held
	lease, owner, ttl, name := a.lease, a.cfg.Owner, a.cfg.TTL, s.name
	started := a.clock.Now()
	if s.held {
		token := s.token
		a.work.push(func() any {
			ctx, cancel := context.WithTimeout(context.Background(), ttl/3)
			defer cancel()
			share, err := lease.Renew(ctx, name, owner, token, ttl)
			return leaseDone{name: name, renew: true, token: token, share: share, err: err, started: started}
		})
		return
	}
	others := a.held
	a.work.push(func() any {
		ctx, cancel := context.WithTimeout(context.Background(), ttl/3)
		defer cancel()
		token, ok, err := lease.Acquire(ctx, name, owner, ttl, others)
		return leaseDone{name: name, token: token, ok: ok, err: err, started: started}
	})
}

func (a *LeaseActor) onDone(d leaseDone) {
	s := a.slots[d.name]
	if s == nil {
		return
	}
	s.busy = false
	ttl := a.cfg.TTL
	next := ttl / 3
	switch {
	case a.draining:
		if !d.renew && d.ok {
			a.release(s) // taken while the drain began: give it up
		}
		a.checkDrained()
		return
	case d.renew && (!s.held || s.token != d.token):
		return // the tenure ended while the call ran
	case a.frozen && !d.renew && d.ok:
		// Taken by an acquisition that was in flight when the shutdown
		// began: no lease is taken during a shutdown, so it is not
		// granted (the poller is stopped anyway) but given up at once.
		a.log.Info().Str("eventType", s.name).Int64("token", d.token).Msg("lease taken as the shutdown began; released")
		a.release(s)
		return
	case !d.renew && d.ok:
		s.held, s.token = true, d.token
		a.held++
		a.renewed(s, d.started)
		a.log.Info().Str("eventType", s.name).Int64("token", d.token).Msg("lease acquired; polling")
	case !d.renew:
		if d.err != nil {
			a.log.Warn().Err(d.err).Str("eventType", s.name).Msg("lease acquisition failed")
		}
		// Jitter, so instances do not race for every free lease at once.
		next += time.Duration(rand.Int64N(int64(ttl/3) + 1))
	case d.err == nil && d.share > 0 && (a.frozen || a.held <= d.share):
		a.renewed(s, d.started)
	case d.err == nil:
		// Lost, or this instance holds more than its share: stop now and
		// hand it over (decided here, one renewal at a time, so that only
		// as many leases as needed are given up).
		if d.share == 0 {
			a.log.Warn().Str("eventType", s.name).Int64("token", s.token).Msg("lease lost; polling stops until it is ours again")
		} else {
			a.log.Info().Str("eventType", s.name).Int("held", a.held).Int("share", d.share).Msg("above the fair share: handing this lease over")
		}
		a.revoke(s)
		a.release(s)
		next = ttl // let the other instance take it
	case a.clock.Now().Sub(s.renewedAt) < ttl*2/3:
		// Redis did not answer; the deadline stays where it is.
		a.log.Warn().Err(d.err).Str("eventType", s.name).Msg("lease renewal failed; retrying")
		next = ttl / 6
	default:
		// Redis has not answered for two thirds of the TTL: give the
		// tenure up, so that this instance's share is counted right once
		// it is back.
		a.log.Warn().Err(d.err).Str("eventType", s.name).Int64("token", s.token).Msg("lease not renewed in time; polling stops until it is ours again")
		a.revoke(s)
		a.release(s)
		next = ttl
	}
	if a.frozen && !s.held {
		return
	}
	a.schedule(s, next)
}

// renewed moves the tenure's deadline and tells the publisher, then the
// poller: the publisher learns a deadline before any batch fetched under it.
func (a *LeaseActor) renewed(s *leaseSlot, started time.Time) {
	s.renewedAt = started
	s.until = started.Add(a.cfg.TTL - FenceMargin(a.cfg.TTL))
	g := messages.LeaseGranted{Fence: s.fence()}
	a.engine.Send(a.publisher, g)
	if !a.frozen {
		a.engine.Send(a.pollerOf(s.name), g)
	}
}

// revoke ends the tenure here at once, and tells the publisher and the
// poller.
func (a *LeaseActor) revoke(s *leaseSlot) {
	if !s.held {
		return
	}
	r := messages.LeaseRevoked{Fence: s.fence()}
	s.held = false
	a.held--
	a.engine.Send(a.publisher, r)
	if !a.frozen {
		a.engine.Send(a.pollerOf(s.name), r)
	}
}

// release gives the lease up in Redis, off the Receive goroutine; the
// script deletes it only if it is this owner's.
func (a *LeaseActor) release(s *leaseSlot) {
	if s.held {
		s.held = false
		a.held--
	}
	lease, owner, name := a.lease, a.cfg.Owner, s.name
	timeout := a.cfg.TTL / 3
	deadline := a.deadline
	if a.draining {
		a.releasing++
	}
	a.work.push(func() any {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if !deadline.IsZero() {
			var cancel2 context.CancelFunc
			ctx, cancel2 = context.WithDeadline(ctx, deadline)
			defer cancel2()
		}
		return leaseReleased{name: name, err: lease.Release(ctx, name, owner)}
	})
}

func (a *LeaseActor) onReleased(r leaseReleased) {
	if r.err != nil {
		// Not a failure: the lease runs out with its TTL.
		a.log.Warn().Err(r.err).Str("eventType", r.name).Msg("lease not released (Redis unreachable?); another instance takes it when it expires")
	}
	if !a.draining {
		return
	}
	a.releasing--
	a.checkDrained()
}

func (a *LeaseActor) schedule(s *leaseSlot, d time.Duration) {
	s.gen++
	if s.timer != nil {
		s.timer.Stop()
	}
	engine, self, name, gen := a.engine, a.self, s.name, s.gen
	s.timer = a.clock.AfterFunc(d, func() { engine.Send(self, leaseTick{name: name, gen: gen}) })
}

// onDrain releases every lease held, now that the publisher and the DLQ
// actor finished the batches fetched under them (so that another instance
// does not publish them again), and answers Drained once Redis answered.
// A shutdown that never gets here (its deadline passed) leaves the leases
// to run out with their TTL.
func (a *LeaseActor) onDrain(m messages.Drain) {
	a.frozen, a.draining, a.drainTo, a.deadline = true, true, m.ReplyTo, m.Deadline
	for _, n := range a.names {
		s := a.slots[n]
		if s.timer != nil {
			s.timer.Stop()
		}
		if s.held {
			a.release(s)
		}
	}
	a.checkDrained()
}

func (a *LeaseActor) checkDrained() {
	if a.drainTo == nil || a.releasing > 0 {
		return
	}
	for _, s := range a.slots {
		if s.busy && !s.renewing {
			return // an acquisition: its result releases what it took
		}
		// A renewal's result is ignored while draining, and one that
		// hangs in Redis (up to TTL/3) would hold the shutdown past its
		// deadline: not waited for. The release sent meanwhile ends the
		// lease whatever the renewal's fate (the renew script only
		// extends a lease this owner holds).
	}
	a.log.Info().Msg("leases released")
	a.engine.Send(a.drainTo, messages.Drained{From: a.self})
	a.drainTo = nil
}
