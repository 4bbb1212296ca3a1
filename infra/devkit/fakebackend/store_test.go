package fakebackend

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hobom/hobom-event-processor/messages"
)

// findEvents is a snapshot of the first limit rows of (eventType, status).
func (s *store) findEvents(eventType, status string, limit int) []messages.Event {
	out, _ := s.findAfter(eventType, status, limit, "")
	return out
}

// findAfter is findEvents after the row of the eventId after.
func (s *store) findAfter(eventType, status string, limit int, after string) (out []messages.Event, applied bool) {
	applied = s.find(eventType, status, limit, after, func(i, n int, ev *messages.Event) {
		if i != len(out) || i >= n {
			panic(fmt.Sprintf("find visited row %d of %d after %d rows", i, n, len(out)))
		}
		if out == nil {
			out = make([]messages.Event, 0, n)
		}
		out = append(out, *ev)
	})
	if out != nil && len(out) != cap(out) {
		panic(fmt.Sprintf("find announced %d rows, visited %d", cap(out), len(out)))
	}
	return out, applied
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
		s.find(messages.EventTypeMessage, messages.StatusPending, 1000, "", res.add)
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

// TestStoreFindsAfterTheCursor: a find with a cursor returns the rows
// inserted after the cursor's row, whatever that row's status, and says it
// applied it; a cursor the store does not know, or a row of another event
// type, is ignored and the find starts from the front.
func TestStoreFindsAfterTheCursor(t *testing.T) {
	s := newStore()
	for i := range 8 {
		s.add([]messages.Event{{EventID: fmt.Sprintf("e%d", i), EventType: messages.EventTypeMessage}})
	}
	s.add([]messages.Event{{EventID: "log", EventType: messages.EventTypeHoBomLog}})
	s.markSent("e3")
	s.markSent("e5")
	ids := func(events []messages.Event) []string {
		var out []string
		for _, e := range events {
			out = append(out, e.EventID)
		}
		return out
	}
	for _, c := range []struct {
		after       string
		limit       int
		want        []string
		wantApplied bool
	}{
		{"", 3, []string{"e0", "e1", "e2"}, false},
		{"e1", 2, []string{"e2", "e4"}, true},
		{"e3", 0, []string{"e4", "e6", "e7"}, true}, // e3 is SENT now
		{"e7", 0, nil, true},
		{"unknown", 2, []string{"e0", "e1"}, false},
		{"log", 2, []string{"e0", "e1"}, false},
	} {
		got, applied := s.findAfter(messages.EventTypeMessage, messages.StatusPending, c.limit, c.after)
		if !slices.Equal(ids(got), c.want) || applied != c.wantApplied {
			t.Errorf("after %q, limit %d: %q, applied %v; want %q, %v", c.after, c.limit, ids(got), applied, c.want, c.wantApplied)
		}
	}
}

// TestStoreKeepsRowsWithoutAnEventID: rows added without an eventId keep
// it empty, are found in their place (before rows added after them, and
// passed over by a cursor after them), each one apart by its row id, and
// no mark reaches them.
func TestStoreKeepsRowsWithoutAnEventID(t *testing.T) {
	s := newStore()
	s.addWithoutEventID([]messages.Event{{ID: "bad-0", EventType: messages.EventTypeMessage}, {ID: "bad-1", EventType: messages.EventTypeMessage}})
	s.add([]messages.Event{{EventID: "e0", EventType: messages.EventTypeMessage}})
	s.addWithoutEventID([]messages.Event{{ID: "bad-2", EventID: "ignored", EventType: messages.EventTypeMessage}})
	rows := func(events []messages.Event) []string {
		var out []string
		for _, e := range events {
			out = append(out, e.ID+"/"+e.EventID)
		}
		return out
	}
	got, _ := s.findAfter(messages.EventTypeMessage, messages.StatusPending, 0, "")
	if want := []string{"bad-0/", "bad-1/", "fake-row-3/e0", "bad-2/"}; !slices.Equal(rows(got), want) {
		t.Fatalf("find: %q, want %q", rows(got), want)
	}
	if got, applied := s.findAfter(messages.EventTypeMessage, messages.StatusPending, 0, "e0"); !applied || !slices.Equal(rows(got), []string{"bad-2/"}) {
		t.Fatalf("find after e0: %q (applied %v), want only the row added after it", rows(got), applied)
	}
	if s.markSent("") || s.markSent("ignored") || s.markSent("bad-0") {
		t.Fatal("a mark reached a row without an eventId")
	}
	if _, ok := s.event("bad-1"); ok {
		t.Fatal("a row without an eventId found by its row id as if that were its eventId")
	}
	if n := s.count(messages.EventTypeMessage, messages.StatusPending); n != 4 {
		t.Fatalf("%d rows PENDING, want 4", n)
	}
}
