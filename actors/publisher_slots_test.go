package actors

// The publisher's slabs (record flights, Kafka records, headers) and what
// they keep alive once a record is done.

import (
	"context"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hobom/hobom-event-processor/messages"
)

// TestPublisherKeepsNoAckedRecord: once a record is acked and its events
// marked, nothing of it stays on the heap. The publisher takes its records
// from slabs that live until their last slot is taken; a log array is one
// record for hundreds of events, so a slab spans many batches, and a slot
// that kept its acked record kept its value (up to MaxRecordBytes) alive:
// the heap grew with every record relayed instead of with the records in
// flight. Here 240 log arrays of about 256 KB (some 60 MB) are relayed one
// batch at a time; what stays reachable afterwards must be a small part of
// them.
func TestPublisherKeepsNoAckedRecord(t *testing.T) {
	const (
		batches, perBatch = 40, 24
		maxRecord         = 256 << 10
		message           = 60 << 10 // four events per array
	)
	engine, err := actor.NewEngine(actor.NewEngineConfig())
	if err != nil {
		t.Fatal(err)
	}
	outbox := &markCounter{}
	cfg := testPublisherConfig()
	cfg.MaxRecordBytes = maxRecord
	reply, resolved := spawnResolvedTo(engine)
	dlq := engine.SpawnFunc(func(*actor.Context) {}, "dlq")
	pub := engine.Spawn(NewPublisher(neverFull{Client: ackAtOnce{}}, outbox, nil, dlq, cfg, zerolog.Nop(), nil), "publisher")
	t.Cleanup(func() { <-engine.Poison(pub).Done() })

	route := logRoute()
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	for b := range batches {
		batch := messages.PublishBatch{BatchID: uint64(b + 1), Route: route, ReplyTo: reply}
		for i := range perBatch {
			// Each event its own text, so that no two share memory.
			s := strconv.Itoa(b*perBatch + i)
			batch.Events = append(batch.Events, messages.Event{ID: "row-" + s, EventID: "log-" + s, EventType: messages.EventTypeHoBomLog,
				Status: messages.StatusPending, Log: &messages.LogPayload{TraceID: "trace-" + s, Level: "INFO", Message: s + strings.Repeat("x", message)}})
		}
		engine.Send(pub, batch)
		select {
		case m := <-resolved:
			if m.Counts[messages.OutcomeSent] != perBatch {
				t.Fatalf("batch %d resolved with %v, want %d SENT", b+1, m.Counts, perBatch)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("batch %d not resolved", b+1)
		}
	}
	relayed := uint64(batches * perBatch * message)
	kept := int64(heap()) - int64(before)
	t.Logf("%d MB relayed in log arrays, %.1f MB more on the heap after", relayed>>20, float64(kept)/(1<<20))
	if kept > int64(relayed/10) {
		t.Fatalf("%.1f MB more on the heap after relaying %d MB whose records were all acked and marked: acked records are kept", float64(kept)/(1<<20), relayed>>20)
	}
}

// logRoute is the default HOBOM_LOG route.
func logRoute() messages.Route {
	for _, r := range messages.DefaultRoutes() {
		if r.EventType == messages.EventTypeHoBomLog {
			return r
		}
	}
	panic("no HOBOM_LOG route among the defaults")
}

// TestPublisherHeadersSlabKeepsNoCopies: log records with a trace id carry
// four headers, more than the three a record's slab reserves, so the
// headers slab outgrows itself and append moves it. The copies of the
// earlier records' headers that append made are none of theirs (each
// record keeps its own in the array it was cut from); once every record
// is acked and emptied, none of their event ids may stay referenced.
func TestPublisherHeadersSlabKeepsNoCopies(t *testing.T) {
	engine, err := actor.NewEngine(actor.NewEngineConfig())
	if err != nil {
		t.Fatal(err)
	}
	cfg := testPublisherConfig()
	cfg.MaxRecordBytes = 4 << 10 // one event per log array
	reply, resolved := spawnResolvedTo(engine)
	dlq := engine.SpawnFunc(func(*actor.Context) {}, "dlq")
	producer := NewPublisher(neverFull{Client: ackAtOnce{}}, &markCounter{}, nil, dlq, cfg, zerolog.Nop(), nil)
	var pub *Publisher
	pid := engine.Spawn(func() actor.Receiver {
		r := producer()
		pub = r.(*Publisher)
		return r
	}, "publisher")

	route := logRoute()
	const n = 7
	batch := messages.PublishBatch{BatchID: 1, Route: route, ReplyTo: reply}
	for i := range n {
		s := strconv.Itoa(i)
		batch.Events = append(batch.Events, messages.Event{ID: "row-" + s, EventID: "log-" + s, EventType: messages.EventTypeHoBomLog,
			Status: messages.StatusPending, Log: &messages.LogPayload{TraceID: "0123456789abcdef0123456789abcdef", Level: "INFO", Message: s + strings.Repeat("x", 1500)}})
	}
	engine.Send(pid, batch)
	select {
	case m := <-resolved:
		if m.Counts[messages.OutcomeSent] != n {
			t.Fatalf("batch resolved with %v, want %d SENT", m.Counts, n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("batch not resolved")
	}
	<-engine.Poison(pid).Done() // orders the reads below after the actor's writes
	if pub.nextRecord != n {
		t.Fatalf("%d records, want one per event (%d)", pub.nextRecord, n)
	}
	for _, h := range pub.sink.headers {
		if h.Key == messages.HeaderEventID && h.Value != nil {
			t.Fatalf("the headers slab still references event id %q of an acked, emptied record", h.Value)
		}
	}
}

// holdingProducer keeps every record's first attempt, as a client that
// cannot reach a broker does, until giveBack; it acks later attempts (a
// retry's copy of the record) at once.
type holdingProducer struct {
	mu   sync.Mutex
	held map[*kgo.Record]func(*kgo.Record, error)
	seen map[string]bool // event ids with an attempt so far
}

func (h *holdingProducer) Produce(_ context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	id := string(r.Key)
	h.mu.Lock()
	first := !h.seen[id]
	h.seen[id] = true
	if first {
		h.held[r] = promise
	}
	h.mu.Unlock()
	if !first {
		go promise(r, nil)
	}
}

// records returns the records it holds.
func (h *holdingProducer) records() []*kgo.Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []*kgo.Record
	for r := range h.held {
		out = append(out, r)
	}
	return out
}

// giveBack runs the promises of the records it holds, as the client does
// once it fails them, and forgets them.
func (h *holdingProducer) giveBack(err error) {
	h.mu.Lock()
	held := h.held
	h.held = map[*kgo.Record]func(*kgo.Record, error){}
	h.mu.Unlock()
	for r, promise := range held {
		promise(r, err)
	}
}

// TestPublisherEmptiesAStrayRecordOnceTheClientGivesItBack: a record
// whose first attempt ended at its deadline while the client still held
// it is left intact while the client holds it (its retry has been acked
// and its events marked meanwhile), and emptied once the client's promise
// for that attempt has run, not when some later record uses up its slab.
func TestPublisherEmptiesAStrayRecordOnceTheClientGivesItBack(t *testing.T) {
	const events = 20
	engine, err := actor.NewEngine(actor.NewEngineConfig())
	if err != nil {
		t.Fatal(err)
	}
	producer := &holdingProducer{held: map[*kgo.Record]func(*kgo.Record, error){}, seen: map[string]bool{}}
	outbox := &markCounter{}
	cfg := testPublisherConfig()
	cfg.Attempts, cfg.AttemptTimeout = 2, 100*time.Millisecond
	reply, resolved := spawnResolvedTo(engine)
	dlq := engine.SpawnFunc(func(*actor.Context) {}, "dlq")
	pub := engine.Spawn(NewPublisher(neverFull{Client: producer}, outbox, nil, dlq, cfg, zerolog.Nop(), nil), "publisher")
	t.Cleanup(func() { <-engine.Poison(pub).Done() })

	await := func(batch uint64) {
		t.Helper()
		select {
		case m := <-resolved:
			if m.BatchID != batch || m.Counts[messages.OutcomeSent] != events {
				t.Fatalf("batch %d resolved with %v, want batch %d with %d SENT", m.BatchID, m.Counts, batch, events)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("batch %d not resolved; %d marks", batch, outbox.count())
		}
	}
	engine.Send(pub, messageBatch(1, reply, "", events))
	await(1) // first attempts timed out, retries acked, events marked SENT
	held := producer.records()
	if len(held) != events {
		t.Fatalf("the client holds %d records, want %d", len(held), events)
	}
	for _, r := range held {
		if r.Value == nil || len(r.Headers) == 0 {
			t.Fatal("a record the client still holds was emptied")
		}
	}

	producer.giveBack(context.DeadlineExceeded)
	// The late promises reach the publisher before the next batch does
	// (one sender, one inbox); the next batch's answer orders the test's
	// reads after the publisher's writes.
	engine.Send(pub, messageBatch(2, reply, "next-", events))
	await(2)
	for _, r := range held {
		if r.Value != nil || r.Headers != nil {
			t.Fatalf("record %q kept its value or headers after the client gave it back", r.Key)
		}
	}
}
