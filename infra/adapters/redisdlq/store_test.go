package redisdlq_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hobom/hobom-event-processor/actors"
	"github.com/hobom/hobom-event-processor/infra/adapters/redisdlq"
	"github.com/hobom/hobom-event-processor/infra/testkit/testenv"
)

const ttl = 72 * time.Hour

func setup(t *testing.T) (*redisdlq.Store, *redis.Client, context.Context) {
	t.Helper()
	srv := testenv.Redis(t)
	c := srv.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return redisdlq.New(c), c, ctx
}

func TestPutGet(t *testing.T) {
	t.Parallel()
	s, c, ctx := setup(t)
	key := "dlq:menu:e1"
	value := []byte(`{"type":"MAIL_MESSAGE","title":"t","body":"b\u00e9","recipient":"r","sentAt":"2026-01-02T03:04:05Z"}`)
	failedAt := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.FixedZone("KST", 9*3600))
	meta := actors.DeadLetterMeta{EventType: "MESSAGE", EventID: "e1", Topic: "hobom.messages", Reason: "kafka: timeout", Attempts: 3, FailedAt: failedAt}

	if err := s.Put(ctx, key, value, meta, ttl); err != nil {
		t.Fatalf("Put: %v", err)
	}

	// What the old service's readers see: the plain JSON, nothing else, with
	// the contract's TTL.
	if raw, err := c.Get(ctx, key).Bytes(); err != nil || !bytes.Equal(raw, value) {
		t.Fatalf("raw GET = %q, %v; want the value bytes", raw, err)
	}
	if typ := c.Type(ctx, key).Val(); typ != "string" {
		t.Fatalf("TYPE %s = %s; want string", key, typ)
	}
	h, err := c.HGetAll(ctx, redisdlq.MetaKey(key)).Result()
	if err != nil {
		t.Fatalf("HGETALL meta: %v", err)
	}
	wantTS := "2026-01-01T18:04:05.123456789Z"
	want := map[string]string{
		"eventType": "MESSAGE", "eventId": "e1", "topic": "hobom.messages", "reason": "kafka: timeout",
		"attempts": "3", "firstFailedAt": wantTS, "lastFailedAt": wantTS,
	}
	if fmt.Sprint(h) != fmt.Sprint(want) {
		t.Fatalf("meta hash = %v; want %v", h, want)
	}
	if mttl := c.PTTL(ctx, redisdlq.MetaKey(key)).Val(); mttl < ttl-time.Minute || mttl > ttl {
		t.Fatalf("meta TTL = %v; want about %v", mttl, ttl)
	}

	e, err := s.Get(ctx, key)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if !bytes.Equal(e.Value, value) {
		t.Fatalf("Get value = %q; want %q", e.Value, value)
	}
	if e.Key != key || e.Prefix != "dlq:menu:" || e.EventID != "e1" || !e.HasMeta {
		t.Fatalf("Get = key %q prefix %q eventId %q hasMeta %v", e.Key, e.Prefix, e.EventID, e.HasMeta)
	}
	wantMeta := meta
	wantMeta.FailedAt = failedAt.UTC()
	if e.Meta != wantMeta {
		t.Fatalf("Get meta = %+v; want %+v", e.Meta, wantMeta)
	}
	if !e.FirstFailedAt.Equal(failedAt) || !e.LastFailedAt.Equal(failedAt) {
		t.Fatalf("failure times = %v, %v; want %v", e.FirstFailedAt, e.LastFailedAt, failedAt)
	}
	if e.TTL < ttl-time.Minute || e.TTL > ttl {
		t.Fatalf("TTL = %v; want about %v", e.TTL, ttl)
	}
}

