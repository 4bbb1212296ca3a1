package loadtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hobom/hobom-event-processor/infra/devkit/fakebackend"
	"github.com/hobom/hobom-event-processor/messages"
	"github.com/hobom/hobom-event-processor/proto/gen/outboxlogv1"
	"github.com/hobom/hobom-event-processor/proto/gen/outboxmessagev1"
)

// The world is what the processor talks to and does not own: the stand-in
// backend and the Kafka fake. The load test runs it in a child process by
// default, so that the heap, RSS, goroutines and CPU it measures are the
// processor's and not those of a million seeded backend rows (about 435 MB)
// or of kfake's stored records. localWorld is the world itself; the child
// serves it over net/rpc (child.go) and the parent holds a remoteWorld.

// Topics the world's Kafka creates up front.
const (
	TopicMessages  = "hobom.messages"
	TopicLogs      = "hobom.logs"
	TopicSynthetic = "hobom.synthetic"
)

// latencyPrefix starts the eventId of every event of the offered-load
// generator; the creation time in unix nanoseconds follows it, so that a
// consumer can compute an event's latency from the record key alone.
const latencyPrefix = "lat-"

// SyntheticType is the event type of the i-th synthetic route.
func SyntheticType(i int) string { return "SYN_" + strconv.Itoa(i) }

// SyntheticRoutes are n routes served by the message find rpc, written to
// TopicSynthetic with the message encoding, each with its own DLQ prefix.
func SyntheticRoutes(n int) []messages.Route {
	rs := make([]messages.Route, n)
	for i := range rs {
		rs[i] = messages.Route{
			EventType: SyntheticType(i), Find: messages.FindMessageOutbox, Topic: TopicSynthetic,
			DLQPrefix: "dlq:syn" + strconv.Itoa(i) + ":", Encoding: messages.MessageEncoding,
		}
	}
	return rs
}

// TypeSet names event types compactly: Names plus the first Synthetic
// synthetic types (a list of 10,000 names would be sent on every poll).
type TypeSet struct {
	Names     []string
	Synthetic int
}

func (s TypeSet) each(fn func(string)) {
	for _, n := range s.Names {
		fn(n)
	}
	for i := range s.Synthetic {
		fn(SyntheticType(i))
	}
}

func (s TypeSet) len() int { return len(s.Names) + s.Synthetic }

// WorldInfo says where the world listens.
type WorldInfo struct {
	KafkaAddrs []string
	PID        int
}

// BackendSpec configures a fresh stand-in backend.
type BackendSpec struct {
	// OldFind makes the backend's find behave like an old one's: the find
	// limit and cursor the processor sends are dropped, and every
	// matching row is returned.
	OldFind bool
	// BatchMarks serves the optional batch-mark rpc; without it the
	// backend answers UNIMPLEMENTED, as the production backend does today,
	// and the processor marks one event per call.
	BatchMarks bool
}

// SeedSpec adds PerType PENDING rows to each type of Types. With IDPrefix
// set the eventIds are IDPrefix followed by a running number from 0, so the
// caller knows them; otherwise the backend makes them.
type SeedSpec struct {
	Types    TypeSet
	PerType  int
	IDPrefix string
	// SharedPayload gives every row of a type the same payload, so that
	// millions of rows seed in seconds (the payloads are read only).
	SharedPayload bool
}

// CountSpec asks for the number of rows of Types with Status.
type CountSpec struct {
	Types  TypeSet
	Status string
}

// Calls are the backend's rpc counters.
type Calls struct {
	Find, MarkSent, MarkFailed int64
	// MarkMany counts batch-mark calls; BatchSent the ids they marked SENT.
	MarkMany, BatchSent int64
}

// Sent is every SENT mark the backend applied or was asked for, single
// and batched.
func (c Calls) Sent() int64 { return c.MarkSent + c.BatchSent }

// LatencySpec starts the offered-load generator: Rate MESSAGE events per
// second for Duration, each created with its creation time as CreatedAt and
// in its eventId, and a consumer of TopicMessages that notes when each of
// them arrives.
type LatencySpec struct {
	Rate     int
	Duration time.Duration
}

// LatencyResult is what the generator offered and the consumer saw.
type LatencyResult struct {
	Generated int
	// Seen counts distinct generated events read from Kafka; Duplicates the
	// extra copies.
	Seen, Duplicates int
	// Latencies are creation → arrival at the consumer, which reads with a
	// long-polling fetch that the broker answers when the record is
	// appended, i.e. when the producer is acked; sorted ascending.
	Latencies []time.Duration
	// SentLatencies are creation → the backend's sentAt of the events
	// marked SENT, sorted ascending.
	SentLatencies []time.Duration
	// AchievedRate is the generator's actual rate.
	AchievedRate float64
}

