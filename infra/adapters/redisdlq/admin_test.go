package redisdlq_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hobom/hobom-event-processor/actors"
	"github.com/hobom/hobom-event-processor/infra/adapters/redisdlq"
	"github.com/hobom/hobom-event-processor/infra/testkit/testenv"
	"github.com/hobom/hobom-event-processor/messages"
)

func TestValue(t *testing.T) {
	t.Parallel()
	s, c, ctx := setup(t)
	if err := c.Set(ctx, "dlq:menu::e1", `[1, 2]`, 0).Err(); err != nil {
		t.Fatal(err)
	}
	v, n, found, err := s.Value(ctx, "dlq:menu::e1", 1024)
	if err != nil || !found || string(v) != `[1, 2]` || n != 6 {
		t.Fatalf("Value = %q, %d, %v, %v", v, n, found, err)
	}
	if v, _, found, err := s.Value(ctx, "dlq:menu:none", 1024); err != nil || found || v != nil {
		t.Fatalf("Value of a missing key = %q, %v, %v", v, found, err)
	}
	if _, _, _, err := s.Value(ctx, "session:1", 1024); !errors.Is(err, redisdlq.ErrInvalidKey) {
		t.Fatalf("Value of a non-DLQ key: %v", err)
	}
	// Larger than the limit: the size, not the bytes.
	if v, n, found, err := s.Value(ctx, "dlq:menu::e1", 5); err != nil || !found || v != nil || n != 6 {
		t.Fatalf("Value over the limit = %q, %d, %v, %v", v, n, found, err)
	}
	// An empty value is found, and empty.
	if err := c.Set(ctx, "dlq:menu:empty", "", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if v, n, found, err := s.Value(ctx, "dlq:menu:empty", 5); err != nil || !found || v == nil || len(v) != 0 || n != 0 {
		t.Fatalf("Value of an empty string = %q, %d, %v, %v", v, n, found, err)
	}
	// A hash is no dead letter.
	if err := c.HSet(ctx, "dlq:menu:h", "f", "v").Err(); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := s.Value(ctx, "dlq:menu:h", 5); !errors.Is(err, actors.ErrWrongType) {
		t.Fatalf("Value of a hash: %v; want ErrWrongType", err)
	}
}

func TestLockIsExclusiveAndReleasedOnlyByItsHolder(t *testing.T) {
	t.Parallel()
	s, c, ctx := setup(t)
	const key = "dlq:menu:e1"
	tok, ok, err := s.Lock(ctx, key, time.Minute)
	if err != nil || !ok || len(tok) != 32 {
		t.Fatalf("Lock = %q, %v, %v", tok, ok, err)
	}
	if got := c.Get(ctx, redisdlq.LockKey(key)).Val(); got != tok {
		t.Fatalf("lock key holds %q, want the token", got)
	}
	if pttl := c.PTTL(ctx, redisdlq.LockKey(key)).Val(); pttl <= 50*time.Second || pttl > time.Minute {
		t.Fatalf("lock PTTL %v", pttl)
	}
	if _, ok, err := s.Lock(ctx, key, time.Minute); ok || err != nil {
		t.Fatalf("second Lock = %v, %v; want refused", ok, err)
	}
	// Someone else's token neither extends nor releases it.
	if held, err := s.Refresh(ctx, key, "not-the-token", time.Hour); held || err != nil {
		t.Fatalf("Refresh with a wrong token = %v, %v", held, err)
	}
	if err := s.Unlock(ctx, key, "not-the-token"); err != nil {
		t.Fatal(err)
	}
	if c.Exists(ctx, redisdlq.LockKey(key)).Val() != 1 {
		t.Fatal("a wrong token released the lock")
	}
	if held, err := s.Refresh(ctx, key, tok, 2*time.Minute); !held || err != nil {
		t.Fatalf("Refresh = %v, %v", held, err)
	}
	if pttl := c.PTTL(ctx, redisdlq.LockKey(key)).Val(); pttl <= time.Minute {
		t.Fatalf("PTTL after refresh %v", pttl)
	}
	if err := s.Unlock(ctx, key, tok); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.Lock(ctx, key, time.Minute); !ok || err != nil {
		t.Fatalf("Lock after Unlock = %v, %v", ok, err)
	}
	// An expired lease can be taken by the next caller.
	if _, ok, _ := s.Lock(ctx, "dlq:menu:e2", 20*time.Millisecond); !ok {
		t.Fatal("lock e2")
	}
	testenv.EventuallyEvery(t, 5*time.Second, 5*time.Millisecond, "the expired lock free again", func() bool {
		_, ok, err := s.Lock(ctx, "dlq:menu:e2", time.Minute)
		return err != nil || ok
	})
	if _, _, err := s.Lock(ctx, "hobom:x", time.Minute); !errors.Is(err, redisdlq.ErrInvalidKey) {
		t.Fatalf("Lock of a non-DLQ key: %v", err)
	}
	// The lock lives outside dlq:, so listings never show it.
	keys, err := s.List(ctx, "dlq:", 0)
	if err != nil || len(keys) != 0 {
		t.Fatalf("List = %v, %v; want no entries", keys, err)
	}
}

func TestAuditIsCappedAndNewestFirst(t *testing.T) {
	t.Parallel()
	s, c, ctx := setup(t)
	for i := range 5 {
		rec := messages.AuditRecord{Time: time.Unix(int64(i), 0).UTC(), Action: messages.AuditReplay, Key: fmt.Sprintf("dlq:menu:e%d", i),
			Outcome: "done", Caller: messages.Caller{Addr: "127.0.0.1:1", Operator: "op"}}
		if err := s.Audit(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.LPush(ctx, redisdlq.AuditKey, "not json").Err(); err != nil {
		t.Fatal(err)
	}
	got, err := s.AuditLog(ctx, 3)
	if err != nil || len(got) != 3 {
		t.Fatalf("AuditLog = %d records, %v", len(got), err)
	}
	if string(got[0]) != `"not json"` {
		t.Errorf("a foreign record is %s, want it as a JSON string", got[0])
	}
	var rec messages.AuditRecord
	if err := json.Unmarshal(got[1], &rec); err != nil || rec.Key != "dlq:menu:e4" || rec.Caller.Operator != "op" {
		t.Errorf("newest record %s (%v)", got[1], err)
	}
	if _, err := s.AuditLog(ctx, 0); err == nil {
		t.Error("AuditLog(0) accepted")
	}
	// The cap holds.
	pipe := c.Pipeline()
	for range redisdlq.AuditCap {
		pipe.LPush(ctx, redisdlq.AuditKey, "{}")
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Audit(ctx, messages.AuditRecord{Action: messages.AuditDiscard}); err != nil {
		t.Fatal(err)
	}
	if n := c.LLen(ctx, redisdlq.AuditKey).Val(); n != redisdlq.AuditCap {
		t.Errorf("audit list holds %d records, want the cap %d", n, redisdlq.AuditCap)
	}
}

func TestGetFailsWhileRedisIsDown(t *testing.T) {
	t.Parallel()
	srv := testenv.Redis(t)
	s := redisdlq.New(srv.Client(t))
	ctx := context.Background()
	if err := s.Put(ctx, "dlq:menu:e1", []byte(`{}`), actors.DeadLetterMeta{}, time.Hour); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	if e, err := s.Get(ctx, "dlq:menu:e1"); err == nil || errors.Is(err, redisdlq.ErrNotFound) {
		t.Fatalf("Get with Redis down = %+v, %v; want a connection error", e, err)
	}
	if _, _, _, err := s.Value(ctx, "dlq:menu:e1", 1024); err == nil {
		t.Fatal("Value with Redis down succeeded")
	}
}
