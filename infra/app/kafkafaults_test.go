package app_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hobom/hobom-event-processor/infra/adapters/redisdlq"
	"github.com/hobom/hobom-event-processor/infra/app"
	"github.com/hobom/hobom-event-processor/infra/config"
	"github.com/hobom/hobom-event-processor/infra/devkit/fakebackend"
	"github.com/hobom/hobom-event-processor/infra/testkit/brokerproc"
	"github.com/hobom/hobom-event-processor/infra/testkit/testenv"
	"github.com/hobom/hobom-event-processor/messages"
)

// Kafka faults other than a dead broker, through the whole processor: a
// topic deleted and created again while events flow, and a broker whose
// TLS certificate the processor does not trust.

// metricSum adds the values of every series of the metric name (with any
// labels) in a /metrics body.
func metricSum(t *testing.T, body, name string) float64 {
	t.Helper()
	var sum float64
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, name+" ") && !strings.HasPrefix(line, name+"{") {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		sum += v
	}
	return sum
}

// flow creates one MESSAGE and one HOBOM_LOG event every interval until
// stopped, and remembers when each was created.
type flow struct {
	mu      sync.Mutex
	ids     []string
	created map[string]time.Time
	stop    chan struct{}
	done    chan struct{}
}

func startFlow(e *env, clock *fetchClock, interval time.Duration) *flow {
	f := &flow{created: map[string]time.Time{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(f.done)
		for i := 0; ; i++ {
			select {
			case <-f.stop:
				return
			case <-time.After(interval):
			}
			// The time before Add: an event counts as created after a
			// moment only if the backend could not have had it earlier.
			at := time.Now()
			ids := clock.add(e.backend, fmt.Sprintf("flow%04d", i), 1)
			f.mu.Lock()
			for _, id := range ids {
				f.ids = append(f.ids, id)
				f.created[id] = at
			}
			f.mu.Unlock()
		}
	}()
	return f
}

func (f *flow) halt() {
	close(f.stop)
	<-f.done
}

// since returns the ids of kind ("-m-" or "-l-") created after at.
func (f *flow) since(kind string, at time.Time) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, id := range f.ids {
		if strings.Contains(id, kind) && f.created[id].After(at) {
			out = append(out, id)
		}
	}
	return out
}

func (f *flow) all() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.ids...)
}

// recreateDLQBudget is how many events the test lets a topic's recreation
// send to the DLQ. The producer adopts the new topic after one failed
// attempt (UNKNOWN_TOPIC_ID, then a purge of the topic from the client),
// and an event has 3 attempts, so none should be dead-lettered; a loaded
// machine is no excuse for one, as no attempt here waits for a timeout.
const recreateDLQBudget = 0

// restartDLQBudget is the same for a broker restarted empty on its port:
// the attempts in flight at the kill fail (connection cut or refused
// until the new process listens, a fraction of one 1 s attempt), the next
// ones meet the new topic IDs and heal as above. Each event has 3
// attempts of up to 1 s, far longer than the restart, so none should be
// dead-lettered either.
const restartDLQBudget = 0

// TestTopicsRecreatedWhileEventsFlowAreAdoptedWithoutARestart deletes
// hobom.messages and hobom.logs with kadm and creates them again at once,
// with the same partition count, while events are created all along, and
// never restarts the processor: every event ends SENT, or FAILED with its
// DLQ entry (at most recreateDLQBudget of them); every event created after
// the topics came back and SENT is in the new topic, read back with a
// consumer. The producer's next requests name both old topic IDs at once,
// which the broker process survives (docs/engine-notes.md, kfake's panic).
func TestTopicsRecreatedWhileEventsFlowAreAdoptedWithoutARestart(t *testing.T) {
	flowThroughAKafkaFault(t, "recreation", recreateDLQBudget, func(broker *brokerproc.Broker) string {
		ctx := context.Background()
		adm := kadm.NewClient(testenv.KafkaAt(broker.Addr()).Client(t))
		topics := testenv.ContractTopics()
		dr, err := adm.DeleteTopics(ctx, topics...)
		if err == nil {
			err = dr.Error()
		}
		if err != nil {
			t.Fatalf("delete %v: %v", topics, err)
		}
		cr, err := adm.CreateTopics(ctx, 3, 1, nil, topics...)
		if err != nil {
			t.Fatalf("create %v again: %v", topics, err)
		}
		var autoCreated []string // by the producer, in the moment between the two calls
		for _, r := range cr {
			if errors.Is(r.Err, kerr.TopicAlreadyExists) {
				autoCreated = append(autoCreated, r.Topic)
			} else if r.Err != nil {
				t.Fatalf("create %s again: %v", r.Topic, r.Err)
			}
		}
		return fmt.Sprintf("both topics deleted and created again with kadm (auto-created by the producer first: %v)", autoCreated)
	})
}

