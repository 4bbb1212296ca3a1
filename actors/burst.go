package actors

import "sync"

// burstBox carries results from goroutines (the Kafka client's promises,
// mark workers) to the actor that owns them: a goroutine appends its result
// and only the first of a burst is told to send the actor a message, which
// takes them all. One actor message per burst instead of one per result;
// the box is touched only under its lock.
type burstBox[T any] struct {
	mu    sync.Mutex
	items []T
	rung  bool // a message is on its way
}

// push is a goroutine's half: it reports whether the caller must send the
// actor its message.
func (b *burstBox[T]) push(v T) bool {
	b.mu.Lock()
	b.items = append(b.items, v)
	ring := !b.rung
	b.rung = true
	b.mu.Unlock()
	return ring
}

// take is the actor's half: it returns what arrived and hands the box
// spare, an emptied slice of an earlier take, to fill next.
func (b *burstBox[T]) take(spare []T) []T {
	b.mu.Lock()
	items := b.items
	b.items, b.rung = spare, false
	b.mu.Unlock()
	return items
}
