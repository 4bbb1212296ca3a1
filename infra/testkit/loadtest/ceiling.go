package loadtest

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/hobom/hobom-event-processor/messages"
	"github.com/hobom/hobom-event-processor/proto/gen/outboxmessagev1"
)

// The ceilings are the most the stand-in backend and kfake do on this
// machine, measured from outside the processor: two minimal clients of the
// mark rpc (gRPC-Go's generated stubs, and the rpc on raw HTTP/2 frames;
// no retries, no timeouts, no actor) swept over in-flight counts and
// connections, the faster one's maximum being the mark ceiling, and a
// plain franz-go producer swept over clients and linger. The processor's
// own settings never enter them: a relay is reported as a ratio to the
// best point of the sweep.

// markPoint is one point of the mark sweep.
type markPoint struct {
	InFlight int `json:"inFlight"`
	Conns    int `json:"conns"`
	// Marks are the calls answered within the measured window, Took its
	// length and Rate their quotient; Calls counts every call answered,
	// the warm-up's included.
	Marks int64         `json:"marks"`
	Took  time.Duration `json:"tookNs"`
	Rate  float64       `json:"rate"`
	Calls int64         `json:"calls"`
	// WarmupRate is the rate of the warm-up before the window, for
	// comparison: what a point measured from its first call would see.
	WarmupRate float64 `json:"warmupRate"`
	// CPU and World are this process's and the world's CPU while the
	// point's calls ran (not while its backend was seeded).
	CPU   time.Duration `json:"cpuNs"`
	World time.Duration `json:"worldCpuNs"`
	// AllocBytes and AllocObjects are what the client allocated during
	// the point's calls (the world runs in another process); for the
	// gRPC-Go client, about the floor of garbage one unary mark rpc makes
	// in any gRPC-Go client (the sweep's callers add a request each).
	AllocBytes   uint64 `json:"allocBytes"`
	AllocObjects uint64 `json:"allocObjects"`
}

func (p markPoint) label() string { return fmt.Sprintf("%d in flight × %d conn", p.InFlight, p.Conns) }

// markSweep measures every (in flight, connections) pair for window each,
// after warm unmeasured, each against a fresh backend seeded with enough
// PENDING rows, so that every call is a real PENDING → SENT transition.
func (r *runner) markSweep(ctx context.Context, client markClient, inFlight, conns []int, warm, window time.Duration) ([]markPoint, error) {
	var out []markPoint
	for _, c := range conns {
		for _, f := range inFlight {
			p, err := r.markPointWith(ctx, client, f, c, warm, window)
			if err != nil {
				return out, fmt.Errorf("mark sweep %d in flight × %d conns: %w", f, c, err)
			}
			out = append(out, p)
		}
	}
	return out, nil
}

// clientSweep is one client's sweep of the mark rpc.
type clientSweep struct {
	name     string     // for the report: "gRPC-Go client", "raw HTTP/2 client"
	client   markClient // the client swept
	pts      []markPoint
	best     markPoint
	inFlight []int     // the in-flight counts swept, any extension included
	sum      markPoint // sumPoints(pts): the calls, CPU and allocations cover the warm-ups too
	others   float64   // other processes' cores during the sweep
}

// allocBytes and allocObjects are what the client allocated per call
// over the sweep.
func (sw clientSweep) allocBytes() float64 {
	return float64(sw.sum.AllocBytes) / float64(max(sw.sum.Calls, 1))
}

func (sw clientSweep) allocObjects() float64 {
	return float64(sw.sum.AllocObjects) / float64(max(sw.sum.Calls, 1))
}

