package loadtest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hobom/hobom-event-processor/infra/adapters/outbox"
	"github.com/hobom/hobom-event-processor/infra/app"
	"github.com/hobom/hobom-event-processor/messages"
)

// The floor relay is the least work a relay with one mark per event can
// do on this machine, and so about the most such a relay reaches: each
// event is found, written to Kafka and marked SENT with one unary rpc,
// and nothing else happens. No actor, lease, retry, timeout, Redis memory
// or dead letter; marks through a client of the mark sweep (the generated
// stubs on gRPC-Go, or the raw HTTP/2 client) at that client's best
// point; records built with the route's encoder (the processor's) and
// written by a plain franz-go client; finds decoded by the processor's
// own decoder (the cheapest on hand) and overlapped with marking as the
// processor overlaps them.
//
// The relay is held to a ratio of the mark ceiling; a floor relay's own
// ratio says how much of that ceiling is left once the rest of a relay's
// work (finds, records, Kafka, the broker's side of them) shares the
// machine's cores with the marks. There is one for each client of the
// sweep: the higher of their ratios is the most a relay with one mark per
// event was seen to reach here (a measurement, as noisy as the others).

// floorResult is one floor relay run.
type floorResult struct {
	Events   int           `json:"events"`
	Took     time.Duration `json:"tookNs"`
	Rate     float64       `json:"rate"`
	InFlight int           `json:"inFlight"`
	Conns    int           `json:"conns"`
	Finds    int           `json:"finds"`
	// CPU is this process's CPU, World the world's, during the run.
	CPU   time.Duration `json:"cpuNs"`
	World time.Duration `json:"worldCpuNs"`
}

// floorRelay relays events rows of route's event type from a fresh
// backend through the floor relay, marking with client's callers at at's
// in-flight count and connections (the best point of that client's
// sweep); profile names its CPU profile (Options.RelayProfiles).
func (r *runner) floorRelay(ctx context.Context, route messages.Route, events int, client markClient, at markPoint, profile string) (floorResult, error) {
	res := floorResult{Events: events, InFlight: max(at.InFlight, 1), Conns: max(at.Conns, 1)}
	addr, err := r.world.NewBackend(BackendSpec{})
	if err != nil {
		return res, err
	}
	if err := r.world.Seed(SeedSpec{Types: TypeSet{Names: []string{route.EventType}}, PerType: events, IDPrefix: "floor-"}); err != nil {
		return res, err
	}
	topic := "loadtest.floor." + strconv.FormatInt(sweepTopicSeq.Add(1), 10)
	adm := kadm.NewClient(r.admin)
	if _, err := adm.CreateTopic(ctx, -1, -1, nil, topic); err != nil {
		return res, fmt.Errorf("create %s: %w", topic, err)
	}
	defer func() { _, _ = adm.DeleteTopics(context.WithoutCancel(ctx), topic) }()

	finder, err := outbox.Dial(outbox.Config{Addr: addr, APIKey: r.cfg.GRPCAPIKey, MarkConns: 1}, zerolog.Nop())
	if err != nil {
		return res, err
	}
	defer finder.Close()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	markers, closeMarkers, err := client(ctx, addr, res.Conns, res.InFlight)
	if err != nil {
		return res, err
	}
	defer closeMarkers()
	opts := r.plainProducerOpts(kgo.DefaultProduceTopic(topic), kgo.MaxBufferedRecords(100_000))
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return res, err
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("warm-up")}).FirstErr(); err != nil {
		return res, fmt.Errorf("warm-up produce: %w", err)
	}

	var (
		acked  = make(chan string, events) // never blocks a produce callback
		marked atomic.Int64
		done   = make(chan struct{})
		wg     sync.WaitGroup
	)
	limit := max(r.cfg.FindLimit, 1)
	pub := app.TreeConfig(r.cfg, nil).Publisher
	producer, maxBytes := pub.Producer, pub.MaxRecordBytes
	stopProfile, err := r.startRelayProfile(profile)
	if err != nil {
		return res, err
	}
	u := r.startUsage()
	t0 := time.Now()
	for _, mark := range markers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case id := <-acked:
					if err := mark(id); err != nil {
						cancel(fmt.Errorf("mark %s: %w", id, err))
						return
					}
					if marked.Add(1) == int64(events) {
						close(done)
					}
				}
			}
		})
	}
	wg.Go(func() {
		// Finds: at most two find limits are held at once, as the
		// processor's share holds two batches per poller; a find takes
		// at most a limit of new rows, and no more than that room.
		// Rows still PENDING come back until marked, so the ids handed
		// over are remembered, and while some are held a find asks for
		// the rows after the last one (the find cursor, which the
		// processor uses too), with the rows held on top of what it
		// takes until the backend has applied it.
		taken := make(map[string]struct{}, events)
		sink := &floorSink{ctx: ctx, cancel: cancel, cl: cl, acked: acked, eventType: route.EventType, producer: producer}
		var produced int64
		var fresh []*messages.Event
		var after string
		var applied bool
		for ctx.Err() == nil && len(taken) < events {
			held := produced - marked.Load()
			if held >= int64(2*limit) {
				time.Sleep(200 * time.Microsecond)
				continue
			}
			take := min(limit, 2*limit-int(held))
			q := messages.FindQuery{RPC: route.Find, EventType: route.EventType, Status: messages.StatusPending, Limit: take + int(held)}
			if held > 0 {
				q.AfterEventID = after
				if applied {
					q.Limit = take
				}
			}
			rows, ok, err := finder.FindSkipping(ctx, q, nil)
			res.Finds++
			if err != nil {
				cancel(fmt.Errorf("find: %w", err))
				return
			}
			if q.AfterEventID != "" {
				applied = ok
			}
			fresh = fresh[:0]
			for i := range rows {
				if len(fresh) == take {
					break // the rest later
				}
				if _, ok := taken[rows[i].EventID]; !ok {
					taken[rows[i].EventID] = struct{}{}
					fresh = append(fresh, &rows[i])
					after = rows[i].EventID
				}
			}
			route.Encoding.Encode(fresh, maxBytes, time.Now, sink)
			produced += int64(len(fresh))
			if len(fresh) == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	})
	select {
	case <-done:
	case <-ctx.Done():
	}
	res.Took = time.Since(t0)
	res.CPU, res.World, _ = u.finish()
	perr := stopProfile()
	cancel(nil)
	wg.Wait()
	if perr != nil {
		return res, perr
	}
	if err := context.Cause(ctx); err != nil && marked.Load() < int64(events) {
		return res, fmt.Errorf("floor relay: %w", err)
	}
	res.Rate = float64(events) / res.Took.Seconds()
	return res, nil
}

// floorSink produces each record the encoding builds and, on its ack,
// hands its event ids to the markers.
type floorSink struct {
	ctx       context.Context
	cancel    context.CancelCauseFunc
	cl        *kgo.Client
	acked     chan<- string
	eventType string
	producer  string
}

func (s *floorSink) Record(key, value []byte, traceID string, ids []byte, _ []messages.Span) {
	rec := &kgo.Record{Key: key, Value: value, Headers: messages.RecordHeaders(s.eventType, s.producer, traceID, ids)}
	s.cl.Produce(s.ctx, rec, func(_ *kgo.Record, err error) {
		if err != nil {
			s.cancel(fmt.Errorf("produce %s: %w", ids, err))
			return
		}
		for id := range strings.SplitSeq(string(ids), ",") {
			s.acked <- id
		}
	})
}

func (s *floorSink) Reject(eventID string, _ []byte, reason string) {
	s.cancel(fmt.Errorf("encode %s: %s", eventID, reason))
}
