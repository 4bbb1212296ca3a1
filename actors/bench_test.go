package actors_test

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hobom/hobom-event-processor/actors"
	"github.com/hobom/hobom-event-processor/messages"
)

// The benchmarks run the real actor tree against in-memory fakes of its
// ports, so they measure the actors' own cost: the hops poller → publisher
// → produce promise → mark jobs → BatchResolved → poller, the encoding and
// the bookkeeping, without gRPC or Kafka.

// benchOutbox hands out one batch per Find as the benchmark feeds them and
// counts the marks.
type benchOutbox struct {
	batches chan []messages.Event
	marked  atomic.Int64
	finds   atomic.Int64
}

func newBenchOutbox() *benchOutbox {
	return &benchOutbox{batches: make(chan []messages.Event)}
}

func (o *benchOutbox) Find(ctx context.Context, _ messages.FindRPC, _, _ string, _ int) ([]messages.Event, error) {
	o.finds.Add(1)
	select {
	case b := <-o.batches:
		// A copy, as a real find returns fresh rows: the poller filters
		// the rows it gets in place.
		return slices.Clone(b), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (o *benchOutbox) MarkSent(context.Context, string) error {
	o.marked.Add(1)
	return nil
}

// benchMetrics signals when the publisher has resolved as many events SENT
// as the rounds so far handed over: a round ends when its batch is
// resolved, not at its last mark, whose result the publisher may take
// rounds later (a worker goroutine preempted between the mark and its
// report), by when the poller would still count the batch in flight.
type benchMetrics struct {
	sent, want atomic.Int64
	done       chan struct{}
}

func (m *benchMetrics) Resolved(_ string, o messages.Outcome, n int) {
	if o == messages.OutcomeSent && m.sent.Add(int64(n)) == m.want.Load() {
		m.done <- struct{}{}
	}
}
func (*benchMetrics) PollDone(string, time.Duration, int, error) {}
func (*benchMetrics) ProduceDone(string, time.Duration, error)   {}
func (*benchMetrics) MarkDone(string, time.Duration, error)      {}
func (*benchMetrics) ChildRestarted(string)                      {}
func (*benchMetrics) OldestPending(string, time.Duration)        {}
func (*benchMetrics) Replayed(string)                            {}
func (*benchMetrics) AuditPending(int)                           {}
func (*benchMetrics) AuditDropped()                              {}

func (o *benchOutbox) MarkFailed(context.Context, string, string) error { return nil }

// ackProducer acks every record at once, from the producing goroutine, as
// an instantly fast broker would.
type ackProducer struct{ records atomic.Int64 }

func (p *ackProducer) Produce(_ context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	p.records.Add(1)
	promise(r, nil)
}

type nopStore struct{}

func (nopStore) Put(context.Context, string, []byte, actors.DeadLetterMeta, time.Duration) error {
	return nil
}

func benchTreeConfig(routes []messages.Route) actors.TreeConfig {
	mark := actors.RetryPolicy{Attempts: 1, Timeout: time.Minute}
	return actors.TreeConfig{
		Routes: routes,
		Poller: actors.PollerConfig{Interval: time.Hour, MaxBackoff: time.Hour, FindLimit: 5000, FindTimeout: time.Hour, BatchTimeout: time.Hour},
		Publisher: actors.PublisherConfig{Attempts: 1, Backoff: time.Millisecond, MaxRecordBytes: 990_000, MaxInflightRecords: 10_000,
			Mark: mark, MarkConcurrency: 32, UnmarkedMemory: 100_000},
		DLQ:            actors.DLQConfig{TTL: time.Hour, Write: mark, Mark: mark, Concurrency: 1, MaxReasonBytes: 1024},
		RestartBackoff: time.Second, MaxRestartBackoff: time.Second, StableAfter: time.Minute, PollerInboxSize: 8,
	}
}

func benchEvents(eventType string, n int) []messages.Event {
	evs := make([]messages.Event, n)
	for i := range evs {
		s := strconv.Itoa(i)
		evs[i] = messages.Event{ID: "row-" + s, EventID: "evt-" + s, EventType: eventType, Status: messages.StatusPending,
			Version: 1, CreatedAt: "2024-01-01T00:00:00Z", UpdatedAt: "2024-01-01T00:00:00Z"}
		if eventType == messages.EventTypeHoBomLog {
			evs[i].Log = &messages.LogPayload{TraceID: "trace-" + s, Level: "INFO", Method: "GET", Path: "/api/items/" + s,
				StatusCode: 200, Host: "host-1", UserID: "user-" + s, ServiceType: "HOBOM_BACKEND", Message: "request " + s}
		} else {
			evs[i].Message = &messages.MessagePayload{ID: "msg-" + s, Title: "title " + s, Body: "body " + s,
				Recipient: "user" + s + "@example.com", SenderID: "sender-" + s, Type: "MAIL_MESSAGE"}
		}
	}
	return evs
}

// BenchmarkTreeRoundTrip: one op is one batch found by the poller,
// encoded and produced by the publisher, acked, marked SENT through the
// mark jobs and resolved back to the poller. ns/event and allocs/event
// are the per-event cost of the actor tree.
func BenchmarkTreeRoundTrip(b *testing.B) {
	for _, typ := range []string{messages.EventTypeMessage, messages.EventTypeHoBomLog} {
		for _, size := range []int{1, 100, 5000} {
			b.Run(fmt.Sprintf("%s/batch=%d", typ, size), func(b *testing.B) {
				benchRoundTrip(b, typ, size)
			})
		}
	}
}

func benchRoundTrip(b *testing.B, eventType string, size int) {
	var route messages.Route
	for _, r := range messages.DefaultRoutes() {
		if r.EventType == eventType {
			route = r
		}
	}
	engine, err := actor.NewEngine(actor.NewEngineConfig())
	if err != nil {
		b.Fatal(err)
	}
	ob, prod, bm := newBenchOutbox(), &ackProducer{}, &benchMetrics{done: make(chan struct{}, 1)}
	tree, err := actors.StartTree(engine, benchTreeConfig([]messages.Route{route}), actors.Deps{
		Outbox: ob, Producer: actors.NeverFull{Client: prod}, Store: nopStore{}, Log: zerolog.Nop(), Metrics: bm,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := tree.Stop(ctx); err != nil {
			b.Error(err)
		}
	})
	// Rounds take turns over batches with distinct event ids: the poller
	// forgets a resolved batch's ids only at its next find but one, and
	// drops the rows of batches it counts in flight (with one batch the
	// benchmark hung for good). A round that does not finish fails the
	// benchmark instead of hanging it.
	const sets = 16
	var batches [sets][]messages.Event
	for i := range batches {
		batches[i] = benchEvents(eventType, size)
		for j := range batches[i] {
			batches[i][j].EventID = strconv.Itoa(i) + "-" + batches[i][j].EventID
		}
	}
	turn := 0
	round := func() {
		bm.want.Add(int64(size))
		ob.batches <- batches[turn%sets]
		turn++
		select {
		case <-bm.done:
		case <-time.After(time.Minute):
			b.Fatalf("round %d not done after a minute: %d of %d resolved SENT, %d marks, %d finds, %d records",
				turn, bm.sent.Load(), bm.want.Load(), ob.marked.Load(), ob.finds.Load(), prod.records.Load())
		}
	}
	round() // warm up: the first poll and the maps' growth
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	n := 0
	for b.Loop() {
		round()
		n++
	}
	elapsed := time.Since(start)
	b.StopTimer()
	runtime.ReadMemStats(&ms1)
	events := float64(n * size)
	b.ReportMetric(float64(elapsed.Nanoseconds())/events, "ns/event")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/events, "allocs/event")
	b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/events, "B/event")
}

