package fakebackend

import (
	"cmp"
	"slices"
	"sort"
)

// queue holds the rows of one (event type, status) in insertion order
// (ascending row.seq). Finds read from the front; marks take rows out near
// the front of the PENDING queue and add them, roughly in order, at the
// back of a SENT or FAILED queue that is seldom read. So:
//
//   - a removal leaves a tombstone (a slot whose row is nil, its seq kept
//     for the binary search) instead of shifting the slots behind it, and
//     the head moves past the tombstones at the front; the tombstones are
//     compacted away once they outnumber the rows;
//   - an insertion appends, and a queue whose appends came out of order is
//     sorted when it is next read or searched, not at every insertion.
//
// A mark out of the PENDING queue then costs O(log n) and no copy, and a
// find O(limit + the tombstones among those rows), however many rows the
// backlog holds. Two costs remain for patterns the relays do not make: a
// row that stays at the front while the rows behind it are marked keeps
// up to about as many tombstones as rows behind it until they are
// compacted, and a find walks over them; and a row that leaves a SENT or
// FAILED queue whose appends came out of order (a FAILED mark of a SENT
// row) sorts that queue first. Shifting slots instead (an earlier
// version) made the copies, with their GC write barriers, the fake
// backend's largest cost in a batch-mark relay.
type queue struct {
	slots    []slot // slots[head:] holds the queue; slots[:head] is free space
	head     int
	n        int  // rows in the queue (slots[head:] minus tombstones)
	unsorted bool // an append came out of order: sort before reading
}

// slot is a queue position; r == nil is a tombstone.
type slot struct {
	seq uint64
	r   *row
}

// minReclaim is the free space (and the tombstones) under which a queue
// does not bother to give memory back.
const minReclaim = 1024

func (q *queue) len() int { return q.n }

// order sorts the queue if an append came out of order.
func (q *queue) order() {
	if !q.unsorted {
		return
	}
	slices.SortFunc(q.slots[q.head:], func(a, b slot) int { return cmp.Compare(a.seq, b.seq) })
	q.unsorted = false
}

// search returns the absolute index of the first slot with seq >= seq; the
// queue must be in order.
func (q *queue) search(seq uint64) int {
	live := q.slots[q.head:]
	return q.head + sort.Search(len(live), func(i int) bool { return live[i].seq >= seq })
}

// insert adds r; it is put in seq order when the queue is next read.
func (q *queue) insert(r *row) {
	if n := len(q.slots); n > q.head && q.slots[n-1].seq > r.seq {
		q.unsorted = true
	}
	q.slots = append(q.slots, slot{seq: r.seq, r: r})
	q.n++
}

// remove takes r out; r must be in q.
func (q *queue) remove(r *row) {
	q.order()
	i := q.search(r.seq)
	// A row that left this queue and came back (FAILED, SENT, FAILED
	// again) has its old tombstone beside it, under the same seq.
	for i < len(q.slots) && q.slots[i].seq == r.seq && q.slots[i].r != r {
		i++
	}
	if i == len(q.slots) || q.slots[i].r != r {
		panic("fakebackend: row missing from its queue")
	}
	q.slots[i].r = nil
	q.n--
	for q.head < len(q.slots) && q.slots[q.head].r == nil {
		q.slots[q.head] = slot{}
		q.head++
	}
	q.reclaim()
}

// reclaim gives the free space back once it outweighs the rows, so that a
// drained backlog of a million rows does not stay allocated, and drops the
// tombstones once they outnumber the rows.
func (q *queue) reclaim() {
	free, dead := q.head, len(q.slots)-q.head-q.n
	if (free < minReclaim || free < q.n) && (dead < minReclaim || dead < q.n) {
		return
	}
	live := make([]slot, 0, q.n)
	for _, s := range q.slots[q.head:] {
		if s.r != nil {
			live = append(live, s)
		}
	}
	q.slots, q.head = live, 0
}

// from calls fn for the first limit rows (all when limit <= 0) whose seq
// is at least seq: from(0, ...) reads from the front.
func (q *queue) from(seq uint64, limit int, fn func(*row)) {
	q.order()
	if limit <= 0 {
		limit = q.n
	}
	start := q.head
	if seq > 0 {
		start = q.search(seq)
	}
	for _, s := range q.slots[start:] {
		if limit == 0 {
			return
		}
		if s.r != nil {
			fn(s.r)
			limit--
		}
	}
}

// countFrom is how many rows from(seq, limit, ...) visits.
func (q *queue) countFrom(seq uint64, limit int) int {
	if seq == 0 {
		if limit > 0 {
			return min(q.n, limit)
		}
		return q.n
	}
	n := 0
	q.from(seq, limit, func(*row) { n++ })
	return n
}
