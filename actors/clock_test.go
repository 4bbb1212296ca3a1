package actors_test

import (
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/hobom/hobom-event-processor/actors"
)

// manualClock is an actors.Clock that moves only when a test advances it.
// Due AfterFunc calls run in time order, synchronously, inside Advance.
type manualClock struct {
	mu     sync.Mutex
	now    time.Time
	seq    int
	timers []*manualTimer
}

type manualTimer struct {
	c    *manualClock
	at   time.Time
	seq  int
	f    func()
	done bool
}

func newManualClock() *manualClock {
	return &manualClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) AfterFunc(d time.Duration, f func()) actors.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	t := &manualTimer{c: c, at: c.now.Add(max(d, 0)), seq: c.seq, f: f}
	c.timers = append(c.timers, t)
	return t
}

func (t *manualTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.done
	t.done = true
	return was
}

// Pending is how many AfterFunc calls have neither run nor been stopped.
func (c *manualClock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.timers {
		if !t.done {
			n++
		}
	}
	return n
}

// NextDue is the delay from now of the earliest call that has neither run
// nor been stopped; ok is false when there is none.
func (c *manualClock) NextDue() (d time.Duration, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.timers {
		if !t.done && (!ok || t.at.Sub(c.now) < d) {
			d, ok = t.at.Sub(c.now), true
		}
	}
	return d, ok
}

// Advance moves the clock by d, running every call that falls due, in
// order of due time (then of scheduling); calls scheduled while advancing
// run too if they fall due within d.
func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	c.mu.Unlock()
	for {
		c.mu.Lock()
		var due []*manualTimer
		for _, t := range c.timers {
			if !t.done && !t.at.After(end) {
				due = append(due, t)
			}
		}
		if len(due) == 0 {
			c.now = end
			c.timers = c.live()
			c.mu.Unlock()
			return
		}
		sort.Slice(due, func(i, j int) bool {
			if !due[i].at.Equal(due[j].at) {
				return due[i].at.Before(due[j].at)
			}
			return due[i].seq < due[j].seq
		})
		t := due[0]
		t.done = true
		if t.at.After(c.now) {
			c.now = t.at
		}
		c.mu.Unlock()
		t.f()
	}
}

func (c *manualClock) live() []*manualTimer {
	out := c.timers[:0]
	for _, t := range c.timers {
		if !t.done {
			out = append(out, t)
		}
	}
	return out
}

func TestManualClockRunsDueCallsInOrder(t *testing.T) {
	c := newManualClock()
	start := c.Now()
	var got []string
	c.AfterFunc(3*time.Second, func() { got = append(got, "3s") })
	stopped := c.AfterFunc(2*time.Second, func() { got = append(got, "stopped") })
	c.AfterFunc(time.Second, func() {
		got = append(got, "1s")
		c.AfterFunc(time.Second, func() { got = append(got, "1s+1s") })
	})
	if !stopped.Stop() || stopped.Stop() {
		t.Fatal("Stop must report true once, then false")
	}
	c.Advance(2500 * time.Millisecond)
	if want := []string{"1s", "1s+1s"}; len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("after 2.5s ran %v, want %v", got, want)
	}
	if c.Pending() != 1 || c.Now().Sub(start) != 2500*time.Millisecond {
		t.Fatalf("pending %d, now +%v; want 1 and +2.5s", c.Pending(), c.Now().Sub(start))
	}
	c.Advance(time.Second)
	if len(got) != 3 || got[2] != "3s" {
		t.Fatalf("after 3.5s ran %v", got)
	}
}
