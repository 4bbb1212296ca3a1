package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/hobom/hobom-event-processor/infra/adapters/redisdlq"
	"github.com/hobom/hobom-event-processor/infra/app"
	"github.com/hobom/hobom-event-processor/infra/config"
	"github.com/hobom/hobom-event-processor/infra/devkit/fakebackend"
	"github.com/hobom/hobom-event-processor/infra/testkit/brokerproc"
	"github.com/hobom/hobom-event-processor/infra/testkit/testenv"
	"github.com/hobom/hobom-event-processor/messages"
)

// Kafka outages with the broker in a process of its own (see brokerproc):
// killed with SIGKILL while records are in flight, events created while it
// is down, restarted empty (new topic IDs).

// resolutionBound is the longest an event may take from its fetch to SENT
// or FAILED: every attempt bounded by the write timeout, the backoffs
// between them, and the DLQ write and the mark (slack, on loopback).
func resolutionBound(c config.Config, slack time.Duration) time.Duration {
	backoffs := time.Duration(0)
	for i := 1; i < c.PublishAttempts; i++ {
		backoffs += c.PublishBackoff << (i - 1)
	}
	return time.Duration(c.PublishAttempts)*c.KafkaWriteTimeout + backoffs + slack
}

// fetchClock records when the backend first handed out each event (its id
// in a find response), so a test can measure fetch -> resolution per event.
type fetchClock struct {
	mu      sync.Mutex
	ids     []string
	fetched map[string]time.Time
}

func watchFetches(b *fakebackend.Server) *fetchClock {
	f := &fetchClock{fetched: map[string]time.Time{}}
	hook := func(wire []byte) []byte {
		now := time.Now()
		f.mu.Lock()
		for _, id := range f.ids {
			if _, seen := f.fetched[id]; !seen && bytes.Contains(wire, []byte(id)) {
				f.fetched[id] = now
			}
		}
		f.mu.Unlock()
		return wire
	}
	b.SetWireHook(fakebackend.FindMessages, hook)
	b.SetWireHook(fakebackend.FindLogs, hook)
	return f
}

// add creates n MESSAGE and n HOBOM_LOG events named prefix-m-i, prefix-l-i
// and returns their ids.
func (f *fetchClock) add(b *fakebackend.Server, prefix string, n int) []string {
	var ids []string
	var evs []messages.Event
	for i := 0; i < n; i++ {
		m, l := fmt.Sprintf("%s-m-%03d", prefix, i), fmt.Sprintf("%s-l-%03d", prefix, i)
		evs = append(evs, message(m, messages.MessagePayload{Title: "t", Body: "b", Recipient: "r"}),
			logEvent(l, messages.LogPayload{TraceID: "t", Level: "INFO", Message: "m"}))
		ids = append(ids, m, l)
	}
	f.mu.Lock()
	f.ids = append(f.ids, ids...)
	f.mu.Unlock()
	b.Add(evs...)
	return ids
}

func (f *fetchClock) fetchedAt(id string) (time.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.fetched[id]
	return t, ok
}

func (f *fetchClock) fetchedBetween(from, to time.Time) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, t := range f.fetched {
		if !t.Before(from) && !t.After(to) {
			n++
		}
	}
	return n
}

func resolvedAt(t *testing.T, e *env, id string) (string, time.Time) {
	t.Helper()
	ev, _ := e.backend.Event(id)
	ts := ev.SentAt
	if ev.Status == messages.StatusFailed {
		ts = ev.FailedAt
	}
	at, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil && (ev.Status == messages.StatusSent || ev.Status == messages.StatusFailed) {
		t.Fatalf("%s: %s at %q: %v", id, ev.Status, ts, err)
	}
	return ev.Status, at
}

func resolved(e *env, ids []string) func() bool {
	return func() bool {
		for _, id := range ids {
			if s := status(e, id); s != messages.StatusSent && s != messages.StatusFailed {
				return false
			}
		}
		return true
	}
}

