package chaos

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"google.golang.org/grpc/codes"

	"github.com/hobom/hobom-event-processor/infra/devkit/fakebackend"
	"github.com/hobom/hobom-event-processor/messages"
)

// Kind is a kind of fault.
type Kind string

// The faults the suite injects.
const (
	KafkaProduceError   Kind = "kafka-produce-error"   // produce requests answered with an error code
	KafkaProduceTimeout Kind = "kafka-produce-timeout" // produce requests held, then timed out or appended late
	KafkaDown           Kind = "kafka-down"            // every Kafka request's connection closed: the cluster is gone
	KafkaBrokerBounce   Kind = "kafka-broker-bounce"   // one broker removed, then added back on its port
	KafkaBrokerKilled   Kind = "kafka-broker-killed"   // the broker process SIGKILLed (port refuses), then started empty
	KafkaRestartEmpty   Kind = "kafka-restart-empty"   // the broker process restarted at once, empty (new topic IDs)
	KafkaTopicRecreated Kind = "kafka-topic-recreated" // a topic deleted and created again with kadm while events flow
	KafkaHung           Kind = "kafka-hung"            // the broker process SIGSTOPped (accepts, never answers), then SIGCONT
	RedisRestart        Kind = "redis-restart"         // redis-server SIGKILLed, started again later (AOF keeps the DLQ)
	BackendFindError    Kind = "backend-find-error"    // find rpcs fail
	BackendFindSlow     Kind = "backend-find-slow"     // find rpcs answer late (some past the client's timeout)
	BackendMarkError    Kind = "backend-mark-error"    // mark rpcs fail
	BackendMarkSlow     Kind = "backend-mark-slow"     // mark rpcs answer late
	PanicPoller         Kind = "panic-poller"          // a poller panics (in-process: ChildMiddleware)
	PanicPublisher      Kind = "panic-publisher"       // the publisher panics with records in flight
	PanicDLQ            Kind = "panic-dlq"             // the DLQ actor panics
	SIGTERM             Kind = "sigterm"               // graceful stop in the middle of a batch, then a new instance
	SIGKILL             Kind = "sigkill"               // the subprocess killed in the middle of a batch, then restarted
	SIGSTOP             Kind = "sigstop"               // a subprocess paused longer than the lease TTL, then SIGCONT
)

// Kinds lists every kind in report order.
var Kinds = []Kind{
	KafkaProduceError, KafkaProduceTimeout, KafkaDown, KafkaBrokerBounce,
	KafkaBrokerKilled, KafkaRestartEmpty, KafkaTopicRecreated, KafkaHung, RedisRestart,
	BackendFindError, BackendFindSlow, BackendMarkError, BackendMarkSlow,
	PanicPoller, PanicPublisher, PanicDLQ, SIGTERM, SIGKILL, SIGSTOP,
}

// ProcKind says how a processor instance runs.
type ProcKind string

const (
	// InProcess runs app.New in the suite's process: panics are injected
	// into chosen actors through app.Options.ChildMiddleware.
	InProcess ProcKind = "in-process"
	// Subprocess runs the built binary: it can be SIGKILLed; panics come
	// from app.FaultPanicEveryEnv.
	Subprocess ProcKind = "subprocess"
)

// Fault is one planned fault.
type Fault struct {
	At   time.Duration // since the start of the run
	For  time.Duration // how long a window lasts; 0 for an instant fault
	Kind Kind

	// Kafka
	Code     int16   // produce error code
	Rate     float64 // share of produce requests failed or held
	Hold     time.Duration
	Append   bool   // a held request is appended after the hold (else timed out)
	Node     int32  // broker of a bounce
	Topic    string // topic recreated
	Backend  []fakebackend.RPC
	GRPCCode codes.Code
	Delay    time.Duration
	Route    string // the poller that panics

	// SIGTERM, SIGKILL and SIGSTOP: the instance's slot (0 changes kind
	// between epochs; 1 and 2 are subprocesses), and what runs next.
	Slot       int
	Next       ProcKind
	PanicEvery int // HOBOM_FAULT_PANIC_EVERY of the next instance when a subprocess; 0 off
}

