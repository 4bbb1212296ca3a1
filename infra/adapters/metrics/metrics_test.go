package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/hobom/hobom-event-processor/actors"
	"github.com/hobom/hobom-event-processor/infra/adapters/metrics"
	"github.com/hobom/hobom-event-processor/infra/adapters/redisdlq"
	"github.com/hobom/hobom-event-processor/infra/testkit/testenv"
	"github.com/hobom/hobom-event-processor/messages"
)

func newMetrics() *metrics.Metrics {
	return metrics.New(metrics.OptionsFor(messages.DefaultRoutes(), "test"))
}

func scrape(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("/metrics: %d", rec.Code)
	}
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

func has(t *testing.T, body string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !strings.Contains(body, "\n"+l+"\n") {
			t.Errorf("/metrics lacks %q", l)
		}
	}
}

func TestEverySeriesStartsAtZero(t *testing.T) {
	body := scrape(t, newMetrics())
	has(t, body,
		`hobom_events_fetched_total{event_type="HOBOM_LOG"} 0`,
		`hobom_events_published_total{event_type="MESSAGE"} 0`,
		`hobom_events_failed_total{event_type="MESSAGE"} 0`,
		`hobom_events_deferred_total{event_type="HOBOM_LOG"} 0`,
		`hobom_events_unmarked_total{event_type="HOBOM_LOG"} 0`,
		`hobom_events_replayed_total{event_type="MESSAGE"} 0`,
		`hobom_events_in_flight{event_type="MESSAGE"} 0`,
		`hobom_actor_restarts_total{child="poller:HOBOM_LOG"} 0`,
		`hobom_dlq_entries{prefix="dlq:menu:"} 0`,
	)
	if !strings.Contains(body, `hobom_build_info{goversion="go`) || !strings.Contains(body, `version="test"} 1`) {
		t.Error("/metrics lacks hobom_build_info")
	}
	for _, name := range []string{"go_goroutines", "process_start_time_seconds"} {
		if !strings.Contains(body, "\n"+name+" ") {
			t.Errorf("/metrics lacks %s", name)
		}
	}
}

func TestCountsAndBacklog(t *testing.T) {
	m := newMetrics()
	var am actors.Metrics = m
	am.PollDone("MESSAGE", 5*time.Millisecond, 10, nil)
	am.PollDone("MESSAGE", time.Millisecond, 0, errors.New("unavailable"))
	am.Resolved("MESSAGE", messages.OutcomeSent, 6)
	am.Resolved("MESSAGE", messages.OutcomeFailed, 1)
	am.Resolved("MESSAGE", messages.OutcomeDeferred, 1)
	am.Resolved("MESSAGE", messages.OutcomeUnmarked, 1)
	am.ProduceDone("MESSAGE", 3*time.Millisecond, nil)
	am.ProduceDone("MESSAGE", 3*time.Millisecond, errors.New("x"))
	am.MarkDone("SENT", time.Millisecond, nil)
	am.MarkDone("weird", time.Millisecond, nil)
	am.ChildRestarted("poller:MESSAGE")
	am.ChildRestarted("poller:SOMETHING-ELSE")
	am.OldestPending("MESSAGE", 90*time.Second)
	am.OldestPending("evt-123", time.Second) // unknown types never become labels
	m.Replayed("HOBOM_LOG")
	m.DependencyUp("redis", false)

	body := scrape(t, m)
	has(t, body,
		`hobom_events_fetched_total{event_type="MESSAGE"} 10`,
		`hobom_events_published_total{event_type="MESSAGE"} 6`,
		`hobom_events_failed_total{event_type="MESSAGE"} 1`,
		`hobom_events_deferred_total{event_type="MESSAGE"} 1`,
		`hobom_events_unmarked_total{event_type="MESSAGE"} 1`,
		`hobom_events_in_flight{event_type="MESSAGE"} 1`,
		`hobom_events_replayed_total{event_type="HOBOM_LOG"} 1`,
		`hobom_oldest_pending_age_seconds{event_type="MESSAGE"} 90`,
		`hobom_oldest_pending_age_seconds{event_type="other"} 1`,
		`hobom_poll_duration_seconds_count{event_type="MESSAGE",result="error"} 1`,
		`hobom_poll_duration_seconds_count{event_type="MESSAGE",result="ok"} 1`,
		`hobom_kafka_produce_duration_seconds_count{event_type="MESSAGE",result="error"} 1`,
		`hobom_backend_mark_duration_seconds_count{result="ok",status="SENT"} 1`,
		`hobom_backend_mark_duration_seconds_count{result="ok",status="other"} 1`,
		`hobom_actor_restarts_total{child="poller:MESSAGE"} 1`,
		`hobom_actor_restarts_total{child="other"} 1`,
		`hobom_dependency_up{dependency="redis"} 0`,
	)
	if strings.Contains(body, "evt-123") {
		t.Error("an unknown event type became a label value")
	}
	// A crashed publisher loses what it held: the backlog starts over.
	am.ChildRestarted("publisher")
	has(t, scrape(t, m), `hobom_events_in_flight{event_type="MESSAGE"} 0`)
	// More resolved than fetched never goes below zero.
	am.Resolved("MESSAGE", messages.OutcomeBusy, 3)
	has(t, scrape(t, m), `hobom_events_in_flight{event_type="MESSAGE"} 0`, `hobom_events_skipped_total{event_type="MESSAGE",reason="busy"} 3`)
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "hobom_events_published_total" && len(mf.GetMetric()) != 2 {
			t.Errorf("published series = %d, want one per event type", len(mf.GetMetric()))
		}
	}
}

