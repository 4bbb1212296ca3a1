package actors

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hobom/hobom-event-processor/messages"
)

// PublisherConfig tunes the publisher.
type PublisherConfig struct {
	// Attempts is how often a record is produced before its events go to
	// the DLQ; Backoff is the wait before the second attempt, doubling after.
	Attempts int
	Backoff  time.Duration
	// AttemptTimeout bounds one produce attempt through the context given
	// to the producer (0: unbounded, the client's own timeout applies). With
	// it, every event resolves within Attempts × AttemptTimeout plus the
	// backoffs, the DLQ write and the mark, whatever Kafka does.
	AttemptTimeout time.Duration
	// Hold (HOBOM_KAFKA_OUTAGE=hold): a record whose last attempt failed
	// because no broker answered (Kafka.Unreachable) leaves its events
	// PENDING instead of dead-lettering them. Records a broker rejected
	// are dead-lettered in both modes.
	Hold bool
	// Kafka is told every attempt's outcome (nil: nobody); set by the
	// supervisor from Deps.Kafka.
	Kafka KafkaHealth
	// MaxRecordBytes bounds a record value: log arrays are split below it
	// and a single event above it goes to the DLQ instead of to Kafka.
	MaxRecordBytes int
	// MaxInflightRecords bounds records handed to the Kafka client and not
	// yet acked; it should stay well under the client's MaxBufferedRecords.
	// Beyond the client's room a record waits (room.go), as Produce would
	// block the actor.
	MaxInflightRecords int
	// Mark bounds each SENT mark; MarkConcurrency bounds marks in flight.
	// Batch calls (at most batchMarkCalls) count against it, but are not
	// held back by single marks: while the backend's answer to the batch
	// rpc changes, up to batchMarkCalls more calls may be in flight.
	Mark            RetryPolicy
	MarkConcurrency int
	// UnmarkedMemory bounds how many published-but-unmarked ids are kept
	// in this process (Redis keeps them all, for a day).
	UnmarkedMemory int
	// Lookup bounds the read of the memory before a batch is published;
	// when it fails the batch is published without it.
	Lookup time.Duration
	// Producer is the producer record header, "hobom-event-processor/<version>".
	Producer string
	// Clock is what the publisher reads the time from, lease deadlines
	// included (nil: SystemClock); set by the supervisor from
	// TreeConfig.Clock, the lease actor's clock.
	Clock Clock
}

// Publisher turns batches into Kafka records, produces them asynchronously,
// marks what Kafka acked as SENT and hands what failed to the DLQ actor. It
// owns the state of every event in flight, so an event is never published
// twice at once and every batch gets exactly one BatchResolved.
type Publisher struct {
	cfg      PublisherConfig
	producer Producer
	outbox   Outbox
	memory   UnmarkedStore // nil: the memory lasts as long as the process
	dlq      *actor.PID
	log      zerolog.Logger
	metrics  Metrics
	now      func() time.Time

	engine *actor.Engine
	self   *actor.PID

	events  map[string]*pubBatch // in flight, by eventId
	records map[uint64]*recordFlight
	// attempts are the produce attempts in flight, by the record handed
	// to the client; group is the attempt group open for new attempts.
	attempts map[*kgo.Record]*recordFlight
	// strays are the records of attempts that ended before the client's
	// promise for them ran (their deadline, or the shutdown's), by the
	// record the client holds, with the slab record whose value and
	// headers it shares; held counts them per slab record. A slab record
	// is emptied once its flight is done and the client has given back
	// every attempt of it (stray.go).
	strays     map[*kgo.Record]*kgo.Record
	held       map[*kgo.Record]*heldRecord
	headers    map[string]messages.HeaderValues // by event type
	group      *attemptGroup
	acks       *ackBox
	spare      []ackOutcome
	promise    func(*kgo.Record, error)
	nextRecord uint64
	waiting    []*recordFlight // ready, held back by MaxInflightRecords or a full client
	producing  int
	// room is what is left of the client's room as last read (room.go);
	// recheck: a clientRoom is on its way; bounced counts the refused
	// records put back at the head of waiting since it was last taken
	// from.
	room    int
	recheck bool
	bounced int
	// marks runs the batch mark calls, single the one-event marks
	// (single_marks.go); spareMarks is single's emptied result slice.
	marks      *workQueue
	single     *markQueue
	spareMarks []markResult
	// batcher is the outbox's batch-mark extension, nil without one;
	// toMark are acked ids waiting for a batch call (marks.go).
	batcher    BatchMarker
	toMark     []markItem
	batchCalls int
	// unmarked remembers events whose last step succeeded but whose mark
	// the backend did not take, so the next poll retries only the mark
	// instead of publishing again. It holds at most UnmarkedMemory ids and
	// forgets the least recently remembered first, in constant time.
	unmarked *simplelru.LRU[string, messages.Unmarked]
	// acked and taken gather the events whose records Kafka acked (to be
	// remembered before their marks) and whose SENT marks were taken (to be
	// forgotten), until a memFlush sends each group to the DLQ actor in one
	// message; remembering holds each group of acked events, by its
	// request's Seq, until the DLQ actor answers: an entry per Redis write
	// rather than per event, which a relay of thousands of events per
	// second would otherwise insert, look up and delete in a large map.
	// rememberSeq starts at random, so that a restarted publisher (same
	// PID) never takes an answer meant for its predecessor's write.
	acked       []string
	taken       []string
	flushQueued bool
	forgetTimer *time.Timer
	remembering map[uint64][]string
	rememberSeq uint64
	// atDLQ holds the events handed to the DLQ actor and not answered yet.
	atDLQ   map[string]struct{}
	drainTo *actor.PID
	// draining: a shutdown is under way; failed attempts are not retried
	// and their events stay PENDING for the next run.
	draining bool
	// fences is the latest word of the lease actor on each lease: the
	// tenure granted or renewed, with its deadline, or revoked (zero
	// Until). Batches carry the fence they were fetched under; this table
	// moves its deadline on renewals and ends it on revocation (fence.go).
	fences map[string]messages.Fence
	// toEncode and sink are dispatch's scratch: the events of a batch to
	// encode and where the route's encoding hands their records, reused
	// so that a batch allocates neither.
	toEncode []*messages.Event
	sink     encodeSink
}