func (f Fault) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-22s", f.Kind)
	if f.For > 0 {
		fmt.Fprintf(&b, " for %-6v", f.For.Round(100*time.Millisecond))
	}
	switch f.Kind {
	case KafkaProduceError:
		name := fmt.Sprint(f.Code)
		if e, ok := kerr.ErrorForCode(f.Code).(*kerr.Error); ok {
			name = e.Message
		}
		fmt.Fprintf(&b, " %s on %.0f%% of produce requests", name, 100*f.Rate)
	case KafkaProduceTimeout:
		what := "then REQUEST_TIMED_OUT"
		if f.Append {
			what = "then appended"
		}
		fmt.Fprintf(&b, " %.0f%% of produce requests held %v, %s", 100*f.Rate, f.Hold.Round(time.Millisecond), what)
	case KafkaBrokerBounce:
		fmt.Fprintf(&b, " node %d", f.Node)
	case KafkaTopicRecreated:
		fmt.Fprintf(&b, " %s", f.Topic)
	case BackendFindError, BackendMarkError:
		fmt.Fprintf(&b, " %v %s", f.Backend, f.GRPCCode)
	case BackendFindSlow, BackendMarkSlow:
		fmt.Fprintf(&b, " %v +%v", f.Backend, f.Delay.Round(time.Millisecond))
	case PanicPoller:
		fmt.Fprintf(&b, " poller %s", f.Route)
	case SIGSTOP:
		fmt.Fprintf(&b, " slot %d", f.Slot)
	case SIGTERM, SIGKILL:
		fmt.Fprintf(&b, " slot %d then %s", f.Slot, f.Next)
		if f.Next == Subprocess && f.PanicEvery > 0 {
			fmt.Fprintf(&b, " with %s=%d", "HOBOM_FAULT_PANIC_EVERY", f.PanicEvery)
		}
	}
	return b.String()
}

// Plan is a seeded schedule of faults.
type Plan struct {
	Seed     uint64
	Duration time.Duration
	// First is how the first instance runs (always in-process: the
	// process faults then move between the kinds).
	First  ProcKind
	Faults []Fault // by At
}

// Counts returns the planned faults per kind.
func (p Plan) Counts() map[Kind]int {
	m := map[Kind]int{}
	for _, f := range p.Faults {
		m[f.Kind]++
	}
	return m
}

func (p Plan) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "plan: seed %d, %v, first instance %s, %d faults\n", p.Seed, p.Duration, p.First, len(p.Faults))
	for _, f := range p.Faults {
		fmt.Fprintf(&b, "  t+%-8v %s\n", f.At.Round(10*time.Millisecond), f)
	}
	return b.String()
}

// perTwoMinutes is how many faults of each windowed kind a two-minute
// schedule has; shorter and longer schedules scale it, with at least one.
var perTwoMinutes = map[Kind]int{
	KafkaProduceError: 6, KafkaProduceTimeout: 4, KafkaDown: 3, KafkaBrokerBounce: 3, RedisRestart: 5,
	KafkaBrokerKilled: 1, KafkaRestartEmpty: 1, KafkaTopicRecreated: 2, KafkaHung: 2,
	BackendFindError: 3, BackendFindSlow: 3, BackendMarkError: 4, BackendMarkSlow: 3,
	PanicPoller: 4, PanicPublisher: 4, PanicDLQ: 3,
	// Besides the epochs of slot 0: the other two instances are paused
	// past their leases and killed.
	SIGSTOP: 4, SIGKILL: 2,
}

// lanes group kinds that drive the same knob: faults of one lane never
// overlap (a fakebackend rpc has one fault at a time); different lanes do,
// so outages combine as they would in production. A fault of the broker
// process lane due while the broker is killed is skipped.
var lanes = [][]Kind{
	{KafkaProduceError}, {KafkaProduceTimeout}, {KafkaDown}, {KafkaBrokerBounce}, {RedisRestart},
	{KafkaBrokerKilled}, {KafkaRestartEmpty, KafkaTopicRecreated, KafkaHung},
	{BackendFindError, BackendFindSlow}, {BackendMarkError, BackendMarkSlow},
	{PanicPoller}, {PanicPublisher}, {PanicDLQ},
	{SIGSTOP, SIGKILL},
}

// epoch is the planned life of one processor instance.
type epoch struct {
	kind       ProcKind
	start, end time.Duration
}

