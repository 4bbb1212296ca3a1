package fakebackend

import (
	"strconv"
	"sync"
	"time"

	"github.com/hobom/hobom-event-processor/messages"
	"github.com/hobom/hobom-event-processor/proto/gen/outboxbatchv1"
)

// row is one outbox row. Its event's payload pointers are shared with the
// caller of Add and with snapshots: they are never written after Add.
type row struct {
	ev  messages.Event
	seq uint64 // insertion order; unique per row
}

type queueKey struct{ eventType, status string }

// store is the outbox table: rows by eventId (rows without one, which
// nothing can mark, by row id in a map of their own), and per (type,
// status) a queue in insertion order so that a find never scans the whole
// table.
type store struct {
	mu      sync.Mutex
	byID    map[string]*row
	noEvent map[string]*row
	queues  map[queueKey]*queue
	seq     uint64
}

func newStore() *store {
	return &store{byID: map[string]*row{}, noEvent: map[string]*row{}, queues: map[queueKey]*queue{}}
}

// now is the backend's timestamp format (RFC 3339, UTC, nanoseconds).
func now() string { return time.Now().UTC().Format(time.RFC3339Nano) }

// queue returns the queue of k, creating it. Callers hold s.mu.
func (s *store) queue(k queueKey) *queue {
	q := s.queues[k]
	if q == nil {
		q = &queue{}
		s.queues[k] = q
	}
	return q
}

func keyOf(ev *messages.Event) queueKey { return queueKey{ev.EventType, ev.Status} }

// add inserts or replaces rows, filling the defaults a backend would: a
// PENDING status, creation time, ids and version 1. A row whose eventId
// exists already is replaced and moves to the end of the insertion order.
func (s *store) add(events []messages.Event) {
	s.addFunc(len(events), func(i int) messages.Event { return events[i] })
}

// addFunc adds the n rows event(0) ... event(n-1). It builds the rows in
// place, so seeding a million rows holds them in memory once, not twice.
func (s *store) addFunc(n int, event func(i int) messages.Event) { s.insert(n, event, false) }

// addWithoutEventID inserts rows that have no eventId, as a backend whose
// outbox writes had a bug would hold them: finds return them like any row,
// and no mark can reach them. A row with the row id of one added before
// replaces it.
func (s *store) addWithoutEventID(events []messages.Event) {
	s.insert(len(events), func(i int) messages.Event { return events[i] }, true)
}

// insert adds the rows of addFunc, or of addWithoutEventID when
// noEventID: their eventId emptied and the rows kept by row id.
func (s *store) insert(n int, event func(i int) messages.Event, noEventID bool) {
	ts := now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.byID) == 0 && n > 0 && !noEventID {
		// Seeding a large backlog: size the map once.
		s.byID = make(map[string]*row, n)
	}
	slab := make([]row, n)
	var buf []byte
	for i := range slab {
		s.seq++
		r := &slab[i]
		r.ev, r.seq = event(i), s.seq
		buf = fillDefaults(&r.ev, s.seq, ts, buf)
		index, key := s.byID, r.ev.EventID
		if noEventID {
			r.ev.EventID = ""
			index, key = s.noEvent, r.ev.ID
		}
		if old := index[key]; old != nil {
			s.queues[keyOf(&old.ev)].remove(old)
		}
		index[key] = r
		s.queue(keyOf(&r.ev)).insert(r)
	}
}

// fillDefaults fills what the caller left empty; buf is scratch space for
// the generated ids, returned for reuse.
func fillDefaults(ev *messages.Event, seq uint64, ts string, buf []byte) []byte {
	if ev.Status == "" {
		ev.Status = messages.StatusPending
	}
	if ev.CreatedAt == "" {
		ev.CreatedAt = ts
	}
	if ev.UpdatedAt == "" {
		ev.UpdatedAt = ev.CreatedAt
	}
	if ev.ID == "" {
		buf = strconv.AppendUint(append(buf[:0], "fake-row-"...), seq, 10)
		ev.ID = string(buf)
	}
	if ev.EventID == "" {
		buf = strconv.AppendUint(append(buf[:0], "fake-evt-"...), seq, 10)
		ev.EventID = string(buf)
	}
	if ev.Version == 0 {
		ev.Version = 1
	}
	return buf
}