// emptyOutbox answers every find with nothing, like an idle backlog.
type emptyOutbox struct{ finds atomic.Int64 }

func (o *emptyOutbox) Find(context.Context, messages.FindRPC, string, string, int) ([]messages.Event, error) {
	o.finds.Add(1)
	return nil, nil
}
func (o *emptyOutbox) MarkSent(context.Context, string) error           { return nil }
func (o *emptyOutbox) MarkFailed(context.Context, string, string) error { return nil }

// BenchmarkStartTree: one op starts a tree of 1,000 pollers (each polls
// once, finds nothing and waits its interval) and stops it; ns/poller and
// B/poller are the cost of a poller actor's life.
func BenchmarkStartTree(b *testing.B) {
	const pollers = 1000
	routes := make([]messages.Route, pollers)
	for i := range routes {
		routes[i] = messages.Route{EventType: "SYN_" + strconv.Itoa(i), Find: messages.FindMessageOutbox, Topic: "hobom.synthetic",
			DLQPrefix: "dlq:syn" + strconv.Itoa(i) + ":", Encoding: messages.MessageEncoding}
	}
	cfg := benchTreeConfig(routes)
	b.ReportAllocs()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	start := time.Now()
	n := 0
	for b.Loop() {
		engine, err := actor.NewEngine(actor.NewEngineConfig())
		if err != nil {
			b.Fatal(err)
		}
		ob := &emptyOutbox{}
		tree, err := actors.StartTree(engine, cfg, actors.Deps{Outbox: ob, Producer: actors.NeverFull{Client: &ackProducer{}}, Store: nopStore{}, Log: zerolog.Nop()})
		if err != nil {
			b.Fatal(err)
		}
		for ob.finds.Load() < pollers {
			runtime.Gosched()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := tree.Stop(ctx); err != nil {
			b.Fatal(err)
		}
		cancel()
		n++
	}
	elapsed := time.Since(start)
	runtime.ReadMemStats(&ms1)
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(n*pollers), "ns/poller")
	b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/float64(n*pollers), "B/poller")
}
