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
	// Interval is the wait after an empty poll, less the jitter
	// (waitInterval); failures back off from it.
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
	// InFlightShare > 0 caps the events this poller has at the publisher
	// at once: its share of the process's global budget (MaxInFlight
	// divided among the pollers by the supervisor), so memory is bounded
	// by the budget, not by event types × find limit.
	InFlightShare int
	// Hold (HOBOM_KAFKA_OUTAGE=hold): no find while Kafka.Reachable is
	// false; the poller backs off and looks again.
	Hold bool
	// Kafka is set by the supervisor from Deps.Kafka.
	Kafka KafkaHealth
	// MaxInFlight is the global budget the supervisor divides; the poller
	// itself reads only InFlightShare.
	MaxInFlight int
	// Clock schedules the poller's waits and reads the time its lease's
	// deadline is checked against (nil: SystemClock); set by the
	// supervisor from TreeConfig.Clock.
	Clock Clock
}

// maxBatches is how many batches a poller keeps at the publisher at once:
// the next find runs while the previous batch is produced and marked.
const maxBatches = 2

// fullFindEvery bounds how long the poller finds with the cursor only: a
// row the cursor passes over (one committed late with an earlier place in
// the backend's order) is found by the next find without it, at the
// latest this long after the last one.
const fullFindEvery = time.Second

// Poller fetches the PENDING events of one route and hands them to the
// publisher in batches, at most maxBatches (and InFlightShare events) at a
// time: it does not fetch more until a batch is resolved, which is the
// flow control the unbounded inboxes lack. A find that runs while batches
// are in flight returns their rows too (they are still PENDING): the
// poller drops the ids it has in flight, and those of a batch resolved
// while the find ran, so no event is handed over twice. An outbox that is
// a SkippingFinder leaves those rows out undecoded; the poller drops them
// all the same.
//
// With a SkippingFinder, a find that overlaps batches carries the find
// cursor: the eventId of the last row handed over or in flight, after
// which the backend returns rows, so it does not send the rows in flight
// at all. The cursor passes over every row before it, so the poller finds
// without it whenever no batch is out, after a batch that left events
// PENDING, after it dropped its batches, under a new lease tenure, and at
// least every fullFindEvery while it finds.
type Poller struct {
	route     messages.Route
	outbox    Outbox
	leases    *actor.PID // the lease actor; nil: leases off
	publisher *actor.PID
	clock     Clock
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
	batches    map[uint64]*pollBatch // at the publisher, or resolved while a find ran
	open       int                   // batches not resolved yet
	events     int                   // events of unresolved batches
	failures   int
	timer      Timer
	timerGen   uint64

	// cursor is the eventId of the last row handed over or in flight
	// (newRows; "": none);
	// cursorApplied says the backend applied the last cursor it was sent,
	// so a find with the cursor need not ask for the rows in flight on
	// top of the new ones. lastFull is when the last find without the
	// cursor started; fullNext asks for one.
	cursor        string
	cursorApplied bool
	lastFull      time.Time
	fullNext      bool
	// unmarkable is how many rows without an eventId the last find from
	// the beginning brought, unmarkableAfter the last find after an
	// applied cursor (each at most unmarkableCap()): they stay PENDING and
	// come back first, so the next find of that kind asks for them on top
	// of its limit.
	// unmarkableStuck: the last find was stuck behind such rows (logged).
	unmarkable, unmarkableAfter int
	unmarkableStuck             bool

	// granted: the lease actor granted this poller its event type (always
	// true without leases); fence is the tenure, with the deadline of its
	// last renewal, zero without leases.
	granted bool
	fence   messages.Fence
}

// NewPoller returns the producer of a poller for route. With leases (leases
// is the lease actor) it polls only while the lease actor grants it the
// route's event type.
func NewPoller(route messages.Route, outbox Outbox, leases *actor.PID, publisher *actor.PID, cfg PollerConfig, log zerolog.Logger, m Metrics) actor.Producer {
	clock := cfg.Clock
	if clock == nil {
		clock = SystemClock
	}
	return func() actor.Receiver {
		return &Poller{
			route: route, outbox: outbox, leases: leases, publisher: publisher, cfg: cfg, metrics: orNop(m), clock: clock,
			log: log.With().Str("actor", "poller").Str("eventType", route.EventType).Logger(),
			seq: rand.Uint64() >> 1,
		}
	}
}

