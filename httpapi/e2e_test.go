package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"google.golang.org/grpc/codes"

	"github.com/hobom/hobom-event-processor/actors"
	"github.com/hobom/hobom-event-processor/httpapi"
	"github.com/hobom/hobom-event-processor/infra/adapters/redisdlq"
	"github.com/hobom/hobom-event-processor/infra/app"
	"github.com/hobom/hobom-event-processor/infra/config"
	"github.com/hobom/hobom-event-processor/infra/devkit/fakebackend"
	"github.com/hobom/hobom-event-processor/infra/testkit/testenv"
	"github.com/hobom/hobom-event-processor/messages"
)

// These tests run whole processors (app.New: actor tree, Kafka, Redis and
// gRPC clients, HTTP server) against the stand-in backend, kfake and a real
// redis-server, and drive the API over real HTTP.

// stack is the systems around the processor, shared by every processor a
// test starts, as several instances share them in production.
type stack struct {
	backend *fakebackend.Server
	kafka   *testenv.KafkaCluster
	redis   *testenv.RedisServer
	rc      *redis.Client
	store   *redisdlq.Store
}

func newStack(t *testing.T) *stack {
	t.Helper()
	backend, err := fakebackend.Start(fakebackend.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(backend.Close)
	s := &stack{backend: backend, kafka: testenv.Kafka(t), redis: testenv.Redis(t)}
	s.rc = s.redis.Client(t)
	s.store = redisdlq.New(s.rc)
	return s
}

// proc is one running processor.
type proc struct {
	t    *testing.T
	base string // http://host:port
	app  *app.App
}

func (s *stack) start(t *testing.T, mutate func(*config.Config)) *proc {
	t.Helper()
	cfg, err := testenv.Config()
	if err != nil {
		t.Fatal(err)
	}
	cfg.GRPCAddr = s.backend.Addr()
	cfg.KafkaBrokers = s.kafka.Addrs()
	cfg.RedisAddr = s.redis.Addr()
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.PollInterval = 50 * time.Millisecond
	cfg.PollMaxBackoff = 400 * time.Millisecond
	cfg.PublishBackoff = 20 * time.Millisecond
	cfg.KafkaWriteTimeout = 2 * time.Second
	cfg.GRPCTimeout = 2 * time.Second
	cfg.ShutdownTimeout = 30 * time.Second
	cfg.InternalAPIKey = ""
	if mutate != nil {
		mutate(&cfg)
	}
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	if testing.Verbose() {
		log = log.Level(zerolog.InfoLevel)
	}
	a, err := app.New(cfg, log, app.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-stopped:
			if err != nil {
				t.Errorf("shutdown: %v", err)
			}
		case <-time.After(45 * time.Second):
			t.Errorf("shutdown did not finish")
		}
	})
	return &proc{t: t, base: "http://" + a.HTTPAddr(), app: a}
}

// reply is an HTTP answer.
type reply struct {
	status int
	header http.Header
	raw    []byte
}

func (r reply) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.raw, &m); err != nil {
		t.Fatalf("body %q is not a JSON object: %v", r.raw, err)
	}
	return m
}

func (r reply) errText(t *testing.T) string {
	t.Helper()
	s, _ := r.json(t)["error"].(string)
	return s
}