type pubBatch struct {
	id        uint64 // the poller's id
	replyTo   *actor.PID
	fence     messages.Fence
	route     messages.Route
	eventType string
	pending   int
	start     time.Time
	resolved  messages.BatchResolved
}

type recordFlight struct {
	id      uint64
	route   messages.Route
	fence   messages.Fence
	rec     *kgo.Record
	events  []messages.Span
	attempt int
	sent    time.Time
	// inflight is the record handed to the client for the attempt in
	// flight (rec itself for the first attempt, a copy for a retry); nil
	// while none is. It is the attempt's key in Publisher.attempts.
	inflight *kgo.Record
	// group is the attempt group of the attempt in flight (nil without
	// AttemptTimeout).
	group *attemptGroup
}

// attemptGroup bounds the produce attempts started within a short span of
// each other (AttemptTimeout/20, at most maxGroupSpan) by one context and
// one deadline timer, instead of a context, a timer and a closure per
// record: a MESSAGE batch is thousands of records produced in the same
// instant. The group's deadline is AttemptTimeout after its first attempt,
// so a later attempt of the group is bounded a little sooner (by at most
// the span), never later. The group closes (its context cancelled, its
// timer stopped) when its last attempt ends, so no stray message follows
// the acks; an attempt still in flight at the deadline ends then, and the
// cancelled context lets the client fail its record. Spans and deadlines
// are real time, like the timer.
type attemptGroup struct {
	opened time.Time
	ctx    context.Context
	cancel context.CancelFunc
	timer  *time.Timer
	// recs are the records of the attempts started in the group; those
	// still in Publisher.attempts are in flight.
	recs []*kgo.Record
	live int
}

// maxGroupSpan bounds how long an attempt group takes new attempts (and
// so how much sooner than AttemptTimeout its last attempt may be ended).
const maxGroupSpan = 50 * time.Millisecond

// ackBox carries produce outcomes from the Kafka client's promise
// goroutines to the publisher (see burstBox): one acksReady per burst of
// acks instead of one message per record.
type ackBox = burstBox[ackOutcome]

type ackOutcome struct {
	rec *kgo.Record
	err error
}

type (
	// acksReady, attemptsExpired and retryRecord carry the instance (or
	// its box) that produced, because promises and timers of a crashed
	// predecessor arrive at the same PID.
	acksReady       struct{ box *ackBox }
	attemptsExpired struct {
		from  *Publisher
		group *attemptGroup
	}
	retryRecord struct {
		from   *Publisher
		record uint64
	}
	lookedUp struct {
		from   *Publisher
		batch  *pubBatch
		events []*messages.Event
		found  map[string]messages.Unmarked
		err    error
	}
	// cancelInflight ends the attempts in flight when a shutdown's deadline
	// is near.
	cancelInflight struct{ from *Publisher }
	// clientRoom looks again whether the client has room (room.go).
	clientRoom struct{ from *Publisher }
	memFlush   struct{ from *Publisher }
	// forgetFlush sends the taken marks' forgets, gathered for forgetDelay.
	forgetFlush struct{ from *Publisher }
	markResult  struct {
		eventID string
		err     error
		tries   int
		took    time.Duration
	}
)

