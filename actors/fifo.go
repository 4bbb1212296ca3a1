package actors

// fifo is a first-in, first-out queue on one slice that keeps its array
// when it drains, up to keep items of capacity: the queue of the
// publisher's single marks (filled a batch at a time, drained as marks
// start) and of every workQueue. A queue that re-sliced its front away, or
// let its array go whenever it emptied, grew a new array by doubling for
// every batch (about 265 B per relayed event in an allocation profile of
// the MESSAGE relay).
type fifo[T any] struct {
	items []T // items[head:] are queued; items[:head] are free
	head  int
	keep  int // the largest capacity kept once the queue drains
}

func (q *fifo[T]) len() int { return len(q.items) - q.head }

// push queues v. A full array whose front half or more is free is
// compacted instead of grown, so each item is copied O(1) times.
func (q *fifo[T]) push(v T) {
	if len(q.items) == cap(q.items) && q.head > 0 && q.head >= q.len() {
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	q.items = append(q.items, v)
}

// pop takes the oldest item, if any.
func (q *fifo[T]) pop() (v T, ok bool) {
	if q.head == len(q.items) {
		return v, false
	}
	v = q.items[q.head]
	var zero T
	q.items[q.head] = zero // let what it points to go
	q.head++
	if q.head == len(q.items) {
		q.head = 0
		if cap(q.items) > q.keep {
			q.items = nil // a backlog larger than usual: give its array back
		} else {
			q.items = q.items[:0]
		}
	}
	return v, true
}

// drop empties the queue and lets its array go.
func (q *fifo[T]) drop() { q.items, q.head = nil, 0 }
