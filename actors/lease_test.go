package actors_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/rs/zerolog"

	"github.com/hobom/hobom-event-processor/actors"
	"github.com/hobom/hobom-event-processor/messages"
)

// The lease actor on a manual clock and the in-memory lease port: every
// wait is the clock's, so deadlines are checked to the nanosecond and no
// test sleeps.

const leaseTTL = 3 * time.Second // TTL/3 = 1 s, TTL/5 = 600 ms, TTL/6 = 500 ms

// probe is an actor that hands every message it gets to a channel, in
// the order of its inbox.
type probe struct {
	pid *actor.PID
	ch  chan any
}

func newProbe(t *testing.T, e *actor.Engine, name string) *probe {
	t.Helper()
	p := &probe{ch: make(chan any, 1024)}
	p.pid = e.SpawnFunc(func(c *actor.Context) {
		switch c.Message().(type) {
		case actor.Initialized, actor.Started, actor.Stopped:
		default:
			p.ch <- c.Message()
		}
	}, name)
	return p
}

// next returns the next message, failing after a generous wait.
func (p *probe) next(t *testing.T) any {
	t.Helper()
	return within(t, p.ch, fmt.Sprintf("%s: no message within %v", p.pid.ID, wait))
}

// rest returns every message queued before now: it sends the probe a
// marker and reads up to it (an inbox is first in, first out).
func (p *probe) rest(t *testing.T, e *actor.Engine) []any {
	t.Helper()
	marker := fmt.Sprintf("marker-%p", p)
	e.Send(p.pid, marker)
	var got []any
	for {
		m := p.next(t)
		if m == marker {
			return got
		}
		got = append(got, m)
	}
}

type leaseRig struct {
	engine  *actor.Engine
	clock   *manualClock
	lease   *memLease
	j       *journal
	pid     *actor.PID
	pub     *probe
	pollers map[string]*probe
	t0      time.Time
}

func startLeases(t *testing.T, setup func(*memLease), names ...string) *leaseRig {
	t.Helper()
	e, err := actor.NewEngine(actor.NewEngineConfig())
	if err != nil {
		t.Fatal(err)
	}
	j := &journal{}
	r := &leaseRig{engine: e, clock: newManualClock(), lease: newLease(j), j: j, pollers: map[string]*probe{}}
	if setup != nil {
		setup(r.lease)
	}
	r.t0 = r.clock.Now()
	r.pub = newProbe(t, e, "publisher")
	for _, n := range names {
		r.pollers[n] = newProbe(t, e, "poller-"+n)
	}
	pollerOf := func(n string) *actor.PID { return r.pollers[n].pid }
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.ErrorLevel)
	r.pid = e.Spawn(actors.NewLeaseActor(r.lease, names, pollerOf, r.pub.pid,
		actors.LeaseConfig{TTL: leaseTTL, Owner: "this-instance"}, r.clock, log), "lease")
	t.Cleanup(func() { <-e.Poison(r.pid).Done() })
	return r
}

// settle waits until the actor has handled the calls the clock set off:
// it has scheduled its next timers (want of them) again.
func (r *leaseRig) settle(t *testing.T, want int) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for r.clock.Pending() < want {
		if time.Now().After(deadline) {
			t.Fatalf("%d timers pending, want %d", r.clock.Pending(), want)
		}
		time.Sleep(time.Millisecond) // waiting for a goroutine, not for time to pass
	}
}

func grantOf(t *testing.T, m any) messages.Fence {
	t.Helper()
	g, ok := m.(messages.LeaseGranted)
	if !ok {
		t.Fatalf("got %T %+v, want a LeaseGranted", m, m)
	}
	return g.Fence
}

func revokeOf(t *testing.T, m any) messages.Fence {
	t.Helper()
	r, ok := m.(messages.LeaseRevoked)
	if !ok {
		t.Fatalf("got %T %+v, want a LeaseRevoked", m, m)
	}
	return r.Fence
}