// NewPublisher returns the producer of the publisher actor.
func NewPublisher(producer Producer, outbox Outbox, memory UnmarkedStore, dlq *actor.PID, cfg PublisherConfig, log zerolog.Logger, m Metrics) actor.Producer {
	if cfg.Lookup <= 0 {
		cfg.Lookup = 2 * time.Second
	}
	if cfg.Clock == nil {
		cfg.Clock = SystemClock
	}
	batcher, _ := outbox.(BatchMarker)
	return func() actor.Receiver {
		return &Publisher{
			batcher: batcher,
			cfg:     cfg, producer: producer, outbox: outbox, memory: memory, dlq: dlq, metrics: orNop(m), now: cfg.Clock.Now,
			log:      log.With().Str("actor", "publisher").Logger(),
			events:   make(map[string]*pubBatch),
			records:  make(map[uint64]*recordFlight),
			attempts: make(map[*kgo.Record]*recordFlight),
			strays:   make(map[*kgo.Record]*kgo.Record),
			held:     make(map[*kgo.Record]*heldRecord),
			headers:  make(map[string]messages.HeaderValues),
			marks:    newWorkQueue(cfg.MarkConcurrency),
			single:   newMarkQueue(),
			unmarked: newUnmarked(cfg.UnmarkedMemory),
			atDLQ:    make(map[string]struct{}),

			remembering: make(map[uint64][]string),
			rememberSeq: rand.Uint64() >> 1,
		}
	}
}

// Receive handles one message. A panic in it leaves the instance broken
// (recoverChild drops its later messages until it is stopped): its queue
// of single marks is closed at once, so that its workers start no more
// marks under fences the instance no longer updates.
func (p *Publisher) Receive(c *actor.Context) {
	finished := false
	defer func() {
		if !finished {
			p.single.close()
		}
	}()
	p.receive(c)
	finished = true
}

func (p *Publisher) receive(c *actor.Context) {
	switch m := c.Message().(type) {
	case actor.Started:
		p.engine, p.self = c.Engine(), c.PID()
		p.marks.bind(p.engine, p.self)
		p.bindMarks()
		box, engine, self := &ackBox{}, p.engine, p.self
		p.acks = box
		// One promise for every record: the record itself says which
		// attempt it was (Publisher.attempts).
		p.promise = func(rec *kgo.Record, err error) {
			if box.push(ackOutcome{rec: rec, err: err}) {
				engine.Send(self, acksReady{box: box})
			}
		}
	case messages.PublishBatch:
		p.onBatch(m)
	case lookedUp:
		if m.from == p {
			p.onLookedUp(m)
		}
	case memFlush:
		if m.from == p {
			p.flushQueued = false
			p.flushAcked()
		}
	case forgetFlush:
		if m.from == p {
			p.forgetTimer = nil
			p.flushTaken()
		}
	case messages.Remembered:
		p.onRemembered(m)
	case acksReady:
		if m.box == p.acks {
			acks := p.acks.take(p.spare)
			for _, a := range acks {
				if !errors.Is(a.err, kgo.ErrMaxBuffered) {
					// The client is done with the record. Its count of
					// records held drops only once the promise has
					// returned, so Room may not show this yet.
					p.room = max(p.room, 0) + 1
				}
				p.onProduced(a.rec, a.err)
				p.releaseStray(a.rec)
			}
			clear(acks) // let the records go
			p.spare = acks[:0]
		}
	case attemptsExpired:
		if m.from == p {
			p.onAttemptsExpired(m.group)
		}
	case retryRecord:
		if f, ok := p.records[m.record]; ok && m.from == p {
			p.enqueue(f)
		}
	case marksReady:
		if m.box == p.single.box {
			p.onMarksReady()
		}
	case workDone:
		if m.q == p.marks {
			p.marks.done()
			p.pumpMarks() // the marks in flight bound both queues together
			switch r := m.result.(type) {
			case markResult:
				p.onMarked(r)
			case batchMarkResult:
				p.onBatchMarked(r)
			}
			p.flushMarks()
		}
	case messages.PeerLost:
		if m.Peer == "dlq" {
			p.onDLQLost()
		}
	case messages.DeadLetterResult:
		p.onDeadLettered(m)
	case messages.LeaseGranted:
		p.onLeaseGranted(m.Fence)
	case messages.LeaseRevoked:
		p.onLeaseRevoked(m.Fence)
	case messages.Drain:
		p.onDrain(m)
	case cancelInflight:
		if m.from == p {
			p.cancelAttempts()
		}
	case clientRoom:
		if m.from == p {
			p.recheck = false
			p.produceWaiting()
		}
	case actor.Stopped:
		p.single.close()
		if p.forgetTimer != nil {
			p.forgetTimer.Stop()
		}
		if p.group != nil {
			p.group.timer.Stop()
		}
		if n := len(p.events); n > 0 {
			p.log.Warn().Int("events", n).Msg("stopped with events in flight; they stay PENDING or published-but-unmarked and are retried by the next run")
		}
	}
}