// outageLength is how long a test keeps the broker down: short in
// `go test`, HOBOM_TEST_OUTAGE (e.g. 60s) in the full form `make chaos`
// runs.
func outageLength(short time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv("HOBOM_TEST_OUTAGE")); err == nil && d > short {
		return d
	}
	return short
}

// outageEnv is a processor against a broker process, with test-sized
// timings: write timeout 1 s, 3 attempts, backoff 20 ms.
func outageEnv(t *testing.T, mutate func(*config.Config)) (*env, *brokerproc.Broker, *fetchClock) {
	t.Helper()
	broker := testenv.BrokerProcess(t)
	e := newEnv(t, func(c *config.Config) {
		c.KafkaBrokers = []string{broker.Addr()}
		c.KafkaWriteTimeout = time.Second
		c.PollInterval = 100 * time.Millisecond
		c.PollMaxBackoff = 500 * time.Millisecond
		if mutate != nil {
			mutate(c)
		}
	}, app.Options{})
	return e, broker, watchFetches(e.backend)
}

// checkEnd asserts that every event is SENT or FAILED with its DLQ entry,
// that the SENT ones of since (those published after the broker's last
// restart or the topic's recreation; that lost the others) are in Kafka
// as k reads it, and
// returns how many are FAILED and also in Kafka (an attempt cancelled by
// the write timeout that the broker had written after all).
func checkEnd(t *testing.T, e *env, k *testenv.KafkaCluster, ids, since []string) (sent, failed, both int) {
	t.Helper()
	inKafka := map[string]bool{}
	for _, topic := range testenv.ContractTopics() {
		for _, r := range k.ReadAll(t, topic, 300*time.Millisecond) {
			for _, h := range r.Headers {
				if h.Key == "event-id" {
					for _, id := range strings.Split(string(h.Value), ",") {
						inKafka[id] = true
					}
				}
			}
		}
	}
	for _, id := range since {
		if status(e, id) == messages.StatusSent && !inKafka[id] {
			t.Errorf("%s SENT but not in Kafka", id)
		}
	}
	store := redisdlq.New(e.redis.Client(t))
	for _, id := range ids {
		switch s := status(e, id); s {
		case messages.StatusSent:
			sent++
		case messages.StatusFailed:
			failed++
			key := "dlq:menu:" + id
			if strings.Contains(id, "-l-") {
				key = "dlq:log:" + id
			}
			if _, err := store.Get(context.Background(), key); err != nil {
				t.Errorf("%s FAILED without its DLQ entry %s: %v", id, key, err)
			}
			if inKafka[id] {
				both++
			}
		default:
			t.Errorf("%s ends %s", id, s)
		}
	}
	return sent, failed, both
}