// sweepClient sweeps client over the options' in-flight counts and
// connections. A maximum at the largest in-flight count may lie beyond
// it: the sweep goes on, doubling at the best point's connections, while
// that improves (twice at most).
func (r *runner) sweepClient(ctx context.Context, name string, client markClient) (clientSweep, error) {
	o := r.opts
	sw := clientSweep{name: name, client: client}
	u := r.startUsage()
	pts, err := r.markSweep(ctx, client, o.SweepInFlight, o.SweepConns, o.SweepWarmup, o.SweepWindow)
	if err != nil {
		return sw, err
	}
	best := bestMark(pts)
	sw.inFlight = slices.Clone(o.SweepInFlight)
	for range 2 {
		if best.InFlight != slices.Max(sw.inFlight) {
			break
		}
		p, err := r.markPointWith(ctx, client, 2*best.InFlight, best.Conns, o.SweepWarmup, o.SweepWindow)
		if err != nil {
			return sw, fmt.Errorf("mark sweep %d in flight × %d conns: %w", 2*best.InFlight, best.Conns, err)
		}
		pts = append(pts, p)
		sw.inFlight = append(sw.inFlight, p.InFlight)
		if p.Rate <= best.Rate {
			break
		}
		best = p
	}
	_, _, sw.others = u.finish()
	sw.pts, sw.best, sw.sum = pts, best, sumPoints(pts)
	return sw, nil
}

// fasterSweep is the sweep of a and b with the higher maximum: the mark
// ceiling's.
func fasterSweep(a, b clientSweep) clientSweep {
	if b.best.Rate > a.best.Rate {
		return b
	}
	return a
}

// reportSweep adds a client's sweep to the report: its rates by
// connections and in flight, and its maximum with what, the CPU per call
// on either side and the client's allocations per call.
func (r *runner) reportSweep(sw clientSweep, what string) {
	name := sw.name
	for _, c := range r.opts.SweepConns {
		line := ""
		for _, p := range sw.pts {
			if p.Conns == c {
				line += fmt.Sprintf("%d: %s  ", p.InFlight, count(int(p.Rate)))
			}
		}
		r.report.add(Row{Scenario: "ceiling: mark rpc sweep", Figure: fmt.Sprintf("%s, %d conn, by in flight", name, c), Text: strings.TrimSpace(line) + " ev/s"})
	}
	edge := ""
	if sw.best.Conns == slices.Max(r.opts.SweepConns) {
		edge = "; at the sweep's most connections"
	}
	r.report.add(Row{Scenario: "ceiling: mark rpc sweep", Figure: name + ", maximum", Value: sw.best.Rate, Unit: "ev/s",
		Detail: fmt.Sprintf("at %s%s; %s; %.1f µs CPU and %s B in %.1f allocs per rpc here + %.1f µs in the backend; other processes %.2f cores",
			sw.best.label(), edge, what, perEventMicros(sw.sum.CPU, int(sw.sum.Calls)), count(int(sw.allocBytes())), sw.allocObjects(),
			perEventMicros(sw.sum.World, int(sw.sum.Calls)), sw.others)})
}

// markProbeRows is how many rows a sweep point seeds: more than the
// fastest point marks in its run (150,000 a second of it, against the
// raw client's fastest seen on 2 cores, 90,000 calls/s); a point that
// runs out fails rather than report a rate cut short.
func markProbeRows(run time.Duration) int { return max(2000, int(150_000*run.Seconds())) }

// markCaller marks one event SENT; each caller goroutine of a point owns
// the one it is given.
type markCaller func(eventID string) error

// markClient opens nConns connections to addr and returns a caller for
// each of inFlight goroutines, spread over them, and what closes them.
type markClient func(ctx context.Context, addr string, nConns, inFlight int) ([]markCaller, func(), error)

// grpcMarkers is the sweep's gRPC-Go client: the generated stub on
// gRPC-Go connections (minimalMarkers).
func (r *runner) grpcMarkers(ctx context.Context, addr string, nConns, inFlight int) ([]markCaller, func(), error) {
	cctx, clients, closeClients, err := r.minimalMarkers(ctx, addr, nConns)
	if err != nil {
		return nil, nil, err
	}
	callers := make([]markCaller, inFlight)
	for g := range callers {
		cl := clients[g%nConns]
		callers[g] = func(id string) error {
			_, err := cl.PatchOutboxMarkAsSentUseCase(cctx, &outboxmessagev1.MarkRequest{EventId: id})
			return err
		}
	}
	return callers, closeClients, nil
}

