package actors

import "testing"

func TestFifoKeepsOrderAcrossCompactions(t *testing.T) {
	q := fifo[int]{keep: 64}
	next, want := 0, 0
	// Pushes outpace pops two to one, then the queue drains: the front
	// is freed and compacted many times on the way.
	for round := 0; round < 50; round++ {
		for range 2 {
			q.push(next)
			next++
		}
		v, ok := q.pop()
		if !ok || v != want {
			t.Fatalf("pop = %d, %v; want %d", v, ok, want)
		}
		want++
	}
	for q.len() > 0 {
		if v, _ := q.pop(); v != want {
			t.Fatalf("pop = %d; want %d", v, want)
		}
		want++
	}
	if want != next {
		t.Fatalf("popped %d items, pushed %d", want, next)
	}
	if _, ok := q.pop(); ok {
		t.Fatal("pop from an empty queue returned an item")
	}
}

// TestFifoRefillsWithoutAllocating: once a batch has drained, the next
// batch of the same size reuses the array; a batch larger than keep gives
// it back when it drains.
func TestFifoRefillsWithoutAllocating(t *testing.T) {
	const batch = 5000
	q := fifo[markItem]{keep: 1 << 14}
	fill := func(n int) {
		for i := range n {
			q.push(markItem{id: "e"})
			if i%3 == 2 { // marks start while the batch still arrives
				q.pop()
			}
		}
		for q.len() > 0 {
			q.pop()
		}
	}
	fill(batch)
	if allocs := testing.AllocsPerRun(10, func() { fill(batch) }); allocs != 0 {
		t.Errorf("a refill of %d items allocated %.0f times; want 0", batch, allocs)
	}
	fill(3 << 14)
	if q.items != nil {
		t.Errorf("after a backlog of %d items the queue keeps an array of %d; want it given back", 3<<14, cap(q.items))
	}
}