// Progress is how far the types of a CountSpec got: the fewest rows of one
// type with the status, how many types have none, and the total.
type Progress struct {
	Min, Zero, Total int
}

// ProcUsage is a process's resource use, for context in the report.
type ProcUsage struct {
	CPU       time.Duration
	RSSBytes  int64
	HeapBytes uint64
}

// World is the backend and Kafka as the load test drives them.
type World interface {
	Info() (WorldInfo, error)
	// NewBackend replaces the backend by a fresh, empty one and returns its
	// address; the old one is closed.
	NewBackend(BackendSpec) (string, error)
	Seed(SeedSpec) error
	Count(CountSpec) (int, error)
	Progress(CountSpec) (Progress, error)
	Calls() (Calls, error)
	StartLatency(LatencySpec) error
	// LatencyResult waits up to wait for every generated event to arrive.
	LatencyResult(wait time.Duration) (LatencyResult, error)
	Usage() (ProcUsage, error)
	Close() error
}

// localWorld runs the backend and kfake in this process.
type localWorld struct {
	kafka *kfake.Cluster
	addrs []string

	mu      sync.Mutex
	backend *fakebackend.Server
	base    Calls // counters of closed backends, so Calls never goes back
	lat     *latencyRun
}

// newLocalWorld starts kfake (one broker, the topics seeded) in this
// process; call NewBackend before using the backend.
func newLocalWorld() (*localWorld, error) {
	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.AllowAutoTopicCreation(),
		kfake.SeedTopics(-1, TopicMessages, TopicLogs, TopicSynthetic),
	)
	if err != nil {
		return nil, fmt.Errorf("loadtest: start kfake: %w", err)
	}
	return &localWorld{kafka: c, addrs: c.ListenAddrs()}, nil
}

func (w *localWorld) Info() (WorldInfo, error) {
	return WorldInfo{KafkaAddrs: slices.Clone(w.addrs), PID: pid()}, nil
}

func (w *localWorld) NewBackend(spec BackendSpec) (string, error) {
	w.mu.Lock()
	old := w.backend
	w.backend = nil
	w.mu.Unlock()
	if old != nil {
		w.base = addCalls(w.base, callsOf(old))
		old.Close()
	}
	freeMemory()
	srv, err := fakebackend.Start(fakebackend.Options{BatchMarks: spec.BatchMarks})
	if err != nil {
		return "", err
	}
	if spec.OldFind {
		srv.SetHook(fakebackend.FindMessages, func(req any) error {
			r := req.(*outboxmessagev1.Request)
			r.Limit, r.AfterEventId = nil, nil
			return nil
		})
		srv.SetHook(fakebackend.FindLogs, func(req any) error {
			r := req.(*outboxlogv1.Request)
			r.Limit, r.AfterEventId = nil, nil
			return nil
		})
	}
	w.mu.Lock()
	w.backend = srv
	w.mu.Unlock()
	return srv.Addr(), nil
}

func (w *localWorld) srv() (*fakebackend.Server, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.backend == nil {
		return nil, errors.New("loadtest: no backend started")
	}
	return w.backend, nil
}

func (w *localWorld) Seed(spec SeedSpec) error {
	srv, err := w.srv()
	if err != nil {
		return err
	}
	next := 0
	spec.Types.each(func(typ string) {
		var mk func(int) messages.Event
		if spec.SharedPayload {
			one := synthetic(typ, 0)
			mk = func(int) messages.Event { return messages.Event{EventType: typ, Message: one.Message, Log: one.Log} }
		}
		if spec.IDPrefix != "" {
			first := next
			mk = func(i int) messages.Event {
				ev := synthetic(typ, first+i)
				ev.EventID = spec.IDPrefix + strconv.Itoa(first+i)
				return ev
			}
		}
		srv.Seed(typ, spec.PerType, mk)
		next += spec.PerType
	})
	return nil
}

func (w *localWorld) Count(spec CountSpec) (int, error) {
	srv, err := w.srv()
	if err != nil {
		return 0, err
	}
	n := 0
	spec.Types.each(func(typ string) { n += srv.Count(typ, spec.Status) })
	return n, nil
}

func (w *localWorld) Progress(spec CountSpec) (Progress, error) {
	srv, err := w.srv()
	if err != nil {
		return Progress{}, err
	}
	p := Progress{Min: -1}
	spec.Types.each(func(typ string) {
		n := srv.Count(typ, spec.Status)
		p.Total += n
		if n == 0 {
			p.Zero++
		}
		if p.Min < 0 || n < p.Min {
			p.Min = n
		}
	})
	return p, nil
}

