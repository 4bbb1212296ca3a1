package actors

import (
	"sync"
	"time"

	"github.com/anthdm/hollywood/actor"

	"github.com/hobom/hobom-event-processor/messages"
)

// markQueue runs the publisher's single-event SENT marks, one rpc each, on
// worker goroutines, at most as many at once as the publisher allows.
//
// It is the workQueue's scheme (idle workers reused, exiting after
// workerIdle) specialised to the most frequent call of the processor: a
// job is a markJob value, not a closure, results come back through a
// markBox, and a worker that has handed its result to the box takes its
// next mark from the queue itself instead of waiting for the publisher to
// hand it one. So a worker never waits for the actor between marks, and
// one marksReady message carries every mark that finished while the
// publisher was busy instead of one message per mark. The first result of
// a burst sends the message at once: a lone mark is handed back as soon as
// before.
//
// The queue belongs to one publisher instance and its own workers, never
// to another actor: a restarted publisher makes a new one (its box tells
// the results apart), and the old one is closed when its instance stops or
// crashes, so its workers start nothing more.
type markQueue struct {
	// queued counts the marks queued whose results the publisher has not
	// taken yet; touched only from Receive. close leaves the marks it
	// drops in it, so idle stays false after a close: only a stopped or
	// crashed instance closes its queue, and neither drains again.
	queued int
	// handoff passes a job to an idle worker; unbuffered, so a send
	// succeeds only when a worker is waiting for it.
	handoff chan markJob
	box     *markBox
	// mark makes one mark with the calling worker's tryContexts; set
	// when the publisher starts, before any worker.
	mark   func(markJob, *tryContexts) markResult
	engine *actor.Engine
	self   *actor.PID

	// mu guards the rest, which the publisher and its workers share.
	// Nothing done under it may panic: Publisher.Receive closes the queue
	// (taking mu) while a panic unwinds.
	mu sync.Mutex
	// pending holds the marks not started yet; each gets its tenure's
	// deadline when it starts (see next).
	pending fifo[markItem]
	// running counts the marks started whose results are not in the box
	// yet; limit is how many may run at once (see Publisher.pumpMarks).
	running, limit int
	// fences is the publisher's fences table (Publisher.fences), kept
	// here by the publisher so that a worker reads the tenure's latest
	// deadline when it starts a mark.
	fences map[string]messages.Fence
	closed bool
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

// keptMarkQueue is the most marks whose queue array stays allocated once
// the queue drains (1 MB): two find limits of the default 5,000 fit.
const keptMarkQueue = 1 << 14

func newMarkQueue() *markQueue {
	return &markQueue{handoff: make(chan markJob), box: &markBox{}, limit: 1, pending: fifo[markItem]{keep: keptMarkQueue}}
}

// add queues a mark and starts the pending ones while fewer than limit
// run; called from Receive.
func (q *markQueue) add(it markItem, limit int) {
	q.queued++
	q.mu.Lock()
	q.pending.push(it)
	q.startLocked(limit)
	q.mu.Unlock()
}

// pump sets the limit and starts the pending marks it allows; called from
// Receive.
func (q *markQueue) pump(limit int) {
	q.mu.Lock()
	q.startLocked(limit)
	q.mu.Unlock()
}

// startLocked hands each mark that limit allows to an idle worker, or to
// a new one when none waits. The send never blocks (a worker waiting in
// select holds no lock), so it is made under q.mu.
func (q *markQueue) startLocked(limit int) {
	q.limit = limit
	for {
		job, ok := q.nextLocked()
		if !ok {
			return
		}
		select {
		case q.handoff <- job:
		default:
			go q.worker(job)
		}
	}
}

// nextLocked takes the oldest pending mark, if fewer than limit run and
// the queue is open, and counts it running. Its fence carries the
// deadline the publisher knows for its tenure now, when it starts, not
// when it was queued: behind MarkConcurrency others in a backlog, a
// renewal may have moved it since, and a revocation ends it (the tenure
// is then never held, as with Publisher.current). A renewal that comes
// later does not reach the mark, so a retry past this deadline is fenced,
// which is safe.
func (q *markQueue) nextLocked() (markJob, bool) {
	if q.closed || q.running >= q.limit {
		return markJob{}, false
	}
	it, ok := q.pending.pop()
	if !ok {
		return markJob{}, false
	}
	q.running++
	return markJob{id: it.id, fence: currentFence(q.fences, it.fence)}, true
}

// setFence records the publisher's latest word on a lease (a grant,
// renewal or revocation as Publisher.fences holds it); called from
// Receive.
func (q *markQueue) setFence(f messages.Fence) {
	q.mu.Lock()
	if q.fences == nil {
		q.fences = make(map[string]messages.Fence)
	}
	q.fences[f.Name] = f
	q.mu.Unlock()
}

// close drops the marks not started: the publisher instance is gone, and
// its workers must not start marks under fences nobody updates any more.
// Marks under way finish; their results go to the box nobody takes.
func (q *markQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.pending.drop()
	q.mu.Unlock()
}

// worker makes job's mark, hands its result to the box and takes the next
// pending mark itself; with none it may start, it waits for one handed
// to it until none comes for workerIdle. As in workQueue.worker, a job is
// never lost: the handoff only succeeds while the worker waits in select,
// and a pending mark is taken under q.mu by one worker or the publisher.
func (q *markQueue) worker(job markJob) {
	box, mark, handoff, engine, self := q.box, q.mark, q.handoff, q.engine, q.self
	var idle *time.Timer
	var tc tryContexts // this goroutine's, as it makes one mark at a time
	for {
		if box.push(mark(job, &tc)) {
			engine.Send(self, marksReady{box: box})
		}
		q.mu.Lock()
		q.running--
		next, ok := q.nextLocked()
		q.mu.Unlock()
		if ok {
			job = next
			continue
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

// idle reports whether no mark is queued or running and every result was
// taken.
func (q *markQueue) idle() bool { return q.queued == 0 }

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
	p.single.add(markItem{id: id, fence: fence}, p.singleMarkLimit())
}

// singleMarkLimit is how many single marks may run at once: fewer than
// MarkConcurrency by the batch calls in flight. A batch call (at most
// batchMarkCalls) is not held back by single marks: while the backend's
// answer to the batch rpc changes, up to batchMarkCalls more than
// MarkConcurrency calls may be in flight.
func (p *Publisher) singleMarkLimit() int {
	return max(p.cfg.MarkConcurrency, 1) - p.marks.active
}

// pumpMarks starts the waiting single marks that singleMarkLimit allows
// now; called whenever the batch calls in flight change.
func (p *Publisher) pumpMarks() { p.single.pump(p.singleMarkLimit()) }

// onMarksReady takes every mark result in the box. It starts no mark: the
// workers take the pending ones themselves.
func (p *Publisher) onMarksReady() {
	q := p.single
	results := q.box.take(p.spareMarks)
	q.queued -= len(results)
	for i := range results {
		p.onMarked(results[i])
	}
	clear(results) // hold no error past its mark
	p.spareMarks = results[:0]
	p.flushMarks()
}