// pollBatch is a batch handed to the publisher.
type pollBatch struct {
	ids []string
	// set holds ids; it is never written after the batch is made, so a
	// find's goroutine may read it (SkippingFinder) while the poller
	// goes on.
	set map[string]struct{}
	// oldest is when the batch's oldest event was created (zero: none
	// parses): its rows are left out of the finds while it is in flight,
	// and they are still pending.
	oldest   time.Time
	start    time.Time
	timer    Timer
	resolved bool // kept only to filter the find that was running
}

// has reports whether id is one of the batch's events.
func (b *pollBatch) has(id string) bool {
	_, ok := b.set[id]
	return ok
}

type (
	pollTick struct{ gen uint64 }
	findDone struct {
		seq uint64
		// fence is the tenure the find was made under.
		fence  messages.Fence
		events []messages.Event
		err    error
		took   time.Duration
		// after is the cursor the find was sent with ("": none), applied
		// whether the backend applied it; limit is the limit it asked
		// for and want the rows it may hand over (0: all).
		after       string
		applied     bool
		limit, want int
		// skippedOldest is when the oldest event of the batches whose
		// rows the find skipped was created (zero: none skipped).
		skippedOldest time.Time
	}
	batchTimeout struct{ batch uint64 }
)

func (p *Poller) Receive(c *actor.Context) {
	switch m := c.Message().(type) {
	case actor.Started:
		p.engine, p.self = c.Engine(), c.PID()
		if p.leases != nil {
			// Polling starts once the lease is granted; a restarted
			// poller asks for the grant its predecessor had.
			p.engine.Send(p.leases, messages.LeaseWanted{Name: p.route.EventType, ReplyTo: p.self})
		} else {
			p.granted = true
			p.schedule(0)
		}
	case messages.LeaseGranted:
		p.onGranted(m.Fence)
	case messages.LeaseRevoked:
		if p.leases != nil && m.Fence.Same(p.fence) && p.granted {
			p.granted = false
			p.log.Info().Int64("token", m.Fence.Token).Msg("lease revoked; polling stops until it is granted again")
		}
	case actor.Stopped:
		if p.timer != nil {
			p.timer.Stop()
		}
		for _, b := range p.batches {
			if b.timer != nil {
				b.timer.Stop()
			}
		}
		if p.cancelFind != nil {
			p.cancelFind() // a find has no side effects: cutting it short is safe
		}
	case pollTick:
		if m.gen != p.timerGen || !p.canFind() {
			return
		}
		if !p.fenceHeld() {
			// Held, but not renewed in time: nothing is fetched until
			// a renewal moves the deadline.
			p.schedule(p.waitInterval())
			return
		}
		if p.cfg.Hold && p.cfg.Kafka != nil && !p.cfg.Kafka.Reachable() {
			p.log.Debug().Msg("no kafka broker answers: not fetching (HOBOM_KAFKA_OUTAGE=hold)")
			p.backoff()
			return
		}
		p.find()
	case findDone:
		p.onFound(m)
	case messages.BatchResolved:
		p.onResolved(m)
	case messages.PeerLost:
		if m.Peer == "lease" {
			// The lease actor restarted: what it granted is unknown now;
			// its successor grants again what it still holds.
			p.granted = false
			p.engine.Send(p.leases, messages.LeaseWanted{Name: p.route.EventType, ReplyTo: p.self})
			return
		}
		if p.open > 0 {
			p.log.Warn().Int("batches", p.open).Msg("publisher crashed holding this poller's batches; polling again after a pause")
			p.dropBatches()
			p.backoff()
		}
	case batchTimeout:
		if b := p.batches[m.batch]; b != nil && !b.resolved {
			p.log.Error().Uint64("batch", m.batch).Int("events", len(b.ids)).Dur("waited", p.clock.Now().Sub(b.start)).
				Msg("batch not resolved in time; polling again (events still in flight are not published twice)")
			p.dropBatches()
			p.backoff()
		}
	}
}

