package messages

import (
	"time"

	"github.com/anthdm/hollywood/actor"
)

// Fence names a lease tenure: the lease (event type), its token and the
// tenure's local deadline (docs/decisions/0004). The zero Fence means
// leases are off.
//
// Until is the start of the tenure's last successful acquisition or
// renewal plus TTL − TTL/5, read from a clock with a monotonic reading:
// Redis cannot expire the lease before it, so until then no other
// instance holds it. A Fence is a value: whoever holds one checks it with
// HeldAt, without I/O and without asking anyone, and learns later
// deadlines from LeaseGranted messages.
type Fence struct {
	Name  string
	Token int64
	Until time.Time
}

// Active reports whether the fence must be checked.
func (f Fence) Active() bool { return f.Token != 0 }

// Same reports whether f and g name the same tenure, whatever deadline
// each carries.
func (f Fence) Same(g Fence) bool { return f.Name == g.Name && f.Token == g.Token }

// HeldAt reports whether the tenure may still write at now: always without
// leases, else only before its deadline. A zero Until (a revoked tenure)
// is never held.
func (f Fence) HeldAt(now time.Time) bool {
	return !f.Active() || now.Before(f.Until)
}

// LeaseGranted tells a poller (and the publisher) that this instance holds
// the lease Fence.Name under Fence.Token until Fence.Until: sent when the
// lease actor acquires a lease and again after every successful renewal,
// which moves the deadline.
type LeaseGranted struct{ Fence Fence }

// LeaseRevoked tells a poller (and the publisher) that the tenure is over
// at once: lost in Redis, given up for the fair share, or no longer
// renewed in time. Nothing fetched under it may be produced or marked.
type LeaseRevoked struct{ Fence Fence }

// LeaseWanted asks the lease actor for the current grant of the lease
// Name; a (re)started poller sends it, and gets a LeaseGranted at ReplyTo
// if this instance holds the lease.
type LeaseWanted struct {
	Name    string
	ReplyTo *actor.PID
}
