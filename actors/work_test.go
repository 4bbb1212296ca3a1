package actors

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/anthdm/hollywood/actor"
)

// queueOwner is an actor that runs jobs through a workQueue and reports
// every result on a channel.
type queueOwner struct {
	q       *workQueue
	results chan any
}

func (o *queueOwner) Receive(c *actor.Context) {
	switch m := c.Message().(type) {
	case actor.Started:
		o.q.bind(c.Engine(), c.PID())
	case []func() any:
		for _, j := range m {
			o.q.push(j)
		}
	case workDone:
		if m.q == o.q {
			o.q.done()
			o.results <- m.result
		}
	}
}

// TestWorkQueueBoundsAndDeliversEveryJob: workers are reused and started
// on demand, but no more than limit jobs run at once and every job's
// result comes back exactly once, also in a second burst after the first
// workers went idle.
func TestWorkQueueBoundsAndDeliversEveryJob(t *testing.T) {
	e, err := actor.NewEngine(actor.NewEngineConfig())
	if err != nil {
		t.Fatal(err)
	}
	const limit, n = 4, 200
	owner := &queueOwner{q: newWorkQueue(limit), results: make(chan any, n)}
	pid := e.Spawn(func() actor.Receiver { return owner }, "owner")
	defer func() { <-e.Poison(pid).Done() }()

	var running, peak atomic.Int64
	burst := func(base int) {
		jobs := make([]func() any, n)
		for i := range jobs {
			jobs[i] = func() any {
				now := running.Add(1)
				for p := peak.Load(); now > p && !peak.CompareAndSwap(p, now); p = peak.Load() {
				}
				time.Sleep(50 * time.Microsecond)
				running.Add(-1)
				return base + i
			}
		}
		e.Send(pid, jobs)
		seen := make(map[int]bool, n)
		for range n {
			select {
			case r := <-owner.results:
				if seen[r.(int)] {
					t.Fatalf("result %d delivered twice", r)
				}
				seen[r.(int)] = true
			case <-time.After(10 * time.Second):
				t.Fatalf("only %d of %d results", len(seen), n)
			}
		}
	}
	burst(0)
	time.Sleep(10 * time.Millisecond) // workers wait for jobs now
	burst(n)
	if p := peak.Load(); p > limit {
		t.Fatalf("%d jobs ran at once, limit %d", p, limit)
	}
}

func TestDoubling(t *testing.T) {
	for _, c := range []struct {
		base, limit time.Duration
		n           int
		want        time.Duration
	}{
		{200 * time.Millisecond, 0, 1, 200 * time.Millisecond},
		{200 * time.Millisecond, 0, 2, 400 * time.Millisecond},
		{5 * time.Second, time.Minute, 4, 40 * time.Second},
		{5 * time.Second, time.Minute, 5, time.Minute},
		{5 * time.Second, time.Minute, 1000, time.Minute},
		{5 * time.Second, time.Second, 3, time.Second},
	} {
		if got := exponential(c.base, c.limit, c.n); got != c.want {
			t.Errorf("exponential(%v, %v, %d) = %v, want %v", c.base, c.limit, c.n, got, c.want)
		}
		// The jitter takes up to a fifth off, never adds, and spreads.
		lo, hi := c.want, time.Duration(0)
		for range 1000 {
			got := doubling(c.base, c.limit, c.n)
			lo, hi = min(lo, got), max(hi, got)
		}
		if lo < c.want*4/5 || hi > c.want {
			t.Errorf("doubling(%v, %v, %d) in [%v, %v], want within [%v, %v]", c.base, c.limit, c.n, lo, hi, c.want*4/5, c.want)
		}
		if hi-lo < c.want/10 {
			t.Errorf("doubling(%v, %v, %d) spread over only [%v, %v]: no jitter", c.base, c.limit, c.n, lo, hi)
		}
	}
	if got := doubling(0, 0, 3); got != 0 {
		t.Errorf("doubling(0, 0, 3) = %v, want 0", got)
	}
}