func (p *Publisher) onBatch(m messages.PublishBatch) {
	b := &pubBatch{id: m.BatchID, replyTo: m.ReplyTo, fence: m.Fence, route: m.Route, eventType: m.Route.EventType, pending: len(m.Events), start: p.now()}
	b.resolved.BatchID = m.BatchID
	events := make([]*messages.Event, 0, len(m.Events))
	for i := range m.Events {
		e := &m.Events[i]
		switch {
		case e.EventID == "":
			p.log.Error().Str("rowId", e.ID).Msg("outbox row without eventId: left PENDING, it cannot be marked")
			p.settle(b, messages.OutcomeSkipped)
			continue
		case p.events[e.EventID] != nil:
			p.settle(b, messages.OutcomeBusy)
			continue
		}
		p.events[e.EventID] = b
		events = append(events, e)
	}
	if p.memory == nil || len(events) == 0 {
		p.dispatch(b, events)
		return
	}
	p.lookUp(b, events)
}

// lookUp reads the memory of published-but-unmarked events for a batch off
// the actor's goroutine: what this process, an earlier run or another
// instance published but did not mark is only marked. The batch's events
// are in p.events meanwhile, so a later batch sees them busy.
func (p *Publisher) lookUp(b *pubBatch, events []*messages.Event) {
	ids := make([]string, 0, len(events))
	for _, e := range events {
		if !p.unmarked.Contains(e.EventID) {
			ids = append(ids, e.EventID)
		}
	}
	if len(ids) == 0 {
		p.dispatch(b, events)
		return
	}
	memory, timeout, engine, self := p.memory, p.cfg.Lookup, p.engine, p.self
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		found, err := memory.Lookup(ctx, ids)
		engine.Send(self, lookedUp{from: p, batch: b, events: events, found: found, err: err})
	}()
}

func (p *Publisher) onLookedUp(m lookedUp) {
	if m.err != nil {
		// Without it this batch may publish again what it should only
		// mark: a duplicate, never a loss.
		p.log.Warn().Err(m.err).Str("eventType", m.batch.eventType).Int("events", len(m.events)).
			Msg("could not read the memory of published-but-unmarked events; publishing the batch without it")
	}
	if len(m.found) > 0 {
		p.log.Info().Str("eventType", m.batch.eventType).Int("events", len(m.found)).
			Msg("events published before but not marked: their marks are retried, they are not published again")
	}
	for id, u := range m.found {
		if !p.unmarked.Contains(id) {
			p.unmarked.Add(id, u)
		}
	}
	p.dispatch(m.batch, m.events)
}

// dispatch sends each event of a batch its way: a mark only when it was
// published (or dead-lettered) before, the DLQ when it cannot be encoded,
// else the route's encoding makes Kafka records of it.
func (p *Publisher) dispatch(b *pubBatch, events []*messages.Event) {
	todo := p.toEncode[:0]
	for _, e := range events {
		if u, ok := p.unmarked.Peek(e.EventID); ok {
			p.retryMark(b.route, e.EventID, u)
			continue
		}
		if e.Defect != "" {
			p.deadLetter(b.route, e.EventID, b.route.Encoding.DefectValue(e, p.now()), "bad input: "+e.Defect, 0)
			continue
		}
		todo = append(todo, e)
	}
	if len(todo) > 0 {
		p.sink.p, p.sink.route, p.sink.fence, p.sink.hv = p, b.route, b.fence, p.headerValues(b.route.EventType)
		b.route.Encoding.Encode(todo, p.cfg.MaxRecordBytes, p.now, &p.sink)
		p.sink.p, p.sink.route, p.sink.fence = nil, messages.Route{}, messages.Fence{}
	}
	clear(todo) // hold no event past its batch
	p.toEncode = todo[:0]
	p.maybeAnswer(b)
}

// encodeSink enqueues the records a route's encoding builds for one batch
// and dead-letters the events it rejects.
//
// The flights, records and headers come from slabs (one per kind,
// allocated together, doubling in size over a burst of records) rather
// than three to five allocations per record: a MESSAGE batch is one
// record per event. A slab lives while any of its records is in flight,
// and what a batch leaves of it serves the next one.
type encodeSink struct {
	p     *Publisher
	route messages.Route
	fence messages.Fence
	hv    messages.HeaderValues

	flights []recordFlight
	recs    []kgo.Record
	headers []kgo.RecordHeader
	next    int // size of the next slabs
}

// minSlab and maxSlab bound the records of one slab.
const minSlab, maxSlab = 8, 4096

func (s *encodeSink) Record(key, value []byte, traceID string, ids []byte, spans []messages.Span) {
	if len(s.flights) == 0 {
		n := min(max(s.next, minSlab), maxSlab)
		s.next = 2 * n
		s.flights, s.recs = make([]recordFlight, n), make([]kgo.Record, n)
		s.headers = make([]kgo.RecordHeader, 0, 3*n)
	}
	h, room := len(s.headers), cap(s.headers)
	s.headers = s.hv.Append(s.headers, traceID, ids) // a traceparent may outgrow it: append copies then
	if cap(s.headers) != room {
		// The slab moved: the earlier records' headers stay where they
		// were, and the copies append made of them here are nobody's, but
		// would keep their event ids alive as long as this slab.
		clear(s.headers[:h])
	}
	f, rec := &s.flights[0], &s.recs[0]
	s.flights, s.recs = s.flights[1:], s.recs[1:]
	*rec = kgo.Record{Topic: s.route.Topic, Key: key, Value: value, Headers: s.headers[h:len(s.headers):len(s.headers)]}
	*f = recordFlight{route: s.route, fence: s.fence, events: spans, rec: rec}
	s.p.enqueue(f)
}