// canFind says whether a find may start now: none running, the lease
// held, fewer than maxBatches batches out and room in the share.
func (p *Poller) canFind() bool {
	return !p.finding && p.granted && p.open < maxBatches && (p.cfg.InFlightShare <= 0 || p.events < p.cfg.InFlightShare)
}

// want is how many rows the next find may hand over, bounded by the find
// limit and the share left (0: all).
func (p *Poller) want() int {
	want := p.cfg.FindLimit
	if p.cfg.InFlightShare > 0 {
		room := p.cfg.InFlightShare - p.events
		if want <= 0 || room < want {
			want = room
		}
	}
	return max(want, 0)
}

// findLimit is the limit of the next find: the rows it may hand over, the
// rows without an eventId the last find brought and, unless the backend
// applies the cursor the find carries, the rows in flight. Both kinds are
// still PENDING and come back first; asking for them on top is what lets
// a find reach the rows behind them.
func (p *Poller) findLimit(after string) int {
	want := p.want()
	if want <= 0 {
		return 0 // all (an old backend returns all anyway)
	}
	if after != "" && p.cursorApplied {
		return want + p.unmarkableAfter
	}
	return want + p.unmarkable + p.events
}

// unmarkableCap bounds the rows without an eventId a find asks for on top
// of its limit, and so the memory one find may take: the find limit, or
// the poller's share of the in-flight budget when that is smaller (or
// there is no find limit). Rows behind more such rows than the cap and
// the find's own limit together wait (logged).
func (p *Poller) unmarkableCap() int {
	limit, share := p.cfg.FindLimit, p.cfg.InFlightShare
	if limit <= 0 || (share > 0 && share < limit) {
		return share
	}
	return limit
}

// noteUnmarkable counts the rows without an eventId in a find's answer,
// for the next find of its kind: from the beginning (no cursor, or one the
// backend did not apply), or after an applied cursor, which sees only
// those after it. A find that brings nothing but such rows brings more of
// them than it asked for on top, so the count rises until the finds reach
// past them (within a few polls) or up to the cap. A find that asked for
// the cap on top and still brought nothing else, as many rows as it asked
// for, is stuck behind them: that is logged once, until a find is not.
func (p *Poller) noteUnmarkable(m findDone) {
	n, others := 0, 0
	for i := range m.events {
		if m.events[i].EventID == "" {
			n++
		} else {
			others++
		}
	}
	count := &p.unmarkable
	if m.after != "" && m.applied {
		count = &p.unmarkableAfter
	}
	most := p.unmarkableCap()
	stuck := most > 0 && *count == most && others == 0 && m.limit > 0 && len(m.events) >= m.limit
	if stuck && !p.unmarkableStuck {
		p.log.Error().Int("rows", len(m.events)).Int("limit", m.limit).
			Msg("outbox rows without eventId fill the find even with the find limit on top: the rows behind them are not reached until they are fixed")
	}
	p.unmarkableStuck = stuck
	*count = min(n, most)
}

// findCursor is the cursor of the next find ("": a find from the start).
func (p *Poller) findCursor() string {
	if p.cursor == "" || p.open == 0 || p.fullNext || p.clock.Now().Sub(p.lastFull) >= fullFindEvery {
		return ""
	}
	return p.cursor
}

// dropBatches forgets every batch (the publisher lost them, or one timed
// out): the publisher never publishes an event twice at once, so the next
// find may hand their events over again.
func (p *Poller) dropBatches() {
	for id, b := range p.batches {
		if b.timer != nil {
			b.timer.Stop()
		}
		delete(p.batches, id)
	}
	p.open, p.events = 0, 0
	// Their rows are PENDING and before the cursor; a find that was
	// running may hand a batch over, so that "nothing out" is not enough.
	p.fullNext = true
}

