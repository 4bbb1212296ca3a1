package actors

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/rs/zerolog"

	"github.com/hobom/hobom-event-processor/messages"
)

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
	producer := NewPublisher(ackAtOnce{}, &markCounter{}, nil, dlq, cfg, zerolog.Nop(), nil)
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
