package health_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hobom/hobom-event-processor/infra/adapters/health"
	"github.com/hobom/hobom-event-processor/infra/testkit/testenv"
)

// switchable is a probe whose answer the test sets.
type switchable struct {
	mu  sync.Mutex
	err error
}

func (s *switchable) set(err error) { s.mu.Lock(); s.err = err; s.mu.Unlock() }
func (s *switchable) check(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func get(t *testing.T, c *health.Checker) (int, health.Report) {
	t.Helper()
	rec := httptest.NewRecorder()
	c.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/ready", nil))
	var r health.Report
	if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
		t.Fatalf("body %q: %v", rec.Body, err)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	return rec.Code, r
}

func TestReadyFollowsTheProbes(t *testing.T) {
	a, b := &switchable{}, &switchable{}
	var results atomic.Int64
	c := health.Start(health.Options{Interval: time.Hour, Timeout: time.Second, OnResult: func(string, bool) { results.Add(1) }},
		health.Probe{Name: "redis", Check: a.check}, health.Probe{Name: "kafka", Check: b.check})
	defer c.Stop()
	// The checker probes at once on its own goroutine; wait for that round
	// so that, with an interval of an hour, the rounds below are the only
	// ones (it used to land after a.set and count a second failure).
	testenv.Eventually(t, 10*time.Second, "the checker's first round", func() bool { return results.Load() >= 2 })
	c.CheckNow()
	if code, r := get(t, c); code != 200 || r.Status != "ready" || len(r.Down) != 0 || !r.Checks["redis"].Up || r.Checks["kafka"].LastOKAt == nil {
		t.Fatalf("all up: %d %+v", code, r)
	}
	a.set(errors.New("connection refused"))
	c.CheckNow()
	code, r := get(t, c)
	if code != 503 || r.Status != "unavailable" || !slices.Equal(r.Down, []string{"redis"}) || r.Checks["redis"].Error != "connection refused" ||
		!r.Checks["kafka"].Up || r.Checks["redis"].Failures != 1 {
		t.Fatalf("redis down: %d %+v", code, r)
	}
	a.set(nil)
	c.CheckNow()
	if code, _ := get(t, c); code != 200 {
		t.Fatalf("back up: %d", code)
	}
	if results.Load() < 6 {
		t.Errorf("OnResult called %d times, want at least 6", results.Load())
	}
}

func TestNotCheckedYetIsNotReady(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	c := health.Start(health.Options{Interval: time.Hour, Timeout: time.Hour},
		health.Probe{Name: "backend", Check: func(ctx context.Context) error {
			select {
			case <-block:
			case <-ctx.Done():
			}
			return nil
		}})
	defer func() {
		go c.Stop() // the first round waits on block, released by the deferred close
	}()
	code, r := get(t, c)
	if code != 503 || r.Checks["backend"].Error != "not checked yet" {
		t.Fatalf("%d %+v", code, r)
	}
}

func TestAProbeThatHangsTimesOut(t *testing.T) {
	c := health.Start(health.Options{Interval: time.Hour, Timeout: 50 * time.Millisecond},
		health.Probe{Name: "backend", Check: func(context.Context) error { select {} }})
	defer c.Stop()
	c.CheckNow()
	if code, r := get(t, c); code != 503 || r.Checks["backend"].Error == "" {
		t.Fatalf("%d %+v", code, r)
	}
}

func TestStaleSuccessAndFailedObservations(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	c := health.Start(health.Options{Interval: time.Hour, Timeout: time.Second, MaxAge: 10 * time.Second, Now: clock},
		health.Probe{Name: "backend", Check: func(context.Context) error { return nil }})
	defer c.Stop()
	c.CheckNow()
	if !c.Ready() {
		t.Fatal("not ready after a good probe")
	}
	c.Observe("backend", errors.New("Unauthenticated: wrong api key"))
	if code, r := get(t, c); code != 503 || r.Checks["backend"].Error != "Unauthenticated: wrong api key" {
		t.Fatalf("failed find while the probe is good: %d %+v", code, r)
	}
	c.Observe("backend", nil)
	if !c.Ready() {
		t.Fatal("a later good find did not clear the failed one")
	}
	c.Observe("backend", errors.New("boom"))
	advance(11 * time.Second)
	c.CheckNow()
	if !c.Ready() {
		t.Fatal("an old failed observation still counts")
	}
	advance(11 * time.Second)
	if code, r := get(t, c); code != 503 || r.Checks["backend"].Error != "no answer recently" {
		t.Fatalf("stale success: %d %+v", code, r)
	}
	c.Observe("unknown", errors.New("ignored"))
}