func (p *Poller) find() {
	p.seq++
	p.finding = true
	engine, self, outbox := p.engine, p.self, p.outbox
	skipper, _ := outbox.(SkippingFinder)
	var after string
	if skipper != nil {
		after = p.findCursor()
	}
	if after == "" {
		p.lastFull, p.fullNext = p.clock.Now(), false
	}
	q := messages.FindQuery{RPC: p.route.Find, EventType: p.route.EventType, Status: messages.StatusPending,
		Limit: p.findLimit(after), AfterEventID: after}
	done := findDone{seq: p.seq, fence: p.fence, after: after, limit: q.Limit, want: p.want()}
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.FindTimeout)
	p.cancelFind = cancel
	skip := p.inFlightFilter()
	if skipper != nil && skip != nil {
		done.skippedOldest = p.oldestInFlight()
	}
	go func() {
		defer cancel()
		start := time.Now()
		if skipper != nil {
			done.events, done.applied, done.err = skipper.FindSkipping(ctx, q, skip)
		} else {
			done.events, done.err = outbox.Find(ctx, q.RPC, q.EventType, q.Status, q.Limit)
		}
		done.took = time.Since(start)
		engine.Send(self, done)
	}()
}

// inFlightFilter returns what tells a find's goroutine the ids of the
// batches out now (nil: none), over their sets, which nobody writes: the
// poller forgets a batch by dropping it from p.batches, never by changing
// its set.
func (p *Poller) inFlightFilter() func(string) bool {
	var sets []map[string]struct{}
	for _, b := range p.batches {
		if !b.resolved {
			sets = append(sets, b.set)
		}
	}
	switch len(sets) {
	case 0:
		return nil
	case 1:
		set := sets[0]
		return func(id string) bool { _, ok := set[id]; return ok }
	}
	return func(id string) bool {
		for _, set := range sets {
			if _, ok := set[id]; ok {
				return true
			}
		}
		return false
	}
}

// inFlight reports whether id is an event of a batch at the publisher, or
// of one resolved while the running find ran.
func (p *Poller) inFlight(id string) bool {
	for _, b := range p.batches {
		if b.has(id) {
			return true
		}
	}
	return false
}

func (p *Poller) onFound(m findDone) {
	if m.seq != p.seq || !p.finding {
		return
	}
	p.finding, p.cancelFind = false, nil
	if m.err == nil {
		p.metrics.OldestPending(p.route.EventType, pendingAge(m.events, m.skippedOldest))
		if m.after != "" {
			p.noteCursor(m.applied)
		}
	}
	if m.err == nil {
		p.noteUnmarkable(m)
	}
	events, cursor := p.newRows(m)
	p.metrics.PollDone(p.route.EventType, m.took, len(events), m.err)
	for id, b := range p.batches {
		if b.resolved {
			delete(p.batches, id) // its ids leave the filter with it
		}
	}
	if m.err != nil {
		p.log.Warn().Err(m.err).Int("failures", p.failures+1).Msg("find pending events failed")
		p.backoff()
		return
	}
	if len(events) == 0 {
		if p.open > 0 {
			return // the next resolution polls again
		}
		if len(m.events) == 0 {
			p.failures = 0
		}
		p.schedule(p.waitInterval())
		return
	}
	if !p.granted {
		// The lease was revoked while the find ran: the events belong to the
		// new holder now, and publishing them here would duplicate them.
		p.log.Info().Int("events", len(events)).Msg("lease lost during the find; leaving the events to the new holder")
		return
	}
	if !m.fence.Same(p.fence) {
		// Revoked and granted again under a new token while the find
		// ran: its rows were read under the old tenure, and another
		// holder may have handled them in between. Find again under
		// this one (the grant did not, with a find running).
		p.log.Info().Int("events", len(events)).Int64("token", p.fence.Token).
			Msg("lease granted again under a new tenure during the find; finding again under it")
		p.schedule(0)
		return
	}
	if !p.fenceHeld() {
		p.log.Warn().Int("events", len(events)).Int64("token", p.fence.Token).
			Msg("lease past its local deadline during the find (not renewed in time): not publishing")
		if p.open == 0 {
			p.schedule(p.waitInterval())
		}
		return
	}
	id := m.seq
	if p.batches == nil { // made on first use: most pollers of a large tree idle
		p.batches = map[uint64]*pollBatch{}
	}
	b := &pollBatch{ids: make([]string, 0, len(events)), set: make(map[string]struct{}, len(events)), start: p.clock.Now(),
		oldest: oldestCreated(events)}
	for i := range events {
		if e := events[i].EventID; e != "" {
			b.ids = append(b.ids, e)
			b.set[e] = struct{}{}
		}
	}
	if cursor != "" {
		p.cursor = cursor
	}
	p.batches[id] = b
	p.open++
	// Only rows with an eventId count against the share: onResolved takes
	// off len(b.ids), and a row without one stays PENDING and comes back
	// with every find, so counting it would leak share until finds stop.
	p.events += len(b.ids)
	p.log.Debug().Uint64("batch", id).Int("events", len(events)).Dur("took", m.took).Msg("fetched pending events")
	batch := messages.PublishBatch{BatchID: id, Route: p.route, Events: events, ReplyTo: p.self, Fence: p.fence}
	p.engine.Send(p.publisher, batch)
	if p.cfg.BatchTimeout > 0 {
		engine, self := p.engine, p.self
		b.timer = p.clock.AfterFunc(p.cfg.BatchTimeout, func() { engine.Send(self, batchTimeout{batch: id}) })
	}
	p.failures = 0
	if len(b.ids) == 0 {
		// Only rows without an eventId, handed over to be logged: they
		// come back with every find, so wait the interval, whether their
		// batch resolves before the next find or while it runs.
		p.schedule(p.waitInterval())
		return
	}
	// Find the next batch while this one is produced and marked.
	p.schedule(0)
}