func TestLeaseActor(t *testing.T) {
	deadline := leaseTTL - actors.FenceMargin(leaseTTL) // 2.4 s after the start of a renewal
	cases := []struct {
		name  string
		types []string
		setup func(*memLease)
		run   func(t *testing.T, r *leaseRig)
	}{
		{
			name:  "acquires and grants to the poller and the publisher, with the deadline of the acquisition's start",
			types: []string{"MESSAGE", "HOBOM_LOG"},
			run: func(t *testing.T, r *leaseRig) {
				for _, n := range []string{"MESSAGE", "HOBOM_LOG"} {
					f := grantOf(t, r.pollers[n].next(t))
					if f.Name != n || f.Token == 0 || !f.Until.Equal(r.t0.Add(deadline)) {
						t.Fatalf("grant %+v, want %s with a token, until t0+%v", f, n, deadline)
					}
				}
				got := map[string]bool{}
				for range 2 {
					got[grantOf(t, r.pub.next(t)).Name] = true
				}
				if !got["MESSAGE"] || !got["HOBOM_LOG"] {
					t.Fatalf("publisher told of %v, want both", got)
				}
			},
		},
		{
			name:  "a renewal moves the deadline to its own start + TTL - TTL/5",
			types: []string{"MESSAGE"},
			run: func(t *testing.T, r *leaseRig) {
				first := grantOf(t, r.pollers["MESSAGE"].next(t))
				r.settle(t, 1)
				if d, _ := r.clock.NextDue(); d != leaseTTL/3 {
					t.Fatalf("renewal due in %v, want TTL/3", d)
				}
				r.clock.Advance(leaseTTL / 3)
				f := grantOf(t, r.pollers["MESSAGE"].next(t))
				if !f.Same(first) || !f.Until.Equal(r.t0.Add(leaseTTL/3+deadline)) {
					t.Fatalf("renewal %+v after %+v, want the same tenure until t0+TTL/3+%v", f, first, deadline)
				}
			},
		},
		{
			name:  "a Redis error is not held: the deadline stays, retries every TTL/6, revoked at 2/3 TTL, granted again when Redis is back",
			types: []string{"MESSAGE"},
			run: func(t *testing.T, r *leaseRig) {
				p := r.pollers["MESSAGE"]
				f := grantOf(t, p.next(t))
				r.pub.next(t)
				r.settle(t, 1)
				r.lease.set(func(l *memLease) { l.down = true })
				for i, after := range []time.Duration{leaseTTL / 3, leaseTTL / 6} {
					r.clock.Advance(after)
					r.settle(t, 1)
					if d, _ := r.clock.NextDue(); d != leaseTTL/6 {
						t.Fatalf("failed renewal %d: next try in %v, want TTL/6", i+1, d)
					}
					if rest := p.rest(t, r.engine); len(rest) != 0 {
						t.Fatalf("failed renewal %d told the poller %v", i+1, rest)
					}
				}
				// 2/3 TTL after the last renewal's start: revoked.
				r.clock.Advance(leaseTTL / 6)
				if got := revokeOf(t, p.next(t)); !got.Same(f) {
					t.Fatalf("revoked %+v, want %+v", got, f)
				}
				if got := revokeOf(t, r.pub.next(t)); !got.Same(f) {
					t.Fatalf("publisher told %+v, want the revocation of %+v", got, f)
				}
				if f.HeldAt(r.clock.Now()) != (r.clock.Now().Before(r.t0.Add(deadline))) {
					t.Fatal("the fence's deadline is not the acquisition's start + TTL - TTL/5")
				}
				r.clock.Advance(deadline) // past it, whatever happened
				if f.HeldAt(r.clock.Now()) {
					t.Fatal("a fence held past its deadline")
				}
				r.settle(t, 1)
				// The revocation's release failed too (Redis is down): the
				// lease is still this instance's in Redis.
				eventually(t, "the release tried", func() bool { return r.j.count("release failed MESSAGE") == 1 })
				r.lease.set(func(l *memLease) { l.down = false })
				d, _ := r.clock.NextDue()
				r.clock.Advance(d)
				g := grantOf(t, p.next(t))
				if !g.Same(f) || !g.Until.Equal(r.clock.Now().Add(deadline)) {
					t.Fatalf("granted %+v when Redis was back, want the same tenure until now+%v", g, deadline)
				}
			},
		},
		{
			name:  "above the fair share: exactly one lease revoked and released",
			types: []string{"MESSAGE", "HOBOM_LOG"},
			run: func(t *testing.T, r *leaseRig) {
				grantOf(t, r.pollers["MESSAGE"].next(t))
				grantOf(t, r.pollers["HOBOM_LOG"].next(t))
				r.settle(t, 2)
				r.lease.set(func(l *memLease) { l.share = 1 }) // another instance appeared
				r.clock.Advance(leaseTTL / 3)
				r.settle(t, 2)
				revoked, renewed := 0, 0
				for _, n := range []string{"MESSAGE", "HOBOM_LOG"} {
					for _, m := range r.pollers[n].rest(t, r.engine) {
						switch m.(type) {
						case messages.LeaseRevoked:
							revoked++
							if r.j.count("release "+n) != 1 {
								t.Fatalf("%s revoked but not released: %s", n, r.j)
							}
						case messages.LeaseGranted:
							renewed++
						}
					}
				}
				if revoked != 1 || renewed != 1 {
					t.Fatalf("%d revoked, %d renewed; want one of each", revoked, renewed)
				}
			},
		},
		{
			name:  "a lease lost in Redis is revoked at the next renewal",
			types: []string{"MESSAGE"},
			run: func(t *testing.T, r *leaseRig) {
				f := grantOf(t, r.pollers["MESSAGE"].next(t))
				r.settle(t, 1)
				r.lease.steal("MESSAGE")
				r.clock.Advance(leaseTTL / 3)
				if got := revokeOf(t, r.pollers["MESSAGE"].next(t)); !got.Same(f) {
					t.Fatalf("revoked %+v, want %+v", got, f)
				}
			},
		},
		{
			name:  "a lease held by another is tried again after TTL/3 plus up to TTL/3 of jitter",
			types: []string{"MESSAGE"},
			setup: func(l *memLease) { l.holder["MESSAGE"], l.tokens["MESSAGE"] = "another-instance", 7 },
			run: func(t *testing.T, r *leaseRig) {
				for range 5 {
					r.settle(t, 1)
					d, _ := r.clock.NextDue()
					if d < leaseTTL/3 || d > 2*leaseTTL/3 {
						t.Fatalf("next acquisition in %v, want %v..%v", d, leaseTTL/3, 2*leaseTTL/3)
					}
					r.clock.Advance(d)
				}
				if rest := r.pollers["MESSAGE"].rest(t, r.engine); len(rest) != 0 {
					t.Fatalf("the poller was told %v of a lease another instance holds", rest)
				}
			},
		},
		{
			name:  "a restarted poller asks for its grant and gets the current one",
			types: []string{"MESSAGE"},
			run: func(t *testing.T, r *leaseRig) {
				f := grantOf(t, r.pollers["MESSAGE"].next(t))
				asker := newProbe(t, r.engine, "asker")
				r.engine.Send(r.pid, messages.LeaseWanted{Name: "MESSAGE", ReplyTo: asker.pid})
				if g := grantOf(t, asker.next(t)); g != f {
					t.Fatalf("asked, got %+v, want %+v", g, f)
				}
			},
		},
		{
			name:  "a drain releases every lease, then answers",
			types: []string{"MESSAGE", "HOBOM_LOG"},
			run: func(t *testing.T, r *leaseRig) {
				grantOf(t, r.pollers["MESSAGE"].next(t))
				grantOf(t, r.pollers["HOBOM_LOG"].next(t))
				r.settle(t, 2)
				sup := newProbe(t, r.engine, "supervisor")
				r.engine.Send(r.pid, messages.Drain{ReplyTo: sup.pid})
				if _, ok := sup.next(t).(messages.Drained); !ok {
					t.Fatal("no Drained")
				}
				if r.j.count("release MESSAGE") != 1 || r.j.count("release HOBOM_LOG") != 1 {
					t.Fatalf("Drained before both leases were released: %s", r.j)
				}
				if r.clock.Pending() != 0 {
					t.Fatalf("%d timers left after the drain", r.clock.Pending())
				}
			},
		},
		{
			name:  "an acquisition in flight when a shutdown starts is released at once, not granted",
			types: []string{"MESSAGE"},
			setup: func(l *memLease) { l.hang = make(chan struct{}) },
			run: func(t *testing.T, r *leaseRig) {
				eventually(t, "the acquisition under way", func() bool { return r.lease.hanging.Load() == 1 })
				r.engine.Send(r.pid, actors.LeaseFreeze)
				close(r.lease.hang) // the acquisition succeeds after the freeze
				eventually(t, "the lease taken during the shutdown released", func() bool {
					return r.j.count("acquire MESSAGE 1") == 1 && r.j.count("release MESSAGE") == 1
				})
				if rest := append(r.pollers["MESSAGE"].rest(t, r.engine), r.pub.rest(t, r.engine)...); len(rest) != 0 {
					t.Fatalf("told %v of a lease taken during the shutdown", rest)
				}
			},
		},
		{
			name:  "a drain does not wait for a renewal that hangs",
			types: []string{"MESSAGE"},
			run: func(t *testing.T, r *leaseRig) {
				grantOf(t, r.pollers["MESSAGE"].next(t))
				r.settle(t, 1)
				h := make(chan struct{})
				defer close(h)
				r.lease.set(func(l *memLease) { l.hang = h })
				r.clock.Advance(leaseTTL / 3)
				eventually(t, "the renewal hangs", func() bool { return r.lease.hanging.Load() == 1 })
				sup := newProbe(t, r.engine, "supervisor")
				r.engine.Send(r.pid, messages.Drain{ReplyTo: sup.pid, Deadline: time.Now().Add(wait / 5)})
				if _, ok := sup.next(t).(messages.Drained); !ok {
					t.Fatal("no Drained")
				}
				if r.j.count("release MESSAGE") != 1 {
					t.Fatalf("Drained without releasing the lease: %s", r.j)
				}
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.run(t, startLeases(t, c.setup, c.types...))
		})
	}
}

