package actors

import (
	"context"
	"time"

	"github.com/anthdm/hollywood/actor"
)

// workQueue runs an actor's blocking calls (gRPC marks, Redis writes) on
// goroutines, at most limit at a time, and hands each result back to the
// actor as a workDone message. The actor owns the queue: it is touched only
// from Receive, so it needs no lock, and pushing never blocks the inbox.
type workQueue struct {
	limit   int
	active  int
	pending []func() any
	engine  *actor.Engine
	self    *actor.PID
}

// workDone carries a job's result back into the actor that queued it. q
// tells a result of this instance from one of a crashed predecessor (same
// PID), which the actor ignores.
type workDone struct {
	q      *workQueue
	result any
}

func newWorkQueue(limit int) *workQueue {
	if limit < 1 {
		limit = 1
	}
	return &workQueue{limit: limit}
}

// bind sets where results go; called from Started.
func (q *workQueue) bind(e *actor.Engine, self *actor.PID) { q.engine, q.self = e, self }

func (q *workQueue) push(job func() any) {
	q.pending = append(q.pending, job)
	q.pump()
}

// done is called by the actor for every workDone it receives.
func (q *workQueue) done() {
	q.active--
	q.pump()
}

func (q *workQueue) pump() {
	for q.active < q.limit && len(q.pending) > 0 {
		job := q.pending[0]
		q.pending[0] = nil
		q.pending = q.pending[1:]
		if len(q.pending) == 0 {
			q.pending = q.pending[:0:0] // let a drained backlog's array go
		}
		q.active++
		engine, self, q := q.engine, q.self, q
		go func() { engine.Send(self, workDone{q: q, result: job()}) }()
	}
}

// idle reports whether nothing is queued or running.
func (q *workQueue) idle() bool { return q.active == 0 && len(q.pending) == 0 }

// RetryPolicy bounds a blocking call: attempts tries, each under its own
// timeout, with an exponential backoff between tries.
type RetryPolicy struct {
	Attempts int
	Backoff  time.Duration // before the second try; doubles after that
	Timeout  time.Duration // for each try
}

// run calls fn until it succeeds or the attempts are spent and returns the
// last error and the number of tries. Each try gets a fresh context from
// context.Background: a call in flight is never cut short by shutdown, which
// waits for it instead (the old service cancelled calls under itself).
func (p RetryPolicy) run(fn func(ctx context.Context) error) (tries int, err error) {
	attempts := max(p.Attempts, 1)
	backoff := p.Backoff
	for tries = 1; ; tries++ {
		ctx, cancel := context.WithTimeout(context.Background(), p.Timeout)
		err = fn(ctx)
		cancel()
		if err == nil || tries >= attempts {
			return tries, err
		}
		time.Sleep(backoff)
		backoff *= 2
	}
}
