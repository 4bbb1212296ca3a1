package actors

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/anthdm/hollywood/actor"

	"github.com/hobom/hobom-event-processor/messages"
)

// workQueue runs an actor's blocking calls (gRPC marks, Redis writes) on
// goroutines, at most limit at a time, and hands each result back to the
// actor as a workDone message. The actor owns the queue: it is touched only
// from Receive, so it needs no lock, and pushing never blocks the inbox.
//
// A job is handed to a worker goroutine that is idle, if one is waiting,
// else to a new one; a worker exits after workerIdle without a job (so a
// worker that had not come back to wait yet may leave an extra idle one
// for a while; jobs still run at most limit at a time). Reusing
// workers matters for the publisher's marks: a fresh goroutine starts on a
// small stack and grows it by copying through the deep gRPC call path on
// every job (runtime.newstack/copystack were 8% of the relay's CPU).
type workQueue struct {
	limit  int
	active int
	// pending holds the jobs not started yet; each is built when it
	// starts (see pushLazy).
	pending fifo[func() func() any]
	engine  *actor.Engine
	self    *actor.PID
	// handoff passes a job to an idle worker; unbuffered, so a send
	// succeeds only when a worker is waiting for it.
	handoff chan func() any
}

// workerIdle is how long a worker waits for its next job before it exits,
// so that the workers of a crashed actor instance go away by themselves.
const workerIdle = 2 * time.Second

// workDone carries a job's result back into the actor that queued it. q
// tells a result of this instance from one of a crashed predecessor (same
// PID), which the actor ignores.
type workDone struct {
	q      *workQueue
	result any
}

// keptWorkQueue is the most jobs whose queue array stays allocated once
// the queue drains.
const keptWorkQueue = 1024

func newWorkQueue(limit int) *workQueue {
	if limit < 1 {
		limit = 1
	}
	return &workQueue{limit: limit, handoff: make(chan func() any), pending: fifo[func() func() any]{keep: keptWorkQueue}}
}

// bind sets where results go; called from Started.
func (q *workQueue) bind(e *actor.Engine, self *actor.PID) { q.engine, q.self = e, self }

func (q *workQueue) push(job func() any) {
	q.pushLazy(func() func() any { return job })
}

// pushLazy queues a job that build makes when a worker is free for it, on
// the actor's goroutine (push and done are called from Receive): a job
// that waited behind limit others reads the actor's state as it is when
// it starts, not as it was when queued (a mark reads its tenure's latest
// deadline).
func (q *workQueue) pushLazy(build func() func() any) {
	q.pending.push(build)
	q.pump()
}

// done is called by the actor for every workDone it receives.
func (q *workQueue) done() {
	q.active--
	q.pump()
}

func (q *workQueue) pump() {
	for q.active < q.limit {
		build, ok := q.pending.pop()
		if !ok {
			return
		}
		job := build()
		q.active++
		select {
		case q.handoff <- job:
		default:
			go q.worker(job)
		}
	}
}

// worker runs job, reports its result and takes the next job handed to it,
// until none comes for workerIdle. A job is never lost: the handoff only
// succeeds while the worker waits in select, before its timer fires.
func (q *workQueue) worker(job func() any) {
	engine, self := q.engine, q.self
	var idle *time.Timer
	for {
		engine.Send(self, workDone{q: q, result: job()})
		if idle == nil {
			idle = time.NewTimer(workerIdle)
		} else {
			idle.Reset(workerIdle)
		}
		select {
		case job = <-q.handoff:
		case <-idle.C:
			return
		}
	}
}

// idle reports whether nothing is queued or running.
func (q *workQueue) idle() bool { return q.active == 0 && q.pending.len() == 0 }

// RetryPolicy bounds a blocking call: attempts tries, each under its own
// timeout, with an exponential backoff between tries.
type RetryPolicy struct {
	Attempts int
	Backoff  time.Duration // before the second try; doubles after that
	Timeout  time.Duration // for each try
	// Clock paces the backoff between tries (nil: SystemClock), so that
	// actor tests drive retries with a manual clock instead of sleeping.
	Clock Clock
}

// run calls fn until it succeeds or the attempts are spent and returns
// the last error and the number of tries. Each try gets a fresh context from
// context.Background: a call in flight is never cut short by shutdown, which
// waits for it instead (the old service cancelled calls under itself).
func (p RetryPolicy) run(fn func(ctx context.Context) error) (tries int, err error) {
	return p.runFenced(messages.Fence{}, nil, fn)
}

// runFenced is run for a write made under a lease tenure (docs/decisions/0004):
// before every try it checks fence on now and returns errFenced once the
// local deadline has passed, and each try's context ends at that deadline
// at the latest (else after Timeout), so no try can start, or go on
// writing, after the tenure is over. A try that fails once the deadline has
// passed reports errFenced too: no later try may write, and the new holder
// resolves the event. fn may itself return errFenced to stop the retries.
// Without leases (an inactive fence) it is run, and now is not called.
func (p RetryPolicy) runFenced(fence messages.Fence, now func() time.Time, fn func(ctx context.Context) error) (tries int, err error) {
	return runFencedArg(p, fence, now, nil, callWithContext, fn)
}

func callWithContext(ctx context.Context, fn func(ctx context.Context) error) error { return fn(ctx) }

