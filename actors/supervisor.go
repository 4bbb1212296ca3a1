package actors

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/rs/zerolog"

	"github.com/hobom/hobom-event-processor/messages"
)

// TreeConfig is everything the actor tree is built from.
type TreeConfig struct {
	Routes    []messages.Route
	Poller    PollerConfig
	Publisher PublisherConfig
	DLQ       DLQConfig
	// RestartBackoff is the wait before the first restart of a crashed
	// child; it doubles with every crash up to MaxRestartBackoff and starts
	// over once the child ran for StableAfter.
	RestartBackoff    time.Duration
	MaxRestartBackoff time.Duration
	StableAfter       time.Duration
	// PollerInboxSize is the starting inbox of a poller; small, because a
	// poller holds few messages and there may be thousands of them.
	PollerInboxSize int
	// ChildMiddleware wraps every child's Receive inside the panic
	// recovery (instrumentation; tests inject panics with it).
	ChildMiddleware []actor.MiddlewareFunc
	// Lease turns leases on (TTL > 0 and Deps.Lease set): a lease actor
	// owns them and grants event types to the pollers.
	Lease LeaseConfig
	// Clock is the time the supervisor, the pollers, the lease actor and
	// the publisher's lease checks read and schedule on (nil:
	// SystemClock; tests inject a manual one).
	Clock Clock
}

// Deps are the I/O adapters the actors use.
type Deps struct {
	Outbox   Outbox
	Producer Producer
	Store    DeadLetterStore
	// Admin serves the management API's replays, discards and audit
	// trail; nil refuses them.
	Admin DeadLetterAdmin
	// Memory persists the publisher's memory of published-but-unmarked
	// events across restarts; nil keeps it in the process only.
	Memory UnmarkedStore
	// Lease is the Redis side of the leases, used when TreeConfig.Lease.TTL > 0.
	Lease Lease
	// Kafka, when set, is told every produce attempt's outcome; the
	// pollers and the publisher consult it when their Hold is set.
	Kafka   KafkaHealth
	Metrics Metrics
	Log     zerolog.Logger
}

// Supervisor spawns and restarts the children and stops them in order. It
// does not rely on hollywood's own restarts, which crash the process past
// their limit (v1.0.5): children recover their panics (recoverChild), the
// supervisor stops the broken instance and spawns a fresh one after an
// exponential backoff, however often that happens.
type Supervisor struct {
	cfg     TreeConfig
	deps    Deps
	log     zerolog.Logger
	metrics Metrics
	tree    *Tree
	clock   Clock

	ctx      *actor.Context
	self     *actor.PID
	children map[string]*child
	dlq      *child
	pub      *child
	lease    *child // nil: leases off
	pollers  []*child

	stage    shutdownStage
	doneChan chan struct{}
	deadline time.Time // of the shutdown, passed on in Drain
}

type shutdownStage uint8

const (
	running shutdownStage = iota
	stoppingPollers
	drainingPublisher
	drainingDLQ
	drainingLeases
	stoppingRest
)

type child struct {
	name     string
	kind, id string
	producer actor.Producer
	opts     []actor.OptFunc
	pid      *actor.PID
	alive    bool // spawned and not yet poisoned
	stopped  context.Context
	restarts int
	started  time.Time
}

type (
	respawn        struct{ name string }
	pollersStopped struct{}
)

// Tree is a running actor tree, the handle cmd/ and the HTTP API hold.
type Tree struct {
	engine     *actor.Engine
	supervisor *actor.PID
	mu         sync.Mutex
	dlq        *actor.PID
	publisher  *actor.PID

	// The first Stop stops the tree; later ones wait for its outcome, as
	// a second poison of the same actors would hang (docs/engine-notes.md).
	stopOnce sync.Once
	stopped  chan struct{}
	stopErr  error
}