// find calls visit, with the store locked, for the first limit rows of
// (eventType, status) (all when limit <= 0), in insertion order: i counts
// from 0 to n-1. With after set to the eventId of a row (of eventType, in
// any status), only the rows inserted after it, and applied says so; an
// unknown after is ignored, as the contract asks. visit copies the fields
// it needs (a response is a snapshot: the next mark changes ev) and keeps
// no pointer to ev itself; it may share ev's strings and its payload's
// maps, which nothing writes after Add.
func (s *store) find(eventType, status string, limit int, after string, visit func(i, n int, ev *messages.Event)) (applied bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var from uint64
	if after != "" {
		if r := s.byID[after]; r != nil && r.ev.EventType == eventType {
			from, applied = r.seq+1, true
		}
	}
	q := s.queues[queueKey{eventType, status}]
	if q == nil {
		return applied
	}
	n := q.countFrom(from, limit)
	if n == 0 {
		return applied // from(from, 0, ...) would mean all
	}
	i := 0
	q.from(from, n, func(r *row) {
		visit(i, n, &r.ev)
		i++
	})
	return applied
}

// markSent applies the backend's SENT side effects; false if eventID is
// unknown.
func (s *store) markSent(eventID string) bool {
	return s.update(eventID, func(ev *messages.Event, ts string) {
		ev.Status = messages.StatusSent
		ev.SentAt = ts
		ev.LastError = ""
		ev.Version++
	})
}

// markFailed applies the backend's FAILED side effects; false if eventID is
// unknown.
func (s *store) markFailed(eventID, errorMessage string) bool {
	return s.update(eventID, func(ev *messages.Event, ts string) {
		ev.Status = messages.StatusFailed
		ev.FailedAt = ts
		ev.LastError = errorMessage
		ev.RetryCount++
		ev.Version++
	})
}

// markMany applies the SENT and FAILED side effects to many rows under one
// lock; unknown is called with each id the store does not have.
func (s *store) markMany(sent []string, failed []*outboxbatchv1.FailedMark, unknown func(id string)) (nSent, nFailed int) {
	ts := now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range sent {
		if s.updateLocked(id, ts, func(ev *messages.Event, ts string) {
			ev.Status = messages.StatusSent
			ev.SentAt = ts
			ev.LastError = ""
			ev.Version++
		}) {
			nSent++
		} else {
			unknown(id)
		}
	}
	for _, f := range failed {
		msg := f.GetErrorMessage()
		if s.updateLocked(f.GetEventId(), ts, func(ev *messages.Event, ts string) {
			ev.Status = messages.StatusFailed
			ev.FailedAt = ts
			ev.LastError = msg
			ev.RetryCount++
			ev.Version++
		}) {
			nFailed++
		} else {
			unknown(f.GetEventId())
		}
	}
	return nSent, nFailed
}

// update changes one row and moves it to the queue of its new status.
func (s *store) update(eventID string, fn func(ev *messages.Event, ts string)) bool {
	ts := now()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.updateLocked(eventID, ts, fn)
}

// updateLocked is update with s.mu held.
func (s *store) updateLocked(eventID, ts string, fn func(ev *messages.Event, ts string)) bool {
	r := s.byID[eventID]
	if r == nil {
		return false
	}
	before := keyOf(&r.ev)
	fn(&r.ev, ts)
	r.ev.UpdatedAt = ts
	if after := keyOf(&r.ev); after != before {
		s.queues[before].remove(r)
		s.queue(after).insert(r)
	}
	return true
}

func (s *store) event(eventID string) (messages.Event, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.byID[eventID]
	if r == nil {
		return messages.Event{}, false
	}
	return r.ev, true
}

func (s *store) count(eventType, status string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if q := s.queues[queueKey{eventType, status}]; q != nil {
		return q.len()
	}
	return 0
}