// NewPlan draws the schedule of a run of duration d from seed. The same
// seed and duration always give the same plan; the run itself depends on
// timing too, so a rerun repeats the faults, not every interleaving.
func NewPlan(seed uint64, d time.Duration, brokers int) Plan {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	p := Plan{Seed: seed, Duration: d, First: InProcess}
	scale := float64(d) / float64(2*time.Minute)

	// Process epochs, about one per 20 s and at least three, so that a run
	// has a SIGTERM (the first instance is in-process) and a SIGKILL.
	n := max(3, int(float64(d)/float64(20*time.Second)+0.5))
	epochs := make([]epoch, n)
	span := d / time.Duration(n)
	for i := range epochs {
		epochs[i].kind = InProcess
		if i > 0 && rng.IntN(2) == 0 {
			epochs[i].kind = Subprocess
		}
		if i > 0 {
			jitter := time.Duration(rng.Int64N(int64(span/3))) - span/6
			epochs[i].start = time.Duration(i)*span + jitter
			epochs[i-1].end = epochs[i].start
		}
	}
	epochs[n-1].end = d
	ends := make([]Kind, n-1) // how epoch i ends
	for i := range ends {
		ends[i] = SIGTERM
		if epochs[i].kind == Subprocess && rng.IntN(2) == 0 {
			ends[i] = SIGKILL
		}
	}
	if !slices.Contains(ends, SIGKILL) {
		epochs[1].kind = Subprocess
		ends[1] = SIGKILL
	}
	for i := 1; i < n; i++ {
		f := Fault{At: epochs[i].start, Kind: ends[i-1], Next: epochs[i].kind}
		if f.Next == Subprocess && rng.Float64() < 0.6 {
			f.PanicEvery = 400 + rng.IntN(1600)
		}
		p.Faults = append(p.Faults, f)
	}

	routes := []string{messages.EventTypeMessage, messages.EventTypeHoBomLog}
	for _, lane := range lanes {
		total := 0
		for _, k := range lane {
			total += max(1, int(float64(perTwoMinutes[k])*scale+0.5))
		}
		var kinds []Kind
		for _, k := range lane {
			for range max(1, int(float64(perTwoMinutes[k])*scale+0.5)) {
				kinds = append(kinds, k)
			}
		}
		rng.Shuffle(len(kinds), func(i, j int) { kinds[i], kinds[j] = kinds[j], kinds[i] })
		// Spread the lane's faults over the run: one per slot, at a random
		// place in it, never running into the next slot. Panics are spread
		// over the time in-process instances run; a subprocess's panics
		// come from HOBOM_FAULT_PANIC_EVERY.
		lo, hi := d/20, d-d/10
		at := func(t time.Duration) time.Duration { return t }
		if isPanic(lane[0]) {
			lo, hi, at = inProcessTimeline(epochs)
		}
		if hi <= lo {
			continue
		}
		slot := (hi - lo) / time.Duration(total)
		for i, k := range kinds {
			f := Fault{Kind: k}
			f.For = windowFor(rng, k, slot)
			room := max(slot-f.For, time.Millisecond)
			f.At = at(lo + time.Duration(i)*slot + time.Duration(rng.Int64N(int64(room))))
			draw(rng, &f, routes, brokers)
			p.Faults = append(p.Faults, f)
		}
	}
	shiftOutOfOutages(p.Faults, d)
	slices.SortStableFunc(p.Faults, func(a, b Fault) int { return int(a.At - b.At) })
	return p
}

// shiftOutOfOutages moves the broker process faults that would fall while
// the broker is killed (and a topic recreation while kafka-down closes every
// connection) to just after that outage, within the run: they could not be
// applied (there is no broker, or no admin connection) and would be skipped.
func shiftOutOfOutages(faults []Fault, d time.Duration) {
	for moved := true; moved; {
		moved = false
		for i := range faults {
			f := &faults[i]
			if f.Kind != KafkaRestartEmpty && f.Kind != KafkaTopicRecreated && f.Kind != KafkaHung {
				continue
			}
			for _, o := range faults {
				blocks := o.Kind == KafkaBrokerKilled || (o.Kind == KafkaDown && f.Kind == KafkaTopicRecreated)
				end := o.At + o.For + 300*time.Millisecond
				if blocks && f.At >= o.At && f.At < end && end+f.For < d-d/20 {
					f.At, moved = end, true
				}
			}
		}
	}
}

func isPanic(k Kind) bool { return k == PanicPoller || k == PanicPublisher || k == PanicDLQ }

// inProcessTimeline lays the in-process epochs end to end, each without a
// second at either edge, and returns that timeline's bounds and the map from
// it to the run's time.
func inProcessTimeline(epochs []epoch) (lo, hi time.Duration, at func(time.Duration) time.Duration) {
	type span struct{ start, end time.Duration }
	var spans []span
	for _, e := range epochs {
		if e.kind == InProcess && e.end-e.start > 3*time.Second {
			spans = append(spans, span{e.start + time.Second, e.end - time.Second})
			hi += e.end - e.start - 2*time.Second
		}
	}
	return 0, hi, func(t time.Duration) time.Duration {
		for _, s := range spans {
			if t < s.end-s.start {
				return s.start + t
			}
			t -= s.end - s.start
		}
		return spans[len(spans)-1].end
	}
}