// TestBrokerRestartedEmptyWhileEventsFlowIsAdoptedWithoutARestart is the
// same with the broker process SIGKILLed and started again empty on its
// port (every record gone, the topics back with new IDs), at most
// restartDLQBudget events dead-lettered.
func TestBrokerRestartedEmptyWhileEventsFlowIsAdoptedWithoutARestart(t *testing.T) {
	flowThroughAKafkaFault(t, "restart", restartDLQBudget, func(broker *brokerproc.Broker) string {
		if err := broker.Restart(); err != nil {
			t.Fatal(err)
		}
		return "broker SIGKILLed and started again empty on its port"
	})
}

// flowThroughAKafkaFault runs a processor against a broker process while
// one MESSAGE and one HOBOM_LOG event are created every 25 ms, applies
// fault mid-stream (it returns once the topics are back, with new IDs and
// their partition count), keeps creating events, and never restarts the
// processor. It checks that both topics were adopted (an event created
// after the fault SENT), that every event ends SENT or FAILED with its DLQ
// entry, at most budget of them FAILED, and that every SENT event created
// after the fault is in the new topics, read back with a consumer.
func flowThroughAKafkaFault(t *testing.T, name string, budget int, fault func(*brokerproc.Broker) string) {
	flowThroughAKafkaFaultWith(t, nil, name, budget, fault)
}

// TestBrokerRestartedEmptyInHoldModeDeadLettersNothing: with
// HOBOM_KAFKA_OUTAGE=hold and one publish attempt, the first record for a
// topic after an empty restart fails with UNKNOWN_TOPIC_ID (the producer
// still holds the old topic ID; the Kafka adapter purges it for the next
// attempt). That answer is part of the outage, not a rejection: the events
// stay PENDING and go out with the next poll, none is dead-lettered.
func TestBrokerRestartedEmptyInHoldModeDeadLettersNothing(t *testing.T) {
	hold := func(c *config.Config) { c.KafkaOutage, c.PublishAttempts = "hold", 1 }
	flowThroughAKafkaFaultWith(t, hold, "restart (hold mode, one attempt)", 0, func(broker *brokerproc.Broker) string {
		if err := broker.Restart(); err != nil {
			t.Fatal(err)
		}
		return "broker SIGKILLed and started again empty on its port"
	})
}

// flowThroughAKafkaFaultWith is flowThroughAKafkaFault with the processor's
// configuration changed by mutate (nil: as outageEnv makes it).
func flowThroughAKafkaFaultWith(t *testing.T, mutate func(*config.Config), name string, budget int, fault func(*brokerproc.Broker) string) {
	e, broker, clock := outageEnv(t, mutate)
	k := testenv.KafkaAt(broker.Addr())
	topicOf := map[string]string{"-m-": "hobom.messages", "-l-": "hobom.logs"}

	// A fresh client each time: a client answers a metadata request from
	// what it cached, IDs included.
	topicIDs := func() map[string]kadm.TopicDetail {
		td, err := kadm.NewClient(k.Client(t)).ListTopics(context.Background(), testenv.ContractTopics()...)
		if err != nil {
			t.Fatalf("list topics: %v", err)
		}
		return td
	}
	before := topicIDs()
	base := "http://" + e.app.HTTPAddr()
	_, m0 := get(t, base+"/metrics")

	f := startFlow(e, clock, 25*time.Millisecond)
	defer func() {
		select {
		case <-f.stop:
		default:
			f.halt()
		}
	}()
	testenv.Eventually(t, 20*time.Second, "the flow SENT before the "+name, func() bool {
		ids := f.all()
		return len(ids) >= 40 && allStatus(e, messages.StatusSent, ids[:40]...)()
	})

	start := time.Now()
	what := fault(broker)
	back := time.Now()
	adopted := map[string]time.Duration{}
	for _, kind := range []string{"-m-", "-l-"} {
		// Adopted: an event created after the topic came back is SENT.
		testenv.Eventually(t, 20*time.Second, topicOf[kind]+" adopted: an event created after the "+name+" SENT", func() bool {
			for _, id := range f.since(kind, back) {
				if status(e, id) == messages.StatusSent {
					return true
				}
			}
			return false
		})
		adopted[topicOf[kind]] = time.Since(back)
	}
	time.Sleep(time.Second) // traffic on the new topics
	f.halt()

	after := topicIDs()
	for _, topic := range testenv.ContractTopics() {
		b, a := before[topic], after[topic]
		if a.ID == b.ID {
			t.Errorf("%s kept its topic ID %v after the %s", topic, a.ID, name)
		}
		if len(a.Partitions) != len(b.Partitions) {
			t.Errorf("%s has %d partitions after the %s, %d before", topic, len(a.Partitions), name, len(b.Partitions))
		}
	}

	all := f.all()
	testenv.Eventually(t, 30*time.Second, "every event of the flow resolved", resolved(e, all))
	since := append(f.since("-m-", back), f.since("-l-", back)...)
	sent, failed, both := checkEnd(t, e, k, all, since)
	if failed > budget {
		t.Errorf("%d events dead-lettered by the %s, budget %d", failed, name, budget)
	}
	_, m1 := get(t, base+"/metrics")
	errorCount := func(body string) float64 {
		return metricSum(t, body, `hobom_kafka_produce_duration_seconds_count{event_type="MESSAGE",result="error"}`) +
			metricSum(t, body, `hobom_kafka_produce_duration_seconds_count{event_type="HOBOM_LOG",result="error"}`)
	}
	t.Logf("%s in %v; an event created after that SENT %v (MESSAGE) and %v (HOBOM_LOG) later", what, back.Sub(start).Round(time.Millisecond),
		adopted["hobom.messages"].Round(time.Millisecond), adopted["hobom.logs"].Round(time.Millisecond))
	t.Logf("flow of %d events (one MESSAGE and one HOBOM_LOG every 25 ms), processor never restarted: %d SENT, %d FAILED with their DLQ entry (budget %d), "+
		"%d FAILED and in Kafka; %d failed produce attempts in all; %d events created after the %s, every SENT one in the new topics",
		len(all), sent, failed, budget, both, int(errorCount(m1)-errorCount(m0)), len(since), name)
}