// newRows returns the rows of m that the poller may hand over, and the
// cursor after them.
//
// Rows of batches in flight, or resolved while this find ran (the backend
// may have answered before their marks), are not new. A SkippingFinder
// left most of them out already, but not a row whose eventId it had to
// repair (invalid UTF-8): that one is checked here. The limit counted
// the rows in flight on top of want, assuming they come first; rows
// before them (passed over by the cursor, or a cursor applied with that
// limit) can make more than want new rows, and the rest are not this
// find's to hand over. A backend that ignored the limit returned the
// whole backlog, and all of it is handed over (finding it again for each
// want would cost the backlog's size every time).
//
// The cursor is the eventId of the last row, handed over or in flight,
// before any row cut off, so that every row up to it is in flight or in
// this batch; a repaired eventId is not the backend's, and rows left out
// undecoded cannot be it ("": none of them).
//
// A row without an eventId does not count against want: the limit asked
// for such rows on top (findLimit), and they are handed over only to be
// logged and left PENDING.
func (p *Poller) newRows(m findDone) (events []messages.Event, cursor string) {
	cut := m.want > 0 && len(m.events) <= m.limit // want > 0: the limit was set
	events = m.events[:0]
	n := 0 // rows with an eventId: only they count against want
	for _, e := range m.events {
		if len(p.batches) == 0 || !p.inFlight(e.EventID) {
			if cut && n == m.want && e.EventID != "" {
				break
			}
			events = append(events, e)
			if e.EventID != "" {
				n++
			}
		}
		if e.EventID != "" && e.Defect == "" {
			cursor = e.EventID
		}
	}
	return events, cursor
}

// noteCursor records whether the backend applied the cursor of the last
// find, and logs when that changes.
func (p *Poller) noteCursor(applied bool) {
	if applied == p.cursorApplied {
		return
	}
	p.cursorApplied = applied
	if applied {
		p.log.Debug().Msg("the backend applies the find cursor: finds leave out the rows in flight")
	} else {
		p.log.Debug().Msg("the backend did not apply the find cursor (afterEventId; an old backend, or a cursor row it no longer has): finds ask for the rows in flight again")
	}
}

// oldestInFlight is when the oldest event of the batches out now was
// created (zero: none).
func (p *Poller) oldestInFlight() time.Time {
	var oldest time.Time
	for _, b := range p.batches {
		if !b.resolved && !b.oldest.IsZero() && (oldest.IsZero() || b.oldest.Before(oldest)) {
			oldest = b.oldest
		}
	}
	return oldest
}

