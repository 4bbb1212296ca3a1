package fakebackend

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestQueueMatchesModel drives a queue with random inserts and removals
// near and far from both ends and compares it with a plain sorted slice.
func TestQueueMatchesModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var q queue
	var model []*row
	var pool []*row // rows not in the queue
	for i := range 5000 {
		pool = append(pool, &row{seq: uint64(i + 1)})
	}
	for step := range 200_000 {
		if len(pool) > 0 && (len(model) == 0 || rng.IntN(2) == 0) {
			k := rng.IntN(len(pool))
			r := pool[k]
			pool = slices.Delete(pool, k, k+1)
			q.insert(r)
			i, _ := slices.BinarySearchFunc(model, r.seq, func(r *row, s uint64) int { return int(r.seq) - int(s) })
			model = slices.Insert(model, i, r)
		} else {
			var k int
			switch rng.IntN(3) {
			case 0:
				k = 0 // as marks of found rows do
			case 1:
				k = len(model) - 1
			default:
				k = rng.IntN(len(model))
			}
			r := model[k]
			model = slices.Delete(model, k, k+1)
			q.remove(r)
			pool = append(pool, r)
		}
		if q.len() != len(model) {
			t.Fatalf("step %d: len %d, want %d", step, q.len(), len(model))
		}
		if step%97 == 0 {
			if !slices.Equal(queued(&q), model) {
				t.Fatalf("step %d: queue order differs from model", step)
			}
		}
	}
}

func TestQueueFrontLimit(t *testing.T) {
	var q queue
	for i := range 10 {
		q.insert(&row{seq: uint64(i + 1)})
	}
	var seqs []uint64
	q.from(0, 3, func(r *row) { seqs = append(seqs, r.seq) })
	if !slices.Equal(seqs, []uint64{1, 2, 3}) {
		t.Fatalf("front(3) = %v", seqs)
	}
}

// TestQueueReclaimsDrainedSpace checks that a queue drained from the front,
// as a backlog is, gives its free space back and keeps its order.
func TestQueueReclaimsDrainedSpace(t *testing.T) {
	q, rows := filledQueue(5000)
	for _, r := range rows[:4000] {
		q.remove(r)
	}
	if q.head >= minReclaim || cap(q.slots) >= len(rows) {
		t.Fatalf("head %d, cap %d: free space not reclaimed", q.head, cap(q.slots))
	}
	if !slices.Equal(queued(q), rows[4000:]) {
		t.Fatal("order lost by reclaiming")
	}
}

// TestQueueDropsTombstones checks that rows taken out behind a row that
// stays (a batch still in flight at the front) do not keep their slots:
// the tombstones are compacted away once they outnumber the rows.
func TestQueueDropsTombstones(t *testing.T) {
	q, rows := filledQueue(10_000)
	for _, r := range rows[1:9000] { // rows[0] stays at the front
		q.remove(r)
	}
	if live := 1 + len(rows) - 9000; q.len() != live || len(q.slots)-q.head > 2*live+minReclaim {
		t.Fatalf("%d rows in %d slots: tombstones kept", q.len(), len(q.slots)-q.head)
	}
	if want := append([]*row{rows[0]}, rows[9000:]...); !slices.Equal(queued(q), want) {
		t.Fatal("order lost by compacting")
	}
}

// TestQueueSortsOutOfOrderAppendsWhenRead checks that rows appended out of
// seq order (marks arriving out of order) are read back in order.
func TestQueueSortsOutOfOrderAppendsWhenRead(t *testing.T) {
	var q queue
	for _, seq := range []uint64{5, 3, 9, 1, 7} {
		q.insert(&row{seq: seq})
	}
	var seqs []uint64
	q.from(0, 0, func(r *row) { seqs = append(seqs, r.seq) })
	if !slices.Equal(seqs, []uint64{1, 3, 5, 7, 9}) {
		t.Fatalf("front = %v", seqs)
	}
}

// filledQueue returns a queue of n rows with seqs 1..n, and the rows.
func filledQueue(n int) (*queue, []*row) {
	q := &queue{}
	rows := make([]*row, n)
	for i := range rows {
		rows[i] = &row{seq: uint64(i + 1)}
		q.insert(rows[i])
	}
	return q, rows
}

// queued returns q's rows in the order a find reads them.
func queued(q *queue) []*row {
	var got []*row
	q.from(0, 0, func(r *row) { got = append(got, r) })
	return got
}
