package actors

import (
	"testing"
	"time"

	"github.com/hobom/hobom-event-processor/messages"
)

func TestOldestPendingAge(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	evs := []messages.Event{
		{CreatedAt: "2026-01-02T03:04:00Z"},
		{CreatedAt: "2026-01-02T03:03:05.000Z"},
		{CreatedAt: "not a time"},
		{CreatedAt: ""},
		{CreatedAt: "2026-01-02T04:00:00+01:00"}, // 03:00 UTC: the oldest, and last
	}
	if got := oldestPendingAge(evs, now); got != 4*time.Minute+5*time.Second {
		t.Fatalf("age = %v", got)
	}
	if got := oldestPendingAge(nil, now); got != 0 {
		t.Fatalf("no events: %v", got)
	}
	if got := oldestPendingAge([]messages.Event{{CreatedAt: "2027-01-01T00:00:00Z"}}, now); got != 0 {
		t.Fatalf("future createdAt: %v", got)
	}
}