func TestPutTwiceAccumulates(t *testing.T) {
	t.Parallel()
	s, c, ctx := setup(t)
	key := "dlq:log:l1"
	t1 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	t2 := t1.Add(90 * time.Second)

	first := actors.DeadLetterMeta{EventType: "HOBOM_LOG", EventID: "l1", Topic: "hobom.logs", Reason: "first", Attempts: 3, FailedAt: t1}
	if err := s.Put(ctx, key, []byte(`[{"n":1}]`), first, time.Hour); err != nil {
		t.Fatalf("first Put: %v", err)
	}
	second := first
	second.Reason, second.Attempts, second.FailedAt = "second", 2, t2
	if err := s.Put(ctx, key, []byte(`[{"n":2}]`), second, ttl); err != nil {
		t.Fatalf("second Put: %v", err)
	}

	e, err := s.Get(ctx, key)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if string(e.Value) != `[{"n":2}]` {
		t.Fatalf("value = %s; want the second", e.Value)
	}
	if e.Meta.Attempts != 5 || e.Meta.Reason != "second" {
		t.Fatalf("attempts %d reason %q; want 5, second", e.Meta.Attempts, e.Meta.Reason)
	}
	if !e.FirstFailedAt.Equal(t1) || !e.LastFailedAt.Equal(t2) || !e.Meta.FailedAt.Equal(t2) {
		t.Fatalf("first %v last %v meta.FailedAt %v; want %v, %v, %v", e.FirstFailedAt, e.LastFailedAt, e.Meta.FailedAt, t1, t2, t2)
	}
	// Both keys got the second, longer TTL.
	if e.TTL < ttl-time.Minute {
		t.Fatalf("value TTL = %v; want renewed to about %v", e.TTL, ttl)
	}
	if mttl := c.PTTL(ctx, redisdlq.MetaKey(key)).Val(); mttl < ttl-time.Minute {
		t.Fatalf("meta TTL = %v; want renewed to about %v", mttl, ttl)
	}
}

func TestPutDefaults(t *testing.T) {
	t.Parallel()
	s, _, ctx := setup(t)
	before := time.Now()
	// No eventId and no time: taken from the key and the clock.
	if err := s.Put(ctx, "dlq:menu::legacy1", []byte(`{}`), actors.DeadLetterMeta{EventType: "MESSAGE", Attempts: 1}, time.Minute); err != nil {
		t.Fatalf("Put: %v", err)
	}
	e, err := s.Get(ctx, "dlq:menu::legacy1")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if e.Meta.EventID != "legacy1" || e.EventID != "legacy1" {
		t.Fatalf("eventId meta %q key %q; want legacy1", e.Meta.EventID, e.EventID)
	}
	if e.LastFailedAt.Before(before.Add(-time.Second)) || e.LastFailedAt.After(time.Now().Add(time.Second)) {
		t.Fatalf("LastFailedAt = %v; want about now", e.LastFailedAt)
	}
}

func TestPutRejects(t *testing.T) {
	t.Parallel()
	s, c, ctx := setup(t)
	meta := actors.DeadLetterMeta{Attempts: 1}
	if err := s.Put(ctx, "other:e1", []byte(`{}`), meta, ttl); !errors.Is(err, redisdlq.ErrInvalidKey) {
		t.Errorf("Put outside dlq: = %v; want ErrInvalidKey", err)
	}
	if err := s.Put(ctx, "dlq:menu:e1", []byte(`{}`), meta, 0); err == nil || !strings.Contains(err.Error(), "ttl") {
		t.Errorf("Put with zero ttl = %v; want a ttl error", err)
	}
	if err := s.Put(ctx, "dlq:menu:e1", []byte(`{}`), actors.DeadLetterMeta{Attempts: -1}, ttl); err == nil {
		t.Error("Put with negative attempts succeeded")
	}
	if n := c.DBSize(ctx).Val(); n != 0 {
		t.Errorf("rejected Puts wrote %d keys", n)
	}
}

