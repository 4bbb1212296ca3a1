package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hobom/hobom-event-processor/actors"
	"github.com/hobom/hobom-event-processor/infra/config"
	"github.com/hobom/hobom-event-processor/infra/testkit/testenv"
	"github.com/hobom/hobom-event-processor/messages"
)

// These tests replay what an attacker and a careless operator tried
// against a processor on a real redis-server and kfake, and check what the
// API answers now: replay refuses values that are not a record of their
// topic, only this service's key families are served, per-entry problems
// are 4xx and leave bulk jobs running, inspect reads a bounded prefix,
// error bodies are quiet, and the listener caps its connections.

// garbage are values no consumer of their topic can read.
var garbage = map[string]string{
	"dlq:menu:badjson": `not json {`,
	"dlq:menu:empty":   ``,
	"dlq:menu:binary":  "\x00\xff\xfe\x01",
	"dlq:menu:number":  `42`,
	"dlq:menu:array":   `[` + msgValue + `]`,
	"dlq:menu:notype":  `{"title":"t","body":"b","recipient":"r"}`,
	"dlq:log:object":   `{"serviceType":"api","level":"ERROR"}`,
	"dlq:log:broken":   `[{"serviceType":`,
	"dlq:log:numbers":  `[1,2]`,
	"dlq:log:empty":    `[]`,
}

