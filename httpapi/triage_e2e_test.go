package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"testing"
	"time"

	"github.com/hobom/hobom-event-processor/actors"
	"github.com/hobom/hobom-event-processor/infra/testkit/testenv"
	"github.com/hobom/hobom-event-processor/messages"
)

// putAged writes a DLQ entry that failed age ago and has ttl left.
func (s *stack) putAged(t *testing.T, key, value, reason, eventType string, age, ttl time.Duration) {
	t.Helper()
	meta := actors.DeadLetterMeta{EventType: eventType, Reason: reason, Attempts: 3, FailedAt: time.Now().Add(-age)}
	if err := s.store.Put(context.Background(), key, []byte(value), meta, ttl); err != nil {
		t.Fatal(err)
	}
}

// TestTriageSummaryFiltersAndKeep fills the DLQ with entries of several
// reason classes, ages and expiries, and checks over HTTP: the summary's
// counts, the filtered listing with details, a filtered bulk replay (dry run
// and job) that touches only its class, keep of one entry and a filtered
// keep job, and their audit records.
func TestTriageSummaryFiltersAndKeep(t *testing.T) {
	s := newStack(t)
	p := s.start(t, nil)
	for i := range 6 { // kafka unreachable, the last hour
		id := fmt.Sprintf("u%d", i)
		s.backend.Add(failedEvent(id, messages.EventTypeMessage))
		s.putAged(t, "dlq:menu:"+id, msgValue, "kafka: unable to dial: dial tcp 127.0.0.1:1: connect: connection refused", "MESSAGE", 10*time.Minute, 72*time.Hour)
	}
	for i := range 3 { // too large logs, failed 61 h ago: 11 h left
		s.putAged(t, fmt.Sprintf("dlq:log:big%d", i), logValue, "record too large: 2000000 bytes, limit 1000000", "HOBOM_LOG", 61*time.Hour, 11*time.Hour)
	}
	s.putAged(t, "dlq:menu:old-unreachable", msgValue, "kafka: i/o timeout", "MESSAGE", 5*time.Hour, 67*time.Hour)
	s.putAged(t, "dlq:menu:enc", `{"eventId":"enc","eventType":"MESSAGE","error":"no payload"}`, "encode: no payload", "MESSAGE", 2*time.Hour, 20*time.Hour)

	r := p.get("/dlq/summary")
	wantStatus(t, "summary", r, http.StatusOK)
	var sum struct {
		Summary struct {
			Total             int            `json:"total"`
			Complete          bool           `json:"complete"`
			ByEventType       map[string]int `json:"byEventType"`
			ByReasonClass     map[string]int `json:"byReasonClass"`
			ExpiringWithin12h int            `json:"expiringWithin12h"`
			ExpiringWithin24h int            `json:"expiringWithin24h"`
			Oldest            struct{ Key string }
		} `json:"summary"`
	}
	if err := json.Unmarshal(r.raw, &sum); err != nil {
		t.Fatal(err)
	}
	got := sum.Summary
	if got.Total != 11 || !got.Complete || got.ByReasonClass["kafka_unreachable"] != 7 || got.ByReasonClass["record_too_large"] != 3 ||
		got.ByReasonClass["encode_error"] != 1 || got.ByEventType["MESSAGE"] != 8 || got.ByEventType["HOBOM_LOG"] != 3 ||
		got.ExpiringWithin12h != 3 || got.ExpiringWithin24h != 4 {
		t.Fatalf("summary %s", r.raw)
	}
	wantStatus(t, "summary with a bad prefix", p.get("/dlq/summary?prefix=other:"), http.StatusBadRequest)

	// The filtered listing, with details.
	r = p.get("/dlq?reasonClass=kafka_unreachable&maxAge=1h&details=true")
	wantStatus(t, "filtered list", r, http.StatusOK)
	var page struct {
		Items   []string `json:"items"`
		Filter  string   `json:"filter"`
		Entries []struct {
			Key, ReasonClass string
			TTLSeconds       *int64
		} `json:"entries"`
	}
	if err := json.Unmarshal(r.raw, &page); err != nil {
		t.Fatal(err)
	}
	sort.Strings(page.Items)
	if len(page.Items) != 6 || page.Items[0] != "dlq:menu:u0" || len(page.Entries) != 6 || page.Entries[0].ReasonClass != "kafka_unreachable" ||
		page.Entries[0].TTLSeconds == nil || page.Filter != "maxAge=1h0m0s&reasonClass=kafka_unreachable" {
		t.Fatalf("filtered list %s", r.raw)
	}
	for _, bad := range []string{"reasonClass=nope", "maxAge=soon", "minAge=2h&maxAge=1h", "expiresWithin=9000h", "details=maybe"} {
		wantStatus(t, "list?"+bad, p.get("/dlq?"+bad), http.StatusBadRequest)
	}

	// A filtered bulk replay: the dry run names exactly the class's recent
	// entries; the job replays them and nothing else.
	r = p.post("/dlq/retry?prefix=dlq:&reasonClass=kafka_unreachable&maxAge=1h&dryRun=true")
	wantStatus(t, "filtered dry run", r, http.StatusOK)
	if m := r.json(t); m["matched"] != float64(6) || m["filter"] != "maxAge=1h0m0s&reasonClass=kafka_unreachable" {
		t.Fatalf("dry run %s", r.raw)
	}
	r = p.post("/dlq/retry?prefix=dlq:&reasonClass=kafka_unreachable&maxAge=1h&rate=100", "x-operator", "dora")
	wantStatus(t, "filtered bulk", r, http.StatusAccepted)
	id, _ := r.json(t)["jobId"].(string)
	var js messages.JobStatus
	testenv.Eventually(t, 30*time.Second, "replay job done", func() bool {
		js = p.job(t, id)
		return js.State != messages.JobRunning
	})
	if js.State != messages.JobDone || js.Replayed != 6 || js.Op != messages.JobOpReplay {
		t.Fatalf("job %+v", js)
	}
	if c := s.kafka.Count(t, "hobom.messages", 300*time.Millisecond); c != 6 {
		t.Errorf("%d records in Kafka, want 6", c)
	}
	for _, k := range []string{"dlq:menu:old-unreachable", "dlq:menu:enc", "dlq:log:big0"} {
		if !s.exists(t, k) {
			t.Errorf("%s was replayed though the filter left it out", k)
		}
	}

	// Keep one entry: its TTL and its metadata's go back to 72 h.
	r = p.post("/dlq/keep/"+esc("dlq:log:big0")+"?ttl=72h", "x-operator", "dora")
	wantStatus(t, "keep", r, http.StatusOK)
	if ttl, _ := r.json(t)["ttlSeconds"].(float64); ttl < 71*3600 {
		t.Fatalf("keep answered %s", r.raw)
	}
	ctx := context.Background()
	if ttl := s.rc.PTTL(ctx, "dlq:log:big0").Val(); ttl < 71*time.Hour {
		t.Errorf("TTL after keep %v", ttl)
	}
	wantStatus(t, "keep of a missing entry", p.post("/dlq/keep/"+esc("dlq:menu:gone")), http.StatusNotFound)
	wantStatus(t, "keep with a bad ttl", p.post("/dlq/keep/"+esc("dlq:log:big1")+"?ttl=9000h"), http.StatusBadRequest)
	wantStatus(t, "keep of a bad key", p.post("/dlq/keep/"+esc("session:1")), http.StatusBadRequest)

	// Keep every entry expiring within 12 h: a dry run, then a job.
	r = p.post("/dlq/keep?prefix=dlq:&expiresWithin=12h&dryRun=true")
	wantStatus(t, "keep dry run", r, http.StatusOK)
	if m := r.json(t); m["matched"] != float64(2) || m["op"] != "keep" {
		t.Fatalf("keep dry run %s", r.raw)
	}
	r = p.post("/dlq/keep?prefix=dlq:&expiresWithin=12h&ttl=48h", "x-operator", "dora")
	wantStatus(t, "keep job", r, http.StatusAccepted)
	id, _ = r.json(t)["jobId"].(string)
	testenv.Eventually(t, 30*time.Second, "keep job done", func() bool {
		js = p.job(t, id)
		return js.State != messages.JobRunning
	})
	if js.State != messages.JobDone || js.Kept != 2 || js.Op != messages.JobOpKeep || js.Remaining != 0 || js.TTLSeconds != 48*3600 {
		t.Fatalf("keep job %+v", js)
	}
	for _, k := range []string{"dlq:log:big1", "dlq:log:big2"} {
		if ttl := s.rc.PTTL(ctx, k).Val(); ttl < 47*time.Hour || ttl > 48*time.Hour {
			t.Errorf("%s TTL %v after the keep job, want 48h", k, ttl)
		}
	}
	if ttl := s.rc.PTTL(ctx, "dlq:menu:enc").Val(); ttl > 21*time.Hour {
		t.Errorf("an entry outside the filter was kept (%v)", ttl)
	}

	items := p.audit(t)
	if a := findAudit(items, "keep", "dlq:log:big0", "done"); a == nil || a["caller"].(map[string]any)["operator"] != "dora" || a["ttlSeconds"].(float64) < 71*3600 {
		t.Errorf("keep audit %v", a)
	}
	if a := findAudit(items, "bulk-start", ""); a == nil || a["op"] != "keep" || a["filter"] != "expiresWithin=12h0m0s" {
		t.Errorf("keep job's bulk-start audit %v", a)
	}
	if a := findAudit(items, "bulk-dry-run", ""); a == nil || a["op"] != "keep" {
		t.Errorf("keep dry run audit %v", a)
	}
}
