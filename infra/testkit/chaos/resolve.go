package chaos

import (
	"fmt"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/hobom/hobom-event-processor/infra/devkit/fakebackend"
)

// The publishing knobs every instance runs with (procEnv); the
// time-to-resolve bound derives from them.
const (
	writeTimeout    = time.Second
	publishAttempts = 3
	publishBackoff  = 200 * time.Millisecond
	// resolveSlack covers the DLQ write and the mark on loopback, and the
	// wait of a fetched record for its first attempt.
	resolveSlack = time.Second
)

// DefaultResolveBound is the longest an event may take from its first
// fetch to SENT or FAILED when no fault that leaves it PENDING by design
// was in force meanwhile: every attempt bounded by the write timeout, the
// backoffs between them (doubling), and resolveSlack.
func DefaultResolveBound() time.Duration {
	b := time.Duration(publishAttempts)*writeTimeout + resolveSlack
	for i := 1; i < publishAttempts; i++ {
		b += publishBackoff << (i - 1)
	}
	return b
}

// pendingByDesign are the faults during which an event may stay PENDING
// past the bound, as documented: the backend cannot take the mark (or
// answers a find after the client gave up on it), Redis cannot take the
// DLQ entry (nor renew the leases), or the instance (or the actor holding
// the event) is gone, frozen or deposed and the event waits to be fetched
// again by the lease's next holder.
var pendingByDesign = []string{
	string(BackendMarkError), string(BackendMarkSlow), string(RedisRestart), string(BackendFindSlow),
	string(SIGTERM), string(SIGKILL), string(PanicPoller), string(PanicPublisher), string(PanicDLQ),
	string(SIGSTOP), causeKill, causeSIGTERM, causePause, causeTakeover,
}

// fetchClock records when the backend first handed out each event (its id
// in a find response).
type fetchClock struct {
	mu    sync.Mutex
	first map[string]time.Time
}

var eventIDPattern = regexp.MustCompile(`chaos-[ml]-[0-9]{7}`)

func watchFetches(b *fakebackend.Server) *fetchClock {
	f := &fetchClock{first: map[string]time.Time{}}
	hook := func(wire []byte) []byte {
		now := time.Now()
		ids := eventIDPattern.FindAll(wire, -1)
		f.mu.Lock()
		for _, id := range ids {
			if _, seen := f.first[string(id)]; !seen {
				f.first[string(id)] = now
			}
		}
		f.mu.Unlock()
		return wire
	}
	b.SetWireHook(fakebackend.FindMessages, hook)
	b.SetWireHook(fakebackend.FindLogs, hook)
	return f
}

func (f *fetchClock) at(id string) (time.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.first[id]
	return t, ok
}

// slowEvent is one event's time to resolve.
type slowEvent struct {
	ID, Status string
	Took       time.Duration // first fetch to SENT/FAILED
	Held       time.Duration // of it, before the last pending-by-design fault ended (+ resolveSlack)
	Exempt     []string      // those faults
}

// counted is the time held to the bound.
func (s slowEvent) counted() time.Duration { return s.Took - s.Held }

func (s slowEvent) String() string {
	x := ""
	if len(s.Exempt) > 0 {
		x = fmt.Sprintf(", the first %v of it until %v ended", s.Held.Round(time.Millisecond), s.Exempt)
	}
	return fmt.Sprintf("%s %s: %v counted (%v after its first fetch%s)", s.ID, s.Status, s.counted().Round(time.Millisecond), s.Took.Round(time.Millisecond), x)
}

// checkResolve measures, per resolved event, first fetch (creation when no
// fetch was seen) to SENT/FAILED; when a pending-by-design fault was in
// force meanwhile, from the end of the last such fault (its window and
// resolveSlack after it, for the fetch that follows) instead. It flags the
// events whose counted time is above the bound. Kafka faults take nothing away: an attempt is
// bounded by the write timeout whether a broker answers or not, so an event
// reaches Kafka or the DLQ within the bound (the outage hold mode, which
// keeps events PENDING while no broker answers, is not the mode this
// suite runs).
func (r *runner) checkResolve(events []created, resolved map[string]time.Time, status map[string]string) {
	rep := r.rep
	bound := r.cfg.ResolveBound
	rep.ResolveBound = bound
	r.mu.Lock()
	var wins []moment
	for _, w := range append(slices.Clone(r.faultLog), r.moments...) {
		if slices.Contains(pendingByDesign, w.kind) {
			w.until = w.until.Add(resolveSlack)
			wins = append(wins, w)
		}
	}
	r.mu.Unlock()
	slices.SortFunc(wins, func(a, b moment) int { return a.at.Compare(b.at) })
	var all []slowEvent
	for _, e := range events {
		end, ok := resolved[e.id]
		if !ok || end.IsZero() {
			continue
		}
		start := e.at
		if t, ok := r.fetch.at(e.id); ok {
			start = t
		}
		s := slowEvent{ID: e.id, Status: status[e.id], Took: end.Sub(start)}
		// The clock starts again when the last window that could hold the
		// event ends: such a fault may make it start over by design (a
		// FAILED mark the backend refused leaves it PENDING, to be fetched
		// and tried again), so only the time after it is held to the bound.
		restart := start
		for _, w := range wins {
			if w.eventType != "" && w.eventType != e.eventType {
				continue
			}
			if w.at.After(end) || !w.until.After(start) {
				continue
			}
			if w.until.After(restart) {
				restart = w.until
			}
			if !slices.Contains(s.Exempt, w.kind) {
				s.Exempt = append(s.Exempt, w.kind)
			}
		}
		if restart.After(end) {
			restart = end
		}
		s.Held = restart.Sub(start)
		all = append(all, s)
		if s.counted() > bound {
			rep.ResolveOver = append(rep.ResolveOver, s.String())
		}
		if len(s.Exempt) > 0 {
			rep.ResolveExempt++
		}
	}
	rep.ResolveChecked = len(all)
	slices.SortFunc(all, func(a, b slowEvent) int { return int(b.counted() - a.counted()) })
	for _, s := range all[:min(3, len(all))] {
		rep.ResolveSlowest = append(rep.ResolveSlowest, s.String())
	}
	slices.SortFunc(all, func(a, b slowEvent) int { return int(b.Took - a.Took) })
	for _, s := range all[:min(2, len(all))] {
		rep.ResolveSlowestExempt = append(rep.ResolveSlowestExempt, s.String())
	}
}
