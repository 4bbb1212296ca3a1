package actors

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anthdm/hollywood/actor"

	"github.com/hobom/hobom-event-processor/infra/testkit/testenv"
	"github.com/hobom/hobom-event-processor/messages"
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
			got := Doubling(c.base, c.limit, c.n)
			lo, hi = min(lo, got), max(hi, got)
		}
		if lo < c.want*4/5 || hi > c.want {
			t.Errorf("Doubling(%v, %v, %d) in [%v, %v], want within [%v, %v]", c.base, c.limit, c.n, lo, hi, c.want*4/5, c.want)
		}
		if hi-lo < c.want/10 {
			t.Errorf("Doubling(%v, %v, %d) spread over only [%v, %v]: no jitter", c.base, c.limit, c.n, lo, hi)
		}
	}
	if got := Doubling(0, 0, 3); got != 0 {
		t.Errorf("Doubling(0, 0, 3) = %v, want 0", got)
	}
}

// markOwner is an actor that queues marks on a markQueue, at most limit
// running at once (0: no bound), and reports how many results each
// marksReady carried.
type markOwner struct {
	q       *markQueue
	limit   int
	started chan struct{} // closed once the first marksReady arrived
	hold    chan struct{} // the first marksReady is taken once closed
	sizes   chan int
	results chan markResult
}

func (o *markOwner) Receive(c *actor.Context) {
	switch m := c.Message().(type) {
	case actor.Started:
		o.q.engine, o.q.self = c.Engine(), c.PID()
	case []markItem:
		limit := o.limit
		if limit == 0 {
			limit = len(m)
		}
		for _, it := range m {
			o.q.add(it, limit)
		}
	case marksReady:
		if m.box != o.q.box {
			return
		}
		select {
		case <-o.started:
		default:
			close(o.started)
			<-o.hold // a busy publisher: more results arrive meanwhile
		}
		rs := o.q.box.take(nil)
		o.q.queued -= len(rs)
		o.sizes <- len(rs)
		for _, r := range rs {
			o.results <- r
		}
	}
}

