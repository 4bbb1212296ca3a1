package redisdlq_test

import (
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/hobom/hobom-event-processor/actors"
	"github.com/hobom/hobom-event-processor/infra/adapters/redisdlq"
)

func TestReasonClass(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		reason  string
		hasMeta bool
		want    string
	}{
		{"kafka: unable to dial: dial tcp 127.0.0.1:9: connect: connection refused", true, redisdlq.ClassKafkaUnreachable},
		{"kafka: context deadline exceeded", true, redisdlq.ClassKafkaUnreachable},
		// franz-go's own delivery timeout, while no broker could be reached.
		{"kafka: records have timed out before they were able to be produced", true, redisdlq.ClassKafkaUnreachable},
		{"kafka: produce attempt timed out after 10s: context deadline exceeded (last broker connection: unable to dial: tls: failed to verify certificate: x509: certificate signed by unknown authority)", true, redisdlq.ClassKafkaUnreachable},
		{"kafka: NOT_LEADER_FOR_PARTITION: This server is not the leader", true, redisdlq.ClassKafkaRejected},
		{"kafka: MESSAGE_TOO_LARGE: The request included a message larger than the max", true, redisdlq.ClassRecordTooLarge},
		{"record too large: 2000000 bytes, limit 1000000", true, redisdlq.ClassRecordTooLarge},
		{"bad input: invalid UTF-8 in payload.title", true, redisdlq.ClassInvalidPayload},
		{"encode: MESSAGE event e1 has no payload", true, redisdlq.ClassEncodeError},
		{"something else", true, redisdlq.ClassOther},
		{"", false, redisdlq.ClassUnknown},
	} {
		if got := redisdlq.ReasonClass(c.reason, c.hasMeta); got != c.want {
			t.Errorf("ReasonClass(%q) = %s, want %s", c.reason, got, c.want)
		}
	}
}