// rawMarkers is the sweep's second client: the mark rpc written on
// HTTP/2 frames (rawMarkConn), whose calls cost a fraction of gRPC-Go's.
func (r *runner) rawMarkers(ctx context.Context, addr string, nConns, inFlight int) ([]markCaller, func(), error) {
	var conns []*rawMarkConn
	closeAll := func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}
	for range nConns {
		c, err := dialRawMark(addr, r.cfg.GRPCAPIKey)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		conns = append(conns, c)
	}
	// The client has no deadlines: the run's end closes the connections,
	// which fails the calls in flight, as it cancels the gRPC client's.
	stop := context.AfterFunc(ctx, closeAll)
	callers := make([]markCaller, inFlight)
	for g := range callers {
		c, call := conns[g%nConns], newRawMarkCall()
		callers[g] = func(id string) error { return c.Mark(call, id) }
	}
	return callers, func() { stop(); closeAll() }, nil
}

// markPointWith runs client's inFlight callers over nConns connections
// for warm, then counts the calls answered in the window after it. The
// warm-up takes what a point's start costs and a steady stream of calls
// does not: new connections, a freshly seeded backend's first garbage
// collections, the server's handler goroutines growing their stacks. The
// warm-up's own rate (WarmupRate) ran a median 3 % below the window's,
// and up to half of it at 2048 in flight.
func (r *runner) markPointWith(ctx context.Context, client markClient, inFlight, nConns int, warm, window time.Duration) (markPoint, error) {
	p := markPoint{InFlight: inFlight, Conns: nConns}
	addr, err := r.world.NewBackend(BackendSpec{})
	if err != nil {
		return p, err
	}
	rows := markProbeRows(warm + window)
	const prefix = "sweep-"
	if err := r.world.Seed(SeedSpec{Types: TypeSet{Names: []string{messages.EventTypeMessage}}, PerType: rows, IDPrefix: prefix}); err != nil {
		return p, err
	}
	ids := make([]string, rows)
	for i := range ids {
		ids[i] = prefix + strconv.Itoa(i)
	}
	callers, closeClients, err := client(ctx, addr, nConns, inFlight)
	if err != nil {
		return p, err
	}
	defer closeClients()
	var next, answered, failed atomic.Int64
	var firstErr atomic.Pointer[error] // atomic.Value would panic on errors of two types
	u := r.startUsage()
	t0 := time.Now()
	measureFrom, deadline := t0.Add(warm), t0.Add(warm+window)
	ab0, ao0 := allocs()
	var wg sync.WaitGroup
	for _, mark := range callers {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				i := next.Add(1) - 1
				if i >= int64(rows) {
					return
				}
				if err := mark(ids[i]); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, &err)
					continue
				}
				answered.Add(1)
			}
		})
	}
	time.Sleep(time.Until(measureFrom))
	n0, w0 := answered.Load(), time.Now()
	time.Sleep(time.Until(deadline))
	n1, w1 := answered.Load(), time.Now()
	wg.Wait()
	ab1, ao1 := allocs()
	p.CPU, p.World, _ = u.finish()
	p.AllocBytes, p.AllocObjects = ab1-ab0, ao1-ao0
	if f := failed.Load(); f > 0 {
		return p, fmt.Errorf("%d mark rpcs failed, first: %w", f, *firstErr.Load())
	}
	if next.Load() >= int64(rows) {
		return p, fmt.Errorf("ran out of its %d seeded rows before the window ended", rows)
	}
	p.Calls, p.Marks, p.Took = answered.Load(), n1-n0, w1.Sub(w0)
	p.Rate = float64(p.Marks) / p.Took.Seconds()
	if d := w0.Sub(t0); d > 0 {
		p.WarmupRate = float64(n0) / d.Seconds()
	}
	return p, nil
}