// TestBrokerKilledWithRecordsInFlightEveryEventResolvesWithinTheBound is the
// short form of the outage the chaos suite runs for a minute: the broker
// is paused with events fetched (so their produce requests are in flight),
// then SIGKILLed; more events come while it is down; it comes back empty.
// With HOBOM_KAFKA_OUTAGE=dlq every event reaches DLQ + FAILED within
// attempts × write timeout + backoffs of its fetch, and the events made
// after the restart are SENT (the producer adopts the new topic IDs).
func TestBrokerKilledWithRecordsInFlightEveryEventResolvesWithinTheBound(t *testing.T) {
	e, broker, clock := outageEnv(t, nil)
	bound := resolutionBound(e.cfg, time.Second)

	before := clock.add(e.backend, "before", 5)
	testenv.Eventually(t, 20*time.Second, "traffic before the outage SENT", allStatus(e, messages.StatusSent, before...))

	if err := broker.Pause(); err != nil {
		t.Fatal(err)
	}
	inflight := clock.add(e.backend, "inflight", 10)
	testenv.Eventually(t, 10*time.Second, "events fetched while the broker hangs", func() bool {
		for _, id := range inflight {
			if _, ok := clock.fetchedAt(id); !ok {
				return false
			}
		}
		return true
	})
	time.Sleep(200 * time.Millisecond) // the linger (10 ms) passed: produce requests are on the wire
	broker.Kill()
	killed := time.Now()
	during := clock.add(e.backend, "during", 10)
	// The full form (make chaos) keeps the broker down longer and creates
	// events all along.
	for i := 0; time.Since(killed) < outageLength(0); i++ {
		time.Sleep(5 * time.Second)
		during = append(during, clock.add(e.backend, fmt.Sprintf("during%02d", i), 2)...)
	}

	all := append(append([]string{}, inflight...), during...)
	testenv.Eventually(t, 3*bound+5*time.Second, "every event resolved during the outage", resolved(e, all))
	outage := time.Since(killed)

	var worst time.Duration
	var worstID string
	for _, id := range all {
		st, at := resolvedAt(t, e, id)
		if st != messages.StatusFailed {
			t.Errorf("%s is %s during the outage, want FAILED", id, st)
			continue
		}
		fetched, _ := clock.fetchedAt(id)
		if took := at.Sub(fetched); took > worst {
			worst, worstID = took, id
		}
	}
	if worst > bound {
		t.Errorf("%s took %v from fetch to FAILED, bound %v", worstID, worst, bound)
	}

	if err := broker.Restart(); err != nil {
		t.Fatal(err)
	}
	after := clock.add(e.backend, "after", 5)
	testenv.Eventually(t, 20*time.Second, "events after the restart SENT", allStatus(e, messages.StatusSent, after...))

	ids := append(append(append([]string{}, before...), all...), after...)
	sent, failed, both := checkEnd(t, e, testenv.KafkaAt(broker.Addr()), ids, after)
	t.Logf("broker paused then SIGKILLed with %d events in flight, %d made while down; all resolved %v after the kill; "+
		"slowest fetch->FAILED %v (bound %v); after the empty restart %d SENT; end: %d SENT, %d FAILED, %d FAILED and in Kafka",
		len(inflight), len(during), outage.Round(time.Millisecond), worst.Round(time.Millisecond), bound, len(after), sent, failed, both)
}

const apiBase = "/hobom-event-processor/internal/api/v1"