// windowFor draws how long a fault of kind k lasts, within slot.
func windowFor(rng *rand.Rand, k Kind, slot time.Duration) time.Duration {
	between := func(lo, hi time.Duration) time.Duration {
		return lo + time.Duration(rng.Int64N(int64(hi-lo)+1))
	}
	var w time.Duration
	switch k {
	case KafkaProduceError:
		w = between(500*time.Millisecond, 4*time.Second)
	case KafkaProduceTimeout:
		w = between(time.Second, 4*time.Second)
	case KafkaDown:
		// Long enough, mostly, for three attempts to fail: events go to
		// the DLQ.
		w = between(2*time.Second, 9*time.Second)
	case KafkaBrokerBounce:
		w = between(500*time.Millisecond, 4*time.Second)
	case KafkaBrokerKilled:
		// The one kill of a two-minute run lasts 34..60 s; a short run's a
		// few seconds.
		return between(max(2*time.Second, slot/3), min(60*time.Second, slot*3/5))
	case KafkaHung:
		w = between(time.Second, 8*time.Second)
	case RedisRestart:
		w = between(300*time.Millisecond, 5*time.Second)
	case BackendFindError, BackendFindSlow, BackendMarkError, BackendMarkSlow:
		w = between(500*time.Millisecond, 5*time.Second)
	case SIGSTOP:
		// Past the lease's TTL, so another instance takes the types over
		// while this one is frozen with its batches.
		return between(leaseTTL+time.Second, leaseTTL+3*time.Second)
	default:
		return 0
	}
	return min(w, slot*4/5)
}

// draw fills in the parameters of f.
func draw(rng *rand.Rand, f *Fault, routes []string, brokers int) {
	pick := func(rpcs ...fakebackend.RPC) []fakebackend.RPC {
		switch rng.IntN(3) {
		case 0:
			return rpcs[:1]
		case 1:
			return rpcs[1:]
		}
		return rpcs
	}
	switch f.Kind {
	case KafkaProduceError:
		codes := []int16{
			kerr.NotLeaderForPartition.Code, // retried by the client within the write timeout
			kerr.RequestTimedOut.Code,       // ambiguous for the client: retried until answered
			kerr.UnknownServerError.Code,    // not retriable: fails the attempt at once
			kerr.InvalidRecord.Code,         // not retriable
			kerr.NotEnoughReplicas.Code,     // retriable
		}
		f.Code = codes[rng.IntN(len(codes))]
		f.Rate = []float64{0.3, 0.7, 1}[rng.IntN(3)]
	case KafkaProduceTimeout:
		f.Rate = []float64{0.5, 1}[rng.IntN(2)]
		f.Hold = 300*time.Millisecond + time.Duration(rng.Int64N(int64(2500*time.Millisecond)))
		f.Append = rng.IntN(2) == 0
	case KafkaBrokerBounce:
		nodes := bounceable(brokers)
		f.Node = nodes[rng.IntN(len(nodes))]
	case KafkaTopicRecreated:
		f.Topic = []string{topicMessages, topicLogs}[rng.IntN(2)]
	case BackendFindError:
		f.Backend = pick(fakebackend.FindMessages, fakebackend.FindLogs)
		f.GRPCCode = []codes.Code{codes.Unavailable, codes.Internal, codes.ResourceExhausted}[rng.IntN(3)]
	case BackendMarkError:
		f.Backend = pick(fakebackend.MarkSent, fakebackend.MarkFailed)
		f.GRPCCode = []codes.Code{codes.Unavailable, codes.Internal, codes.Aborted}[rng.IntN(3)]
	case BackendFindSlow:
		f.Backend = pick(fakebackend.FindMessages, fakebackend.FindLogs)
		f.Delay = 200*time.Millisecond + time.Duration(rng.Int64N(int64(2500*time.Millisecond)))
	case BackendMarkSlow:
		f.Backend = pick(fakebackend.MarkSent, fakebackend.MarkFailed)
		f.Delay = 100*time.Millisecond + time.Duration(rng.Int64N(int64(2500*time.Millisecond)))
	case PanicPoller:
		f.Route = routes[rng.IntN(len(routes))]
	case SIGSTOP, SIGKILL:
		f.Slot = 1 + rng.IntN(instances-1)
		f.Next = Subprocess
	}
}

// bounceable are the nodes a bounce may take out: all but the controller,
// which kfake makes the last node. kfake's RemoveNode leaves the
// controller on a removed node, and from then on the cluster answers every
// topic creation and deletion NOT_CONTROLLER, so a later recreation fault
// cannot run (docs/engine-notes.md). The processor sends no controller
// requests: bouncing the other nodes moves its partitions just the same.
func bounceable(brokers int) []int32 {
	nodes := make([]int32, 0, brokers-1)
	for n := range int32(brokers - 1) {
		nodes = append(nodes, n)
	}
	return nodes
}