func TestGetMissingAndInvalid(t *testing.T) {
	t.Parallel()
	s, c, ctx := setup(t)
	if _, err := s.Get(ctx, "dlq:menu:nope"); !errors.Is(err, redisdlq.ErrNotFound) || !strings.Contains(err.Error(), "dlq:menu:nope") {
		t.Fatalf("Get missing = %v; want ErrNotFound naming the key", err)
	}
	// A key outside the DLQ is never read, even if it exists.
	if err := c.Set(ctx, "secret", "x", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "secret"); !errors.Is(err, redisdlq.ErrInvalidKey) {
		t.Fatalf("Get secret = %v; want ErrInvalidKey", err)
	}
	// A DLQ key holding something else is an error, not "not found".
	if err := c.HSet(ctx, "dlq:menu:hash", "f", "v").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "dlq:menu:hash"); err == nil || errors.Is(err, redisdlq.ErrNotFound) || !strings.Contains(err.Error(), "WRONGTYPE") {
		t.Fatalf("Get of a hash = %v; want a WRONGTYPE error", err)
	}
}

func TestLegacyEntry(t *testing.T) {
	t.Parallel()
	s, c, ctx := setup(t)
	// As the old service wrote it: doubled colon, plain string, no meta.
	value := `{"type":"MAIL_MESSAGE","title":"old"}`
	if err := c.Set(ctx, "dlq:menu::e1", value, ttl).Err(); err != nil {
		t.Fatal(err)
	}
	e, err := s.Get(ctx, "dlq:menu::e1")
	if err != nil {
		t.Fatalf("Get legacy: %v", err)
	}
	if string(e.Value) != value || e.HasMeta || e.Prefix != "dlq:menu:" || e.EventID != "e1" {
		t.Fatalf("legacy entry = %+v", e)
	}
	if e.Meta != (actors.DeadLetterMeta{}) || !e.FirstFailedAt.IsZero() || !e.LastFailedAt.IsZero() {
		t.Fatalf("legacy entry has meta: %+v", e)
	}
	if e.TTL <= 0 || e.TTL > ttl {
		t.Fatalf("legacy TTL = %v", e.TTL)
	}

	// Without an expiry, TTL is 0.
	if err := c.Set(ctx, "dlq:menu::e2", value, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if e, err := s.Get(ctx, "dlq:menu::e2"); err != nil || e.TTL != 0 {
		t.Fatalf("Get without expiry: TTL %v, %v; want 0", e.TTL, err)
	}

	ok, err := s.Delete(ctx, "dlq:menu::e1")
	if err != nil || !ok {
		t.Fatalf("Delete legacy = %v, %v", ok, err)
	}
}

func TestScan(t *testing.T) {
	t.Parallel()
	s, c, ctx := setup(t)
	meta := actors.DeadLetterMeta{Attempts: 1}
	var menu, logs []string
	for i := range 7 {
		k := fmt.Sprintf("dlq:menu:m%d", i)
		menu = append(menu, k)
		if err := s.Put(ctx, k, []byte(`{}`), meta, ttl); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 4 {
		k := fmt.Sprintf("dlq:log:l%d", i)
		logs = append(logs, k)
		if err := s.Put(ctx, k, []byte(`[{}]`), meta, ttl); err != nil {
			t.Fatal(err)
		}
	}
	menu = append(menu, "dlq:menu::legacy")
	for k, v := range map[string]string{"dlq:menu::legacy": "{}", "other:key": "x", "xdlq:menu:z": "x", "menu:dlq:y": "x"} {
		if err := c.Set(ctx, k, v, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if n := c.Exists(ctx, redisdlq.MetaKey("dlq:menu:m0")).Val(); n != 1 {
		t.Fatal("meta key missing: the exclusion check would be vacuous")
	}

	// scanAll pages through SCAN with a small COUNT, as an API would.
	scanAll := func(match string) []string {
		t.Helper()
		seen := map[string]bool{}
		var cursor uint64
		for steps := 0; ; steps++ {
			if steps > 1000 {
				t.Fatalf("SCAN %q did not finish", match)
			}
			keys, next, err := s.Scan(ctx, match, cursor, 2)
			if err != nil {
				t.Fatalf("Scan(%q, %d): %v", match, cursor, err)
			}
			for _, k := range keys {
				seen[k] = true
			}
			if next == 0 {
				break
			}
			cursor = next
		}
		out := make([]string, 0, len(seen))
		for k := range seen {
			out = append(out, k)
		}
		slices.Sort(out)
		return out
	}
	sorted := func(ks ...[]string) []string {
		out := slices.Concat(ks...)
		slices.Sort(out)
		return out
	}

	pat, err := redisdlq.PrefixPattern("dlq:menu:")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := scanAll(pat), sorted(menu); !slices.Equal(got, want) {
		t.Errorf("scan dlq:menu: = %v; want %v", got, want)
	}
	if got, want := scanAll("dlq:log:*"), sorted(logs); !slices.Equal(got, want) {
		t.Errorf("scan dlq:log: = %v; want %v", got, want)
	}
	all := sorted(menu, logs)
	if got := scanAll(""); !slices.Equal(got, all) {
		t.Errorf("scan with default match = %v; want %v", got, all)
	}
	// Even a pattern matching everything yields only DLQ keys.
	if got := scanAll("*"); !slices.Equal(got, all) {
		t.Errorf(`scan "*" = %v; want %v`, got, all)
	}

	got, err := s.List(ctx, "dlq:", 0)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if slices.Sort(got); !slices.Equal(got, all) {
		t.Errorf("List dlq: = %v; want %v", got, all)
	}
	if got, err := s.List(ctx, "dlq:menu:", 3); err != nil || len(got) != 3 {
		t.Errorf("List with limit 3 = %v, %v", got, err)
	}
	if _, err := s.List(ctx, "dlq:*", 0); !errors.Is(err, redisdlq.ErrInvalidPrefix) {
		t.Errorf("List dlq:* = %v; want ErrInvalidPrefix", err)
	}
	if got, err := s.List(ctx, "dlq:none:", 0); err != nil || got == nil || len(got) != 0 {
		t.Errorf("List of nothing = %#v, %v; want an empty, non-nil slice", got, err)
	}
}

func TestDelete(t *testing.T) {
	t.Parallel()
	s, c, ctx := setup(t)
	key := "dlq:menu:d1"
	if err := s.Put(ctx, key, []byte(`{}`), actors.DeadLetterMeta{Attempts: 1}, ttl); err != nil {
		t.Fatal(err)
	}
	ok, err := s.Delete(ctx, key)
	if err != nil || !ok {
		t.Fatalf("Delete = %v, %v; want true", ok, err)
	}
	if n := c.Exists(ctx, key, redisdlq.MetaKey(key)).Val(); n != 0 {
		t.Fatalf("%d of value and meta left after Delete", n)
	}
	if _, err := s.Get(ctx, key); !errors.Is(err, redisdlq.ErrNotFound) {
		t.Fatalf("Get after Delete = %v; want ErrNotFound", err)
	}
	if ok, err := s.Delete(ctx, key); err != nil || ok {
		t.Fatalf("second Delete = %v, %v; want false", ok, err)
	}
	if err := c.Set(ctx, "other", "x", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Delete(ctx, "other"); !errors.Is(err, redisdlq.ErrInvalidKey) {
		t.Fatalf("Delete other = %v; want ErrInvalidKey", err)
	}
	if n := c.Exists(ctx, "other").Val(); n != 1 {
		t.Fatal("Delete removed a key outside the DLQ")
	}
}

func TestRedisDown(t *testing.T) {
	t.Parallel()
	srv := testenv.Redis(t)
	s := redisdlq.New(srv.Client(t))
	srv.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := s.Put(ctx, "dlq:menu:down", []byte(`{}`), actors.DeadLetterMeta{Attempts: 1}, ttl)
	if err == nil || !strings.Contains(err.Error(), `dlq put "dlq:menu:down"`) {
		t.Fatalf("Put with Redis down = %v; want an error naming the key", err)
	}
	if _, err := s.Get(ctx, "dlq:menu:down"); err == nil || errors.Is(err, redisdlq.ErrNotFound) {
		t.Fatalf("Get with Redis down = %v; want a connection error, not ErrNotFound", err)
	}
}
