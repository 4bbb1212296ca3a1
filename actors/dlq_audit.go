package actors

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hobom/hobom-event-processor/messages"
)

// auditLog writes the DLQ replayer's audit records to Redis in order and keeps
// the ones Redis refused in memory until it takes them again, so that an
// outage loses no record (a bulk job's end included) unless the backlog
// overflows.
//
// Contract:
//   - write is called by the work-queue jobs of the replayer and of its
//     bulk jobs (never inside Receive). With an empty backlog it writes the record at once; with a
//     backlog it appends the record behind it, so records reach Redis in the
//     order write was called.
//   - A record Redis refuses joins the backlog. The backlog holds at most
//     limit records; when full, the oldest is dropped and counted.
//   - flush writes the backlog, oldest first, until it is empty or a write
//     fails. The replayer runs it on its work queue, one at a time, on a
//     timer it re-arms with a backoff while records remain.
//
// The mutex orders the writes of the workers of the replayer and of its bulk
// jobs, the only users: it is the audit trail's port, safe for concurrent
// use, not state of one actor. It outlives a restart of the replayer or of
// the whole DLQ actor (the DLQ actor's producer holds it), so a crash does
// not lose the backlog either.
type auditLog struct {
	admin   DeadLetterAdmin
	timeout time.Duration
	limit   int
	metrics Metrics

	mu      sync.Mutex
	backlog []messages.AuditRecord
	dropped uint64
	// size mirrors len(backlog) so that the actor reads it from Receive
	// without waiting for a write that holds mu.
	size atomic.Int64
}

func newAuditLog(admin DeadLetterAdmin, timeout time.Duration, limit int, m Metrics) *auditLog {
	return &auditLog{admin: admin, timeout: timeout, limit: max(limit, 1), metrics: orNop(m)}
}

// write writes rec, or queues it behind the backlog or after a failed
// write. It returns the write's error (nil when rec was queued behind an
// existing backlog: nothing failed then).
func (l *auditLog) write(rec messages.AuditRecord) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.backlog) > 0 {
		l.queue(rec)
		return nil
	}
	if err := l.put(rec); err != nil {
		l.queue(rec)
		return err
	}
	return nil
}

// queue appends rec to the backlog, dropping the oldest when it is full.
// l.mu is held.
func (l *auditLog) queue(rec messages.AuditRecord) {
	if len(l.backlog) >= l.limit {
		l.backlog[0] = messages.AuditRecord{}
		l.backlog = l.backlog[1:]
		l.dropped++
		l.metrics.AuditDropped()
	}
	l.backlog = append(l.backlog, rec)
	l.size.Store(int64(len(l.backlog)))
	l.metrics.AuditPending(len(l.backlog))
}

func (l *auditLog) put(rec messages.AuditRecord) error {
	ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
	defer cancel()
	return l.admin.Audit(ctx, rec)
}

// flush writes the backlog oldest first and returns how many records remain
// and the error that stopped it. The lock is held throughout, so records
// written meanwhile queue behind the backlog and keep their order.
func (l *auditLog) flush() (written, remaining int, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for len(l.backlog) > 0 {
		if err = l.put(l.backlog[0]); err != nil {
			break
		}
		l.backlog[0] = messages.AuditRecord{}
		l.backlog = l.backlog[1:]
		written++
	}
	if len(l.backlog) == 0 {
		l.backlog = nil // let a drained backlog's array go
	}
	l.size.Store(int64(len(l.backlog)))
	l.metrics.AuditPending(len(l.backlog))
	if err != nil {
		err = fmt.Errorf("audit backlog: %d records still pending: %w", len(l.backlog), err)
	}
	return written, len(l.backlog), err
}

// pending is the backlog's length; it never waits for mu, so Receive may
// call it.
func (l *auditLog) pending() int { return int(l.size.Load()) }

// Audit backlog messages of the replayer.
type (
	// auditFlush is the backoff timer's message: run a flush.
	auditFlush struct{ from *dlqReplayer }
	// auditFlushed is a flush's result.
	auditFlushed struct {
		written, remaining int
		err                error
	}
)

// Audit backlog retry bounds: the first retry after auditRetryBase, doubling
// up to auditRetryMax between tries, for as long as records remain.
const (
	auditRetryBase = 200 * time.Millisecond
	auditRetryMax  = 5 * time.Second
)

// kickAudit arms the flush timer if records wait and no flush is armed or
// running. Called from Receive after every audit write's result, and after
// every result of a bulk job (whose workers write the audit log too).
func (r *dlqReplayer) kickAudit() {
	if r.env.audit == nil || r.auditArmed || r.env.audit.pending() == 0 {
		return
	}
	r.armAuditFlush()
}

func (r *dlqReplayer) armAuditFlush() {
	r.auditArmed = true
	r.auditRound++
	wait := Doubling(auditRetryBase, auditRetryMax, r.auditRound)
	engine, self, msg := r.engine, r.self, auditFlush{from: r}
	r.cfg.Clock.AfterFunc(wait, func() { engine.Send(self, msg) })
}

// onAuditFlush runs a flush on the work queue (never in Receive).
func (r *dlqReplayer) onAuditFlush() {
	l := r.env.audit
	r.work.push(func() any {
		w, n, err := l.flush()
		return auditFlushed{written: w, remaining: n, err: err}
	})
}

func (r *dlqReplayer) onAuditFlushed(m auditFlushed) {
	r.auditArmed = false
	if m.written > 0 {
		r.auditRound = 0
		r.log.Info().Int("written", m.written).Int("pending", m.remaining).Msg("audit backlog written to Redis")
	}
	if m.remaining > 0 {
		r.log.Warn().Err(m.err).Int("pending", m.remaining).Msg("audit records kept in memory until Redis takes them")
		r.armAuditFlush()
	}
}