// minimalMarkers are n connections to addr with the generated mark stub
// on each, connected (an unknown id answers NOT_FOUND after a round trip),
// and the context that carries the API key to call them with.
func (r *runner) minimalMarkers(ctx context.Context, addr string, n int) (context.Context, []outboxmessagev1.PatchOutboxControllerClient, func(), error) {
	if r.cfg.GRPCAPIKey != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "x-api-key", r.cfg.GRPCAPIKey)
	}
	var conns []*grpc.ClientConn
	closeAll := func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}
	clients := make([]outboxmessagev1.PatchOutboxControllerClient, n)
	for i := range clients {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			closeAll()
			return ctx, nil, nil, err
		}
		conns = append(conns, conn)
		clients[i] = outboxmessagev1.NewPatchOutboxControllerClient(conn)
		_, _ = clients[i].PatchOutboxMarkAsSentUseCase(ctx, &outboxmessagev1.MarkRequest{EventId: "warm-up"})
	}
	return ctx, clients, closeAll, nil
}

// plainProducerOpts are a plain franz-go producer's options: the world's
// brokers and the processor's acks, plus extra.
func (r *runner) plainProducerOpts(extra ...kgo.Opt) []kgo.Opt {
	opts := append([]kgo.Opt{kgo.SeedBrokers(r.info.KafkaAddrs...)}, extra...)
	if r.cfg.KafkaAcks == "leader" {
		return append(opts, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	}
	return append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
}

func bestMark(ps []markPoint) markPoint {
	return fastest(ps, func(p markPoint) float64 { return p.Rate })
}

// fastest is the point of ps with the highest rate (the zero point when
// ps is empty).
func fastest[P any](ps []P, rate func(P) float64) P {
	var b P
	for _, p := range ps {
		if rate(p) > rate(b) {
			b = p
		}
	}
	return b
}

// neighbours are the best point and the in-flight counts on either side
// of it on the same connections: the small sweep run beside each relay.
func neighbours(best markPoint, inFlight []int) (fs []int) {
	for i, f := range inFlight {
		if f == best.InFlight {
			if i > 0 {
				fs = append(fs, inFlight[i-1])
			}
			fs = append(fs, f)
			if i+1 < len(inFlight) {
				fs = append(fs, inFlight[i+1])
			}
		}
	}
	if len(fs) == 0 {
		fs = []int{best.InFlight}
	}
	return fs
}

// producePoint is one point of the produce sweep.
type producePoint struct {
	Clients int           `json:"clients"`
	Linger  time.Duration `json:"lingerNs"`
	Records int64         `json:"records"`
	Events  int64         `json:"events"`
	Took    time.Duration `json:"tookNs"`
	Rate    float64       `json:"rate"` // events/s
	// WarmupRate is the rate acked during the warm-up before the window.
	WarmupRate float64 `json:"warmupRate"`
}

func (p producePoint) label() string {
	return fmt.Sprintf("%d client(s), linger %s", p.Clients, dur(p.Linger))
}

// produceSweep produces sets' records (cycled) at each point through plain
// franz-go clients with the processor's acks, to a topic of their own that
// is deleted afterwards (kfake keeps every record), for warm unmeasured,
// then for window, whose acked events make the point's rate: as the mark
// points, a point is not charged with its own start (new clients' batches
// and connections, kfake's first partitions growing).
func (r *runner) produceSweep(ctx context.Context, name string, sets []ceilingRecords, clients []int, lingers []time.Duration, warm, window time.Duration) ([]producePoint, error) {
	var out []producePoint
	for _, c := range clients {
		for _, l := range lingers {
			p, err := r.producePoint(ctx, name, sets, c, l, warm, window)
			if err != nil {
				return out, fmt.Errorf("produce sweep %s %d clients, linger %s: %w", name, c, l, err)
			}
			out = append(out, p)
		}
	}
	return out, nil
}

var sweepTopicSeq atomic.Int64

func (r *runner) producePoint(ctx context.Context, name string, sets []ceilingRecords, nClients int, linger time.Duration, warm, window time.Duration) (producePoint, error) {
	p := producePoint{Clients: nClients, Linger: linger}
	topic := "loadtest.ceiling." + strconv.FormatInt(sweepTopicSeq.Add(1), 10)
	adm := kadm.NewClient(r.admin)
	if _, err := adm.CreateTopic(ctx, -1, -1, nil, topic); err != nil {
		return p, fmt.Errorf("create %s: %w", topic, err)
	}
	defer func() { _, _ = adm.DeleteTopics(context.WithoutCancel(ctx), topic) }()
	type rec struct {
		key, value []byte
		headers    []kgo.RecordHeader
		events     int
	}
	var recs []rec
	add := func(x *kgo.Record) { recs = append(recs, rec{x.Key, x.Value, x.Headers, eventsOf(x)}) }
	if len(sets) == 2 { // the mix: alternate message and log records
		a, b := sets[0].recs, sets[1].recs
		for i := range max(len(a), len(b)) {
			if i < len(a) {
				add(a[i])
			}
			if i < len(b) {
				add(b[i])
			}
		}
	} else {
		for _, s := range sets {
			for _, x := range s.recs {
				add(x)
			}
		}
	}
	opts := r.plainProducerOpts(kgo.ProducerLinger(linger), kgo.MaxBufferedRecords(100_000), kgo.MaxBufferedBytes(32<<20))
	cls := make([]*kgo.Client, nClients)
	for i := range cls {
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			return p, err
		}
		defer cl.Close()
		// Warm: metadata of the topic and a connection.
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("warm-up")}).FirstErr(); err != nil {
			return p, fmt.Errorf("warm-up produce: %w", err)
		}
		cls[i] = cl
	}
	var acked, events, failed atomic.Int64
	var firstErr atomic.Pointer[error] // atomic.Value would panic on errors of two types
	t0 := time.Now()
	measureFrom, deadline := t0.Add(warm), t0.Add(warm+window)
	var wg, inflight sync.WaitGroup
	for g, cl := range cls {
		wg.Go(func() {
			for i := g; time.Now().Before(deadline); i += nClients {
				x := recs[i%len(recs)]
				inflight.Add(1)
				// Produce blocks while MaxBufferedRecords are in flight.
				cl.Produce(ctx, &kgo.Record{Topic: topic, Key: x.key, Value: x.value, Headers: x.headers}, func(_ *kgo.Record, err error) {
					if err != nil {
						failed.Add(1)
						firstErr.CompareAndSwap(nil, &err)
					} else {
						acked.Add(1)
						events.Add(int64(x.events))
					}
					inflight.Done()
				})
			}
		})
	}
	time.Sleep(time.Until(measureFrom))
	r0, e0, w0 := acked.Load(), events.Load(), time.Now()
	time.Sleep(time.Until(deadline))
	r1, e1, w1 := acked.Load(), events.Load(), time.Now()
	wg.Wait()
	inflight.Wait()
	if f := failed.Load(); f > 0 {
		return p, fmt.Errorf("%d records failed, first: %w", f, *firstErr.Load())
	}
	p.Records, p.Events, p.Took = r1-r0, e1-e0, w1.Sub(w0)
	p.Rate = float64(p.Events) / p.Took.Seconds()
	if d := w0.Sub(t0); d > 0 {
		p.WarmupRate = float64(e0) / d.Seconds()
	}
	return p, nil
}

func bestProduce(ps []producePoint) producePoint {
	return fastest(ps, func(p producePoint) float64 { return p.Rate })
}

// eventsOf is the number of events a record carries: the ids of its
// event-id header (comma-separated for a log array).
func eventsOf(r *kgo.Record) int {
	for _, h := range r.Headers {
		if h.Key == messages.HeaderEventID {
			return 1 + bytes.Count(h.Value, []byte{','})
		}
	}
	return 1
}
