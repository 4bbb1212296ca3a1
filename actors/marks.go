package actors

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/hobom/hobom-event-processor/messages"
)

// Batch marks. When the outbox implements BatchMarker and the backend
// answers the batch rpc, the publisher does not make one mark rpc per
// event: the ids acked by Kafka wait in toMark while batchMarkCalls calls
// are in flight, and each free call takes up to markBatchMax of them (of
// one lease tenure). Marks therefore coalesce exactly as much as the
// backend is slower than Kafka. A backend without the rpc answers
// UNIMPLEMENTED: the ids of that call, and later ones, go through the
// single-event path until the outbox client asks again.

const (
	// markBatchMax is the most ids of one batch call (the rpc's
	// documentation promises the backend no more than 1,000).
	markBatchMax = 1000
	// batchMarkCalls is how many batch calls are in flight at once: two
	// keep the backend busy while the next batch fills.
	batchMarkCalls = 2
)

// markItem is one acked event waiting for its SENT mark.
type markItem struct {
	id    string
	fence messages.Fence
}

// batchMarkResult is a batch call's outcome, handed back to the actor.
type batchMarkResult struct {
	items       []markItem
	unknown     []string
	err         error
	unsupported bool
	fenced      bool
	tries       int
	took        time.Duration
}

// batchMarks reports whether SENT marks go through the batch rpc now.
func (p *Publisher) batchMarks() bool {
	return p.batcher != nil && p.batcher.BatchMarks()
}

// queueMark adds an acked event to the next batch call and starts calls
// while fewer than batchMarkCalls are in flight.
func (p *Publisher) queueMark(id string, fence messages.Fence) {
	p.toMark = append(p.toMark, markItem{id: id, fence: fence})
	p.flushMarks()
}

// flushMarks starts batch calls for the waiting ids while calls are free.
func (p *Publisher) flushMarks() {
	if len(p.toMark) > 0 && !p.batchMarks() {
		// The backend answered UNIMPLEMENTED meanwhile.
		for _, it := range p.toMark {
			p.markOne(it.id, it.fence)
		}
		p.toMark = nil
		return
	}
	for len(p.toMark) > 0 && p.batchCalls < batchMarkCalls {
		n := 1
		for n < len(p.toMark) && n < markBatchMax && p.toMark[n].fence.Same(p.toMark[0].fence) {
			n++
		}
		items := slices.Clone(p.toMark[:n])
		p.toMark = append(p.toMark[:0], p.toMark[n:]...)
		if len(p.toMark) == 0 && cap(p.toMark) > 4*markBatchMax {
			p.toMark = nil // let a drained backlog's array go
		}
		p.batchCalls++
		p.pushBatchMark(items)
		p.pumpMarks() // fewer single marks may run while it is in flight
	}
}

func (p *Publisher) pushBatchMark(items []markItem) {
	batcher, policy, now := p.batcher, p.cfg.Mark, p.now
	p.marks.pushLazy(func() func() any {
		fence := p.current(items[0].fence) // the deadline known when the call starts (see markQueue.nextLocked)
		return func() any {
			start := time.Now()
			res := batchMarkResult{items: items}
			ids := make([]string, len(items))
			for i, it := range items {
				ids[i] = it.id
			}
			// One context per try of the whole batch, ending at the
			// tenure's deadline at the latest.
			res.tries, res.err = policy.runFenced(fence, now, func(ctx context.Context) error {
				var err error
				res.unknown, err = batcher.MarkMany(ctx, ids, nil)
				if errors.Is(err, messages.ErrBatchUnsupported) {
					res.unsupported = true
					return nil // not worth retrying: the backend lacks the rpc
				}
				return err
			})
			if errors.Is(res.err, errFenced) {
				res.fenced, res.err = true, nil
			}
			res.took = time.Since(start)
			return res
		}
	})
}

// onBatchMarked resolves the events of a batch call, or sends them
// through the single-event path when the backend lacks the rpc.
func (p *Publisher) onBatchMarked(m batchMarkResult) {
	p.batchCalls--
	if m.unsupported {
		for _, it := range m.items {
			p.markOne(it.id, it.fence)
		}
		return
	}
	var unknown map[string]struct{}
	if len(m.unknown) > 0 {
		unknown = make(map[string]struct{}, len(m.unknown))
		for _, id := range m.unknown {
			unknown[id] = struct{}{}
		}
	}
	for _, it := range m.items {
		r := markResult{eventID: it.id, err: m.err, tries: m.tries, took: m.took}
		switch {
		case m.fenced:
			r.err = errFenced
		case r.err == nil && unknown != nil:
			if _, ok := unknown[it.id]; ok {
				r.err = errUnknownEvent
			}
		}
		p.onMarked(r)
	}
}

// errUnknownEvent is a batch call's answer for an id the backend does not
// know (the single-event rpc answers NOT_FOUND).
var errUnknownEvent = errors.New("the backend does not know the event")
