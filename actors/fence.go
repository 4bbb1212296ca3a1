package actors

import (
	"time"

	"github.com/hobom/hobom-event-processor/messages"
)

// The publisher's side of self-fencing (docs/decisions/0004). The lease
// actor sends the publisher every grant, renewal and revocation; a batch
// carries the tenure it was fetched under. The checks below read only the
// publisher's own state and its clock: no I/O, no state shared with other
// actors. The publisher's table of fences is copied, on every change, to
// its single-mark queue, whose workers read it when they start a mark
// (markQueue.nextLocked).

// onLeaseGranted records a tenure and its latest deadline.
func (p *Publisher) onLeaseGranted(f messages.Fence) {
	if p.fences == nil {
		p.fences = make(map[string]messages.Fence)
	}
	if cur, ok := p.fences[f.Name]; ok && cur.Same(f) && !f.Until.After(cur.Until) && !cur.Until.IsZero() {
		return // an older renewal overtaken by a newer one
	}
	p.fences[f.Name] = f
	p.single.setFence(f)
}

// onLeaseRevoked ends a tenure: nothing fetched under it is produced or
// marked from now on.
func (p *Publisher) onLeaseRevoked(f messages.Fence) {
	if p.fences == nil {
		p.fences = make(map[string]messages.Fence)
	}
	if cur, ok := p.fences[f.Name]; ok && !cur.Same(f) {
		return // a later tenure is granted already
	}
	f.Until = time.Time{} // never held
	p.fences[f.Name] = f
	p.single.setFence(f)
}

// current returns fence with the deadline the lease actor last gave its
// tenure (see currentFence).
func (p *Publisher) current(fence messages.Fence) messages.Fence {
	return currentFence(p.fences, fence)
}

// currentFence returns fence with the deadline fences (a publisher's
// table, or its mark queue's copy) gives its tenure. A batch's fence is
// used as it is while the lease actor has said nothing about its lease (a
// restarted publisher); a tenure other than the one the lease actor last
// named is over.
func currentFence(fences map[string]messages.Fence, fence messages.Fence) messages.Fence {
	if !fence.Active() {
		return fence
	}
	cur, ok := fences[fence.Name]
	switch {
	case !ok:
		return fence
	case cur.Same(fence):
		return cur
	default:
		fence.Until = time.Time{} // never held
		return fence
	}
}

// fenceHeld is the self-fencing check made before every produce attempt:
// true without leases, else only while the tenure is current and its local
// deadline has not passed.
func (p *Publisher) fenceHeld(fence messages.Fence) bool {
	return p.current(fence).HeldAt(p.now())
}

// fenceOf is the tenure event id was fetched under, with its current
// deadline, for the DLQ actor's FAILED mark.
func (p *Publisher) fenceOf(id string) messages.Fence {
	if b := p.events[id]; b != nil {
		return p.current(b.fence)
	}
	return messages.Fence{}
}