// headerValues returns the constant header values of eventType's records,
// built on first use.
func (p *Publisher) headerValues(eventType string) messages.HeaderValues {
	hv, ok := p.headers[eventType]
	if !ok {
		hv = messages.NewHeaderValues(eventType, p.cfg.Producer)
		p.headers[eventType] = hv
	}
	return hv
}

func (s *encodeSink) Reject(eventID string, value []byte, reason string) {
	s.p.deadLetter(s.route, eventID, value, reason, 0)
}

// retryMark finishes an event that was published or dead-lettered before
// and whose mark did not reach the backend.
func (p *Publisher) retryMark(route messages.Route, id string, u messages.Unmarked) {
	if u.Status == messages.StatusSent {
		p.markSent(id)
		return
	}
	p.atDLQ[id] = struct{}{}
	p.engine.Send(p.dlq, messages.DeadLetter{Route: route, EventID: id, Reason: u.Reason, StoredAlready: true, Fence: p.fenceOf(id), ReplyTo: p.self})
}

// enqueue produces the record now or, behind records already waiting,
// past MaxInflightRecords or without room in the client (room.go), as
// soon as an earlier one is done.
func (p *Publisher) enqueue(f *recordFlight) {
	if f.id == 0 {
		p.nextRecord++
		f.id = p.nextRecord
		p.records[f.id] = f
	}
	if len(p.waiting) > 0 || !p.canProduce() {
		p.waiting = append(p.waiting, f)
		return
	}
	p.produce(f)
}

func (p *Publisher) produce(f *recordFlight) {
	if !p.fenceHeld(f.fence) {
		// Past the lease's local deadline: publish nothing. The events
		// stay PENDING for whoever holds the lease next.
		delete(p.records, f.id)
		p.log.Warn().Str("topic", f.route.Topic).Int("events", len(f.events)).Int64("token", f.fence.Token).
			Msg("lease tenure past its deadline: not publishing; the events stay PENDING")
		for _, ev := range f.events {
			p.resolve(ev.EventID, messages.OutcomeDeferred)
		}
		p.emptySlots(f)
		return
	}
	f.attempt++
	f.sent = p.now()
	p.producing++
	p.room--
	// The client owns a record until its promise has run and fills in
	// partition, offset and producer state: a retry gets a fresh copy,
	// as the record of an attempt ended at its deadline may still be
	// with the client.
	rec := f.rec
	if f.attempt > 1 {
		rec = &kgo.Record{Topic: f.rec.Topic, Key: f.rec.Key, Value: f.rec.Value, Headers: f.rec.Headers}
	}
	ctx := context.Background()
	if p.cfg.AttemptTimeout > 0 {
		g := p.openGroup()
		g.live++
		g.recs = append(g.recs, rec)
		f.group, ctx = g, g.ctx
	}
	f.inflight = rec
	p.attempts[rec] = f
	p.producer.TryProduce(ctx, rec, p.promise)
}

// openGroup returns the attempt group that takes an attempt started now,
// opening a new one when the open one is older than its span.
func (p *Publisher) openGroup() *attemptGroup {
	now := time.Now()
	span := min(p.cfg.AttemptTimeout/20, maxGroupSpan)
	if g := p.group; g != nil && now.Sub(g.opened) < span {
		return g
	}
	g := &attemptGroup{opened: now}
	g.ctx, g.cancel = context.WithTimeout(context.Background(), p.cfg.AttemptTimeout)
	// The client fails a record whose context ended only when it looks
	// at it again, which while it cannot reach a broker may be seconds
	// later; the attempts end at the deadline regardless, and their late
	// promises are ignored.
	engine, self := p.engine, p.self
	g.timer = time.AfterFunc(p.cfg.AttemptTimeout, func() { engine.Send(self, attemptsExpired{from: p, group: g}) })
	p.group = g
	return g
}

// onAttemptsExpired ends the attempts of g still in flight at its
// deadline.
func (p *Publisher) onAttemptsExpired(g *attemptGroup) {
	err := fmt.Errorf("produce attempt timed out after %v: %w", p.cfg.AttemptTimeout, context.DeadlineExceeded)
	for _, rec := range g.recs {
		if f := p.attempts[rec]; f != nil && f.group == g {
			p.strayAttempt(f)
			p.onProduced(rec, err)
		}
	}
}

