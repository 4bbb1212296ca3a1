package redisdlq

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hobom/hobom-event-processor/infra/testenv"
	"github.com/hobom/hobom-event-processor/messages"
)

func TestUnmarkedMemoryRoundTrip(t *testing.T) {
	ctx := context.Background()
	c := testenv.Redis(t).Client(t)
	m := NewUnmarked(c)
	at := time.UnixMilli(time.Now().UnixMilli())
	if err := m.Remember(ctx, "e1", messages.Unmarked{Status: messages.StatusSent, At: at}); err != nil {
		t.Fatal(err)
	}
	if err := m.Remember(ctx, "e2", messages.Unmarked{Status: messages.StatusFailed, Reason: "kafka: a|b", At: at}); err != nil {
		t.Fatal(err)
	}
	for i := range 2500 {
		if err := m.Remember(ctx, fmt.Sprintf("bulk-%d", i), messages.Unmarked{Status: messages.StatusSent, At: at}); err != nil {
			t.Fatal(err)
		}
	}
	c.Set(ctx, UnmarkedPrefix+"junk", "nonsense", 0)
	got, err := m.Load(ctx, 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2502 {
		t.Fatalf("loaded %d, want 2502 (junk skipped)", len(got))
	}
	if u := got["e2"]; u.Status != messages.StatusFailed || u.Reason != "kafka: a|b" || !u.At.Equal(at) {
		t.Errorf("e2 = %+v", u)
	}
	if ttl := c.TTL(ctx, UnmarkedPrefix+"e1").Val(); ttl < 23*time.Hour {
		t.Errorf("TTL %v, want a day", ttl)
	}
	if err := m.Forget(ctx, "e1"); err != nil {
		t.Fatal(err)
	}
	if got, _ := m.Load(ctx, 10); len(got) != 10 {
		t.Errorf("limit not honoured: %d", len(got))
	}
	if n := c.Exists(ctx, UnmarkedPrefix+"e1").Val(); n != 0 {
		t.Error("e1 not forgotten")
	}
}