func callsOf(s *fakebackend.Server) Calls {
	sent, _ := s.BatchMarked()
	return Calls{
		Find:       s.Calls(fakebackend.FindMessages) + s.Calls(fakebackend.FindLogs),
		MarkSent:   s.Calls(fakebackend.MarkSent),
		MarkFailed: s.Calls(fakebackend.MarkFailed),
		MarkMany:   s.Calls(fakebackend.MarkMany),
		BatchSent:  sent,
	}
}

func addCalls(a, b Calls) Calls {
	return Calls{Find: a.Find + b.Find, MarkSent: a.MarkSent + b.MarkSent, MarkFailed: a.MarkFailed + b.MarkFailed,
		MarkMany: a.MarkMany + b.MarkMany, BatchSent: a.BatchSent + b.BatchSent}
}

func (w *localWorld) Calls() (Calls, error) {
	srv, err := w.srv()
	if err != nil {
		return Calls{}, err
	}
	return addCalls(w.base, callsOf(srv)), nil
}

func (w *localWorld) Usage() (ProcUsage, error) { return selfUsage(), nil }

func (w *localWorld) Close() error {
	w.mu.Lock()
	srv, lat := w.backend, w.lat
	w.backend, w.lat = nil, nil
	w.mu.Unlock()
	if lat != nil {
		lat.stop()
	}
	if srv != nil {
		srv.Close()
	}
	w.kafka.Close()
	return nil
}

// synthetic is the i-th row of a seeded backlog: the stand-in's own
// synthetic payloads (a log payload for HOBOM_LOG, a mail message otherwise).
func synthetic(eventType string, i int) messages.Event {
	n := strconv.Itoa(i)
	ev := messages.Event{EventType: eventType}
	if eventType == messages.EventTypeHoBomLog {
		ev.Log = &messages.LogPayload{
			TraceID: "trace-" + n, Level: "INFO", Method: "GET", Path: "/api/items/" + n, StatusCode: 200,
			Host: "fake-host", UserID: "user-" + n, ServiceType: "HOBOM_BACKEND", Message: "request " + n,
		}
		return ev
	}
	ev.Message = &messages.MessagePayload{
		ID: "msg-" + n, Title: "title " + n, Body: "body " + n, Recipient: "user" + n + "@example.com",
		SenderID: "sender-" + n, Type: "MAIL_MESSAGE",
	}
	return ev
}

// latencyRun is one offered-load generator with its consumer.
type latencyRun struct {
	spec             LatencySpec
	cancel           context.CancelFunc
	genDone, conDone chan struct{}

	srv       *fakebackend.Server
	mu        sync.Mutex
	generated int
	ids       []string // generated event ids
	genTook   time.Duration
	seen      map[string]time.Duration // eventId → latency
	dups      int
	conErr    error
}