func TestReplayRefusesValuesThatAreNotRecordsOfTheirTopic(t *testing.T) {
	s := newStack(t)
	p := s.start(t, nil)
	ctx := context.Background()
	for k, v := range garbage {
		if err := s.rc.Set(ctx, k, v, time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
	}
	s.put(t, "dlq:menu:good", msgValue, actors.DeadLetterMeta{})
	s.put(t, "dlq:log:good", logValue, actors.DeadLetterMeta{})

	for k := range garbage {
		// Inspect: not replayable, and why.
		r := p.get("/dlq/" + esc(k))
		wantStatus(t, "inspect "+k, r, http.StatusOK)
		meta := r.json(t)["meta"].(map[string]any)
		if meta["replayable"] != false || meta["notReplayableBecause"] == "" || meta["notReplayableBecause"] == nil {
			t.Errorf("inspect %s: meta %v; want replayable false with a reason", k, meta)
		}
		// Replay: 422 with the reason, the entry kept.
		r = p.post("/dlq/retry/" + esc(k))
		wantStatus(t, "replay "+k, r, http.StatusUnprocessableEntity)
		if !strings.Contains(r.errText(t), "not a record of its topic") || !strings.Contains(r.errText(t), "force=true") {
			t.Errorf("replay %s: error %q does not say why and what to do", k, r.errText(t))
		}
		if n, _ := s.rc.Exists(ctx, k).Result(); n != 1 {
			t.Errorf("%s deleted by a refused replay", k)
		}
	}
	for _, k := range []string{"dlq:menu:good", "dlq:log:good"} {
		if m := p.get("/dlq/" + esc(k)).json(t)["meta"].(map[string]any); m["replayable"] != true {
			t.Errorf("inspect %s: %v", k, m)
		}
	}

	// A dry run lists them under invalid, with the reason.
	r := p.post("/dlq/retry?prefix=dlq:&dryRun=true")
	wantStatus(t, "dry run", r, http.StatusOK)
	var dry struct {
		Keys    []string            `json:"keys"`
		Invalid []map[string]string `json:"invalid"`
	}
	if err := json.Unmarshal(r.raw, &dry); err != nil {
		t.Fatal(err)
	}
	if len(dry.Keys) != 2 || len(dry.Invalid) != len(garbage) {
		t.Fatalf("dry run: %s; want the 2 good keys and %d invalid", r.raw, len(garbage))
	}
	for _, inv := range dry.Invalid {
		if _, bad := garbage[inv["key"]]; !bad || inv["error"] == "" || inv["status"] != "bad_value" {
			t.Errorf("dry run invalid entry %v", inv)
		}
	}

	// A bulk job replays the good ones, skips and lists the rest, goes on.
	r = p.post("/dlq/retry?prefix=dlq:&rate=1000")
	wantStatus(t, "bulk", r, http.StatusAccepted)
	id, _ := r.json(t)["jobId"].(string)
	var js messages.JobStatus
	testenv.Eventually(t, 30*time.Second, "job done", func() bool { js = p.job(t, id); return js.State != messages.JobRunning })
	if js.State != messages.JobDone || js.Replayed != 2 || js.Invalid != len(garbage) || js.Failed != 0 || len(js.InvalidKeys) != len(garbage) {
		t.Fatalf("bulk job: %+v", js)
	}
	msgs := s.kafka.ReadAll(t, "hobom.messages", 300*time.Millisecond)
	logs := s.kafka.ReadAll(t, "hobom.logs", 300*time.Millisecond)
	if len(msgs) != 1 || string(msgs[0].Value) != msgValue || len(logs) != 1 || string(logs[0].Value) != logValue {
		t.Fatalf("Kafka holds %d messages and %d logs; want only the two good entries", len(msgs), len(logs))
	}
	for k := range garbage {
		if n, _ := s.rc.Exists(ctx, k).Result(); n != 1 {
			t.Errorf("%s deleted by the bulk job", k)
		}
	}

	// Forced: published as it is, and the audit says so.
	r = p.post("/dlq/retry/"+esc("dlq:menu:badjson")+"?force=true", "x-operator", "erin")
	wantStatus(t, "forced replay", r, http.StatusOK)
	msgs = s.kafka.ReadAll(t, "hobom.messages", 300*time.Millisecond)
	if len(msgs) != 2 || string(msgs[1].Value) != `not json {` || string(msgs[1].Key) != "badjson" {
		t.Fatalf("after the forced replay hobom.messages holds %d records", len(msgs))
	}
	a := findAudit(p.audit(t), "replay", "dlq:menu:badjson", "done")
	if a == nil || a["forced"] != true || !strings.Contains(fmt.Sprint(a["refusedBecause"]), "not JSON") {
		t.Fatalf("audit of the forced replay: %v", a)
	}
	if a := findAudit(p.audit(t), "replay", "dlq:menu:number", "bad_value"); a == nil || a["forced"] == true {
		t.Errorf("audit of a refused replay: %v", a)
	}
	wantStatus(t, "force=maybe", p.post("/dlq/retry/"+esc("dlq:menu:number")+"?force=maybe"), http.StatusBadRequest)
}

func TestOnlyThisServicesKeyFamiliesAreServed(t *testing.T) {
	s := newStack(t)
	p := s.start(t, nil)
	ctx := context.Background()
	for _, k := range []string{"dlq:other:x", "dlq:menux:y", "dlq:x"} {
		if err := s.rc.Set(ctx, k, "1", time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
	}
	s.put(t, "dlq:menu:m-1", msgValue, actors.DeadLetterMeta{})
	if err := s.rc.Set(ctx, "dlq:log::legacy", logValue, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"dlq:other:x", "dlq:menux:y", "dlq:x"} {
		for _, r := range []reply{
			p.get("/dlq/" + esc(k)),
			p.del("/dlq/" + esc(k) + "?reason=r"),
			p.post("/dlq/retry/" + esc(k)),
		} {
			wantStatus(t, k, r, http.StatusBadRequest)
		}
		if n, _ := s.rc.Exists(ctx, k).Result(); n != 1 {
			t.Fatalf("%s deleted", k)
		}
	}
	for _, q := range []string{"prefix=dlq:other:", "prefix=dlq:m", "prefix=dlq:menux"} {
		wantStatus(t, "list ?"+q, p.get("/dlq?"+q), http.StatusBadRequest)
		wantStatus(t, "bulk ?"+q, p.post("/dlq/retry?"+q), http.StatusBadRequest)
	}
	// dlq: lists both families, legacy keys included, nothing else.
	r := p.get("/dlq?prefix=dlq:")
	wantStatus(t, "list dlq:", r, http.StatusOK)
	var body struct{ Items []string }
	_ = json.Unmarshal(r.raw, &body)
	if got := strings.Join(sorted(body.Items), ","); got != "dlq:log::legacy,dlq:menu:m-1" {
		t.Fatalf("list dlq: = %s", got)
	}
	r = p.post("/dlq/retry?prefix=dlq:&dryRun=true")
	if m := r.json(t); m["matched"] != float64(2) {
		t.Fatalf("dry run over dlq: %s", r.raw)
	}
	wantStatus(t, "legacy inspect", p.get("/dlq/"+esc("dlq:log::legacy")), http.StatusOK)
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestEntryProblemsAre4xxAndDoNotAbortBulkJobs(t *testing.T) {
	s := newStack(t)
	p := s.start(t, nil)
	ctx := context.Background()
	for i := range 12 {
		if err := s.rc.HSet(ctx, fmt.Sprintf("dlq:menu:h-%02d", i), "f", "v").Err(); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		s.put(t, fmt.Sprintf("dlq:menu:h-g%d", i), msgValue, actors.DeadLetterMeta{})
	}
	// One value too large for a Kafka record.
	big := `{"type":"MAIL_MESSAGE","title":"t","body":"` + strings.Repeat("x", 1_000_000) + `","recipient":"r"}`
	s.put(t, "dlq:menu:h-big", big, actors.DeadLetterMeta{})

	r := p.post("/dlq/retry/" + esc("dlq:menu:h-00"))
	wantStatus(t, "replay of a hash", r, http.StatusConflict)
	if !strings.Contains(r.errText(t), "another Redis type") {
		t.Errorf("409 error %q", r.errText(t))
	}
	wantStatus(t, "inspect of a hash", p.get("/dlq/"+esc("dlq:menu:h-00")), http.StatusConflict)
	r = p.post("/dlq/retry/" + esc("dlq:menu:h-big"))
	wantStatus(t, "replay of a value too large", r, http.StatusUnprocessableEntity)
	if m := p.get("/dlq/" + esc("dlq:menu:h-big")).json(t)["meta"].(map[string]any); m["replayable"] != false {
		t.Errorf("inspect of a value too large: %v", m)
	}

	r = p.post("/dlq/retry?prefix=dlq:menu:h-&rate=1000")
	wantStatus(t, "bulk", r, http.StatusAccepted)
	id, _ := r.json(t)["jobId"].(string)
	var js messages.JobStatus
	testenv.Eventually(t, 30*time.Second, "job done", func() bool { js = p.job(t, id); return js.State != messages.JobRunning })
	if js.State != messages.JobDone || js.Replayed != 5 || js.Invalid != 13 || js.Failed != 0 {
		t.Fatalf("job: %+v; want done, 5 replayed, 13 invalid", js)
	}
	if c := s.kafka.Count(t, "hobom.messages", 300*time.Millisecond); c != 5 {
		t.Fatalf("%d records, want the 5 good entries", c)
	}
	kinds := map[string]int{}
	for _, e := range js.InvalidKeys {
		kinds[strings.SplitN(e.Err, ":", 2)[0]]++
	}
	if kinds["wrong_type"] != 12 || kinds["too_large"] != 1 {
		t.Errorf("invalid keys by kind %v", kinds)
	}
}

func TestInspectReadsABoundedPrefixOfAHugeValue(t *testing.T) {
	s := newStack(t)
	p := s.start(t, nil)
	const size = 8 << 20
	if err := s.rc.Set(context.Background(), "dlq:menu:huge", strings.Repeat("a", size), time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := p.get("/dlq/" + esc("dlq:menu:huge"))
			if r.status != http.StatusOK {
				t.Errorf("inspect: %d %.200s", r.status, r.raw)
				return
			}
			// The body holds at most the inspect limit (4 MiB) of the value.
			if len(r.raw) > 4<<20+4096 {
				t.Errorf("inspect body of %d bytes for a %d-byte value", len(r.raw), size)
			}
			var body struct {
				Item string
				Meta map[string]any
			}
			_ = json.Unmarshal(r.raw, &body)
			if body.Meta["truncated"] != true || body.Meta["size"] != float64(size) || len(body.Item) != 4<<20 || body.Meta["replayable"] != false {
				t.Errorf("inspect meta %v, item of %d bytes", body.Meta, len(body.Item))
			}
		}()
	}
	wg.Wait()
}

func TestErrorBodiesAreQuiet(t *testing.T) {
	s := newStack(t)
	p := s.start(t, nil)
	// Malformed JSON body of a discard: no Go type names.
	r := p.req(http.MethodDelete, "/dlq/"+esc("dlq:menu:m-1"), strings.NewReader(`{"reason": 5}`))
	wantStatus(t, "discard with a bad body", r, http.StatusBadRequest)
	if strings.Contains(string(r.raw), "struct") || strings.Contains(string(r.raw), "Go ") || strings.Contains(string(r.raw), "unmarshal") {
		t.Errorf("body names Go internals: %s", r.raw)
	}
	addr := s.redis.Addr()
	s.redis.Stop()
	for _, c := range []struct{ method, path string }{
		{http.MethodGet, "/dlq"},
		{http.MethodGet, "/dlq/" + esc("dlq:menu:m-1")},
		{http.MethodPost, "/dlq/retry/" + esc("dlq:menu:m-1")},
		{http.MethodDelete, "/dlq/" + esc("dlq:menu:m-1") + "?reason=x"},
		{http.MethodPost, "/dlq/retry?prefix=dlq:"},
		{http.MethodPost, "/dlq/retry?prefix=dlq:&dryRun=true"},
		{http.MethodGet, "/dlq/audit"},
	} {
		r := p.req(c.method, c.path, nil)
		_, port, _ := net.SplitHostPort(addr)
		body := string(r.raw)
		if r.status != http.StatusServiceUnavailable || !strings.Contains(r.errText(t), "redis unavailable") ||
			strings.Contains(body, port) || strings.Contains(body, "127.0.0.1") || strings.Contains(body, "dial") || strings.Contains(body, "tcp") {
			t.Errorf("%s %s with Redis down: %d %s; want 503 redis unavailable, no address", c.method, c.path, r.status, body)
		}
	}
}

func TestTheAPIHoldsABoundedNumberOfConnections(t *testing.T) {
	s := newStack(t)
	p := s.start(t, func(c *config.Config) { c.HTTPMaxConns = 16 })
	host := strings.TrimPrefix(p.base, "http://")
	// 24 idle connections that never send a request: the first 16 are
	// accepted, the rest wait in the backlog until the 5 s header timeout
	// closes the first ones.
	var conns []net.Conn
	for range 24 {
		c, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	// While 16 idle connections hold every slot, a request waits: it is
	// not accepted at once.
	if res, err := (&http.Client{Timeout: time.Second}).Get(p.base + "/health"); err == nil {
		res.Body.Close()
		t.Fatal("/health answered at once while 24 idle connections were open: no cap on connections")
	}
	// And it is answered once the server's read-header timeout (5 s) closes
	// idle connections and the waiting ones get their turn.
	start := time.Now()
	res, err := (&http.Client{Timeout: 60 * time.Second}).Get(p.base + "/health")
	if err != nil {
		t.Fatalf("/health behind 24 idle connections: %v", err)
	}
	res.Body.Close()
	t.Logf("/health answered after %v behind 24 idle connections (cap 16)", time.Since(start).Round(time.Millisecond))
}