func TestDLQSamplerCountsByPrefixWithScan(t *testing.T) {
	r := testenv.Redis(t)
	rc := r.Client(t)
	ctx := context.Background()
	store := redisdlq.New(rc)
	for i, k := range []string{"dlq:menu:a", "dlq:menu:b", "dlq:menu::legacy", "dlq:log:x", "dlq:other:y"} {
		if err := store.Put(ctx, k, []byte(`{}`), actors.DeadLetterMeta{Attempts: i}, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	rc.Set(ctx, "unrelated", "1", 0)
	rc.Set(ctx, "dlq:menu::kept", "{}", 20*time.Hour) // expires within 24 h, not 12 h
	m := newMetrics()
	s := m.StartDLQSampler(store, time.Hour, zerolog.Nop())
	defer s.Stop()
	// The sampler samples at once on its own goroutine; wait for that sample
	// so that, with an interval of an hour, the samples below are the only
	// ones (the first one used to race the r.Stop below and fail).
	testenv.Eventually(t, 10*time.Second, "the sampler's first sample", func() bool {
		return !strings.Contains(scrape(t, m), "\nhobom_dlq_sampled_timestamp_seconds 0\n")
	})
	if !s.SampleOnce(ctx) {
		t.Fatal("sample failed")
	}
	has(t, scrape(t, m),
		`hobom_dlq_entries{prefix="dlq:menu:"} 4`,
		`hobom_dlq_entries{prefix="dlq:log:"} 1`,
		`hobom_dlq_entries{prefix="other"} 1`,
		`hobom_dlq_expiring_entries{within="12h"} 5`,
		`hobom_dlq_expiring_entries{within="24h"} 6`,
		`hobom_dlq_sample_errors_total 0`,
	)
	if err := store.Put(ctx, "dlq:log:z", []byte(`[]`), actors.DeadLetterMeta{}, time.Hour); err != nil {
		t.Fatal(err)
	}
	r.Stop()
	if s.SampleOnce(ctx) {
		t.Fatal("sample succeeded with Redis down")
	}
	// The failed sample keeps the previous values and counts one error.
	has(t, scrape(t, m), `hobom_dlq_entries{prefix="dlq:log:"} 1`, `hobom_dlq_sample_errors_total 1`)
}

func TestOptionsForCapsTheLabeledEventTypes(t *testing.T) {
	routes := make([]messages.Route, 200)
	for i := range routes {
		routes[i] = messages.Route{EventType: fmt.Sprintf("T%d", i), DLQPrefix: fmt.Sprintf("dlq:t%d:", i)}
	}
	o := metrics.OptionsFor(routes, "v")
	if len(o.EventTypes) != metrics.MaxLabeledTypes || len(o.DLQPrefixes) != metrics.MaxLabeledTypes {
		t.Fatalf("%d event types and %d prefixes labeled, want %d", len(o.EventTypes), len(o.DLQPrefixes), metrics.MaxLabeledTypes)
	}
	m := metrics.New(o)
	m.Resolved("T150", messages.OutcomeSent, 1)
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	if strings.Contains(body, `event_type="T150"`) || !strings.Contains(body, `hobom_events_published_total{event_type="other"} 1`) {
		t.Errorf("a type past the cap must count under other")
	}
}