// StartTree spawns the supervisor, which spawns the DLQ actor, the
// publisher and one poller per route before StartTree returns.
func StartTree(e *actor.Engine, cfg TreeConfig, deps Deps) (*Tree, error) {
	if err := messages.ValidateRoutes(cfg.Routes); err != nil {
		return nil, err
	}
	t := &Tree{engine: e, stopped: make(chan struct{})}
	clock := cfg.Clock
	if clock == nil {
		clock = SystemClock
	}
	cfg.Clock = clock
	t.supervisor = e.Spawn(func() actor.Receiver {
		return &Supervisor{cfg: cfg, deps: deps, tree: t, metrics: orNop(deps.Metrics), clock: clock,
			log: deps.Log.With().Str("actor", "supervisor").Logger()}
	}, "supervisor", actor.WithID("0"))
	return t, nil
}

// DLQ is the DLQ actor's PID; stable across its restarts.
func (t *Tree) DLQ() *actor.PID { t.mu.Lock(); defer t.mu.Unlock(); return t.dlq }

// Publisher is the publisher's PID; stable across its restarts.
func (t *Tree) Publisher() *actor.PID { t.mu.Lock(); defer t.mu.Unlock(); return t.publisher }

// Poller is the PID of eventType's poller; stable across its restarts.
func (t *Tree) Poller(eventType string) *actor.PID {
	return actor.NewPID(t.engine.Address(), t.supervisor.ID+"/poller/"+eventType)
}

// Supervisor is the supervisor's PID.
func (t *Tree) Supervisor() *actor.PID { return t.supervisor }

// Stop stops the pollers, lets the publisher and then the DLQ actor finish
// what they hold, and stops them. It returns an error if ctx ends first;
// events still in flight then stay PENDING (or published-but-unmarked) and
// are picked up by the next run.
func (t *Tree) Stop(ctx context.Context) error {
	t.stopOnce.Do(func() {
		t.stopErr = t.stop(ctx)
		close(t.stopped)
	})
	select {
	case <-t.stopped:
		return t.stopErr
	case <-ctx.Done():
		return fmt.Errorf("stop actor tree: %w", ctx.Err())
	}
}

func (t *Tree) stop(ctx context.Context) error {
	done := make(chan struct{})
	deadline, _ := ctx.Deadline()
	t.engine.Send(t.supervisor, messages.Shutdown{Done: done, Deadline: deadline})
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("stop actor tree: %w", ctx.Err())
	}
	select {
	case <-t.engine.PoisonCtx(ctx, t.supervisor).Done():
	case <-ctx.Done():
	}
	if ctx.Err() != nil {
		return fmt.Errorf("stop supervisor: %w", ctx.Err())
	}
	return nil
}

func (s *Supervisor) Receive(c *actor.Context) {
	switch m := c.Message().(type) {
	case actor.Started:
		s.ctx, s.self = c, c.PID()
		s.start()
	case messages.ChildCrashed:
		s.onCrash(m)
	case respawn:
		if ch := s.children[m.name]; ch != nil && s.stage == running && !ch.alive {
			s.spawn(ch)
			s.tellDependents(ch)
		}
	case messages.Shutdown:
		if s.stage == running {
			s.doneChan, s.deadline = m.Done, m.Deadline
			s.stopPollers()
		}
	case pollersStopped:
		s.stage = drainingPublisher
		s.drain(s.pub)
	case messages.Drained:
		s.onDrained(m.From)
	}
}