// tlsEnv is a processor in mode outage ("hold" or "dlq") that trusts only
// trusted's CA, against a one-broker kfake serving TLS with untrusted's
// certificate on port. The test timings are outageEnv's.
func tlsEnv(t *testing.T, outage string, port int, trusted, untrusted testenv.TLSCert) (*env, *testenv.KafkaCluster, *fetchClock) {
	t.Helper()
	bad := testenv.Kafka(t, kfake.TLS(untrusted.Server), kfake.Ports(port))
	e := newEnv(t, func(c *config.Config) {
		c.KafkaBrokers = bad.Addrs()
		c.KafkaTLS, c.KafkaTLSCA = true, trusted.CAFile
		c.KafkaOutage = outage
		c.KafkaWriteTimeout = time.Second
		c.PollInterval = 100 * time.Millisecond
		c.PollMaxBackoff = 500 * time.Millisecond
		c.InternalAPIKey = "k3y"
		fastReady(c)
	}, app.Options{})
	return e, bad, watchFetches(e.backend)
}

// TestARefusedTLSHandshakeInHoldModeWaitsForATrustedBroker: the broker
// presents a certificate from a CA the processor does not trust, so every
// handshake is refused. With HOBOM_KAFKA_OUTAGE=hold the first events
// fetched stay PENDING, then nothing is fetched and nothing dead-lettered
// while hobom_kafka_reachable is 0 and /ready names kafka (with the
// certificate error in its details); a broker with a trusted certificate
// on the same port then gets every event, SENT, without a restart.
func TestARefusedTLSHandshakeInHoldModeWaitsForATrustedBroker(t *testing.T) {
	trusted, untrusted := testenv.SelfSignedTLS(t), testenv.SelfSignedTLS(t)
	port := testenv.FreePort(t)
	e, bad, clock := tlsEnv(t, "hold", port, trusted, untrusted)
	base := "http://" + e.app.HTTPAddr()
	reachable := func(want string) func() bool { return func() bool { return reachableIs(t, e, want) } }
	finds := func() int64 { return e.backend.Calls(fakebackend.FindMessages) + e.backend.Calls(fakebackend.FindLogs) }

	// The gauge starts at 1: only a refused attempt tells the processor.
	first := clock.add(e.backend, "first", 2)
	testenv.Eventually(t, 15*time.Second, "hobom_kafka_reachable 0", reachable("0"))
	// A find already running when the gauge fell may still end.
	time.Sleep(300 * time.Millisecond)
	downAt, findsAt := time.Now(), finds()
	_, m0 := get(t, base+"/metrics")
	during := clock.add(e.backend, "during", 5)
	testenv.Eventually(t, 10*time.Second, "/ready naming kafka", func() bool {
		c, b := get(t, base+"/ready")
		return c == http.StatusServiceUnavailable && strings.Contains(b, `"down":["kafka"]`)
	})
	if _, b := getWithKey(t, base+"/ready", "k3y"); !strings.Contains(b, "certificate") {
		t.Errorf("/ready's details do not name the certificate: %s", b)
	}
	// Longer than every attempt of an event would take: with dlq they
	// would be dead-lettered by now.
	time.Sleep(outageLength(resolutionBound(e.cfg, time.Second)))
	upAt := time.Now()

	all := append(append([]string{}, first...), during...)
	heldPending(t, e, all, "the handshake is refused")
	_, m1 := get(t, base+"/metrics")
	fetched := metricSum(t, m1, "hobom_events_fetched_total") - metricSum(t, m0, "hobom_events_fetched_total")
	if n := clock.fetchedBetween(downAt, upAt); n != 0 || fetched != 0 || finds() != findsAt {
		t.Errorf("while no broker was trusted: %d events first fetched, hobom_events_fetched_total +%v, %d find rpcs; want 0",
			n, fetched, finds()-findsAt)
	}
	if !reachable("0")() {
		t.Errorf("hobom_kafka_reachable is not 0 while the handshake is refused")
	}

	// The same port, now with a certificate the processor trusts.
	bad.Cluster().Close()
	var good *testenv.KafkaCluster
	testenv.Eventually(t, 10*time.Second, "a trusted broker on the same port", func() bool {
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.TLS(trusted.Server),
			kfake.SeedTopics(-1, testenv.ContractTopics()...))
		if err != nil {
			return false
		}
		t.Cleanup(c.Close)
		good = testenv.KafkaAt(c.ListenAddrs()...).WithClientOpts(kgo.DialTLSConfig(&tls.Config{RootCAs: trusted.Pool}))
		return true
	})
	resumed, sent, failed, both := resumedAfterHold(t, e, good, all, all, time.Now(), "once the broker is trusted")
	t.Logf("hold, TLS refused: %d events fetched once and refused, then %d made; %v with 0 fetched, 0 find rpcs, 0 dead-lettered, "+
		"hobom_kafka_reachable 0, /ready 503 naming kafka; all SENT %v after a trusted broker took the port; end: %d SENT, %d FAILED, %d FAILED and in Kafka",
		len(first), len(during), upAt.Sub(downAt).Round(time.Millisecond), resumed.Round(time.Millisecond), sent, failed, both)
}