// runFencedArg is p.runFenced calling fn(ctx, arg): a hot path passes its
// argument instead of building a closure per call. With tc, the tries'
// contexts come from tc (see tryContexts) instead of a context.WithTimeout
// each.
func runFencedArg[A any](p RetryPolicy, fence messages.Fence, now func() time.Time, tc *tryContexts, fn func(context.Context, A) error, arg A) (tries int, err error) {
	attempts := max(p.Attempts, 1)
	for tries = 1; ; tries++ {
		timeout := p.Timeout
		if fence.Active() {
			left := fence.Until.Sub(now())
			if left <= 0 {
				return tries, errFenced // checked before every try: a retry may come after the deadline
			}
			timeout = min(timeout, left)
		}
		if tc == nil {
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			err = fn(ctx, arg)
			cancel()
		} else {
			err = fn(tc.begin(timeout), arg)
			tc.end()
		}
		if err != nil && fence.Active() && !fence.HeldAt(now()) {
			err = errFenced
		}
		if err == nil || tries >= attempts || errors.Is(err, errFenced) {
			return tries, err
		}
		sleepOn(p.Clock, Doubling(p.Backoff, 0, tries))
	}
}

// tryContexts makes the per-try contexts of runFencedArg for a goroutine
// that makes one call at a time (a mark worker), for a fraction of the
// cost of a context.WithTimeout per try: that is a timer context, a
// timer, two closures, a done channel and, once gRPC derives the call's
// context from it, a map of children, for every mark.
//
// Each try's context (tryCtx) reports its own deadline and is done when
// base is cancelled, which timer does at that deadline, exactly when a
// context.WithTimeout would end. Between
// tries the timer is stopped; one that could not be stopped had fired or
// was firing, so its base is given up and the next try gets a new base
// and timer. base is cancelled by nothing else, so a try never sees an
// earlier try's end. A context derived from a try's (as gRPC derives its
// call's) is a child of base and ends Canceled, not DeadlineExceeded: the
// outbox client gives such a call the code DeadlineExceeded again, so the
// error reads as a context.WithTimeout's would.
type tryContexts struct {
	base   context.Context
	cancel context.CancelFunc
	timer  *time.Timer
	armed  bool // timer runs for the try begun last
}

// tryCtx is one try's context: base's cancellation (and values), the
// try's deadline.
type tryCtx struct {
	context.Context
	deadline time.Time
}

func (c *tryCtx) Deadline() (time.Time, bool) { return c.deadline, true }

// Err is context.DeadlineExceeded once base is cancelled: only the try's
// deadline cancels it.
func (c *tryCtx) Err() error {
	if c.Context.Err() != nil {
		return context.DeadlineExceeded
	}
	return nil
}

// begin returns the context of a try that may take timeout; end must
// follow before the next begin.
func (t *tryContexts) begin(timeout time.Duration) context.Context {
	deadline := time.Now().Add(timeout)
	left := time.Until(deadline)
	if left <= 0 {
		ctx, cancel := context.WithDeadline(context.Background(), deadline) // done already
		cancel()
		return ctx
	}
	if t.timer == nil {
		t.base, t.cancel = context.WithCancel(context.Background())
		t.timer = time.AfterFunc(left, t.cancel)
	} else {
		t.timer.Reset(left)
	}
	t.armed = true
	return &tryCtx{Context: t.base, deadline: deadline}
}

// end ends the try begun last.
func (t *tryContexts) end() {
	if t.armed && !t.timer.Stop() {
		t.base, t.cancel, t.timer = nil, nil, nil // fired: base is cancelled, or about to be
	}
	t.armed = false
}

// sleepOn blocks the calling worker goroutine (never an actor's Receive)
// for d on c, or on SystemClock when c is nil.
func sleepOn(c Clock, d time.Duration) {
	if c == nil {
		c = SystemClock
	}
	done := make(chan struct{})
	c.AfterFunc(d, func() { close(done) })
	<-done
}

// Doubling is the wait before try n+1 (n counts from 1): base after the
// first try, twice as long after each later one, never above limit (0: no
// limit), less a random share of up to jitterShare. Every backoff of the
// actors is this one (a poller's after a failed find or a batch left
// PENDING, publish, mark, restart and replay backoffs), and so is the Kafka
// client's retry backoff (infra/adapters/kafka). A poller's regular poll
// interval takes the same jitter without the doubling (Poller.waitInterval).
//
// The jitter spreads what failed together: the retries of a burst of
// failed marks would otherwise hit the backend together again, and pollers
// backing off from one outage would come back in step. It only shortens a
// wait, so every documented backoff stays an upper bound.
func Doubling(base, limit time.Duration, n int) time.Duration {
	return jitter(exponential(base, limit, n))
}

// jitterShare is the largest share of a wait that Doubling and
// Poller.waitInterval take off.
const jitterShare = 0.2

// jitter returns d less a uniformly random part of up to jitterShare of it.
func jitter(d time.Duration) time.Duration {
	if span := time.Duration(float64(d) * jitterShare); span > 0 {
		d -= rand.N(span + 1)
	}
	return d
}

// exponential is Doubling without the jitter.
func exponential(base, limit time.Duration, n int) time.Duration {
	d := base
	for i := 1; i < n && (limit <= 0 || d < limit); i++ {
		d *= 2
	}
	if limit > 0 {
		d = min(d, limit)
	}
	return d
}