func post(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", nil)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestReplaysDuringAnOutageFailWithinTheBoundAndHealAfterAnEmptyRestart:
// with the broker killed, a single replay answers 502 within one write
// timeout and keeps its entry, and a bulk job's replays each fail within
// it; after the broker came back empty (new topic IDs), a replay succeeds.
func TestReplaysDuringAnOutageFailWithinTheBoundAndHealAfterAnEmptyRestart(t *testing.T) {
	e, broker, clock := outageEnv(t, nil)
	broker.Kill()
	ids := clock.add(e.backend, "dead", 3)
	testenv.Eventually(t, 20*time.Second, "events FAILED", allStatus(e, messages.StatusFailed, ids...))
	api := "http://" + e.app.HTTPAddr() + apiBase

	start := time.Now()
	code, body := post(t, api+"/dlq/retry/dlq:menu:dead-m-000")
	took := time.Since(start)
	if code != http.StatusBadGateway {
		t.Errorf("replay while Kafka is down: %d %s, want 502", code, body)
	}
	if bound := e.cfg.KafkaWriteTimeout + time.Second; took > bound {
		t.Errorf("replay answered after %v, bound %v", took, bound)
	}
	store := redisdlq.New(e.redis.Client(t))
	if _, err := store.Get(context.Background(), "dlq:menu:dead-m-000"); err != nil {
		t.Errorf("entry gone after a failed replay: %v", err)
	}

	code, body = post(t, api+"/dlq/retry?prefix=dlq:&rate=1000")
	if code != http.StatusAccepted {
		t.Fatalf("bulk replay: %d %s", code, body)
	}
	var job struct {
		JobID  string `json:"jobId"`
		State  string `json:"state"`
		Failed int    `json:"failed"`
	}
	if err := json.Unmarshal([]byte(body), &job); err != nil {
		t.Fatal(err)
	}
	jobStart := time.Now()
	testenv.Eventually(t, 30*time.Second, "the bulk job ended", func() bool {
		_, b := get(t, api+"/dlq/jobs/"+job.JobID)
		_ = json.Unmarshal([]byte(b), &job)
		return job.State != "running"
	})
	jobTook := time.Since(jobStart)
	// 6 entries, 8 replays in flight at once: each fails within one write
	// timeout, so the job ends within about one (two, with slack for a
	// loaded machine; the status is polled every 10 ms).
	if bound := 2*e.cfg.KafkaWriteTimeout + 2*time.Second; jobTook > bound {
		t.Errorf("bulk job of 6 entries took %v while Kafka is down, bound %v", jobTook, bound)
	}
	if job.Failed != len(ids) {
		t.Errorf("bulk job while Kafka is down: %+v, want %d failed", job, len(ids))
	}

	if err := broker.Restart(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 20*time.Second, "a replay after the empty restart", func() bool {
		code, _ := post(t, api+"/dlq/retry/dlq:menu:dead-m-000")
		return code == http.StatusOK
	})
	healed := time.Now()
	code, body = post(t, api+"/dlq/retry/dlq:log:dead-l-000")
	if code != http.StatusOK {
		t.Errorf("second replay after the restart: %d %s", code, body)
	}
	testenv.Eventually(t, 10*time.Second, "replayed events SENT", allStatus(e, messages.StatusSent, "dead-m-000", "dead-l-000"))
	t.Logf("while down: replay 502 after %v, bulk job of %d ended %s in %v; after the empty restart replays succeed (%v after the first)",
		took.Round(time.Millisecond), len(ids), job.State, jobTook.Round(time.Millisecond), time.Since(healed).Round(time.Millisecond))
}

// TestHoldModeKeepsEventsPendingWhileNoBrokerAnswersAndResumesByItself is
// the short form of HOBOM_KAFKA_OUTAGE=hold: the broker is paused with
// events in flight, then SIGKILLed; nothing is dead-lettered, the pollers
// fetch nothing while /metrics says no broker answers, /ready names kafka,
// and after the broker came back (empty) every event is SENT without a
// restart of the processor.
func TestHoldModeKeepsEventsPendingWhileNoBrokerAnswersAndResumesByItself(t *testing.T) {
	e, broker, clock := outageEnv(t, func(c *config.Config) {
		c.KafkaOutage = "hold"
		fastReady(c)
	})
	base := "http://" + e.app.HTTPAddr()
	reachable := func(want string) func() bool { return func() bool { return reachableIs(t, e, want) } }
	before := clock.add(e.backend, "before", 3)
	testenv.Eventually(t, 20*time.Second, "traffic before the outage SENT", allStatus(e, messages.StatusSent, before...))

	if err := broker.Pause(); err != nil {
		t.Fatal(err)
	}
	inflight := clock.add(e.backend, "inflight", 5)
	testenv.Eventually(t, 10*time.Second, "events fetched while the broker hangs", func() bool {
		for _, id := range inflight {
			if _, ok := clock.fetchedAt(id); !ok {
				return false
			}
		}
		return true
	})
	time.Sleep(200 * time.Millisecond)
	broker.Kill()
	testenv.Eventually(t, 10*time.Second, "hobom_kafka_reachable 0", reachable("0"))
	downAt := time.Now()
	during := clock.add(e.backend, "during", 5)
	testenv.Eventually(t, 10*time.Second, "/ready naming kafka", func() bool {
		c, b := get(t, base+"/ready")
		return c == http.StatusServiceUnavailable && strings.Contains(b, "kafka")
	})
	// Longer than every attempt of the events in flight: they would be
	// dead-lettered by now with HOBOM_KAFKA_OUTAGE=dlq.
	time.Sleep(outageLength(resolutionBound(e.cfg, time.Second)))
	upAt := time.Now()
	all := append(append([]string{}, inflight...), during...)
	heldPending(t, e, all, "no broker answers")
	if n := clock.fetchedBetween(downAt, upAt); n != 0 {
		t.Errorf("%d events fetched while no broker answered", n)
	}

	if err := broker.Restart(); err != nil {
		t.Fatal(err)
	}
	resumed, sent, failed, both := resumedAfterHold(t, e, testenv.KafkaAt(broker.Addr()), append(append([]string{}, before...), all...), all,
		upAt, "after the broker came back")
	t.Logf("hold: %d events in flight at the kill and %d made while down stayed PENDING for %v with 0 fetched and 0 dead-lettered; "+
		"all SENT %v after the empty restart; end: %d SENT, %d FAILED, %d FAILED and in Kafka",
		len(inflight), len(during), upAt.Sub(downAt).Round(time.Millisecond), resumed.Round(time.Millisecond), sent, failed, both)
}

// reachableIs reports whether the processor's hobom_kafka_reachable gauge
// reads want.
func reachableIs(t *testing.T, e *env, want string) bool {
	_, b := get(t, "http://"+e.app.HTTPAddr()+"/metrics")
	return strings.Contains(b, "\nhobom_kafka_reachable "+want+"\n")
}

// heldPending checks, in hold mode while no broker takes the records, that
// every event of ids is still PENDING and the DLQ empty.
func heldPending(t *testing.T, e *env, ids []string, while string) {
	t.Helper()
	for _, id := range ids {
		if s := status(e, id); s != messages.StatusPending {
			t.Errorf("%s is %s while %s, want PENDING", id, s, while)
		}
	}
	keys, err := e.redis.Client(t).Keys(context.Background(), "dlq:*").Result()
	if err != nil || len(keys) != 0 {
		t.Errorf("DLQ while %s: %v %v, want empty", while, keys, err)
	}
}

// resumedAfterHold waits, once a broker takes records again, until every
// event of all is SENT and hobom_kafka_reachable is 1, checks the end
// (checkEnd of ids, all in k) with nothing FAILED in hold mode, and returns
// how long the events took to be SENT after from and the end's counts.
func resumedAfterHold(t *testing.T, e *env, k *testenv.KafkaCluster, ids, all []string, from time.Time, when string) (resumed time.Duration, sent, failed, both int) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, "every event SENT "+when, allStatus(e, messages.StatusSent, all...))
	resumed = time.Since(from)
	testenv.Eventually(t, 10*time.Second, "hobom_kafka_reachable 1", func() bool { return reachableIs(t, e, "1") })
	sent, failed, both = checkEnd(t, e, k, ids, all)
	if failed != 0 {
		t.Errorf("%d FAILED with HOBOM_KAFKA_OUTAGE=hold", failed)
	}
	return resumed, sent, failed, both
}