// TestALeaseActorCrashKeepsTheTenures: the lease actor panics at a
// renewal; the supervisor restarts it, the fresh one takes the leases back
// under the same tenure (Redis still holds them for this owner) and grants
// them again, and the poller, told its lease actor was lost, polls again
// once granted.
func TestALeaseActorCrashKeepsTheTenures(t *testing.T) {
	var on atomic.Bool
	m := &restarts{}
	var ids []string
	w := startWith(t, func(cfg *actors.TreeConfig) {
		cfg.Lease.TTL = leaseTTL
		cfg.Poller.Interval, cfg.Poller.MaxBackoff, cfg.Poller.BatchTimeout = time.Hour, time.Hour, 0
		cfg.ChildMiddleware = []actor.MiddlewareFunc{panicking("lease", &on)}
	}, func(w *world) { w.clock, w.lease = newManualClock(), newLease(w.j) }, m)
	eventually(t, "the first find, under the lease", func() bool { return w.backend.findCount() == 1 })
	on.Store(true)
	w.clock.Advance(leaseTTL / 3) // the renewal's tick: the lease actor panics on it
	eventually(t, "the lease actor crashed", func() bool { return len(m.of("lease")) == 1 })
	on.Store(false)
	ids = w.backend.add("e", 2)
	eventually(t, "its restart scheduled", func() bool {
		d, ok := w.clock.NextDue()
		return ok && d <= testConfig().RestartBackoff
	})
	d, _ := w.clock.NextDue()
	w.clock.Advance(d)
	eventually(t, "the events SENT under the lease taken back", w.allStatus(messages.StatusSent, ids...))
	if n := w.j.count("acquire MESSAGE 1"); n != 1 || w.j.index("acquire MESSAGE 2") >= 0 {
		t.Fatalf("the restart took a new tenure: %s", w.j)
	}
}