// TestARefusedTLSHandshakeInDLQModeDeadLetters: the same untrusted
// certificate with HOBOM_KAFKA_OUTAGE=dlq sends every event to the DLQ
// within the bound of its fetch, FAILED with its entry.
func TestARefusedTLSHandshakeInDLQModeDeadLetters(t *testing.T) {
	trusted, untrusted := testenv.SelfSignedTLS(t), testenv.SelfSignedTLS(t)
	e, _, clock := tlsEnv(t, "dlq", testenv.FreePort(t), trusted, untrusted)
	bound := resolutionBound(e.cfg, time.Second)
	ids := clock.add(e.backend, "untrusted", 5)
	testenv.Eventually(t, 2*bound+5*time.Second, "every event FAILED", allStatus(e, messages.StatusFailed, ids...))
	store := redisdlq.New(e.redis.Client(t))
	var worst time.Duration
	reasons := map[string]int{}
	for _, id := range ids {
		_, at := resolvedAt(t, e, id)
		fetched, _ := clock.fetchedAt(id)
		worst = max(worst, at.Sub(fetched))
		key := "dlq:menu:" + id
		if strings.Contains(id, "-l-") {
			key = "dlq:log:" + id
		}
		entry, err := store.Get(context.Background(), key)
		if err != nil {
			t.Errorf("%s FAILED without its entry: %v", id, err)
			continue
		}
		// The attempts end at the write timeout, not at the refused
		// handshake (the client retries dials within an attempt); the
		// reason adds the last broker connection's error, so the entry
		// names the certificate and classes as Kafka unreachable.
		if !strings.HasPrefix(entry.Meta.Reason, "kafka: ") || !strings.Contains(entry.Meta.Reason, "certificate") {
			t.Errorf("%s: reason %q is not a Kafka failure naming the certificate", id, entry.Meta.Reason)
		}
		if c := redisdlq.ReasonClass(entry.Meta.Reason, true); c != redisdlq.ClassKafkaUnreachable {
			t.Errorf("%s: reason %q classes as %s, want %s", id, entry.Meta.Reason, c, redisdlq.ClassKafkaUnreachable)
		}
		reasons[entry.Meta.Reason]++
	}
	if worst > bound {
		t.Errorf("slowest fetch -> FAILED %v, bound %v", worst, bound)
	}
	t.Logf("dlq, TLS refused: %d events FAILED with their entry; slowest fetch -> FAILED %v (bound %v); reasons %v",
		len(ids), worst.Round(time.Millisecond), bound, reasons)
}