// TestHoldModeCountsARefusedSASLLoginAsUnreachable: with a wrong Kafka
// password, hold keeps the events PENDING (dlq would dead-letter the whole
// backlog within the bound) and the gauge says no broker answers.
func TestHoldModeCountsARefusedSASLLoginAsUnreachable(t *testing.T) {
	k := testenv.Kafka(t, kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", "hobom", "right"))
	e := newEnv(t, func(c *config.Config) {
		c.KafkaBrokers = k.Addrs()
		c.KafkaSASLMechanism, c.KafkaSASLUser, c.KafkaSASLPassword = "SCRAM-SHA-256", "hobom", "wrong"
		c.KafkaWriteTimeout = time.Second
		c.KafkaOutage = "hold"
	}, app.Options{})
	e.backend.Add(message("sasl-1", messages.MessagePayload{Title: "t", Body: "b", Recipient: "r"}))
	base := "http://" + e.app.HTTPAddr()
	testenv.Eventually(t, 15*time.Second, "hobom_kafka_reachable 0", func() bool {
		_, b := get(t, base+"/metrics")
		return strings.Contains(b, "\nhobom_kafka_reachable 0\n")
	})
	time.Sleep(resolutionBound(e.cfg, time.Second))
	if s := status(e, "sasl-1"); s != messages.StatusPending {
		t.Errorf("sasl-1 is %s with a refused login in hold mode, want PENDING", s)
	}
	keys, err := e.redis.Client(t).Keys(context.Background(), "dlq:*").Result()
	if err != nil || len(keys) != 0 {
		t.Errorf("DLQ with a refused login in hold mode: %v %v, want empty", keys, err)
	}
}