func (s *Supervisor) start() {
	s.children = make(map[string]*child)
	dc := s.cfg.DLQ // the DLQ actor restarts its own children the same way
	dc.Clock, dc.ChildMiddleware = s.clock, s.cfg.ChildMiddleware
	dc.RestartBackoff, dc.MaxRestartBackoff, dc.StableAfter = s.cfg.RestartBackoff, s.cfg.MaxRestartBackoff, s.cfg.StableAfter
	s.dlq = s.add("dlq", "dlq", "0", NewDLQ(s.deps.Store, s.deps.Memory, s.deps.Outbox, dc, s.deps.Log, s.deps.Metrics,
		ReplayDeps{Admin: s.deps.Admin, Producer: s.deps.Producer, Routes: s.cfg.Routes}))
	s.spawn(s.dlq)
	pubc := s.cfg.Publisher
	pubc.Kafka, pubc.Clock = s.deps.Kafka, s.clock
	s.pub = s.add("publisher", "publisher", "0", NewPublisher(s.deps.Producer, s.deps.Outbox, s.deps.Memory, s.dlq.pid, pubc, s.deps.Log, s.deps.Metrics))
	s.spawn(s.pub)
	s.tree.mu.Lock()
	s.tree.dlq, s.tree.publisher = s.dlq.pid, s.pub.pid
	s.tree.mu.Unlock()
	var leases *actor.PID
	if s.cfg.Lease.TTL > 0 && s.deps.Lease != nil {
		// Spawned before the pollers, which ask it for their grant when
		// they start.
		names := make([]string, len(s.cfg.Routes))
		for i, r := range s.cfg.Routes {
			names[i] = r.EventType
		}
		engine, sup := s.ctx.Engine(), s.self
		pollerOf := func(name string) *actor.PID { return actor.NewPID(engine.Address(), sup.ID+"/poller/"+name) }
		s.lease = s.add("lease", "lease", "0", NewLeaseActor(s.deps.Lease, names, pollerOf, s.pub.pid, s.cfg.Lease, s.clock, s.deps.Log))
		s.spawn(s.lease)
		leases = s.lease.pid
	}
	start := time.Now()
	pc := s.cfg.Poller
	pc.Kafka, pc.Clock = s.deps.Kafka, s.clock
	if pc.MaxInFlight > 0 && len(s.cfg.Routes) > 0 {
		// Equal shares of the global budget: memory is bounded by it, and
		// no event type can starve the others.
		pc.InFlightShare = max(1, pc.MaxInFlight/len(s.cfg.Routes))
	}
	for _, r := range s.cfg.Routes {
		ch := s.add("poller:"+r.EventType, "poller", r.EventType, NewPoller(r, s.deps.Outbox, leases, s.pub.pid, pc, s.deps.Log, s.deps.Metrics),
			actor.WithInboxSize(max(s.cfg.PollerInboxSize, 4)))
		s.pollers = append(s.pollers, ch)
		s.spawn(ch)
	}
	s.log.Info().Int("pollers", len(s.pollers)).Dur("took", time.Since(start)).Msg("actor tree started")
}

func (s *Supervisor) add(name, kind, id string, p actor.Producer, opts ...actor.OptFunc) *child {
	ch := &child{name: name, kind: kind, id: id, producer: p, opts: opts}
	s.children[name] = ch
	return ch
}

func (s *Supervisor) spawn(ch *child) {
	opts := append([]actor.OptFunc{
		actor.WithID(ch.id),
		actor.WithMiddleware(recoverChild(ch.name, s.self)),
		actor.WithMiddleware(s.cfg.ChildMiddleware...),
	}, ch.opts...)
	ch.pid = s.ctx.SpawnChild(ch.producer, ch.kind, opts...)
	ch.alive, ch.started = true, s.clock.Now()
}

func (s *Supervisor) onCrash(m messages.ChildCrashed) {
	ch := s.children[m.Name]
	if ch == nil || !ch.alive || !ch.pid.Equals(m.PID) {
		return
	}
	s.log.Error().Str("child", ch.name).Str("reason", m.Reason).Str("stack", m.Stack).Msg("child crashed")
	s.metrics.ChildRestarted(ch.name)
	if s.stage != running {
		// No restarts during shutdown; a crashed child can no longer drain:
		// stop it now, so that its drain step is skipped, and the publisher
		// must not wait for a crashed DLQ actor.
		s.poison(ch)
		if ch == s.dlq {
			s.tellDependents(ch)
		}
		if (s.stage == drainingPublisher && ch == s.pub) || (s.stage == drainingDLQ && ch == s.dlq) ||
			(s.stage == drainingLeases && ch == s.lease) {
			s.onDrained(ch.pid)
		}
		return
	}
	if s.clock.Now().Sub(ch.started) > s.cfg.StableAfter {
		ch.restarts = 0
	}
	ch.restarts++
	wait := Doubling(s.cfg.RestartBackoff, s.cfg.MaxRestartBackoff, ch.restarts)
	s.log.Warn().Str("child", ch.name).Int("restarts", ch.restarts).Dur("in", wait).Msg("restarting child")
	stopped := s.poison(ch)
	engine, self, name, clock := s.ctx.Engine(), s.self, ch.name, s.clock
	go func() {
		<-stopped.Done() // the same PID may be spawned only once the old one is gone
		clock.AfterFunc(wait, func() { engine.Send(self, respawn{name: name}) })
	}()
}