// TestMarkQueueHandsBackABurstInOneMessage: marks that finish while the
// publisher is busy come back together in one marksReady, each exactly
// once; a lone mark comes back at once, with no waiting for company.
func TestMarkQueueHandsBackABurstInOneMessage(t *testing.T) {
	e, err := actor.NewEngine(actor.NewEngineConfig())
	if err != nil {
		t.Fatal(err)
	}
	const n = 50
	gate := make(chan struct{})
	q := newMarkQueue()
	q.mark = func(j markJob, _ *tryContexts) markResult {
		if j.id != "lone" {
			<-gate
		}
		return markResult{eventID: j.id}
	}
	owner := &markOwner{q: q, started: make(chan struct{}), hold: make(chan struct{}), sizes: make(chan int, n+1), results: make(chan markResult, n+1)}
	pid := e.Spawn(func() actor.Receiver { return owner }, "owner")
	defer func() { <-e.Poison(pid).Done() }()

	items := make([]markItem, n)
	for i := range items {
		items[i] = markItem{id: strconv.Itoa(i)}
	}
	e.Send(pid, items)
	close(gate)
	select {
	case <-owner.started:
	case <-time.After(10 * time.Second):
		t.Fatal("no marksReady")
	}
	for boxed := 0; boxed < n; {
		q.box.mu.Lock()
		boxed = len(q.box.items)
		q.box.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
	close(owner.hold)
	messages := collectMarkResults(t, owner.sizes, owner.results, n)
	if messages != 1 {
		t.Errorf("%d results came in %d messages, want the burst in one", n, messages)
	}

	e.Send(pid, []markItem{{id: "lone"}})
	select {
	case r := <-owner.results:
		if r.eventID != "lone" {
			t.Fatalf("result %q, want lone", r.eventID)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a lone mark's result did not come back")
	}
}

// TestTryContextsEndEachTryAtItsDeadline: a try's context, and one gRPC
// derives from it, reports the try's deadline and is done at it, not
// before (a try under way is cut off on time); a try that ended before
// its deadline leaves the next try's context live, and so does one cut
// off; a try with no time left is done at once.
func TestTryContextsEndEachTryAtItsDeadline(t *testing.T) {
	var tc tryContexts
	const timeout = 30 * time.Millisecond
	for i := range 3 {
		start := time.Now()
		ctx := tc.begin(timeout)
		if d, ok := ctx.Deadline(); !ok || d.Before(start.Add(timeout)) || d.After(time.Now().Add(timeout)) {
			t.Fatalf("try %d: deadline %v (%v), want %v after the start", i, d, ok, timeout)
		}
		if ctx.Err() != nil {
			t.Fatalf("try %d: done at its start: %v", i, ctx.Err())
		}
		if i == 1 { // a try that ends early
			tc.end()
			continue
		}
		call, cancel := context.WithCancel(ctx) // as gRPC does
		select {
		case <-call.Done():
		case <-time.After(10 * time.Second):
			t.Fatalf("try %d: not cut off at its deadline", i)
		}
		cancel()
		if took := time.Since(start); took < timeout {
			t.Errorf("try %d: cut off after %v, before its deadline", i, took)
		}
		if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			t.Errorf("try %d: Err %v, want the deadline", i, ctx.Err())
		}
		tc.end()
	}
	ctx := tc.begin(0)
	if ctx.Err() == nil {
		t.Errorf("a try without time left: not done")
	}
	tc.end()
	if ctx := tc.begin(timeout); ctx.Err() != nil {
		t.Errorf("the try after one without time left: done at its start")
	}
	tc.end()
}

// boxed reports how many results wait in q's box.
func boxed(q *markQueue) int {
	q.box.mu.Lock()
	defer q.box.mu.Unlock()
	return len(q.box.items)
}

// TestMarkWorkersTakeTheirNextMarkThemselves: while the publisher is busy
// (blocked in its first marksReady), its workers go on through the queued
// marks, never more than limit at once, so every mark is made meanwhile;
// each result then reaches the publisher once, in a few messages, not
// one per mark.
func TestMarkWorkersTakeTheirNextMarkThemselves(t *testing.T) {
	e, err := actor.NewEngine(actor.NewEngineConfig())
	if err != nil {
		t.Fatal(err)
	}
	const n, limit = 40, 3
	var running, most atomic.Int32
	q := newMarkQueue()
	q.mark = func(j markJob, _ *tryContexts) markResult {
		r := running.Add(1)
		for m := most.Load(); r > m && !most.CompareAndSwap(m, r); m = most.Load() {
		}
		time.Sleep(time.Millisecond)
		running.Add(-1)
		return markResult{eventID: j.id}
	}
	owner := &markOwner{q: q, limit: limit, started: make(chan struct{}), hold: make(chan struct{}), sizes: make(chan int, n+1), results: make(chan markResult, n+1)}
	pid := e.Spawn(func() actor.Receiver { return owner }, "owner")
	var release sync.Once
	defer func() {
		release.Do(func() { close(owner.hold) })
		<-e.Poison(pid).Done()
	}()

	items := make([]markItem, n)
	for i := range items {
		items[i] = markItem{id: strconv.Itoa(i)}
	}
	e.Send(pid, items)
	select {
	case <-owner.started:
	case <-time.After(10 * time.Second):
		t.Fatal("no marksReady")
	}
	// The publisher is blocked now; the marks go on without it.
	for deadline := time.Now().Add(10 * time.Second); boxed(q) < n-1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d marks made while the publisher was busy: the workers waited for it", boxed(q), n-1)
		}
	}
	release.Do(func() { close(owner.hold) })
	messages := collectMarkResults(t, owner.sizes, owner.results, n)
	if m := most.Load(); m > limit {
		t.Errorf("%d marks ran at once, want at most %d", m, limit)
	}
	if messages > 1+limit {
		t.Errorf("%d results came in %d messages, want at most %d", n, messages, 1+limit)
	}
}

