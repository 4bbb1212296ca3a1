package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc/codes"

	"github.com/hobom/hobom-event-processor/infra/adapters/redisdlq"
	"github.com/hobom/hobom-event-processor/infra/app"
	"github.com/hobom/hobom-event-processor/infra/config"
	"github.com/hobom/hobom-event-processor/infra/devkit/fakebackend"
	"github.com/hobom/hobom-event-processor/infra/testkit/testenv"
	"github.com/hobom/hobom-event-processor/messages"
)

// env is one processor wired to its own stand-in backend, kfake and
// redis-server, all on loopback.
type env struct {
	backend *fakebackend.Server
	kafka   *testenv.KafkaCluster
	redis   *testenv.RedisServer
	cfg     config.Config
	app     *app.App
	stopped chan error
	cancel  context.CancelFunc
}

// testConfig is the production configuration with test-sized timings.
func testConfig(t *testing.T, backend, redisAddr string, brokers []string) config.Config {
	t.Helper()
	cfg, err := testenv.Config()
	if err != nil {
		t.Fatal(err)
	}
	cfg.GRPCAddr = backend
	cfg.KafkaBrokers = brokers
	cfg.RedisAddr = redisAddr
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.PollInterval = 50 * time.Millisecond
	cfg.PollMaxBackoff = 400 * time.Millisecond
	cfg.PublishBackoff = 20 * time.Millisecond
	cfg.KafkaWriteTimeout = 2 * time.Second
	cfg.GRPCTimeout = 2 * time.Second
	cfg.ShutdownTimeout = 30 * time.Second
	return cfg
}