// req sends a request to path (below the base path unless it starts with
// "/health" or "http") with header pairs.
func (p *proc) req(method, path string, body io.Reader, headers ...string) reply {
	p.t.Helper()
	u := path
	if !strings.HasPrefix(path, "/health") {
		u = httpapi.BasePath + path
	}
	rq, err := http.NewRequest(method, p.base+u, body)
	if err != nil {
		p.t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		rq.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(rq)
	if err != nil {
		p.t.Fatalf("%s %s: %v", method, u, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		p.t.Fatal(err)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		p.t.Errorf("%s %s: Content-Type %q, want JSON", method, u, ct)
	}
	return reply{status: res.StatusCode, header: res.Header, raw: raw}
}

func (p *proc) get(path string, headers ...string) reply {
	return p.req(http.MethodGet, path, nil, headers...)
}
func (p *proc) post(path string, headers ...string) reply {
	return p.req(http.MethodPost, path, nil, headers...)
}

func (p *proc) del(path string, headers ...string) reply {
	return p.req(http.MethodDelete, path, nil, headers...)
}

func wantStatus(t *testing.T, what string, r reply, want int) {
	t.Helper()
	if r.status != want {
		t.Fatalf("%s: status %d, want %d; body %s", what, r.status, want, r.raw)
	}
}

func esc(key string) string { return url.PathEscape(key) }

// put writes a DLQ entry as the DLQ actor does.
func (s *stack) put(t *testing.T, key string, value string, meta actors.DeadLetterMeta) {
	t.Helper()
	if err := s.store.Put(context.Background(), key, []byte(value), meta, 72*time.Hour); err != nil {
		t.Fatal(err)
	}
}

func (s *stack) exists(t *testing.T, key string) bool {
	t.Helper()
	n, err := s.rc.Exists(context.Background(), key, redisdlq.MetaKey(key)).Result()
	if err != nil {
		t.Fatal(err)
	}
	return n > 0
}

// failedEvent is an outbox row the processor dead-lettered: FAILED, so no
// poller picks it up again, and a replay's SENT mark finds it.
func failedEvent(id, eventType string) messages.Event {
	ev := messages.Event{EventID: id, EventType: eventType, Status: messages.StatusFailed}
	if eventType == messages.EventTypeMessage {
		ev.Message = &messages.MessagePayload{Title: "t"}
	} else {
		ev.Log = &messages.LogPayload{TraceID: "t"}
	}
	return ev
}

func (s *stack) status(id string) string {
	ev, ok := s.backend.Event(id)
	if !ok {
		return "missing"
	}
	return ev.Status
}

// audit returns the audit trail, newest first.
func (p *proc) audit(t *testing.T, headers ...string) []map[string]any {
	t.Helper()
	r := p.get("/dlq/audit?limit=1000", headers...)
	wantStatus(t, "audit", r, http.StatusOK)
	var body struct {
		Items []map[string]any `json:"items"`
	}
	if err := json.Unmarshal(r.raw, &body); err != nil {
		t.Fatal(err)
	}
	return body.Items
}

// findAudit returns the newest record of action on key ("": any key) with
// outcome ("": any).
func findAudit(items []map[string]any, action, key string, outcome ...string) map[string]any {
	for _, it := range items {
		if it["action"] == action && (key == "" || it["key"] == key) && (len(outcome) == 0 || it["outcome"] == outcome[0]) {
			return it
		}
	}
	return nil
}

const msgValue = `{"type":"MAIL_MESSAGE","title":"Hello","body":"<b>x</b> & y","recipient":"a@b.c","sentAt":"2024-05-01T10:00:00Z"}`
const logValue = `[{"serviceType":"api","level":"ERROR","traceId":"t1","message":"boom","httpMethod":"GET","path":"/a","statusCode":500,"host":"h","userId":"u","payload":{"traceId":"t1"}}]`

func TestHealthUnknownRoutesAndMethods(t *testing.T) {
	s := newStack(t)
	p := s.start(t, nil)

	r := p.get("/health")
	wantStatus(t, "health", r, http.StatusOK)
	if got := strings.TrimSpace(string(r.raw)); got != `{"status":"ok","statusCode":200,"message":"Service is healthy"}` {
		t.Errorf("health body %s", got)
	}
	r = p.get("/nope")
	wantStatus(t, "unknown route", r, http.StatusNotFound)
	if r.errText(t) == "" {
		t.Errorf("unknown route body %s", r.raw)
	}
	r = p.req(http.MethodPut, "/dlq", nil)
	wantStatus(t, "PUT /dlq", r, http.StatusMethodNotAllowed)
	if r.errText(t) != "method not allowed" || !strings.Contains(r.header.Get("Allow"), "GET") {
		t.Errorf("405 body %s Allow %q", r.raw, r.header.Get("Allow"))
	}
	r = p.req(http.MethodPatch, "/dlq/retry/dlq:menu:x", nil)
	wantStatus(t, "PATCH retry", r, http.StatusMethodNotAllowed)
	r = p.get("/dlq/jobs/abc/more")
	wantStatus(t, "too deep", r, http.StatusNotFound)
	r = p.get("/dlq/")
	wantStatus(t, "trailing slash", r, http.StatusNotFound)

	r = p.get("/openapi.json")
	wantStatus(t, "openapi", r, http.StatusOK)
	if m := r.json(t); m["openapi"] == nil || m["paths"] == nil {
		t.Errorf("openapi.json: %s", r.raw[:100])
	}
}

func TestListIsPagedScansOnlyDLQKeysAndChecksPrefixes(t *testing.T) {
	s := newStack(t)
	p := s.start(t, nil)
	ctx := context.Background()

	want := map[string]bool{}
	pipe := s.rc.Pipeline()
	for i := range 2500 {
		k := fmt.Sprintf("dlq:menu:m-%04d", i)
		pipe.Set(ctx, k, msgValue, time.Hour)
		want[k] = true
	}
	for i := range 30 {
		k := fmt.Sprintf("dlq:log:l-%02d", i)
		pipe.Set(ctx, k, logValue, time.Hour)
		want[k] = true
	}
	pipe.Set(ctx, "dlq:menu::legacy-1", msgValue, 0)
	want["dlq:menu::legacy-1"] = true
	for _, k := range []string{"other:dlq:menu:x", "session:1", "hobom:dlqmeta:dlq:menu:m-0001", "DLQ:menu:upper"} {
		pipe.Set(ctx, k, "secret", time.Hour)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}

	// No limit: a bounded first page, and the body says so.
	r := p.get("/dlq")
	wantStatus(t, "list", r, http.StatusOK)
	var page struct {
		Items      []string `json:"items"`
		NextCursor string   `json:"nextCursor"`
		Limit      int      `json:"limit"`
		Truncated  bool     `json:"truncated"`
	}
	if err := json.Unmarshal(r.raw, &page); err != nil {
		t.Fatal(err)
	}
	if page.Limit != httpapi.DefaultPageLimit || !page.Truncated || page.NextCursor == "" || len(page.Items) == 0 || len(page.Items) > 2*httpapi.DefaultPageLimit {
		t.Fatalf("default page: %d items, limit %d, truncated %v, nextCursor %q", len(page.Items), page.Limit, page.Truncated, page.NextCursor)
	}

	// Every key exactly once (SCAN may repeat one), nothing outside dlq:.
	seen := map[string]bool{}
	cursor, pages := "", 0
	for {
		r := p.get("/dlq?limit=300&cursor=" + cursor)
		wantStatus(t, "page", r, http.StatusOK)
		page.Items, page.NextCursor = nil, ""
		if err := json.Unmarshal(r.raw, &page); err != nil {
			t.Fatal(err)
		}
		pages++
		if len(page.Items) > 600 {
			t.Errorf("page of %d items for limit 300", len(page.Items))
		}
		for _, k := range page.Items {
			if !want[k] {
				t.Fatalf("listed %q, which is not a DLQ key written here", k)
			}
			seen[k] = true
		}
		if page.Truncated != (page.NextCursor != "") {
			t.Fatalf("truncated %v with nextCursor %q", page.Truncated, page.NextCursor)
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
		if pages > 200 {
			t.Fatal("listing does not end")
		}
	}
	if len(seen) != len(want) {
		t.Fatalf("paged listing saw %d keys, want %d", len(seen), len(want))
	}
	if pages < 2531/600 {
		t.Errorf("%d pages", pages)
	}

	r = p.get("/dlq?prefix=dlq:log:&limit=10000")
	wantStatus(t, "prefix", r, http.StatusOK)
	page.Items = nil
	_ = json.Unmarshal(r.raw, &page)
	if len(page.Items) != 30 || page.Truncated {
		t.Errorf("prefix dlq:log: gave %d keys (truncated %v), want 30", len(page.Items), page.Truncated)
	}
	for _, k := range page.Items {
		if !strings.HasPrefix(k, "dlq:log:") {
			t.Errorf("prefix dlq:log: listed %q", k)
		}
	}

	for _, bad := range []string{
		"prefix=other:", "prefix=*", "prefix=dlq:*", "prefix=hobom:dlqmeta:", "prefix=dlq:%0a",
		"limit=0", "limit=-1", "limit=abc", "limit=10001", "limit=", "limit=1&limit=2",
		"cursor=abc", "cursor=-1", "cursor=99999999999999999999999", "prefix=" + strings.Repeat("x", 5000),
	} {
		r := p.get("/dlq?" + bad)
		wantStatus(t, "list ?"+bad, r, http.StatusBadRequest)
		if r.errText(t) == "" {
			t.Errorf("list ?%s: no error text in %s", bad, r.raw)
		}
	}
}

func TestGetEntryObjectsArraysLegacyAndErrors(t *testing.T) {
	s := newStack(t)
	p := s.start(t, nil)
	ctx := context.Background()
	first := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	s.put(t, "dlq:menu:m-1", msgValue, actors.DeadLetterMeta{EventType: "MESSAGE", Topic: "hobom.messages", Reason: "kafka: down", Attempts: 3, FailedAt: first})
	s.put(t, "dlq:log:l-1", logValue, actors.DeadLetterMeta{EventType: "HOBOM_LOG", Topic: "hobom.logs", Reason: "kafka: down", Attempts: 3})
	if err := s.rc.Set(ctx, "dlq:menu::e1", msgValue, 0).Err(); err != nil { // the old service's entry
		t.Fatal(err)
	}

	r := p.get("/dlq/" + esc("dlq:menu:m-1"))
	wantStatus(t, "get message", r, http.StatusOK)
	var got struct {
		Item json.RawMessage `json:"item"`
		Meta map[string]any  `json:"meta"`
	}
	if err := json.Unmarshal(r.raw, &got); err != nil {
		t.Fatal(err)
	}
	assertSameJSON(t, got.Item, msgValue)
	m := got.Meta
	if m["eventType"] != "MESSAGE" || m["eventId"] != "m-1" || m["topic"] != "hobom.messages" || m["reason"] != "kafka: down" ||
		m["attempts"] != float64(3) || m["firstFailedAt"] != "2024-05-01T10:00:00Z" || m["legacy"] != false || m["hasMeta"] != true {
		t.Errorf("meta %v", m)
	}
	if ttl, _ := m["ttlSeconds"].(float64); ttl < 71*3600 || ttl > 72*3600 {
		t.Errorf("ttlSeconds %v", m["ttlSeconds"])
	}

	r = p.get("/dlq/" + esc("dlq:log:l-1"))
	wantStatus(t, "get log", r, http.StatusOK)
	_ = json.Unmarshal(r.raw, &got)
	assertSameJSON(t, got.Item, logValue)
	if got.Item[0] != '[' || got.Meta["eventType"] != "HOBOM_LOG" || got.Meta["topic"] != "hobom.logs" {
		t.Errorf("log entry item %s meta %v", got.Item, got.Meta)
	}

	r = p.get("/dlq/" + esc("dlq:menu::e1"))
	wantStatus(t, "get legacy", r, http.StatusOK)
	_ = json.Unmarshal(r.raw, &got)
	assertSameJSON(t, got.Item, msgValue)
	m = got.Meta
	if m["eventId"] != "e1" || m["eventType"] != "MESSAGE" || m["topic"] != "hobom.messages" || m["legacy"] != true ||
		m["hasMeta"] != false || m["ttlSeconds"] != nil || m["replayable"] != true {
		t.Errorf("legacy meta %v", m)
	}

	wantStatus(t, "missing", p.get("/dlq/"+esc("dlq:menu:nope")), http.StatusNotFound)
	for _, bad := range []string{"session:1", "dlq:nocolon", "dlq::e1", "dlq:menu:", "hobom:dlqmeta:dlq:menu:m-1", "dlq:menu:a\tb"} {
		r := p.get("/dlq/" + esc(bad))
		wantStatus(t, "get "+bad, r, http.StatusBadRequest)
	}
}

func assertSameJSON(t *testing.T, got json.RawMessage, want string) {
	t.Helper()
	var a, b any
	if err := json.Unmarshal(got, &a); err != nil {
		t.Fatalf("item %s: %v", got, err)
	}
	_ = json.Unmarshal([]byte(want), &b)
	ga, _ := json.Marshal(a)
	gb, _ := json.Marshal(b)
	if !bytes.Equal(ga, gb) {
		t.Errorf("item %s, want %s", got, want)
	}
}

func TestReplayPublishesStoredBytesWithTheOriginalKeyThenDeletesAndMarksSent(t *testing.T) {
	s := newStack(t)
	p := s.start(t, nil)
	ctx := context.Background()
	s.backend.Add(failedEvent("m-1", messages.EventTypeMessage), failedEvent("e1", messages.EventTypeMessage), failedEvent("l-1", messages.EventTypeHoBomLog))
	s.put(t, "dlq:menu:m-1", msgValue, actors.DeadLetterMeta{EventType: "MESSAGE", Reason: "kafka: down", Attempts: 3})
	s.put(t, "dlq:log:l-1", logValue, actors.DeadLetterMeta{EventType: "HOBOM_LOG", Reason: "kafka: down", Attempts: 3})
	if err := s.rc.Set(ctx, "dlq:menu::e1", msgValue, 0).Err(); err != nil {
		t.Fatal(err)
	}

	r := p.post("/dlq/retry/"+esc("dlq:menu:m-1"), "x-operator", "alice")
	wantStatus(t, "replay", r, http.StatusOK)
	if m := r.json(t); m["message"] != "DLQ retried and removed from Redis" || m["eventId"] != "m-1" || m["topic"] != "hobom.messages" {
		t.Errorf("replay body %s", r.raw)
	}
	if s.exists(t, "dlq:menu:m-1") {
		t.Error("entry or its metadata still in Redis after the replay")
	}
	wantStatus(t, "legacy replay", p.post("/dlq/retry/"+esc("dlq:menu::e1")), http.StatusOK)
	wantStatus(t, "log replay", p.post("/dlq/retry/"+esc("dlq:log:l-1")), http.StatusOK)

	recs := s.kafka.ReadAll(t, "hobom.messages", 300*time.Millisecond)
	byKey := map[string][]byte{}
	for _, rec := range recs {
		byKey[string(rec.Key)] = rec.Value
		if rec.Topic != "hobom.messages" {
			t.Errorf("record on %s", rec.Topic)
		}
		h := map[string]string{}
		for _, x := range rec.Headers {
			h[x.Key] = string(x.Value)
		}
		if h["event-id"] != string(rec.Key) || h["event-type"] != "MESSAGE" || !strings.HasPrefix(h["producer"], "hobom-event-processor/") {
			t.Errorf("replayed record headers %v", h)
		}
	}
	if len(recs) != 2 || string(byKey["m-1"]) != msgValue || string(byKey["e1"]) != msgValue {
		t.Fatalf("hobom.messages holds %d records %q; want the stored bytes keyed m-1 and e1", len(recs), byKey)
	}
	logs := s.kafka.ReadAll(t, "hobom.logs", 300*time.Millisecond)
	if len(logs) != 1 || string(logs[0].Value) != logValue || !strings.HasPrefix(string(logs[0].Key), "hobom-log-") {
		t.Fatalf("hobom.logs: %d records, first %v", len(logs), logs)
	}
	testenv.Eventually(t, 20*time.Second, "replayed events SENT", func() bool {
		return s.status("m-1") == messages.StatusSent && s.status("e1") == messages.StatusSent && s.status("l-1") == messages.StatusSent
	})

	// Replayed already: 404, and nothing published again.
	r = p.post("/dlq/retry/" + esc("dlq:menu:m-1"))
	wantStatus(t, "second replay", r, http.StatusNotFound)
	if n := s.kafka.Count(t, "hobom.messages", 300*time.Millisecond); n != 2 {
		t.Errorf("%d records after a replay of a missing key, want 2", n)
	}

	// Bad keys never reach Redis or Kafka.
	for key, want := range map[string]int{
		"session:1":           http.StatusBadRequest,
		"dlq:nocolon":         http.StatusBadRequest,
		"dlq:unknown:e1":      http.StatusBadRequest, // no route, no topic
		"dlq:menu:never-here": http.StatusNotFound,
	} {
		wantStatus(t, "replay "+key, p.post("/dlq/retry/"+esc(key)), want)
	}

	items := p.audit(t)
	a := findAudit(items, "replay", "dlq:menu:m-1", "done")
	if a == nil {
		t.Fatalf("no audit record of the replay in %v", items)
	}
	caller, _ := a["caller"].(map[string]any)
	if a["outcome"] != "done" || caller["operator"] != "alice" || !strings.HasPrefix(fmt.Sprint(caller["addr"]), "127.0.0.1:") || a["time"] == nil || a["eventId"] != "m-1" {
		t.Errorf("audit record %v", a)
	}
	if a := findAudit(items, "replay", "dlq:menu:never-here"); a == nil || a["outcome"] != "not_found" {
		t.Errorf("audit of a missing key: %v", a)
	}
	if items[0]["key"] != "dlq:menu:never-here" && items[0]["key"] != "dlq:menu:m-1" {
		t.Errorf("audit not newest first: %v", items[0])
	}
	res, err := http.Get(p.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	scrape, _ := io.ReadAll(res.Body)
	if !strings.Contains(string(scrape), `hobom_events_replayed_total{event_type="MESSAGE"} 2`) || !strings.Contains(string(scrape), `hobom_events_replayed_total{event_type="HOBOM_LOG"} 1`) {
		t.Errorf("the replays (2 MESSAGE, 1 HOBOM_LOG) are not counted in /metrics")
	}
}

func TestReplayWithKafkaDownAnswers5xxAndKeepsTheEntry(t *testing.T) {
	s := newStack(t)
	down := s.start(t, func(c *config.Config) {
		c.KafkaBrokers = []string{fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))}
		c.KafkaWriteTimeout = time.Second
	})
	s.put(t, "dlq:menu:m-1", msgValue, actors.DeadLetterMeta{EventType: "MESSAGE", Attempts: 3})
	r := down.post("/dlq/retry/" + esc("dlq:menu:m-1"))
	if r.status != http.StatusBadGateway && r.status != http.StatusServiceUnavailable {
		t.Fatalf("replay with Kafka down: %d %s, want 502 or 503", r.status, r.raw)
	}
	if !strings.Contains(r.errText(t), "kafka") {
		t.Errorf("error %q does not name Kafka", r.errText(t))
	}
	v, _, found, err := s.store.Value(context.Background(), "dlq:menu:m-1", 1<<20)
	if err != nil || !found || string(v) != msgValue {
		t.Fatalf("entry after a failed replay: %q %v %v", v, found, err)
	}
	e, _ := s.store.Get(context.Background(), "dlq:menu:m-1")
	if e.Meta.Attempts != 3 {
		t.Errorf("metadata changed: %+v", e.Meta)
	}
	if a := findAudit(down.audit(t), "replay", "dlq:menu:m-1"); a == nil || a["outcome"] != "kafka_failed" {
		t.Errorf("audit %v", a)
	}
	// A bulk job stops by itself after 10 failed replays in a row, and
	// keeps every entry.
	for i := range 15 {
		s.put(t, fmt.Sprintf("dlq:menu:f-%02d", i), msgValue, actors.DeadLetterMeta{})
	}
	r = down.post("/dlq/retry?prefix=dlq:menu:f-&rate=1000")
	wantStatus(t, "bulk with Kafka down", r, http.StatusAccepted)
	id, _ := r.json(t)["jobId"].(string)
	var js messages.JobStatus
	testenv.Eventually(t, 30*time.Second, "job aborted", func() bool { js = down.job(t, id); return js.State != messages.JobRunning })
	if js.State != messages.JobAborted || js.Failed < 10 || js.Replayed != 0 || len(js.Errors) == 0 || !strings.Contains(js.EndReason, "in a row") {
		t.Fatalf("job with Kafka down: %+v", js)
	}
	testenv.Eventually(t, 10*time.Second, "in-flight replays", func() bool { return down.job(t, id).InFlight == 0 })
	if left, _ := s.store.List(context.Background(), "dlq:menu:f-", 0); len(left) != 15 {
		t.Errorf("%d of 15 entries left after failed replays", len(left))
	}

	// The lock was released: a processor that reaches Kafka replays it.
	up := s.start(t, nil)
	wantStatus(t, "replay with Kafka up", up.post("/dlq/retry/"+esc("dlq:menu:m-1")), http.StatusOK)
}

func TestRedisDownAnswers503(t *testing.T) {
	s := newStack(t)
	p := s.start(t, nil)
	s.redis.Stop()
	for _, c := range []struct{ method, path string }{
		{http.MethodGet, "/dlq"},
		{http.MethodGet, "/dlq/" + esc("dlq:menu:m-1")},
		{http.MethodPost, "/dlq/retry/" + esc("dlq:menu:m-1")},
		{http.MethodDelete, "/dlq/" + esc("dlq:menu:m-1") + "?reason=x"},
		{http.MethodPost, "/dlq/retry?prefix=dlq:"},
		{http.MethodGet, "/dlq/audit"},
	} {
		r := p.req(c.method, c.path, nil)
		wantStatus(t, c.method+" "+c.path+" with Redis down", r, http.StatusServiceUnavailable)
		if r.errText(t) == "" {
			t.Errorf("no error text: %s", r.raw)
		}
	}
	wantStatus(t, "health with Redis down", p.get("/health"), http.StatusOK)
}

func TestFailedSentMarkAfterReplayIsRetriedWithoutPublishingAgain(t *testing.T) {
	s := newStack(t)
	p := s.start(t, nil)
	s.backend.Add(failedEvent("m-1", messages.EventTypeMessage))
	s.put(t, "dlq:menu:m-1", msgValue, actors.DeadLetterMeta{EventType: "MESSAGE"})
	// A whole round of four mark attempts fails, and one of the next.
	s.backend.SetFault(fakebackend.MarkSent, fakebackend.Fault{Code: codes.Unavailable, Times: 5})
	wantStatus(t, "replay", p.post("/dlq/retry/"+esc("dlq:menu:m-1")), http.StatusOK)
	testenv.Eventually(t, 30*time.Second, "event SENT", func() bool { return s.status("m-1") == messages.StatusSent })
	if n := s.backend.Calls(fakebackend.MarkSent); n != 6 {
		t.Errorf("%d SENT marks, want 6 (5 failed, 1 taken)", n)
	}
	if n := s.kafka.Count(t, "hobom.messages", 300*time.Millisecond); n != 1 {
		t.Errorf("%d records, want 1: a failed mark must not publish again", n)
	}
}

func TestHeldLockAnswers409(t *testing.T) {
	s := newStack(t)
	p := s.start(t, nil)
	s.put(t, "dlq:menu:m-1", msgValue, actors.DeadLetterMeta{})
	if err := s.rc.Set(context.Background(), redisdlq.LockKey("dlq:menu:m-1"), "someone-else", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, "replay under a held lock", p.post("/dlq/retry/"+esc("dlq:menu:m-1")), http.StatusConflict)
	wantStatus(t, "discard under a held lock", p.del("/dlq/"+esc("dlq:menu:m-1")+"?reason=x"), http.StatusConflict)
	if !s.exists(t, "dlq:menu:m-1") {
		t.Fatal("entry gone")
	}
	if v, _ := s.rc.Get(context.Background(), redisdlq.LockKey("dlq:menu:m-1")).Result(); v != "someone-else" {
		t.Fatalf("someone else's lock was touched: %q", v)
	}
	if n := s.kafka.Count(t, "hobom.messages", 200*time.Millisecond); n != 0 {
		t.Errorf("%d records published under someone else's lock", n)
	}
}

func TestConcurrentReplaysFromTwoProcessesPublishOnce(t *testing.T) {
	s := newStack(t)
	a, b := s.start(t, nil), s.start(t, nil)
	const keys = 40
	outcomes := map[int]int{}
	for i := range keys {
		key := fmt.Sprintf("dlq:menu:c-%02d", i)
		s.put(t, key, fmt.Sprintf(`{"type":"MAIL_MESSAGE","title":"n%d","body":"b","recipient":"r"}`, i), actors.DeadLetterMeta{})
		var wg sync.WaitGroup
		statuses := make([]int, 4)
		start := make(chan struct{})
		for j, p := range []*proc{a, b, a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				statuses[j] = p.post("/dlq/retry/" + esc(key)).status
			}()
		}
		close(start)
		wg.Wait()
		ok := 0
		for _, st := range statuses {
			outcomes[st]++
			switch st {
			case http.StatusOK:
				ok++
			case http.StatusConflict, http.StatusNotFound:
			default:
				t.Errorf("%s: status %d", key, st)
			}
		}
		if ok != 1 {
			t.Errorf("%s: %d replays succeeded (%v), want exactly 1", key, ok, statuses)
		}
	}
	t.Logf("outcomes by status: %v", outcomes)
	recs := s.kafka.ReadAll(t, "hobom.messages", 500*time.Millisecond)
	perKey := map[string]int{}
	for _, r := range recs {
		perKey[string(r.Key)]++
	}
	if len(recs) != keys {
		t.Errorf("%d records for %d keys", len(recs), keys)
	}
	for i := range keys {
		if id := fmt.Sprintf("c-%02d", i); perKey[id] != 1 {
			t.Errorf("%s published %d times", id, perKey[id])
		}
	}
}

func TestDiscardNeedsAReasonAndIsAudited(t *testing.T) {
	s := newStack(t)
	p := s.start(t, nil)
	s.put(t, "dlq:menu:m-1", msgValue, actors.DeadLetterMeta{})
	s.put(t, "dlq:menu:m-2", msgValue, actors.DeadLetterMeta{})

	wantStatus(t, "no reason", p.del("/dlq/"+esc("dlq:menu:m-1")), http.StatusBadRequest)
	wantStatus(t, "bad body", p.req(http.MethodDelete, "/dlq/"+esc("dlq:menu:m-1"), strings.NewReader("{not json")), http.StatusBadRequest)
	wantStatus(t, "huge body", p.req(http.MethodDelete, "/dlq/"+esc("dlq:menu:m-1"),
		strings.NewReader(`{"reason":"`+strings.Repeat("x", httpapi.MaxBodyBytes)+`"}`)), http.StatusRequestEntityTooLarge)
	wantStatus(t, "long reason", p.del("/dlq/"+esc("dlq:menu:m-1")+"?reason="+strings.Repeat("x", 1025)), http.StatusBadRequest)
	wantStatus(t, "control char", p.del("/dlq/"+esc("dlq:menu:m-1")+"?reason=a%0Ab"), http.StatusBadRequest)
	wantStatus(t, "bad operator", p.del("/dlq/"+esc("dlq:menu:m-1")+"?reason=x", "x-operator", strings.Repeat("o", 200)), http.StatusBadRequest)
	wantStatus(t, "not a DLQ key", p.del("/dlq/session:1?reason=x"), http.StatusBadRequest)
	if !s.exists(t, "dlq:menu:m-1") {
		t.Fatal("a refused discard deleted the entry")
	}

	r := p.del("/dlq/"+esc("dlq:menu:m-1")+"?reason="+url.QueryEscape("poison message, ticket OPS-1"), "x-operator", "bob")
	wantStatus(t, "discard", r, http.StatusOK)
	r = p.req(http.MethodDelete, "/dlq/"+esc("dlq:menu:m-2"), strings.NewReader(`{"reason":"duplicate"}`))
	wantStatus(t, "discard with a JSON body", r, http.StatusOK)
	if s.exists(t, "dlq:menu:m-1") || s.exists(t, "dlq:menu:m-2") {
		t.Fatal("discarded entries still there")
	}
	wantStatus(t, "discard missing", p.del("/dlq/"+esc("dlq:menu:m-1")+"?reason=again"), http.StatusNotFound)
	if n := s.kafka.Count(t, "hobom.messages", 200*time.Millisecond); n != 0 {
		t.Errorf("a discard published %d records", n)
	}
	items := p.audit(t)
	a := findAudit(items, "discard", "dlq:menu:m-1", "done")
	caller, _ := a["caller"].(map[string]any)
	if a == nil || a["reason"] != "poison message, ticket OPS-1" || caller["operator"] != "bob" || caller["addr"] == "" {
		t.Errorf("discard audit %v", a)
	}
	if a := findAudit(items, "discard", "dlq:menu:m-2"); a == nil || a["reason"] != "duplicate" || a["outcome"] != "done" {
		t.Errorf("discard audit %v", a)
	}
}

// jobStatus polls a job.
func (p *proc) job(t *testing.T, id string) messages.JobStatus {
	t.Helper()
	r := p.get("/dlq/jobs/" + id)
	wantStatus(t, "job", r, http.StatusOK)
	var js messages.JobStatus
	if err := json.Unmarshal(r.raw, &js); err != nil {
		t.Fatal(err)
	}
	return js
}

func TestBulkReplayKeepsItsRate(t *testing.T) {
	s := newStack(t)
	p := s.start(t, nil)
	const n, rate = 20, 10
	for i := range n {
		s.put(t, fmt.Sprintf("dlq:menu:b-%02d", i), fmt.Sprintf(`{"type":"MAIL_MESSAGE","title":"n%d","body":"b","recipient":"r"}`, i), actors.DeadLetterMeta{})
	}
	s.put(t, "dlq:log:other", logValue, actors.DeadLetterMeta{}) // another prefix: left alone

	start := time.Now()
	r := p.post(fmt.Sprintf("/dlq/retry?prefix=dlq:menu:b-&rate=%d", rate), "x-operator", "carol")
	wantStatus(t, "bulk", r, http.StatusAccepted)
	id, _ := r.json(t)["jobId"].(string)
	if id == "" || r.header.Get("Location") != httpapi.BasePath+"/dlq/jobs/"+id {
		t.Fatalf("bulk answer %s Location %q", r.raw, r.header.Get("Location"))
	}
	var js messages.JobStatus
	testenv.Eventually(t, 30*time.Second, "job done", func() bool {
		js = p.job(t, id)
		return js.State != messages.JobRunning
	})
	took := time.Since(start)
	if js.State != messages.JobDone || js.Matched != n || js.Replayed != n || js.Failed != 0 || js.Remaining != 0 {
		t.Fatalf("job %+v", js)
	}
	if min := time.Duration(n-2) * time.Second / rate; took < min {
		t.Errorf("%d replays at %d/s took %v, less than %v", n, rate, took, min)
	}
	if c := s.kafka.Count(t, "hobom.messages", 300*time.Millisecond); c != n {
		t.Errorf("%d records, want %d", c, n)
	}
	if !s.exists(t, "dlq:log:other") {
		t.Error("a key outside the prefix was replayed")
	}
	items := p.audit(t)
	if a := findAudit(items, "bulk-start", ""); a == nil || a["jobId"] != id || a["caller"].(map[string]any)["operator"] != "carol" {
		t.Errorf("bulk-start audit %v", a)
	}
	if a := findAudit(items, "bulk-end", ""); a == nil || a["outcome"] != "done" {
		t.Errorf("bulk-end audit %v", a)
	}
	perJob := 0
	for _, it := range items {
		if it["action"] == "replay" && it["jobId"] == id {
			perJob++
		}
	}
	if perJob != n {
		t.Errorf("%d replay audit records of the job, want %d", perJob, n)
	}
}

func TestBulkReplayCancelDryRunAndBadRequests(t *testing.T) {
	s := newStack(t)
	p := s.start(t, nil)
	const n = 30
	for i := range n {
		s.put(t, fmt.Sprintf("dlq:menu:k-%02d", i), fmt.Sprintf(`{"type":"MAIL_MESSAGE","title":"n%d","body":"b","recipient":"r"}`, i), actors.DeadLetterMeta{})
	}
	// Another family's key is left out; an unparseable key of ours is
	// listed as invalid.
	for _, k := range []string{"dlq:weird", "dlq:menu:::weird"} {
		if err := s.rc.Set(context.Background(), k, "x", time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
	}

	// Dry run: what would be replayed, nothing published.
	r := p.post("/dlq/retry?prefix=dlq:&dryRun=true&rate=5")
	wantStatus(t, "dry run", r, http.StatusOK)
	var dry struct {
		DryRun  bool                `json:"dryRun"`
		Matched int                 `json:"matched"`
		Keys    []string            `json:"keys"`
		Invalid []map[string]string `json:"invalid"`
	}
	if err := json.Unmarshal(r.raw, &dry); err != nil {
		t.Fatal(err)
	}
	if !dry.DryRun || dry.Matched != n+1 || len(dry.Keys) != n || len(dry.Invalid) != 1 || dry.Invalid[0]["key"] != "dlq:menu:::weird" || dry.Keys[0] != "dlq:menu:k-00" {
		t.Fatalf("dry run %s", r.raw)
	}
	if c := s.kafka.Count(t, "hobom.messages", 200*time.Millisecond); c != 0 {
		t.Fatalf("dry run published %d records", c)
	}
	// A bulk keep lists the same keys by the same rule.
	r = p.post("/dlq/keep?prefix=dlq:&dryRun=true")
	wantStatus(t, "keep dry run", r, http.StatusOK)
	dry.Keys, dry.Invalid = nil, nil
	if err := json.Unmarshal(r.raw, &dry); err != nil {
		t.Fatal(err)
	}
	if dry.Matched != n+1 || len(dry.Keys) != n || len(dry.Invalid) != 1 || dry.Invalid[0]["key"] != "dlq:menu:::weird" {
		t.Fatalf("keep dry run %s", r.raw)
	}

	// Cancel: replays stop, the rest stays in Redis.
	r = p.post("/dlq/retry?prefix=dlq:menu:k-&rate=5")
	wantStatus(t, "bulk", r, http.StatusAccepted)
	id, _ := r.json(t)["jobId"].(string)
	testenv.Eventually(t, 20*time.Second, "two replays", func() bool { return p.job(t, id).Replayed >= 2 })
	r = p.del("/dlq/jobs/"+id, "x-operator", "dave")
	wantStatus(t, "cancel", r, http.StatusOK)
	var js messages.JobStatus
	_ = json.Unmarshal(r.raw, &js)
	if js.State != messages.JobCancelled || js.Remaining == 0 || js.EndedAt == nil {
		t.Fatalf("cancelled job %+v", js)
	}
	testenv.Eventually(t, 10*time.Second, "in-flight replays to finish", func() bool { return p.job(t, id).InFlight == 0 })
	js = p.job(t, id)
	published := s.kafka.Count(t, "hobom.messages", 700*time.Millisecond) // longer than 2 intervals at 5/s
	if published != js.Replayed || published >= n {
		t.Fatalf("%d records after the cancel, job says %d replayed of %d", published, js.Replayed, n)
	}
	left, err := s.store.List(context.Background(), "dlq:menu:k-", 0)
	if err != nil || len(left) != n-published {
		t.Fatalf("%d entries left (%v), want %d", len(left), err, n-published)
	}
	wantStatus(t, "cancel again", p.del("/dlq/jobs/"+id), http.StatusOK)
	items := p.audit(t)
	if a := findAudit(items, "bulk-cancel", ""); a == nil || a["jobId"] != id || a["caller"].(map[string]any)["operator"] != "dave" {
		t.Errorf("bulk-cancel audit %v", a)
	}
	if a := findAudit(items, "bulk-dry-run", ""); a == nil {
		t.Errorf("no dry run audit")
	}

	// At most four jobs run at once.
	var running []string
	for range 4 {
		r := p.post("/dlq/retry?prefix=dlq:menu:k-&rate=1")
		wantStatus(t, "slow job", r, http.StatusAccepted)
		running = append(running, r.json(t)["jobId"].(string))
	}
	wantStatus(t, "fifth job", p.post("/dlq/retry?prefix=dlq:menu:k-&rate=1"), http.StatusConflict)
	for _, id := range running {
		wantStatus(t, "cancel slow job", p.del("/dlq/jobs/"+id), http.StatusOK)
	}

	wantStatus(t, "unknown job", p.get("/dlq/jobs/0123456789abcdef"), http.StatusNotFound)
	wantStatus(t, "cancel unknown job", p.del("/dlq/jobs/0123456789abcdef"), http.StatusNotFound)
	wantStatus(t, "malformed job id", p.get("/dlq/jobs/not-hex!"), http.StatusBadRequest)
	for _, bad := range []string{
		"", "prefix=", "prefix=other:", "prefix=dlq:*", "prefix=dlq:&rate=0", "prefix=dlq:&rate=1001",
		"prefix=dlq:&rate=x", "prefix=dlq:&dryRun=maybe", "prefix=dlq:&prefix=dlq:menu:",
	} {
		wantStatus(t, "bulk ?"+bad, p.post("/dlq/retry?"+bad), http.StatusBadRequest)
	}
}

func TestAuthWhenAnAPIKeyIsSet(t *testing.T) {
	s := newStack(t)
	p := s.start(t, func(c *config.Config) { c.InternalAPIKey = "s3cret" })
	s.put(t, "dlq:menu:m-1", msgValue, actors.DeadLetterMeta{})

	wantStatus(t, "health", p.get("/health"), http.StatusOK)
	wantStatus(t, "openapi", p.get("/openapi.json"), http.StatusOK)
	for _, c := range []struct{ method, path string }{
		{http.MethodGet, "/dlq"},
		{http.MethodGet, "/dlq/" + esc("dlq:menu:m-1")},
		{http.MethodPost, "/dlq/retry/" + esc("dlq:menu:m-1")},
		{http.MethodDelete, "/dlq/" + esc("dlq:menu:m-1") + "?reason=x"},
		{http.MethodPost, "/dlq/retry?prefix=dlq:"},
		{http.MethodGet, "/dlq/jobs/00"},
		{http.MethodDelete, "/dlq/jobs/00"},
		{http.MethodGet, "/dlq/audit"},
	} {
		for _, key := range []string{"", "wrong", "s3cret2", "S3CRET"} {
			r := p.req(c.method, c.path, nil, "x-api-key", key)
			wantStatus(t, c.method+" "+c.path+" key "+key, r, http.StatusUnauthorized)
			if strings.TrimSpace(string(r.raw)) != `{"error":"unauthorized"}` {
				t.Errorf("401 body %s", r.raw)
			}
		}
	}
	if !s.exists(t, "dlq:menu:m-1") {
		t.Fatal("an unauthorized call changed the DLQ")
	}
	wantStatus(t, "list with the key", p.get("/dlq", "x-api-key", "s3cret"), http.StatusOK)
	wantStatus(t, "get with the key", p.get("/dlq/"+esc("dlq:menu:m-1"), "x-api-key", "s3cret"), http.StatusOK)
	wantStatus(t, "replay with the key", p.post("/dlq/retry/"+esc("dlq:menu:m-1"), "x-api-key", "s3cret"), http.StatusOK)
}