// TestSummaryFiltersAndKeep fills a real Redis with entries of several
// classes, ages and expiries, and checks the summary's counts, the
// filtered listing and Keep against what was written.
func TestSummaryFiltersAndKeep(t *testing.T) {
	t.Parallel()
	s, c, ctx := setup(t)
	now := time.Now()
	put := func(key, reason, eventType string, age, ttl time.Duration) {
		t.Helper()
		meta := actors.DeadLetterMeta{EventType: eventType, Topic: "t", Reason: reason, Attempts: 3, FailedAt: now.Add(-age)}
		if err := s.Put(ctx, key, []byte(`{}`), meta, ttl); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 30; i++ { // 30 unreachable, failed 10 minutes ago, 72 h left
		put(fmt.Sprintf("dlq:menu:u%02d", i), "kafka: dial tcp: connection refused", "MESSAGE", 10*time.Minute, 72*time.Hour)
	}
	for i := 0; i < 5; i++ { // 5 too large logs, failed 61 h ago, 11 h left
		put(fmt.Sprintf("dlq:log:big%d", i), "record too large: 2 MB", "HOBOM_LOG", 61*time.Hour, 11*time.Hour)
	}
	put("dlq:menu:enc", "encode: no payload", "MESSAGE", 3*time.Hour, 20*time.Hour)    // expires within 24 h, not 12 h
	if err := c.Set(ctx, "dlq:menu::legacy", `{"title":"old"}`, 0).Err(); err != nil { // the old service's: no meta, no expiry
		t.Fatal(err)
	}

	sum, err := s.Summarize(ctx, "dlq:", redisdlq.SummaryLimits{MaxKeys: 10_000, MaxTime: 10 * time.Second},
		func(p string) string { return map[string]string{"dlq:menu:": "MESSAGE", "dlq:log:": "HOBOM_LOG"}[p] })
	if err != nil {
		t.Fatal(err)
	}
	if !sum.Complete || sum.Total != 37 {
		t.Fatalf("summary total %d complete %v, want 37 true", sum.Total, sum.Complete)
	}
	wantClass := map[string]int{redisdlq.ClassKafkaUnreachable: 30, redisdlq.ClassRecordTooLarge: 5, redisdlq.ClassEncodeError: 1, redisdlq.ClassUnknown: 1}
	for _, cl := range redisdlq.ReasonClasses {
		if sum.ByReasonClass[cl] != wantClass[cl] {
			t.Errorf("class %s: %d, want %d", cl, sum.ByReasonClass[cl], wantClass[cl])
		}
	}
	if sum.ByEventType["MESSAGE"] != 32 || sum.ByEventType["HOBOM_LOG"] != 5 {
		t.Errorf("by event type %v", sum.ByEventType)
	}
	if sum.ExpiringWithin12h != 5 || sum.ExpiringWithin24h != 6 || sum.NoExpiry != 1 {
		t.Errorf("expiring 12h %d 24h %d none %d, want 5 6 1", sum.ExpiringWithin12h, sum.ExpiringWithin24h, sum.NoExpiry)
	}
	if sum.Oldest == nil || sum.Oldest.Key[:len("dlq:log:big")] != "dlq:log:big" || sum.Newest == nil || sum.Newest.Key[:len("dlq:menu:u")] != "dlq:menu:u" {
		t.Errorf("oldest %+v newest %+v", sum.Oldest, sum.Newest)
	}
	if sum.NextExpirySeconds == nil || *sum.NextExpirySeconds > 11*3600 || *sum.NextExpirySeconds < 11*3600-60 {
		t.Errorf("next expiry %v", sum.NextExpirySeconds)
	}

	// A bounded walk stops early and says so.
	part, err := s.Summarize(ctx, "dlq:", redisdlq.SummaryLimits{MaxKeys: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if part.Complete && part.Total < 37 {
		t.Errorf("a walk cut at 1 key says complete with %d", part.Total)
	}

	list := func(prefix string, f redisdlq.Filter) []string {
		t.Helper()
		keys, err := s.ListFiltered(ctx, prefix, f, 0)
		if err != nil {
			t.Fatal(err)
		}
		sort.Strings(keys)
		return keys
	}
	if got := list("dlq:", redisdlq.Filter{Class: redisdlq.ClassKafkaUnreachable, MaxAge: time.Hour}); len(got) != 30 {
		t.Errorf("unreachable of the last hour: %d keys", len(got))
	}
	if got := list("dlq:", redisdlq.Filter{MinAge: time.Hour}); len(got) != 6 {
		t.Errorf("older than an hour: %v", got)
	}
	if got := list("dlq:", redisdlq.Filter{ExpiresWithin: 12 * time.Hour}); len(got) != 5 || got[0] != "dlq:log:big0" {
		t.Errorf("expiring within 12h: %v", got)
	}
	if got := list("dlq:menu:", redisdlq.Filter{Class: redisdlq.ClassUnknown}); len(got) != 1 || got[0] != "dlq:menu::legacy" {
		t.Errorf("unknown class: %v", got)
	}
	if got := list("dlq:log:", redisdlq.Filter{Class: redisdlq.ClassKafkaUnreachable}); len(got) != 0 {
		t.Errorf("prefix and class: %v", got)
	}

	// Keep extends an entry and its metadata, never shortens.
	ttl, found, err := s.Keep(ctx, "dlq:log:big0", 72*time.Hour)
	if err != nil || !found || ttl < 71*time.Hour {
		t.Fatalf("Keep = %v %v %v", ttl, found, err)
	}
	if m := c.PTTL(ctx, redisdlq.MetaKey("dlq:log:big0")).Val(); m < 71*time.Hour {
		t.Errorf("metadata TTL after keep %v", m)
	}
	if ttl, _, _ := s.Keep(ctx, "dlq:menu:u00", time.Hour); ttl < 71*time.Hour {
		t.Errorf("Keep shortened a TTL to %v", ttl)
	}
	if _, found, err := s.Keep(ctx, "dlq:menu:gone", time.Hour); found || err != nil {
		t.Errorf("Keep of a missing key = %v %v", found, err)
	}
	if ttl, found, _ := s.Keep(ctx, "dlq:menu::legacy", time.Hour); !found || ttl != 0 || c.TTL(ctx, "dlq:menu::legacy").Val() != -1 {
		t.Errorf("Keep gave an entry without expiry an expiry (%v)", ttl)
	}
	if got := list("dlq:", redisdlq.Filter{ExpiresWithin: 12 * time.Hour}); len(got) != 4 {
		t.Errorf("expiring within 12h after a keep: %v", got)
	}

	counts, err := s.ExpiringCounts(ctx, []time.Duration{12 * time.Hour, 24 * time.Hour})
	if err != nil || counts[12*time.Hour] != 4 || counts[24*time.Hour] != 5 {
		t.Errorf("ExpiringCounts = %v, %v; want 4 and 5", counts, err)
	}
}