func newEnv(t *testing.T, mutate func(*config.Config), opts app.Options) *env {
	t.Helper()
	backend, err := fakebackend.Start(fakebackend.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(backend.Close)
	e := &env{backend: backend, kafka: testenv.Kafka(t), redis: testenv.Redis(t)}
	e.cfg = testConfig(t, backend.Addr(), e.redis.Addr(), e.kafka.Addrs())
	if mutate != nil {
		mutate(&e.cfg)
	}
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	if testing.Verbose() {
		log = log.Level(zerolog.InfoLevel)
	}
	e.app, err = app.New(e.cfg, log, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel, e.stopped = cancel, make(chan error, 1)
	go func() { e.stopped <- e.app.Run(ctx) }()
	t.Cleanup(func() { e.stop(t) })
	return e
}

// stop shuts the processor down and fails the test if that was not clean.
func (e *env) stop(t *testing.T) {
	t.Helper()
	if e.cancel == nil {
		return
	}
	e.cancel()
	e.cancel = nil
	select {
	case err := <-e.stopped:
		if err != nil {
			t.Errorf("shutdown: %v", err)
		}
	case <-time.After(45 * time.Second):
		t.Errorf("shutdown did not finish")
	}
}

// closedAddr is a loopback address nothing listens on: Kafka "down".
func closedAddr(t *testing.T) string {
	t.Helper()
	return fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
}

func message(id string, p messages.MessagePayload) messages.Event {
	return messages.Event{EventID: id, EventType: messages.EventTypeMessage, Message: &p}
}

func logEvent(id string, p messages.LogPayload) messages.Event {
	return messages.Event{EventID: id, EventType: messages.EventTypeHoBomLog, Log: &p}
}

func status(e *env, id string) string {
	ev, ok := e.backend.Event(id)
	if !ok {
		return "missing"
	}
	return ev.Status
}

func allStatus(e *env, want string, ids ...string) func() bool {
	return func() bool {
		for _, id := range ids {
			if status(e, id) != want {
				return false
			}
		}
		return true
	}
}

func TestRelaysBothEventTypesAsTheContractSays(t *testing.T) {
	e := newEnv(t, nil, app.Options{})
	e.backend.Add(
		message("m-1", messages.MessagePayload{ID: "p1", Title: "Hello", Body: "<b>hi</b> & bye", Recipient: "a@b.c", SenderID: "u-7", Type: "PUSH_MESSAGE"}),
		message("m-2", messages.MessagePayload{ID: "p2", Title: "No type", Body: "body", Recipient: "x@y.z"}),
	)
	e.backend.Add(
		logEvent("l-1", messages.LogPayload{TraceID: "t1", Level: "INFO", Method: "GET", Path: "/a", StatusCode: 200, Host: "h", UserID: "u1",
			Detail: &messages.LogPayloadDetail{Query: map[string]string{"q": "1"}, Headers: map[string]string{"x": "y"}}, ServiceType: "api", Message: "ok"}),
		logEvent("l-2", messages.LogPayload{TraceID: "t2", Level: "ERROR", Method: "POST", Path: "/b", StatusCode: 500, ServiceType: "api", Message: "boom"}),
	)
	testenv.Eventually(t, 20*time.Second, "all events SENT", allStatus(e, messages.StatusSent, "m-1", "m-2", "l-1", "l-2"))

	recs := e.kafka.ReadTopic(t, "hobom.messages", 2, 10*time.Second)
	byKey := map[string]map[string]any{}
	for _, r := range recs {
		var v map[string]any
		if err := json.Unmarshal(r.Value, &v); err != nil {
			t.Fatalf("message record %q: %v", r.Value, err)
		}
		byKey[string(r.Key)] = v
		h := headers(r)
		if h["event-id"] != string(r.Key) || h["event-type"] != "MESSAGE" || !strings.HasPrefix(h["producer"], "hobom-event-processor/") {
			t.Errorf("message record headers = %v", h)
		}
	}
	m1, m2 := byKey["m-1"], byKey["m-2"]
	if m1 == nil || m2 == nil {
		t.Fatalf("records keyed by eventId missing: %v", byKey)
	}
	for k, want := range map[string]any{"type": "PUSH_MESSAGE", "title": "Hello", "body": "<b>hi</b> & bye", "recipient": "a@b.c", "senderId": "u-7"} {
		if m1[k] != want {
			t.Errorf("m-1 %s = %v, want %v", k, m1[k], want)
		}
	}
	if m2["type"] != "MAIL_MESSAGE" {
		t.Errorf("m-2 type = %v, want MAIL_MESSAGE for an empty payload type", m2["type"])
	}
	if _, ok := m2["senderId"]; ok {
		t.Errorf("m-2 has senderId although it is empty: %v", m2)
	}
	for _, m := range []map[string]any{m1, m2} {
		if len(m) != map[bool]int{true: 6, false: 5}[m["senderId"] != nil] {
			t.Errorf("unexpected fields in %v", m)
		}
		if _, err := time.Parse(time.RFC3339Nano, fmt.Sprint(m["sentAt"])); err != nil {
			t.Errorf("sentAt %v is not RFC 3339: %v", m["sentAt"], err)
		}
	}

	logs := e.kafka.ReadTopic(t, "hobom.logs", 1, 10*time.Second)
	var items []map[string]any
	for _, r := range logs {
		if !strings.HasPrefix(string(r.Key), "hobom-log-") {
			t.Errorf("log record key %q lacks hobom-log- prefix", r.Key)
		}
		var arr []map[string]any
		if err := json.Unmarshal(r.Value, &arr); err != nil {
			t.Fatalf("log record is not a JSON array: %v", err)
		}
		h := headers(r)
		if ids := strings.Split(h["event-id"], ","); len(ids) != len(arr) || h["event-type"] != "HOBOM_LOG" {
			t.Errorf("log record headers = %v for %d elements", h, len(arr))
		}
		items = append(items, arr...)
	}
	if len(items) != 2 {
		t.Fatalf("got %d log items, want 2", len(items))
	}
	l1 := items[0]
	if l1["traceId"] != "t2" {
		l1 = items[1]
	}
	if l1["traceId"] == "t2" {
		l1 = items[0]
	}
	want := map[string]any{"serviceType": "api", "level": "INFO", "traceId": "t1", "message": "ok", "httpMethod": "GET",
		"path": "/a", "statusCode": float64(200), "host": "h", "userId": "u1"}
	for k, v := range want {
		if l1[k] != v {
			t.Errorf("log %s = %#v, want %#v", k, l1[k], v)
		}
	}
	payload, _ := l1["payload"].(map[string]any)
	if payload["method"] != "GET" || payload["statusCode"] != float64(200) || payload["serviceType"] != "api" {
		t.Errorf("log payload object = %v", payload)
	}
	detail, _ := payload["payload"].(map[string]any)
	if q, _ := detail["query"].(map[string]any); q["q"] != "1" {
		t.Errorf("log payload.payload.query = %v", detail)
	}
	if _, ok := detail["body"]; ok {
		t.Errorf("empty body map not omitted: %v", detail)
	}
}

func TestSplitsLogBatchesBelowOneMegabyte(t *testing.T) {
	e := newEnv(t, func(c *config.Config) { c.FindLimit = 0 }, app.Options{})
	const n = 3000
	body := strings.Repeat("x", 900)
	e.backend.Seed(messages.EventTypeHoBomLog, n, func(i int) messages.Event {
		return logEvent(fmt.Sprintf("big-%d", i), messages.LogPayload{TraceID: fmt.Sprint(i), Level: "INFO", Message: body,
			Detail: &messages.LogPayloadDetail{Body: map[string]string{"b": body}}})
	})
	testenv.Eventually(t, 60*time.Second, "all log events SENT", func() bool { return e.backend.Count(messages.EventTypeHoBomLog, messages.StatusSent) == n })
	recs := e.kafka.ReadAll(t, "hobom.logs", 500*time.Millisecond)
	if len(recs) < 3 {
		t.Fatalf("%d records for ~5.4 MB of logs; want the batch split", len(recs))
	}
	seen := map[string]bool{}
	for _, r := range recs {
		if len(r.Value) > 1_000_000 {
			t.Errorf("record of %d bytes exceeds 1 MB", len(r.Value))
		}
		var arr []struct {
			TraceID string `json:"traceId"`
		}
		if err := json.Unmarshal(r.Value, &arr); err != nil {
			t.Fatal(err)
		}
		for _, it := range arr {
			if seen[it.TraceID] {
				t.Errorf("log %s published twice", it.TraceID)
			}
			seen[it.TraceID] = true
		}
	}
	if len(seen) != n {
		t.Errorf("%d distinct log events in Kafka, want %d", len(seen), n)
	}
}

func TestKafkaDownDeadLettersAndMarksFailed(t *testing.T) {
	e := newEnv(t, func(c *config.Config) {
		c.KafkaBrokers = []string{closedAddr(t)}
		c.KafkaWriteTimeout = time.Second
	}, app.Options{})
	e.backend.Add(message("m-1", messages.MessagePayload{Title: "t", Body: "b", Recipient: "r"}))
	e.backend.Add(logEvent("l-1", messages.LogPayload{TraceID: "t1", Level: "WARN", Message: "m"}))
	testenv.Eventually(t, 30*time.Second, "events FAILED", allStatus(e, messages.StatusFailed, "m-1", "l-1"))

	store := redisdlq.New(e.redis.Client(t))
	ctx := context.Background()
	m, err := store.Get(ctx, "dlq:menu:m-1")
	if err != nil {
		t.Fatalf("DLQ entry of m-1: %v", err)
	}
	var obj map[string]any
	if err := json.Unmarshal(m.Value, &obj); err != nil || obj["title"] != "t" || obj["type"] != "MAIL_MESSAGE" {
		t.Errorf("DLQ value of m-1 = %s (%v), want the message record object", m.Value, err)
	}
	if m.TTL < 71*time.Hour || m.TTL > 72*time.Hour {
		t.Errorf("DLQ TTL = %v, want 72h", m.TTL)
	}
	if m.Meta.Attempts != 3 || !strings.Contains(m.Meta.Reason, "kafka") {
		t.Errorf("DLQ meta = %+v, want 3 attempts and a kafka reason", m.Meta)
	}
	l, err := store.Get(ctx, "dlq:log:l-1")
	if err != nil {
		t.Fatalf("DLQ entry of l-1: %v", err)
	}
	var arr []map[string]any
	if err := json.Unmarshal(l.Value, &arr); err != nil || len(arr) != 1 || arr[0]["traceId"] != "t1" {
		t.Errorf("DLQ value of l-1 = %s, want a one-element log array", l.Value)
	}
	ev, _ := e.backend.Event("m-1")
	if ev.RetryCount != 1 || !strings.Contains(ev.LastError, "kafka") {
		t.Errorf("backend row after FAILED: retryCount %d lastError %q", ev.RetryCount, ev.LastError)
	}
}

func TestRedisDownKeepsEventPendingUntilItsDLQEntryIsWritten(t *testing.T) {
	e := newEnv(t, func(c *config.Config) {
		c.KafkaBrokers = []string{closedAddr(t)}
		c.KafkaWriteTimeout = time.Second
		c.LeaseTTL = 0 // one instance: with leases, Redis down means no polling at all
	}, app.Options{})
	e.redis.Stop()
	e.backend.Add(message("m-1", messages.MessagePayload{Title: "t", Body: "b", Recipient: "r"}))
	// Let at least two full publish-and-dead-letter rounds fail on Redis.
	finds := e.backend.Calls(fakebackend.FindMessages)
	testenv.Eventually(t, 60*time.Second, "two more polls", func() bool { return e.backend.Calls(fakebackend.FindMessages) >= finds+3 })
	if s := status(e, "m-1"); s != messages.StatusPending {
		t.Fatalf("status with Redis down = %s, want PENDING (never FAILED without its DLQ entry)", s)
	}
	if n := e.backend.Calls(fakebackend.MarkFailed); n != 0 {
		t.Fatalf("%d FAILED marks while Redis was down", n)
	}
	e.redis.Start()
	testenv.Eventually(t, 60*time.Second, "event FAILED after Redis came back", allStatus(e, messages.StatusFailed, "m-1"))
	if _, err := redisdlq.New(e.redis.Client(t)).Get(context.Background(), "dlq:menu:m-1"); err != nil {
		t.Fatalf("DLQ entry after Redis came back: %v", err)
	}
}

func TestUnencodableEventGetsADLQEntryWithTheReason(t *testing.T) {
	e := newEnv(t, nil, app.Options{})
	e.backend.Add(messages.Event{EventID: "m-nil", EventType: messages.EventTypeMessage})
	testenv.Eventually(t, 20*time.Second, "event FAILED", allStatus(e, messages.StatusFailed, "m-nil"))
	got, err := redisdlq.New(e.redis.Client(t)).Get(context.Background(), "dlq:menu:m-nil")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(got.Value), `"eventId":"m-nil"`) || !strings.Contains(got.Meta.Reason, "encode") {
		t.Errorf("DLQ entry = %s meta %+v", got.Value, got.Meta)
	}
	// Replaying it would hand consumers an object without a record: refused.
	res, err := http.Post("http://"+e.app.HTTPAddr()+"/hobom-event-processor/internal/api/v1/dlq/retry/dlq:menu:m-nil", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("replay of a placeholder answered %d, want 422 (the entry's own problem)", res.StatusCode)
	}
	if n := e.kafka.Count(t, "hobom.messages", 200*time.Millisecond); n != 0 {
		t.Errorf("%d records in Kafka after refusing the replay", n)
	}
}

func TestBackendFindErrorsAreRetried(t *testing.T) {
	e := newEnv(t, nil, app.Options{})
	e.backend.SetFault(fakebackend.FindMessages, fakebackend.Fault{Code: codes.Unavailable, Times: 4})
	e.backend.Add(message("m-1", messages.MessagePayload{Title: "t"}))
	testenv.Eventually(t, 30*time.Second, "event SENT", allStatus(e, messages.StatusSent, "m-1"))
	if n := e.backend.Calls(fakebackend.FindMessages); n < 5 {
		t.Errorf("%d finds, want the 4 failures and a success", n)
	}
}

func TestFailedSentMarkIsRetriedWithoutPublishingAgain(t *testing.T) {
	e := newEnv(t, nil, app.Options{})
	// Two rounds of four mark attempts fail; the third round succeeds.
	e.backend.SetFault(fakebackend.MarkSent, fakebackend.Fault{Code: codes.Unavailable, Times: 8})
	e.backend.Add(message("m-1", messages.MessagePayload{Title: "t"}))
	testenv.Eventually(t, 30*time.Second, "event SENT", allStatus(e, messages.StatusSent, "m-1"))
	if n := e.backend.Calls(fakebackend.MarkSent); n != 9 {
		t.Errorf("%d SENT marks, want 9", n)
	}
	if n := e.kafka.Count(t, "hobom.messages", 300*time.Millisecond); n != 1 {
		t.Errorf("%d records in Kafka, want 1: a failed mark must not publish again", n)
	}
}

func TestMarkFailedErrorsAreRetriedWithoutANewDLQWrite(t *testing.T) {
	e := newEnv(t, func(c *config.Config) {
		c.KafkaBrokers = []string{closedAddr(t)}
		c.KafkaWriteTimeout = time.Second
	}, app.Options{})
	e.backend.SetFault(fakebackend.MarkFailed, fakebackend.Fault{Code: codes.Unavailable, Times: 4})
	e.backend.Add(message("m-1", messages.MessagePayload{Title: "t"}))
	testenv.Eventually(t, 30*time.Second, "event FAILED", allStatus(e, messages.StatusFailed, "m-1"))
	got, err := redisdlq.New(e.redis.Client(t)).Get(context.Background(), "dlq:menu:m-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Meta.Attempts != 3 {
		t.Errorf("DLQ attempts = %d, want 3: the retry of the mark must not dead-letter again", got.Meta.Attempts)
	}
}

func TestShutdownWithNothingReachableIsBounded(t *testing.T) {
	cfg := testConfig(t, closedAddr(t), closedAddr(t), []string{closedAddr(t)})
	a, err := app.New(cfg, zerolog.Nop(), app.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	conn, err := net.Dial("tcp", a.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("shutdown hung")
	}
}

func headers(r *kgo.Record) map[string]string {
	h := map[string]string{}
	for _, x := range r.Headers {
		h[x.Key] = string(x.Value)
	}
	return h
}

func TestARestartRetriesTheMarkOfAPublishedEventWithoutPublishingAgain(t *testing.T) {
	e := newEnv(t, nil, app.Options{})
	e.backend.SetFault(fakebackend.MarkSent, fakebackend.Fault{Code: codes.Unavailable})
	e.backend.Add(message("m-1", messages.MessagePayload{Title: "t"}))
	rdb := e.redis.Client(t)
	testenv.Eventually(t, 30*time.Second, "the unmarked event remembered in Redis", func() bool {
		found, err := redisdlq.NewUnmarked(rdb).Lookup(context.Background(), []string{"m-1"})
		return err == nil && len(found) == 1
	})
	e.stop(t)
	if n := e.kafka.Count(t, "hobom.messages", 200*time.Millisecond); n != 1 {
		t.Fatalf("%d records before the restart, want 1", n)
	}
	e.backend.ClearFaults()

	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	again, err := app.New(e.cfg, log, app.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- again.Run(ctx) }()
	defer func() { cancel(); <-done }()
	testenv.Eventually(t, 30*time.Second, "m-1 SENT by the restarted processor", allStatus(e, messages.StatusSent, "m-1"))
	if n := e.kafka.Count(t, "hobom.messages", 300*time.Millisecond); n != 1 {
		t.Errorf("%d records after the restart, want 1: the restart must only retry the mark", n)
	}
	testenv.Eventually(t, 10*time.Second, "the memory forgotten once marked", func() bool {
		found, err := redisdlq.NewUnmarked(rdb).Lookup(context.Background(), []string{"m-1"})
		return err == nil && len(found) == 0
	})
}

func TestLeasedPollingResumesAfterARedisOutageLongerThanTheLease(t *testing.T) {
	e := newEnv(t, func(c *config.Config) { c.LeaseTTL = 600 * time.Millisecond; c.InstanceID = "only" }, app.Options{})
	e.backend.Add(message("m-before", messages.MessagePayload{Title: "t"}))
	testenv.Eventually(t, 20*time.Second, "m-before SENT", allStatus(e, messages.StatusSent, "m-before"))
	e.redis.Stop()
	time.Sleep(1500 * time.Millisecond) // the outage must outlast the lease: this is the fault, not a wait for a condition
	e.redis.Start()
	e.backend.Add(message("m-after", messages.MessagePayload{Title: "t"}))
	testenv.Eventually(t, 20*time.Second, "m-after SENT once Redis is back", allStatus(e, messages.StatusSent, "m-after"))
}

func TestStoppingTheTreeTwiceDoesNotHang(t *testing.T) {
	e := newEnv(t, nil, app.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	errs := make(chan error, 2)
	for range 2 {
		go func() { errs <- e.app.Tree().Stop(ctx) }()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("stop: %v", err)
		}
	}
	if err := e.app.Tree().Stop(ctx); err != nil {
		t.Fatalf("a third stop: %v", err)
	}
}

// A protobufjs backend writes lone UTF-16 surrogates as invalid UTF-8, which
// Go's protobuf rejects for a whole response. The bad events go to the DLQ
// with the reason, the others of the same response are relayed, and the
// process stays up.
func TestInvalidUTF8EventsGoToTheDLQAndTheRestFlows(t *testing.T) {
	e := newEnv(t, nil, app.Options{})
	// "@@@" becomes U+D800 as protobufjs encodes it: same length, so the
	// wire stays well formed.
	surrogate := func(wire []byte) []byte { return bytes.ReplaceAll(wire, []byte("@@@"), []byte("\xed\xa0\x80")) }
	e.backend.SetWireHook(fakebackend.FindMessages, surrogate)
	e.backend.SetWireHook(fakebackend.FindLogs, surrogate)
	e.backend.Add(
		message("m-1", messages.MessagePayload{Title: "one", Body: "b", Recipient: "r"}),
		message("m-bad", messages.MessagePayload{Title: "bad @@@ title", Body: "b", Recipient: "r"}),
		message("m-3", messages.MessagePayload{Title: "three", Body: "b", Recipient: "r"}),
	)
	e.backend.Add(
		logEvent("l-bad", messages.LogPayload{TraceID: "t-bad", Level: "INFO", Message: "m",
			Detail: &messages.LogPayloadDetail{Headers: map[string]string{"user-agent": "x@@@y"}}}),
		logEvent("l-2", messages.LogPayload{TraceID: "t-2", Level: "INFO", Message: "m"}),
	)
	testenv.Eventually(t, 20*time.Second, "good events SENT", allStatus(e, messages.StatusSent, "m-1", "m-3", "l-2"))
	testenv.Eventually(t, 20*time.Second, "bad events FAILED", allStatus(e, messages.StatusFailed, "m-bad", "l-bad"))

	recs := e.kafka.ReadTopic(t, "hobom.messages", 2, 10*time.Second)
	keys := map[string]bool{}
	for _, r := range recs {
		keys[string(r.Key)] = true
	}
	if !keys["m-1"] || !keys["m-3"] {
		t.Errorf("message records keyed %v, want m-1 and m-3", keys)
	}
	if n := e.kafka.Count(t, "hobom.messages", 300*time.Millisecond); n != 2 {
		t.Errorf("%d message records, want 2: the bad one must not be published", n)
	}
	for _, r := range e.kafka.ReadAll(t, "hobom.logs", 300*time.Millisecond) {
		if strings.Contains(string(r.Value), "t-bad") || !strings.Contains(string(r.Value), "t-2") {
			t.Errorf("log record %s: want l-2 only", r.Value)
		}
	}

	store := redisdlq.New(e.redis.Client(t))
	ctx := context.Background()
	m, err := store.Get(ctx, "dlq:menu:m-bad")
	if err != nil {
		t.Fatalf("DLQ entry of m-bad: %v", err)
	}
	var obj map[string]any
	if err := json.Unmarshal(m.Value, &obj); err != nil || obj["title"] != "bad \uFFFD title" || obj["type"] != "MAIL_MESSAGE" {
		t.Errorf("DLQ value of m-bad = %s (%v), want the record with the repaired title", m.Value, err)
	}
	if m.Meta.Reason != "bad input: invalid UTF-8 in payload.title" {
		t.Errorf("DLQ reason of m-bad = %q", m.Meta.Reason)
	}
	l, err := store.Get(ctx, "dlq:log:l-bad")
	if err != nil {
		t.Fatalf("DLQ entry of l-bad: %v", err)
	}
	var arr []struct {
		TraceID string `json:"traceId"`
		Payload struct {
			Payload struct {
				Headers map[string]string `json:"headers"`
			} `json:"payload"`
		} `json:"payload"`
	}
	if err := json.Unmarshal(l.Value, &arr); err != nil || len(arr) != 1 || arr[0].TraceID != "t-bad" ||
		arr[0].Payload.Payload.Headers["user-agent"] != "x\uFFFDy" {
		t.Errorf("DLQ value of l-bad = %s (%v), want a one-element log array with the repaired header", l.Value, err)
	}
	if !strings.Contains(l.Meta.Reason, "invalid UTF-8 in payload.payload.headers[value]") {
		t.Errorf("DLQ reason of l-bad = %q", l.Meta.Reason)
	}
	if ev, _ := e.backend.Event("m-bad"); !strings.Contains(ev.LastError, "invalid UTF-8") {
		t.Errorf("backend lastError of m-bad = %q", ev.LastError)
	}

	// Still up and relaying.
	select {
	case err := <-e.stopped:
		t.Fatalf("processor stopped: %v", err)
	default:
	}
	e.backend.Add(message("m-after", messages.MessagePayload{Title: "after"}))
	testenv.Eventually(t, 20*time.Second, "a later event SENT", allStatus(e, messages.StatusSent, "m-after"))
}
