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
// past the bound, as documented: the backend cannot take the mark, Redis
// cannot take the DLQ entry, or the instance (or the actor holding the
// event) is gone and the event waits to be fetched again.
var pendingByDesign = []string{
	string(BackendMarkError), string(BackendMarkSlow), string(RedisRestart),
	string(SIGTERM), string(SIGKILL), string(PanicPoller), string(PanicPublisher), string(PanicDLQ),
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
	Took       time.Duration
	Exempt     []string // faults that leave it PENDING by design, in force meanwhile
}

func (s slowEvent) String() string {
	x := ""
	if len(s.Exempt) > 0 {
		x = fmt.Sprintf(" (exempt: %v)", s.Exempt)
	}
	return fmt.Sprintf("%s %s after %v%s", s.ID, s.Status, s.Took.Round(time.Millisecond), x)
}

// checkResolve measures, per resolved event, first fetch (creation when no
// fetch was seen) to SENT/FAILED, and flags the ones above the bound that no
// pending-by-design fault explains.
func (r *runner) checkResolve(events []created, resolved map[string]time.Time, status map[string]string) {
	rep := r.rep
	bound := r.cfg.ResolveBound
	rep.ResolveBound = bound
	r.mu.Lock()
	wins := slices.Clone(r.faultLog)
	wins = append(wins, r.moments...)
	r.mu.Unlock()
	var all, checked []slowEvent
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
		for _, w := range wins {
			if slices.Contains(pendingByDesign, w.kind) && !start.After(w.until.Add(resolveSlack)) && !end.Before(w.at) && !slices.Contains(s.Exempt, w.kind) {
				s.Exempt = append(s.Exempt, w.kind)
			}
		}
		all = append(all, s)
		if len(s.Exempt) == 0 {
			checked = append(checked, s)
			if s.Took > bound {
				rep.ResolveOver = append(rep.ResolveOver, s.String())
			}
		}
	}
	byTook := func(a, b slowEvent) int { return int(b.Took - a.Took) }
	slices.SortFunc(all, byTook)
	slices.SortFunc(checked, byTook)
	rep.ResolveChecked, rep.ResolveExempt = len(checked), len(all)-len(checked)
	for _, s := range checked[:min(5, len(checked))] {
		rep.ResolveSlowest = append(rep.ResolveSlowest, s.String())
	}
	for _, s := range all[:min(3, len(all))] {
		if len(s.Exempt) > 0 {
			rep.ResolveSlowestExempt = append(rep.ResolveSlowestExempt, s.String())
		}
	}
}
