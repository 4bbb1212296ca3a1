package actors

import (
	"fmt"
	"time"

	"github.com/anthdm/hollywood/actor"

	"github.com/hobom/hobom-event-processor/messages"
)

// A bulk job (replay or keep of a filtered set of DLQ entries) runs in an
// actor of its own, spawned by the replayer: its pacing, its counts and its
// bound on replays in flight are its own, and its replays run on a work
// queue of its own, so a long or slow job delays neither the writer's
// failure handling nor single replays nor another job.
//
// That work queue is held by the replayer, not by the job: the job asks
// the replayer to start each replay (jobStart), and every result comes
// back to the replayer, which logs, measures and marks it SENT before it
// passes it on to the job (jobResult). So a replay that published is
// marked SENT even when the job's actor panicked meanwhile (a crashed
// actor drops every later message, recovery.go): the replayer counts the
// results of a crashed job itself until its replays in flight are done.
// The job reports its status after each result to the replayer, which
// keeps it for the API and stops the job's actor once the job reports
// that it is finished.

// bulkJob is the state of a running or ended bulk job.
type bulkJob struct {
	status   messages.JobStatus
	targets  []messages.ReplayTarget
	next     int       // index of the next target to start
	nextAt   time.Time // earliest start of the next target (rate)
	interval time.Duration
	ttl      time.Duration // a keep job's
	tick     Timer         // armed for nextAt; nil when none is
	inflight int
	failRun  int // replays failed by an outage in a row
}

// Messages between the replayer and its jobs.
type (
	// jobProgress is a job's report to the replayer: its status, whether
	// that counts one more jobResult (each result gets one report), and
	// whether the job is finished (ended, nothing in flight).
	jobProgress struct {
		id      string
		pid     *actor.PID
		counted bool
		status  messages.JobStatus
		final   bool
	}
	// jobStart asks the replayer to run one replay or keep of the job on
	// the job's work queue.
	jobStart struct {
		id   string
		pid  *actor.PID
		work func() any
	}
	// jobResult is the result of one of the job's replays or keeps, passed
	// on by the replayer once it handled it.
	jobResult struct{ res messages.ReplayResult }
	// jobEnd tells a job that the replayer ended it (cancel, shutdown):
	// it starts nothing more.
	jobEnd struct {
		state, reason string
		at            time.Time
	}
	// jobTick is the pacing timer's message.
	jobTick struct{ from *bulkJobActor }
)

// bulkJobActor runs one bulk job.
type bulkJobActor struct {
	job    *bulkJob
	env    replayEnv
	cfg    ReplayConfig
	parent *actor.PID

	engine *actor.Engine
	self   *actor.PID
	// finished says the final report was sent.
	finished bool
}

func newBulkJobActor(j *bulkJob, env replayEnv, cfg ReplayConfig, parent *actor.PID) actor.Producer {
	return func() actor.Receiver {
		return &bulkJobActor{job: j, env: env, cfg: cfg, parent: parent}
	}
}

func (a *bulkJobActor) Receive(c *actor.Context) {
	switch m := c.Message().(type) {
	case actor.Started:
		a.engine, a.self = c.Engine(), c.PID()
		a.job.nextAt = a.env.clock.Now()
		a.pump()
	case jobTick:
		if m.from == a {
			a.job.tick = nil
			a.pump()
		}
	case jobResult:
		a.onDone(m.res)
		a.report(true)
		a.pump()
	case jobEnd:
		if a.job.status.State == messages.JobRunning {
			a.end(m.state, m.reason, m.at)
			a.pump()
		}
	case actor.Stopped:
		if a.job.tick != nil {
			a.job.tick.Stop()
		}
	}
}

// report sends the replayer the job's status, saying whether it counts one
// more result; the report that finds the job ended with nothing in flight
// is the final one.
func (a *bulkJobActor) report(counted bool) {
	if a.finished {
		return
	}
	j := a.job
	final := j.status.State != messages.JobRunning && j.inflight == 0
	a.finished = final
	a.engine.Send(a.parent, jobProgress{id: j.status.ID, pid: a.self, counted: counted, status: j.snapshot(), final: final})
}