// pendingAge is the age of the oldest of the found events and of the
// events whose rows the find skipped (taken when it started: they were
// pending then, as a find without the skip would have shown, even if their
// batch resolved or was dropped while it ran).
func pendingAge(found []messages.Event, skippedOldest time.Time) time.Duration {
	oldest := oldestCreated(found)
	if !skippedOldest.IsZero() && (oldest.IsZero() || skippedOldest.Before(oldest)) {
		oldest = skippedOldest
	}
	return ageOf(oldest, time.Now())
}

func (p *Poller) onResolved(m messages.BatchResolved) {
	b := p.batches[m.BatchID]
	if b == nil || b.resolved {
		return
	}
	if b.timer != nil {
		b.timer.Stop()
	}
	p.open--
	p.events -= len(b.ids)
	if p.finding {
		b.resolved = true // its ids still filter the find that is running
	} else {
		delete(p.batches, m.BatchID)
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
		Dur("took", p.clock.Now().Sub(b.start)).
		Msg("batch resolved")
	trouble := m.Counts[messages.OutcomeDeferred] + m.Counts[messages.OutcomeUnmarked] + m.Counts[messages.OutcomeBusy]
	progress := m.Counts[messages.OutcomeSent] + m.Counts[messages.OutcomeFailed]
	switch {
	case trouble > 0:
		// Something stayed PENDING (Redis or the backend failing): wait,
		// and wait longer the longer it lasts, so an outage is never a hot
		// loop. The cursor is past those events: the next find starts
		// from the beginning.
		p.fullNext = true
		p.backoff()
	case progress > 0:
		// Every event left the PENDING state: more may wait behind a find
		// limit, so fetch again at once.
		p.failures = 0
		p.schedule(0)
	case p.open == 0 && !p.finding:
		// Only rows that cannot be processed (logged): they come back with
		// every find, so wait the interval, but they are no outage.
		p.failures = 0
		p.schedule(p.waitInterval())
	}
}

func (p *Poller) backoff() {
	p.failures++
	p.schedule(Doubling(p.cfg.Interval, max(p.cfg.MaxBackoff, p.cfg.Interval), p.failures))
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
	p.timer = p.clock.AfterFunc(d, func() { engine.Send(self, pollTick{gen: gen}) })
}

// fenceHeld reports whether this poller may hand a batch on: always without
// leases, else while it is granted and its tenure's local deadline (last
// renewal + TTL - margin, see LeaseActor) has not passed. It asks no one.
func (p *Poller) fenceHeld() bool {
	if p.leases == nil {
		return true
	}
	return p.granted && p.fence.HeldAt(p.clock.Now())
}

// onGranted starts polling on a new grant and moves the deadline on a
// renewal of the tenure it has.
func (p *Poller) onGranted(f messages.Fence) {
	if p.leases == nil {
		return
	}
	if p.granted && f.Same(p.fence) {
		lapsed := !p.fenceHeld()
		if f.Until.After(p.fence.Until) {
			p.fence.Until = f.Until
		}
		if lapsed && p.fenceHeld() && !p.finding {
			// Renewed after its deadline had passed (polling paused):
			// poll now rather than at the next interval.
			p.schedule(0)
		}
		return
	}
	p.granted, p.fence = true, f
	// Another holder may have left rows PENDING before the cursor.
	p.fullNext = true
	p.log.Info().Int64("token", f.Token).Msg("lease granted; polling")
	if !p.finding {
		p.schedule(0)
	}
}

// waitInterval is the wait before a regular poll: the poll interval less
// a random share of up to jitterShare (the backoffs' jitter). Pollers
// spawned together would otherwise find in step for their whole life,
// every type's find reaching the backend in the same instant each
// interval; with it their finds drift apart within a few intervals. It
// only shortens the wait, so the interval stays the longest an event
// waits for its poller's next find.
func (p *Poller) waitInterval() time.Duration {
	return jitter(p.cfg.Interval)
}