// endAttempt ends f's attempt in flight: its promise, or its deadline,
// came first; whatever comes later for it is ignored.
func (p *Publisher) endAttempt(f *recordFlight) {
	delete(p.attempts, f.inflight)
	f.inflight = nil
	if g := f.group; g != nil {
		f.group = nil
		if g.live--; g.live == 0 {
			g.cancel()
			g.timer.Stop()
			if p.group == g {
				p.group = nil
			}
		}
	}
}

// onProduced takes the outcome of the attempt that handed rec to the
// client.
func (p *Publisher) onProduced(rec *kgo.Record, err error) {
	f, ok := p.attempts[rec]
	if !ok {
		return // the attempt ended already: its deadline, or its promise, came first
	}
	if errors.Is(err, kgo.ErrMaxBuffered) {
		p.bounce(f, rec)
		return
	}
	p.endAttempt(f)
	p.producing--
	p.produceWaiting()
	p.metrics.ProduceDone(f.route.EventType, p.now().Sub(f.sent), err)
	if p.cfg.Kafka != nil && !errors.Is(err, errShutdownDeadline) {
		p.cfg.Kafka.Observe(err)
	}
	if err != nil && p.draining {
		p.log.Warn().Err(err).Str("topic", f.route.Topic).Int("events", len(f.events)).Int("attempt", f.attempt).
			Msg("produce failed during shutdown; its events stay PENDING for the next run")
		p.abandon(f)
		return
	}
	if err == nil {
		delete(p.records, f.id)
		for _, ev := range f.events {
			if p.memory == nil {
				p.markSent(ev.EventID)
				continue
			}
			p.acked = append(p.acked, ev.EventID)
		}
		p.emptySlots(f)
		p.queueFlush()
		return
	}
	if f.attempt < p.cfg.Attempts {
		wait := Doubling(p.cfg.Backoff, 0, f.attempt)
		p.log.Warn().Err(err).Str("topic", f.route.Topic).Int("events", len(f.events)).Int("attempt", f.attempt).
			Dur("retryIn", wait).Msg("produce failed; retrying")
		engine, self, id := p.engine, p.self, f.id
		time.AfterFunc(wait, func() { engine.Send(self, retryRecord{from: p, record: id}) })
		return
	}
	if p.cfg.Hold && p.cfg.Kafka != nil && p.cfg.Kafka.Outage(err) {
		p.log.Warn().Err(err).Str("topic", f.route.Topic).Int("events", len(f.events)).Int("attempts", f.attempt).
			Msg("no kafka broker answers; HOBOM_KAFKA_OUTAGE=hold leaves the events PENDING until one does")
		p.abandon(f)
		return
	}
	delete(p.records, f.id)
	p.log.Error().Err(err).Str("topic", f.route.Topic).Int("events", len(f.events)).Int("attempts", f.attempt).
		Msg("produce failed for good; sending events to the DLQ")
	reason := err
	if p.cfg.Kafka != nil {
		reason = p.cfg.Kafka.Explain(reason)
	}
	for _, ev := range f.events {
		value := f.route.Encoding.SpanValue(f.rec.Value[ev.Lo:ev.Hi])
		p.deadLetter(f.route, ev.EventID, value, "kafka: "+reason.Error(), f.attempt)
	}
	p.emptySlots(f)
}

// onDrain starts a shutdown: records waiting for a retry or for room are
// given up at once (their events stay PENDING), attempts in flight may
// finish until shortly before the shutdown's deadline and are cancelled
// then, so that the process stops in time even while Kafka hangs.
func (p *Publisher) onDrain(m messages.Drain) {
	p.drainTo, p.draining = m.ReplyTo, true
	p.log.Info().Int("events", len(p.events)).Int("records", len(p.records)).Msg("draining")
	for _, f := range p.waiting {
		p.abandon(f)
	}
	p.waiting = nil
	for _, f := range p.records {
		if f.inflight == nil { // waiting for its retry timer
			p.abandon(f)
		}
	}
	if !m.Deadline.IsZero() && len(p.records) > 0 {
		// Leave a third of the time left (at least 1.5 s) for the marks,
		// the DLQ actor and closing the clients.
		left := time.Until(m.Deadline)
		wait := left - max(left/3, 1500*time.Millisecond)
		engine, self := p.engine, p.self
		time.AfterFunc(max(wait, 0), func() { engine.Send(self, cancelInflight{from: p}) })
	}
	p.checkDrained()
}

// cancelAttempts ends every attempt in flight; their promises report the
// cancellation and onProduced leaves their events PENDING. An attempt
// cancelled after the broker wrote it is published again by the next run:
// a duplicate, never a loss.
func (p *Publisher) cancelAttempts() {
	n := 0
	for _, f := range p.records {
		if f.inflight != nil {
			// Ended here rather than when the client reports the
			// cancellation, which can take seconds while no broker answers.
			p.strayAttempt(f)
			p.onProduced(f.inflight, errShutdownDeadline)
			n++
		}
	}
	if n > 0 {
		p.log.Warn().Int("records", n).Msg("shutdown deadline near: cancelled the produce attempts in flight; their events stay PENDING")
	}
}

