package fakebackend

import (
	"testing"
	"time"

	"github.com/hobom/hobom-event-processor/messages"
)

// findEvents is a snapshot of the first limit rows of (eventType, status).
func (s *store) findEvents(eventType, status string, limit int) []messages.Event {
	var out []messages.Event
	s.find(eventType, status, limit, func(_, n int, ev *messages.Event) {
		if out == nil {
			out = make([]messages.Event, 0, n)
		}
		out = append(out, *ev)
	})
	return out
}

// drain plays the processor against the store: find a page of PENDING
// rows, mark them (every tenth FAILED, rest SENT), until none is left.
func drain(tb testing.TB, s *store, total, page int) {
	tb.Helper()
	marked := 0
	for {
		events := s.findEvents(messages.EventTypeMessage, messages.StatusPending, page)
		if len(events) == 0 {
			break
		}
		for i := range events {
			id := events[i].EventID
			if (marked+i)%10 == 0 {
				s.markFailed(id, "boom")
			} else {
				s.markSent(id)
			}
		}
		marked += len(events)
	}
	if marked != total {
		tb.Fatalf("marked %d rows, want %d", marked, total)
	}
}

// TestStoreDrainsLargeBacklogFast guards the fake's efficiency: a paged
// drain must not scan the whole table per find (that would take minutes).
func TestStoreDrainsLargeBacklogFast(t *testing.T) {
	n := 1_000_000
	if testing.Short() || raceEnabled {
		n = 100_000 // the race detector makes a million rows take ~15 s
	}
	s := newStore()
	start := time.Now()
	srv := &Server{store: s}
	srv.Seed(messages.EventTypeMessage, n, nil)
	seeded := time.Since(start)
	drain(t, s, n, 1000)
	t.Logf("seeded %d rows in %s, drained in %s", n, seeded, time.Since(start)-seeded)
	if got := s.count(messages.EventTypeMessage, messages.StatusSent) + s.count(messages.EventTypeMessage, messages.StatusFailed); got != n {
		t.Fatalf("SENT+FAILED = %d, want %d", got, n)
	}
	if got := s.count(messages.EventTypeMessage, messages.StatusFailed); got != n/10 {
		t.Fatalf("FAILED = %d, want %d", got, n/10)
	}
}

func BenchmarkFindPage(b *testing.B) {
	s := newStore()
	(&Server{store: s}).Seed(messages.EventTypeMessage, 1_000_000, nil)
	b.ResetTimer()
	for b.Loop() {
		var res messageResults
		s.find(messages.EventTypeMessage, messages.StatusPending, 1000, res.add)
		if len(res.items) != 1000 {
			b.Fatal("short page")
		}
	}
}

func BenchmarkSeed(b *testing.B) {
	for b.Loop() {
		(&Server{store: newStore()}).Seed(messages.EventTypeMessage, 1_000_000, nil)
	}
}