// tellDependents tells the actors that wait on a restarted child's answers
// that those will not come: what they sent the broken instance, or its PID
// while it was down, is gone. Told after the respawn, so nothing sent
// before it is waited for, and nothing waits for a batch timeout.
func (s *Supervisor) tellDependents(ch *child) {
	switch ch {
	case s.pub:
		for _, p := range s.pollers {
			if p.alive {
				s.ctx.Engine().Send(p.pid, messages.PeerLost{Peer: "publisher"})
			}
		}
		if s.lease != nil && s.lease.alive {
			// The fresh publisher knows no lease deadline yet.
			s.ctx.Engine().Send(s.lease.pid, messages.PeerLost{Peer: "publisher"})
		}
	case s.lease:
		for _, p := range s.pollers {
			if p.alive {
				s.ctx.Engine().Send(p.pid, messages.PeerLost{Peer: "lease"})
			}
		}
	case s.dlq:
		if s.pub.alive {
			s.ctx.Engine().Send(s.pub.pid, messages.PeerLost{Peer: "dlq"})
		}
	}
}

// poison stops a child once; poisoning an actor twice hangs (docs/engine-notes.md).
func (s *Supervisor) poison(ch *child) context.Context {
	if ch.alive {
		ch.alive = false
		ch.stopped = s.ctx.Engine().Poison(ch.pid)
	}
	if ch.stopped == nil {
		return context.Background() // never spawned
	}
	return ch.stopped
}

func (s *Supervisor) stopPollers() {
	s.stage = stoppingPollers
	if s.lease != nil && s.lease.alive {
		// Keep the leases (renewed, none given up, none taken) while the
		// publisher drains what the pollers fetched under them.
		s.ctx.Engine().Send(s.lease.pid, leaseFreeze{})
	}
	s.log.Info().Int("pollers", len(s.pollers)).Msg("shutdown: stopping pollers")
	waits := make([]context.Context, 0, len(s.pollers))
	for _, ch := range s.pollers {
		if ch.alive || ch.stopped != nil {
			waits = append(waits, s.poison(ch))
		}
	}
	engine, self := s.ctx.Engine(), s.self
	go func() {
		for _, w := range waits {
			<-w.Done()
		}
		engine.Send(self, pollersStopped{})
	}()
}

func (s *Supervisor) drain(ch *child) {
	if !ch.alive {
		s.onDrained(ch.pid)
		return
	}
	s.log.Info().Str("child", ch.name).Msg("shutdown: draining")
	s.ctx.Engine().Send(ch.pid, messages.Drain{ReplyTo: s.self, Deadline: s.deadline})
}

func (s *Supervisor) onDrained(from *actor.PID) {
	switch {
	case s.stage == drainingPublisher && from.Equals(s.pub.pid):
		s.stage = drainingDLQ
		s.drain(s.dlq)
	case s.stage == drainingDLQ && from.Equals(s.dlq.pid):
		if s.lease != nil {
			// Released only now that the batches fetched under them are
			// finished, so that another instance does not publish them
			// again.
			s.stage = drainingLeases
			s.drain(s.lease)
			return
		}
		s.stopRest()
	case s.stage == drainingLeases && from.Equals(s.lease.pid):
		s.stopRest()
	}
}

func (s *Supervisor) stopRest() {
	s.stage = stoppingRest
	waits := []context.Context{s.poison(s.pub), s.poison(s.dlq)}
	if s.lease != nil {
		waits = append(waits, s.poison(s.lease))
	}
	done := s.doneChan
	go func() {
		for _, w := range waits {
			<-w.Done()
		}
		close(done)
	}()
	s.log.Info().Msg("shutdown: children stopped")
}