var errShutdownDeadline = errors.New("produce attempt cancelled: the shutdown deadline is near")

// abandon drops a record without dead-lettering it: its events stay
// PENDING and the next poll (or run) publishes them again.
func (p *Publisher) abandon(f *recordFlight) {
	delete(p.records, f.id)
	for _, ev := range f.events {
		p.resolve(ev.EventID, messages.OutcomeDeferred)
	}
	p.emptySlots(f)
}

// emptySlots empties the slots of a record that is done (acked,
// dead-lettered or left PENDING; out of records already) in the
// encodeSink's slabs. A slab lives as long as any of its slots is
// referenced, and the sink takes its slots one by one, up to 4,096 records
// later: a slot that kept its record would keep the record's value (up to
// MaxRecordBytes for a log array), its headers and, through its spans'
// event ids, the find response those were cut from, so that a log relay's
// heap grew with every record of a slab rather than with the records in
// flight. A record the client may still read or write (one of its
// attempts is stray) keeps its record slot until the client gives it back.
func (p *Publisher) emptySlots(f *recordFlight) {
	if h := p.held[f.rec]; h != nil {
		h.done = true
	} else {
		emptyRecord(f.rec)
	}
	*f = recordFlight{}
}

func (p *Publisher) deadLetter(route messages.Route, id string, value []byte, reason string, attempts int) {
	p.atDLQ[id] = struct{}{}
	p.engine.Send(p.dlq, messages.DeadLetter{
		Route: route, EventID: id, Value: value, Reason: reason, Attempts: attempts, FailedAt: p.now(), Fence: p.fenceOf(id), ReplyTo: p.self,
	})
}

// errFenced says a mark was not made because the batch's lease tenure
// ended or passed its local deadline: another instance may own the event
// type now and resolves the event.
var errFenced = errors.New("lease tenure ended; mark left to the new holder")

func (p *Publisher) markSent(id string) {
	var fence messages.Fence
	if b := p.events[id]; b != nil {
		fence = b.fence
	}
	p.markSentIn(id, fence)
}

// markSentIn is markSent for an event whose batch's fence the caller has
// at hand.
func (p *Publisher) markSentIn(id string, fence messages.Fence) {
	if p.batchMarks() {
		p.queueMark(id, fence)
		return
	}
	p.markOne(id, fence)
}

func (p *Publisher) onMarked(m markResult) {
	p.metrics.MarkDone(messages.StatusSent, m.took, m.err)
	if errors.Is(m.err, errFenced) {
		p.log.Warn().Str("eventId", m.eventID).Msg("published, but the lease tenure is over or past its local deadline: not marking (whoever holds the lease next finds the event in the memory and marks it)")
		p.resolve(m.eventID, messages.OutcomeUnmarked)
		return
	}
	if m.err != nil {
		p.remember(m.eventID, messages.Unmarked{Status: messages.StatusSent, At: p.now()})
		p.log.Warn().Err(m.err).Str("eventId", m.eventID).Int("tries", m.tries).
			Msg("published but the SENT mark failed; the next poll retries the mark, not the publish")
		p.resolve(m.eventID, messages.OutcomeUnmarked)
		return
	}
	p.forget(m.eventID, true)
	p.resolve(m.eventID, messages.OutcomeSent)
}

func (p *Publisher) onDeadLettered(m messages.DeadLetterResult) {
	if _, ok := p.atDLQ[m.EventID]; !ok {
		return // given up on in onDLQLost
	}
	delete(p.atDLQ, m.EventID)
	switch m.Outcome {
	case messages.OutcomeUnmarked:
		if p.events[m.EventID] != nil {
			p.remember(m.EventID, messages.Unmarked{Status: messages.StatusFailed, Reason: m.Reason, At: p.now()})
		}
	case messages.OutcomeDeferred:
		if m.Fenced {
			// The new holder needs the memory ("dead-lettered, only
			// mark FAILED") or it would publish the event again; the
			// SENT path keeps it on errFenced alike.
			break
		}
		p.forget(m.EventID, p.unmarked.Contains(m.EventID))
	case messages.OutcomeFailed:
		p.forget(m.EventID, p.unmarked.Contains(m.EventID))
	}
	p.resolve(m.EventID, m.Outcome)
}

// onDLQLost gives up on the events the crashed DLQ actor held: they are
// left PENDING (their entry may or may not be written; writing it again is
// idempotent) and come back with the next poll. Events waiting for their
// memory write are marked without knowing whether it was written.
func (p *Publisher) onDLQLost() {
	for seq, ids := range p.remembering {
		delete(p.remembering, seq)
		for _, id := range ids {
			p.markSent(id)
		}
	}
	if len(p.atDLQ) > 0 {
		p.log.Warn().Int("events", len(p.atDLQ)).Msg("DLQ actor crashed; its events stay PENDING for the next poll")
	}
	for id := range p.atDLQ {
		delete(p.atDLQ, id)
		p.resolve(id, messages.OutcomeDeferred)
	}
}