// TestAMarkTakenByAWorkerReadsTheLatestFence: a worker that takes a queued
// mark gives it its tenure's deadline as the publisher knows it then: a
// renewal moves it, a revoked or replaced tenure is never held, a lease
// the publisher knows nothing of keeps the mark's own.
func TestAMarkTakenByAWorkerReadsTheLatestFence(t *testing.T) {
	e, err := actor.NewEngine(actor.NewEngineConfig())
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().Add(time.Hour)
	gate := make(chan struct{})
	var mu sync.Mutex
	got := map[string]messages.Fence{}
	q := newMarkQueue()
	q.mark = func(j markJob, _ *tryContexts) markResult {
		if j.id == "first" {
			<-gate
		}
		mu.Lock()
		got[j.id] = j.fence
		mu.Unlock()
		return markResult{eventID: j.id}
	}
	owner := &markOwner{q: q, limit: 1, started: make(chan struct{}), hold: make(chan struct{}), sizes: make(chan int, 8), results: make(chan markResult, 8)}
	close(owner.hold)
	pid := e.Spawn(func() actor.Receiver { return owner }, "owner")
	defer func() { <-e.Poison(pid).Done() }()

	fence := func(name string, token int64, until time.Time) messages.Fence {
		return messages.Fence{Name: name, Token: token, Until: until}
	}
	for _, f := range []messages.Fence{fence("renewed", 1, t0), fence("revoked", 1, t0), fence("replaced", 1, t0)} {
		q.setFence(f)
	}
	e.Send(pid, []markItem{
		{id: "first"},
		{id: "renewed", fence: fence("renewed", 1, t0)},
		{id: "revoked", fence: fence("revoked", 1, t0)},
		{id: "replaced", fence: fence("replaced", 1, t0)},
		{id: "unknown", fence: fence("unknown", 1, t0)},
	})
	waitQueuedMarks(t, q, 4, "the marks queued")
	q.setFence(fence("renewed", 1, t0.Add(time.Minute)))
	q.setFence(fence("revoked", 1, time.Time{}))
	q.setFence(fence("replaced", 2, t0.Add(time.Minute)))
	close(gate)
	for range 5 {
		select {
		case <-owner.results:
		case <-time.After(10 * time.Second):
			t.Fatal("a mark's result did not come back")
		}
	}
	want := map[string]messages.Fence{
		"first":    {},
		"renewed":  fence("renewed", 1, t0.Add(time.Minute)),
		"revoked":  fence("revoked", 1, time.Time{}),
		"replaced": fence("replaced", 1, time.Time{}),
		"unknown":  fence("unknown", 1, t0),
	}
	mu.Lock()
	defer mu.Unlock()
	for id, w := range want {
		if g := got[id]; g != w {
			t.Errorf("mark %s started with %+v, want %+v", id, g, w)
		}
	}
}

// TestAClosedMarkQueueStartsNothing: once its publisher instance is gone,
// the queue's workers finish the marks under way and start no queued one.
func TestAClosedMarkQueueStartsNothing(t *testing.T) {
	e, err := actor.NewEngine(actor.NewEngineConfig())
	if err != nil {
		t.Fatal(err)
	}
	gate, entered := make(chan struct{}), make(chan struct{})
	var made atomic.Int32
	q := newMarkQueue()
	q.mark = func(j markJob, _ *tryContexts) markResult {
		if j.id == "first" {
			close(entered)
			<-gate
		}
		made.Add(1)
		return markResult{eventID: j.id}
	}
	owner := &markOwner{q: q, limit: 1, started: make(chan struct{}), hold: make(chan struct{}), sizes: make(chan int, 8), results: make(chan markResult, 8)}
	close(owner.hold)
	pid := e.Spawn(func() actor.Receiver { return owner }, "owner")
	defer func() { <-e.Poison(pid).Done() }()

	e.Send(pid, []markItem{{id: "first"}, {id: "second"}})
	<-entered
	waitQueuedMarks(t, q, 1, "the second mark queued")
	q.close()
	close(gate)
	waitNoMarkRunning(t, q, "the first mark to end")
	if n := made.Load(); n != 1 {
		t.Fatalf("%d marks made, want only the one under way when the queue closed", n)
	}
}

// collectMarkResults reads the n results a mark queue's owner receives,
// each once, and returns in how many marksReady messages they came.
func collectMarkResults(t *testing.T, sizes <-chan int, results <-chan markResult, n int) (messages int) {
	t.Helper()
	seen := map[string]bool{}
	for len(seen) < n {
		select {
		case <-sizes:
			messages++
		case r := <-results:
			if seen[r.eventID] {
				t.Fatalf("result %s delivered twice", r.eventID)
			}
			seen[r.eventID] = true
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of %d results", len(seen), n)
		}
	}
	for len(sizes) > 0 {
		<-sizes
		messages++
	}
	return messages
}

// waitNoMarkRunning waits until no mark of q runs, or fails with failure.
func waitNoMarkRunning(t *testing.T, q *markQueue, what string) {
	t.Helper()
	testenv.EventuallyEvery(t, 10*time.Second, time.Millisecond, what, func() bool {
		q.mu.Lock()
		defer q.mu.Unlock()
		return q.running == 0
	})
}

// waitQueuedMarks waits until n marks are queued and not started.
func waitQueuedMarks(t *testing.T, q *markQueue, n int, what string) {
	t.Helper()
	testenv.EventuallyEvery(t, 10*time.Second, time.Millisecond, what, func() bool {
		q.mu.Lock()
		defer q.mu.Unlock()
		return q.pending.len() == n
	})
}
