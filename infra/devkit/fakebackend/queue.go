package fakebackend

import "sort"

// queue holds the rows of one (event type, status) in insertion order
// (ascending row.seq). Finds read from the front and marks take rows out
// near the front and put them in near the back of another queue, so the
// queue is a sorted slice with a movable head: removal and insertion shift
// whichever side of the position is shorter. Every operation is then
// O(log n) plus a copy that is short in the common case, and a find costs
// O(limit) however many rows the backlog holds.
type queue struct {
	rows []*row // rows[head:] is the queue; rows[:head] is free space
	head int
}

// minReclaim is the free space under which a queue does not bother to
// give memory back.
const minReclaim = 1024

func (q *queue) len() int { return len(q.rows) - q.head }

// search returns the absolute index of the first row with seq >= seq.
func (q *queue) search(seq uint64) int {
	live := q.rows[q.head:]
	return q.head + sort.Search(len(live), func(i int) bool { return live[i].seq >= seq })
}

// insert adds r at its place in seq order.
func (q *queue) insert(r *row) {
	n := len(q.rows)
	if q.head == n || q.rows[n-1].seq < r.seq { // the common case: newest row
		q.rows = append(q.rows, r)
		return
	}
	i := q.search(r.seq)
	if q.head > 0 && i-q.head < n-i {
		// Shift the front part one slot down into the free space.
		copy(q.rows[q.head-1:i-1], q.rows[q.head:i])
		q.head--
		q.rows[i-1] = r
		return
	}
	q.rows = append(q.rows, nil)
	copy(q.rows[i+1:], q.rows[i:n])
	q.rows[i] = r
}

// remove takes r out; r must be in q.
func (q *queue) remove(r *row) {
	i := q.search(r.seq)
	if i == len(q.rows) || q.rows[i] != r {
		panic("fakebackend: row missing from its queue")
	}
	n := len(q.rows)
	if i-q.head < n-1-i {
		// Shift the front part one slot up and grow the free space.
		copy(q.rows[q.head+1:i+1], q.rows[q.head:i])
		q.rows[q.head] = nil
		q.head++
	} else {
		copy(q.rows[i:], q.rows[i+1:])
		q.rows[n-1] = nil
		q.rows = q.rows[:n-1]
	}
	q.reclaim()
}

// reclaim gives the free space back once it outweighs the rows, so that a
// drained backlog of a million rows does not stay allocated.
func (q *queue) reclaim() {
	if q.head < minReclaim || q.head < q.len() {
		return
	}
	q.rows = append([]*row(nil), q.rows[q.head:]...)
	q.head = 0
}

// front calls fn for the first limit rows (all when limit <= 0).
func (q *queue) front(limit int, fn func(*row)) {
	live := q.rows[q.head:]
	if limit > 0 && limit < len(live) {
		live = live[:limit]
	}
	for _, r := range live {
		fn(r)
	}
}