// remember keeps an unmarked id, bounded by UnmarkedMemory: past the bound
// the least recently remembered id is forgotten (in memory; its Redis entry
// stays), which costs at most a duplicate publish.
func (p *Publisher) remember(id string, u messages.Unmarked) {
	p.unmarked.Add(id, u)
	if p.memory != nil {
		p.engine.Send(p.dlq, messages.RememberUnmarked{EventIDs: []string{id}, Unmarked: u})
	}
}

// newUnmarked returns the in-memory part of the unmarked memory, holding at
// most size ids (at least one). An LRU from hashicorp/golang-lru rather than
// a map scanned for its oldest entry: during a mark outage every remember
// evicts, and a scan of up to 100,000 entries per insert on the actor's
// goroutine stalled the publisher.
func newUnmarked(size int) *simplelru.LRU[string, messages.Unmarked] {
	l, err := simplelru.NewLRU[string, messages.Unmarked](max(size, 1), nil)
	if err != nil {
		panic(err) // only for a size below 1
	}
	return l
}

// forget drops an id whose mark was taken, and its Redis entry when it
// has one. The Redis writes are gathered for forgetDelay: marks complete one
// by one, and an entry forgotten late costs nothing (the event is not
// PENDING any more, so it is not fetched).
func (p *Publisher) forget(id string, remembered bool) {
	p.unmarked.Remove(id)
	if p.memory == nil || !remembered {
		return
	}
	p.taken = append(p.taken, id)
	if p.forgetTimer == nil {
		engine, self := p.engine, p.self
		p.forgetTimer = time.AfterFunc(forgetDelay, func() { engine.Send(self, forgetFlush{from: p}) })
	}
}

// forgetDelay is how long the forgets of taken marks are gathered before
// they go to Redis in one write.
const forgetDelay = 50 * time.Millisecond

// queueFlush makes sure a memFlush follows. It goes behind the messages
// already in the inbox (the acks of one produce response come as one burst
// of promises), so one flush carries them all: one Redis round trip for
// many events.
func (p *Publisher) queueFlush() {
	if p.flushQueued {
		return
	}
	p.flushQueued = true
	p.engine.Send(p.self, memFlush{from: p})
}

// flushAcked asks the DLQ actor to remember the acked events, which are
// marked once it answers.
func (p *Publisher) flushAcked() {
	if len(p.acked) > 0 {
		p.rememberSeq++
		p.remembering[p.rememberSeq] = p.acked
		p.engine.Send(p.dlq, messages.RememberUnmarked{EventIDs: p.acked,
			Unmarked: messages.Unmarked{Status: messages.StatusSent, At: p.now()}, ReplyTo: p.self, Seq: p.rememberSeq})
		p.acked = nil
	}
}

// flushTaken asks the DLQ actor to forget the events whose marks were
// taken.
func (p *Publisher) flushTaken() {
	if len(p.taken) > 0 {
		p.engine.Send(p.dlq, messages.ForgetUnmarked{EventIDs: p.taken})
		p.taken = nil
	}
}

// onRemembered marks the events whose memory write is done. A failed write
// does not hold the marks back: it only widens the window in which a crash
// publishes them again.
func (p *Publisher) onRemembered(m messages.Remembered) {
	ids, ok := p.remembering[m.Seq]
	if !ok {
		return // marked when the DLQ actor crashed, or a predecessor's write
	}
	delete(p.remembering, m.Seq)
	for _, id := range ids {
		if b := p.events[id]; b != nil {
			p.markSentIn(id, b.fence)
		}
	}
}

func (p *Publisher) resolve(id string, o messages.Outcome) {
	b := p.events[id]
	if b == nil {
		return
	}
	delete(p.events, id)
	p.settle(b, o)
	p.maybeAnswer(b)
	p.checkDrained()
}

func (p *Publisher) settle(b *pubBatch, o messages.Outcome) {
	b.resolved.Counts[o]++
	b.pending--
	p.metrics.Resolved(b.eventType, o, 1)
}

func (p *Publisher) maybeAnswer(b *pubBatch) {
	if b.pending != 0 || b.replyTo == nil {
		return
	}
	b.resolved.Took = p.now().Sub(b.start)
	p.engine.Send(b.replyTo, b.resolved)
	b.replyTo = nil
}

func (p *Publisher) checkDrained() {
	if p.drainTo == nil || len(p.events) > 0 || len(p.records) > 0 || !p.marks.idle() || !p.single.idle() || len(p.toMark) > 0 {
		return
	}
	if p.forgetTimer != nil {
		p.forgetTimer.Stop()
		p.forgetTimer = nil
	}
	p.flushTaken() // the DLQ actor drains after the publisher: it writes them

	p.log.Info().Msg("drained")
	p.engine.Send(p.drainTo, messages.Drained{From: p.self})
	p.drainTo = nil
}