// pump starts the job's next replays as the rate and its in-flight bound
// allow, arms a timer for the next one, and ends the job when all are done.
func (a *bulkJobActor) pump() {
	j := a.job
	now := a.env.clock.Now()
	for j.status.State == messages.JobRunning && j.next < len(j.targets) && j.inflight < a.cfg.JobInflight {
		if wait := j.nextAt.Sub(now); wait > 0 {
			if j.tick == nil {
				engine, self, tick := a.engine, a.self, jobTick{from: a}
				j.tick = a.env.clock.AfterFunc(wait, func() { engine.Send(self, tick) })
			}
			return
		}
		// At most one start per interval; falling behind (timers fire
		// late) is made up by one interval at most, never in a burst.
		j.nextAt = maxTime(j.nextAt, now.Add(-j.interval)).Add(j.interval)
		t := j.targets[j.next]
		j.targets[j.next] = messages.ReplayTarget{}
		j.next++
		j.inflight++
		var work func() any
		if j.status.Op == messages.JobOpKeep {
			work = a.env.keepJob(t.Key, j.ttl, j.status.Caller, j.status.ID, nil)
		} else {
			work = a.env.replayJob(t, j.status.Caller, j.status.ID, false, nil)
		}
		a.engine.Send(a.parent, jobStart{id: j.status.ID, pid: a.self, work: work})
	}
	if j.status.State == messages.JobRunning && j.next >= len(j.targets) && j.inflight == 0 {
		a.end(messages.JobDone, "", a.env.clock.Now().UTC())
	}
	if j.status.State != messages.JobRunning && j.inflight == 0 {
		a.report(false)
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// onDone counts the result of one of the job's replays or keeps and aborts
// the job after a run of outages.
func (a *bulkJobActor) onDone(res messages.ReplayResult) {
	j := a.job
	j.count(res, a.cfg.MaxJobErrors)
	if j.status.State == messages.JobRunning && j.failRun >= a.cfg.AbortAfterFailures {
		a.end(messages.JobAborted, fmt.Sprintf("%d replays failed in a row (Redis or Kafka unavailable); last: %s", j.failRun, res.Err), a.env.clock.Now().UTC())
	}
}

// count counts the result of one of the job's replays or keeps in flight.
// The replayer counts with it too, for a job whose actor crashed.
func (j *bulkJob) count(res messages.ReplayResult, maxErrors int) {
	j.inflight--
	switch res.Status {
	case messages.ReplayDone:
		if j.status.Op == messages.JobOpKeep {
			j.status.Kept++
		} else {
			j.status.Replayed++
		}
		j.failRun = 0
	case messages.ReplayNotFound, messages.ReplayBusy:
		// Replayed, discarded or expired meanwhile, or being replayed by
		// someone else: nothing to do for this job.
		j.status.Skipped++
		j.failRun = 0
	case messages.ReplayInvalid, messages.ReplayBadValue, messages.ReplayWrongType, messages.ReplayTooLarge:
		// A problem of the entry itself: left alone, listed, and the job
		// goes on. It says nothing about Redis or Kafka being down, so it
		// neither counts toward an abort nor clears a run of outages.
		j.status.Invalid++
		j.addInvalid(res.Key, res.Status.String()+": "+res.Err, maxErrors)
	default:
		j.status.Failed++
		j.failRun++
		j.addError(res.Key, res.Status.String()+": "+res.Err, maxErrors)
	}
}

// end ends the job: nothing more starts; replays in flight finish and
// still count. The replayer logs and audits the end from the next report.
func (a *bulkJobActor) end(state, reason string, at time.Time) {
	j := a.job
	j.status.State, j.status.EndedAt, j.status.EndReason = state, &at, reason
	j.targets = nil
	if j.tick != nil {
		j.tick.Stop()
		j.tick = nil
	}
}

func (j *bulkJob) addError(key, err string, limit int) {
	if len(j.status.Errors) < limit {
		j.status.Errors = append(j.status.Errors, messages.JobError{Key: key, Err: err})
	}
}

func (j *bulkJob) addInvalid(key, err string, limit int) {
	if len(j.status.InvalidKeys) < limit {
		j.status.InvalidKeys = append(j.status.InvalidKeys, messages.JobError{Key: key, Err: err})
	}
}

func (j *bulkJob) counts() *messages.JobCounts {
	c := j.status.JobCounts
	c.InFlight = j.inflight
	c.Remaining = c.Matched - c.Replayed - c.Kept - c.Failed - c.Skipped - c.Invalid
	return &c
}

// snapshot is the job's status as reported; it shares nothing mutable.
func (j *bulkJob) snapshot() messages.JobStatus {
	s := j.status
	s.JobCounts = *j.counts()
	return copyStatus(s)
}
