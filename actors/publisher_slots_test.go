package actors

import (
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/rs/zerolog"

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
	pub := engine.Spawn(NewPublisher(ackAtOnce{}, outbox, nil, dlq, cfg, zerolog.Nop(), nil), "publisher")
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
