package httpapi_test

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hobom/hobom-event-processor/actors"
	"github.com/hobom/hobom-event-processor/infra/adapters/redisdlq"
	"github.com/hobom/hobom-event-processor/infra/config"
	"github.com/hobom/hobom-event-processor/infra/testkit/redisproc"
	"github.com/hobom/hobom-event-processor/infra/testkit/testenv"
	"github.com/hobom/hobom-event-processor/messages"
)

// auditPending reads hobom_audit_pending from the processor's /metrics.
func (p *proc) auditPending(t *testing.T) int {
	t.Helper()
	res, err := http.Get(p.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	scrape, _ := io.ReadAll(res.Body)
	for _, line := range strings.Split(string(scrape), "\n") {
		if v, ok := strings.CutPrefix(line, "hobom_audit_pending "); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("hobom_audit_pending %q: %v", v, err)
			}
			return int(n)
		}
	}
	t.Fatal("no hobom_audit_pending in /metrics")
	return 0
}

// A bulk replay runs while Redis is killed and started again (with its AOF,
// so what it took before the outage survives): the audit records Redis
// refused wait in memory (hobom_audit_pending > 0) and reach the audit list
// once it is back, in order, the job's end included, and so does the
// record of a discard asked during the outage.
func TestAuditSurvivesARedisOutage(t *testing.T) {
	if _, err := exec.LookPath(redisproc.Binary); err != nil {
		t.Skipf("%s not on PATH: this test needs a real server it can kill and restart with its AOF", redisproc.Binary)
	}
	s := newStack(t)
	srv, err := redisproc.Start(redisproc.Options{Dir: t.TempDir(), AppendOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	rc := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { _ = rc.Close() })
	s.rc, s.store = rc, redisdlq.New(rc)
	p := s.start(t, func(c *config.Config) { c.RedisAddr = srv.Addr() })

	const n, rate = 40, 20
	for i := range n {
		s.put(t, fmt.Sprintf("dlq:menu:a-%02d", i), fmt.Sprintf(`{"type":"MAIL_MESSAGE","title":"n%d","body":"b","recipient":"r"}`, i), actors.DeadLetterMeta{})
	}
	s.put(t, "dlq:log:gone", logValue, actors.DeadLetterMeta{})

	r := p.post(fmt.Sprintf("/dlq/retry?prefix=dlq:menu:a-&rate=%d", rate), "x-operator", "dora")
	wantStatus(t, "bulk", r, http.StatusAccepted)
	id, _ := r.json(t)["jobId"].(string)
	testenv.Eventually(t, 30*time.Second, "some replays before the outage", func() bool {
		return p.job(t, id).Replayed >= 5
	})

	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	var js messages.JobStatus
	testenv.Eventually(t, 60*time.Second, "job ended by the outage", func() bool {
		js = p.job(t, id)
		return js.State != messages.JobRunning
	})
	// A discard asked during the outage fails, and is audited all the same.
	d := p.del("/dlq/" + esc("dlq:log:gone") + "?reason=" + url.QueryEscape("during the outage"))
	if d.status < 500 {
		t.Errorf("discard with Redis down answered %d %s", d.status, d.raw)
	}
	var pending int
	testenv.Eventually(t, 10*time.Second, "audit records pending in memory", func() bool {
		pending = p.auditPending(t)
		return pending > 0
	})
	if js.Failed == 0 {
		t.Fatalf("the outage failed no replay of the job: %+v", js)
	}

	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "audit backlog written after the restart", func() bool {
		return p.auditPending(t) == 0
	})

	items := p.audit(t) // newest first
	var job []map[string]any
	for i := len(items) - 1; i >= 0; i-- {
		if items[i]["jobId"] == id {
			job = append(job, items[i])
		}
	}
	// In order: the start first, then the job's replays and its end. The
	// replays in flight when the outage aborted the job finish around the
	// end record (they ran concurrently with it), so they may come on
	// either side of it; all of them are there.
	if len(job) < 2 || job[0]["action"] != messages.AuditBulkStart {
		t.Fatalf("job's audit does not begin with bulk-start: %v", job)
	}
	end := -1
	for i, it := range job {
		if it["action"] == messages.AuditBulkEnd {
			end = i
		}
	}
	if end < 0 {
		t.Fatalf("no bulk-end record of the job: %v", job)
	}
	counts, _ := job[end]["counts"].(map[string]any)
	if out := job[end]["outcome"]; out != messages.JobAborted {
		t.Errorf("bulk-end outcome %v, want %s", out, messages.JobAborted)
	}
	keys := map[any]bool{}
	before, after, failed := 0, 0, 0
	for i, it := range job[1:] {
		if i+1 == end {
			continue
		}
		if it["action"] != messages.AuditReplay {
			t.Errorf("unexpected record of the job: %v", it)
			continue
		}
		if keys[it["key"]] {
			t.Errorf("key %v audited twice", it["key"])
		}
		keys[it["key"]] = true
		if i+1 < end {
			before++
		} else {
			after++
		}
		if it["outcome"] != "done" {
			failed++
		}
	}
	num := func(k string) int { f, _ := counts[k].(float64); return int(f) }
	if before < num("replayed")+num("failed") || before+after != num("replayed")+num("failed")+num("inFlight") {
		t.Errorf("%d replay records before bulk-end and %d after; its counts: %v", before, after, counts)
	}
	if failed == 0 {
		t.Errorf("no failed replay audited: the outage records are missing")
	}
	// The discard came after the job's end, so it is newer in the list.
	endAt, discardAt := -1, -1
	for i, it := range items {
		switch {
		case it["action"] == messages.AuditBulkEnd && it["jobId"] == id:
			endAt = i
		case it["action"] == messages.AuditDiscard && it["key"] == "dlq:log:gone":
			discardAt = i
		}
	}
	if discardAt < 0 || discardAt > endAt {
		t.Errorf("discard during the outage: at %d, job end at %d (newest first)", discardAt, endAt)
	}
	t.Logf("job %+v; %d audit records were pending during the outage", js.JobCounts, pending)
}
