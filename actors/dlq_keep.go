package actors

import (
	"context"
	"time"

	"github.com/anthdm/hollywood/actor"

	"github.com/hobom/hobom-event-processor/messages"
)

// Keep: an operator who cannot replay an entry yet (the consumer is being
// fixed, Kafka is still down) extends its time to live so its expiry does
// not lose the event. One entry is kept by messages.Keep; a filtered set by
// a bulk job with Op JobOpKeep, paced and audited like a bulk replay.
//
// A keep takes no lock: extending an expiry is one atomic script and is
// harmless beside a replay or discard of the same entry (if the entry is
// gone, the keep finds nothing).

func (r *dlqReplayer) onKeep(m messages.Keep, replyTo *actor.PID) {
	if res := r.check(m.Key, nil); res != nil {
		r.answer(replyTo, messages.KeepResult{Key: m.Key, Status: res.Status, Err: res.Err})
		return
	}
	if m.TTL < time.Second {
		r.answer(replyTo, messages.KeepResult{Key: m.Key, Status: messages.ReplayInvalid, Err: "a keep needs a TTL of at least a second"})
		return
	}
	r.queue.push(r.env.keepJob(m.Key, m.TTL, m.Caller, "", replyTo))
}

// keepJob returns the work of one keep, audited, for a work queue.
func (env replayEnv) keepJob(key string, ttl time.Duration, caller messages.Caller, jobID string, replyTo *actor.PID) func() any {
	return func() any {
		start := time.Now()
		r := adminDone{op: messages.AuditKeep, target: messages.ReplayTarget{Key: key}, caller: caller, jobID: jobID, replyTo: replyTo}
		r.res = messages.ReplayResult{Key: key}
		var found bool
		var err error
		_, err = env.cfg.Delete.run(func(ctx context.Context) (err error) {
			r.keptTTL, found, err = env.admin.Keep(ctx, key, ttl)
			return err
		})
		switch {
		case err != nil:
			r.res.Status, r.res.Err = messages.ReplayStoreFailed, "keep: "+err.Error()
		case !found:
			r.res.Status, r.res.Err = messages.ReplayNotFound, "no DLQ entry at "+key
		default:
			r.res.Status = messages.ReplayDone
		}
		r.took = time.Since(start)
		r.auditErr = writeAudit(env.audit, messages.AuditRecord{
			Time: env.clock.Now().UTC(), Action: messages.AuditKeep, Key: key, JobID: jobID,
			Outcome: r.res.Status.String(), Error: r.res.Err, Caller: caller, TTLSeconds: int64(r.keptTTL / time.Second),
		})
		return r
	}
}

// auditOp is the Op of a job's bulk audit records: empty for replay jobs,
// as before keep jobs existed.
func (j *bulkJob) auditOp() string {
	if j.status.Op == messages.JobOpKeep {
		return messages.JobOpKeep
	}
	return ""
}