func (w *localWorld) StartLatency(spec LatencySpec) error {
	srv, err := w.srv()
	if err != nil {
		return err
	}
	if spec.Rate <= 0 || spec.Duration <= 0 {
		return fmt.Errorf("loadtest: latency rate %d, duration %v", spec.Rate, spec.Duration)
	}
	// The consumer starts at the topic's current end, before the first
	// event is created, and long-polls: kfake answers a waiting fetch as
	// soon as a produce appends to the partition.
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(w.addrs...),
		kgo.ConsumeTopics(TopicMessages),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()),
		kgo.FetchMaxWait(time.Second),
		kgo.FetchMinBytes(1),
	)
	if err != nil {
		return fmt.Errorf("loadtest: latency consumer: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	// Make sure the consumer has its start offsets before generating.
	if err := waitAssigned(ctx, cl, TopicMessages); err != nil {
		cancel()
		cl.Close()
		return err
	}
	r := &latencyRun{spec: spec, cancel: cancel, srv: srv, genDone: make(chan struct{}), conDone: make(chan struct{}),
		seen: make(map[string]time.Duration, spec.Rate*int(spec.Duration/time.Second+1))}
	w.mu.Lock()
	if old := w.lat; old != nil {
		defer old.stop()
	}
	w.lat = r
	w.mu.Unlock()
	go r.consume(ctx, cl)
	go r.generate(ctx, srv)
	return nil
}

// waitAssigned polls once so that the consumer resolves its start offsets
// (AtEnd) now rather than after the first events exist.
func waitAssigned(ctx context.Context, cl *kgo.Client, topic string) error {
	pctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	fs := cl.PollFetches(pctx)
	var err error
	fs.EachError(func(_ string, _ int32, e error) {
		if !errors.Is(e, context.DeadlineExceeded) && !errors.Is(e, context.Canceled) {
			err = e
		}
	})
	if err != nil {
		return fmt.Errorf("loadtest: latency consumer of %s: %w", topic, err)
	}
	return nil
}

// generate adds events at spec.Rate: it wakes about every millisecond and
// adds as many as are due, each created at the time it is added.
func (r *latencyRun) generate(ctx context.Context, srv *fakebackend.Server) {
	defer close(r.genDone)
	start := time.Now()
	total := int(int64(r.spec.Rate) * int64(r.spec.Duration) / int64(time.Second))
	var batch []messages.Event
	n := 0
	for n < total && ctx.Err() == nil {
		due := min(total, int(time.Since(start).Seconds()*float64(r.spec.Rate)))
		if due > n {
			batch = batch[:0]
			now := time.Now()
			created := now.UTC().Format(time.RFC3339Nano)
			for ; n < due; n++ {
				ev := synthetic(messages.EventTypeMessage, n)
				// The sequence number keeps ids unique within a nanosecond.
				ev.EventID = latencyPrefix + strconv.FormatInt(now.UnixNano(), 10) + "-" + strconv.Itoa(n)
				ev.CreatedAt = created
				batch = append(batch, ev)
			}
			srv.Add(batch...)
			r.mu.Lock()
			for i := range batch {
				r.ids = append(r.ids, batch[i].EventID)
			}
			r.generated = n
			r.mu.Unlock()
		}
		time.Sleep(time.Millisecond)
	}
	r.mu.Lock()
	r.genTook = time.Since(start)
	r.mu.Unlock()
}

func (r *latencyRun) consume(ctx context.Context, cl *kgo.Client) {
	defer close(r.conDone)
	defer cl.Close()
	for ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		now := time.Now()
		fs.EachError(func(_ string, _ int32, err error) {
			if ctx.Err() == nil {
				r.mu.Lock()
				r.conErr = err
				r.mu.Unlock()
			}
		})
		r.mu.Lock()
		fs.EachRecord(func(rec *kgo.Record) {
			created, ok := latencyCreated(rec.Key)
			if !ok {
				return
			}
			if _, dup := r.seen[string(rec.Key)]; dup {
				r.dups++
				return
			}
			r.seen[string(rec.Key)] = now.Sub(time.Unix(0, created))
		})
		r.mu.Unlock()
	}
}

// latencyCreated extracts the creation time from a generated event's key,
// lat-<unix nanos>-<sequence number>.
func latencyCreated(key []byte) (int64, bool) {
	k, ok := strings.CutPrefix(string(key), latencyPrefix)
	if !ok {
		return 0, false
	}
	ts, _, ok := strings.Cut(k, "-")
	if !ok {
		return 0, false
	}
	nanos, err := strconv.ParseInt(ts, 10, 64)
	return nanos, err == nil
}

func (w *localWorld) LatencyResult(wait time.Duration) (LatencyResult, error) {
	w.mu.Lock()
	r := w.lat
	w.mu.Unlock()
	if r == nil {
		return LatencyResult{}, errors.New("loadtest: no latency run")
	}
	<-r.genDone
	deadline := time.Now().Add(wait)
	for {
		r.mu.Lock()
		seen, gen := len(r.seen), r.generated
		r.mu.Unlock()
		if seen >= gen || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.stop()
	// The SENT marks follow the Kafka acks; wait for them too.
	for time.Now().Before(deadline) && r.srv.Count(messages.EventTypeMessage, messages.StatusPending) > 0 {
		time.Sleep(10 * time.Millisecond)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	res := LatencyResult{Generated: r.generated, Seen: len(r.seen), Duplicates: r.dups}
	for _, id := range r.ids {
		ev, ok := r.srv.Event(id)
		if !ok || ev.Status != messages.StatusSent {
			continue
		}
		created, ok := latencyCreated([]byte(id))
		sent, err := time.Parse(time.RFC3339Nano, ev.SentAt)
		if ok && err == nil {
			res.SentLatencies = append(res.SentLatencies, sent.Sub(time.Unix(0, created)))
		}
	}
	slices.Sort(res.SentLatencies)
	if r.genTook > 0 {
		res.AchievedRate = float64(r.generated) / r.genTook.Seconds()
	}
	res.Latencies = make([]time.Duration, 0, len(r.seen))
	for _, d := range r.seen {
		res.Latencies = append(res.Latencies, d)
	}
	slices.Sort(res.Latencies)
	if res.Seen < res.Generated && r.conErr != nil {
		return res, fmt.Errorf("loadtest: latency consumer: %w", r.conErr)
	}
	return res, nil
}

func (r *latencyRun) stop() {
	r.cancel()
	<-r.genDone
	<-r.conDone
}
