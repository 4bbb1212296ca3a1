package actors

import (
	"time"

	"github.com/anthdm/hollywood/actor"

	"github.com/hobom/hobom-event-processor/messages"
)

// markQueue runs the publisher's single-event SENT marks, one rpc each, on
// worker goroutines, at most as many at once as the publisher allows.
//
// It is the workQueue's scheme (pending jobs built when they start, idle
// workers reused, exiting after workerIdle) specialised to the most
// frequent call of the processor: a job is a markJob value, not a closure,
// and results come back through a markBox, so that one marksReady message
// carries every mark that finished while the publisher was busy instead
// of one message per mark. The first result of a burst sends the message
// at once: a lone mark is handed back as soon as before.
//
// The queue is the publisher's: everything but the box and the handoff
// channel is touched only from Receive.
type markQueue struct {
	active int
	// pending holds the marks not started yet; each gets its tenure's
	// deadline when it starts (see Publisher.pumpMarks).
	pending []markItem
	// handoff passes a job to an idle worker; unbuffered, so a send
	// succeeds only when a worker is waiting for it.
	handoff chan markJob
	box     *markBox
	// mark makes one mark with the calling worker's tryContexts; set
	// when the publisher starts.
	mark   func(markJob, *tryContexts) markResult
	engine *actor.Engine
	self   *actor.PID
}

// markJob is a mark about to start: the event and its tenure with the
// deadline known when it started.
type markJob struct {
	id    string
	fence messages.Fence
}

// markBox carries mark results from the workers to the publisher (see
// burstBox): one marksReady per burst of results.
type markBox = burstBox[markResult]

// marksReady tells the publisher that results wait in box; box tells the
// results of this instance from those of a crashed predecessor (same PID).
type marksReady struct{ box *markBox }

func newMarkQueue() *markQueue {
	return &markQueue{handoff: make(chan markJob), box: &markBox{}}
}

// start hands job to an idle worker, or to a new one when none waits.
func (q *markQueue) start(job markJob) {
	q.active++
	select {
	case q.handoff <- job:
	default:
		go q.worker(job)
	}
}

// worker makes job's mark, hands its result to the box and takes the next
// job handed to it, until none comes for workerIdle. As in
// workQueue.worker, a job is never lost: the handoff only succeeds while
// the worker waits in select.
func (q *markQueue) worker(job markJob) {
	box, mark, handoff, engine, self := q.box, q.mark, q.handoff, q.engine, q.self
	var idle *time.Timer
	var tc tryContexts // this goroutine's, as it makes one mark at a time
	for {
		if box.push(mark(job, &tc)) {
			engine.Send(self, marksReady{box: box})
		}
		if idle == nil {
			idle = time.NewTimer(workerIdle)
		} else {
			idle.Reset(workerIdle)
		}
		select {
		case job = <-handoff:
		case <-idle.C:
			return
		}
	}
}

// idle reports whether no mark is queued or running.
func (q *markQueue) idle() bool { return q.active == 0 && len(q.pending) == 0 }

// bindMarks readies the single-mark queue; called from Started.
func (p *Publisher) bindMarks() {
	q, outbox, policy, now := p.single, p.outbox, p.cfg.Mark, p.now
	q.engine, q.self = p.engine, p.self
	rpc := outbox.MarkSent // one method value, not one per mark
	q.mark = func(j markJob, tc *tryContexts) markResult {
		start := time.Now()
		tries, err := runFencedArg(policy, j.fence, now, tc, rpc, j.id)
		return markResult{eventID: j.id, err: err, tries: tries, took: time.Since(start)}
	}
}

// markOne marks one event SENT with its own rpc.
func (p *Publisher) markOne(id string, fence messages.Fence) {
	p.single.pending = append(p.single.pending, markItem{id: id, fence: fence})
	p.pumpMarks()
}

// pumpMarks starts the waiting single marks while fewer than
// MarkConcurrency marks (batch calls included) are in flight. A batch call
// (at most batchMarkCalls) is not held back by single marks: while the
// backend's answer to the batch rpc changes, up to batchMarkCalls more
// than MarkConcurrency calls may be in flight.
func (p *Publisher) pumpMarks() {
	q := p.single
	limit := max(p.cfg.MarkConcurrency, 1)
	for len(q.pending) > 0 && q.active+p.marks.active < limit {
		it := q.pending[0]
		q.pending[0] = markItem{}
		q.pending = q.pending[1:]
		if len(q.pending) == 0 {
			q.pending = q.pending[:0:0] // let a drained backlog's array go
		}
		// The tenure's deadline as known when the mark starts, not when
		// it was queued: behind MarkConcurrency others in a backlog, a
		// renewal may have moved it since. A renewal that comes later
		// does not reach the worker (it would be shared state), so a
		// retry past this deadline is fenced, which is safe.
		q.start(markJob{id: it.id, fence: p.current(it.fence)})
	}
}

// onMarksReady takes every mark result in the box.
func (p *Publisher) onMarksReady() {
	q := p.single
	results := q.box.take(p.spareMarks)
	q.active -= len(results)
	for i := range results {
		p.onMarked(results[i])
	}
	clear(results) // hold no error past its mark
	p.spareMarks = results[:0]
	p.pumpMarks()
	p.flushMarks()
}
