package actors

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hobom/hobom-event-processor/messages"
)

// The replayer, the DLQ actor's child that serves the management API:
// single replays, discards, keeps, bulk jobs (each in its own actor,
// dlq_job.go) and the audit trail. The HTTP handlers ask the DLQ actor with
// engine.Request, which forwards the request with its sender; the replayer
// starts the I/O on its replay work queue and answers the request's sender
// when the job's result comes back, so a slow Kafka or Redis never blocks
// its inbox.
//
// A replay of one key, in every process sharing the Redis, runs under a
// lock (DeadLetterAdmin.Lock) and re-reads the entry after taking it:
//
//	lock -> read the entry (missing: NotFound) -> produce the stored bytes
//	-> delete the entry and its metadata -> unlock -> audit
//	-> answer -> mark the event SENT (in the background, bounded retries)
//
// so two concurrent replays publish once: the loser finds the lock taken
// (Busy) or, after the winner released it, the entry gone (NotFound). The
// lock is refreshed while the replay runs, so a slow produce cannot outlive
// it. A failed SENT mark is retried without publishing again: the entry is
// gone, so nothing can publish it a second time.

// ReplayConfig tunes replays, discards and bulk jobs. Zero fields take the
// defaults given with each field.
type ReplayConfig struct {
	// Concurrency bounds the single replays, discards and keeps running at
	// once (16). Bulk jobs do not take from it: each runs on its own work
	// queue, bounded by JobInflight, so at most Concurrency +
	// MaxRunningJobs × JobInflight replays run at once.
	Concurrency int
	// ProducerName is the producer record header of replayed records.
	ProducerName string
	// LockTTL is the lease of a replay's lock (30s); a running replay
	// refreshes it every third of that, so it only matters when a process
	// dies holding it: the entry can be replayed again after LockTTL.
	LockTTL time.Duration
	// RedisTimeout bounds each Redis call of a replay (3s).
	RedisTimeout time.Duration
	// ProduceTimeout bounds a replay's produce attempt (2m; the processor
	// sets HOBOM_KAFKA_WRITE_TIMEOUT), so a replay answers within it even
	// when the broker died with the record in flight. An attempt that
	// failed with UNKNOWN_TOPIC_ID (the topic was recreated; the producer
	// adopted the new one before reporting it) is tried once more.
	ProduceTimeout time.Duration
	// Delete bounds the delete after a successful publish (3 attempts,
	// 200ms backoff, 3s each).
	Delete RetryPolicy
	// MarkRounds is how many rounds of DLQConfig.Mark a failed SENT mark
	// after a replay gets (5); MarkRoundBackoff is the wait before the
	// second round (1s), doubling after.
	MarkRounds       int
	MarkRoundBackoff time.Duration
	// MaxRunningJobs bounds bulk jobs running at once (4); KeepJobs bounds
	// the jobs kept for their status, the oldest ended ones go first (100).
	MaxRunningJobs int
	KeepJobs       int
	// JobInflight bounds one job's replays in flight, on the job's own
	// work queue (8).
	JobInflight int
	// AbortAfterFailures stops a job after that many failed replays in a
	// row, e.g. while Kafka is down (10).
	AbortAfterFailures int
	// MaxJobErrors bounds the errors a job's status lists, and the invalid
	// keys it lists (20).
	MaxJobErrors int
	// MaxValueBytes is the largest value a replay publishes (990,000, below
	// Kafka's default record limit); a larger one is ReplayTooLarge and is
	// not even read.
	MaxValueBytes int
	// AuditBacklog is how many audit records Redis refused are kept in
	// memory until it takes them (10,000); when full the oldest is dropped
	// and counted (hobom_audit_dropped_total).
	AuditBacklog int
}

func (c ReplayConfig) withDefaults() ReplayConfig {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.Concurrency, 16)
	defDur(&c.LockTTL, 30*time.Second)
	defDur(&c.RedisTimeout, 3*time.Second)
	defDur(&c.ProduceTimeout, 2*time.Minute)
	if c.Delete.Attempts <= 0 {
		c.Delete = RetryPolicy{Attempts: 3, Backoff: 200 * time.Millisecond, Timeout: c.RedisTimeout}
	}
	def(&c.MarkRounds, 5)
	defDur(&c.MarkRoundBackoff, time.Second)
	def(&c.MaxRunningJobs, 4)
	def(&c.KeepJobs, 100)
	def(&c.JobInflight, 8)
	def(&c.AbortAfterFailures, 10)
	def(&c.MaxJobErrors, 20)
	def(&c.MaxValueBytes, 990_000)
	def(&c.AuditBacklog, 10_000)
	return c
}

// ReplayDeps are what the DLQ actor needs to replay: the Redis side, the
// Kafka producer and the route table (a replay's target must match it).
type ReplayDeps struct {
	Admin    DeadLetterAdmin
	Producer Producer
	Routes   []messages.Route
}

// replayEnv is what a replay, discard or keep needs, shared (read-only)
// by the replayer and its bulk jobs: each runs them on its own work queue.
type replayEnv struct {
	admin    DeadLetterAdmin
	producer Producer
	cfg      ReplayConfig
	clock    Clock
	log      zerolog.Logger
	audit    *auditLog
}

// dlqReplayer is the DLQ actor's child that serves the management API:
// single replays, discards and keeps (on its replay queue), the SENT marks
// after replays and the audit trail (on its own work queue), and bulk
// jobs, each run by an actor of its own (dlq_job.go) that it spawns,
// tracks and stops. Nothing it does waits in the writer's inbox or queues,
// and a panic here restarts only this actor (and stops its jobs).
type dlqReplayer struct {
	cfg     DLQConfig
	env     replayEnv
	outbox  Outbox
	log     zerolog.Logger
	metrics Metrics
	routes  map[string]messages.Route // by DLQ prefix

	engine *actor.Engine
	self   *actor.PID
	// queue runs replays, discards and keeps (ReplayConfig.Concurrency);
	// work the SENT marks after replays and the audit writes
	// (DLQConfig.Concurrency), so a mark never waits behind slow replays.
	queue *workQueue
	work  *workQueue
	// jobs are the bulk jobs kept for their status, jobOrder their ids,
	// oldest first; jobQueues finds a job by its work queue.
	jobs      map[string]*jobEntry
	jobOrder  []string
	jobQueues map[*workQueue]*jobEntry
	draining  bool
	drainTo   *actor.PID
	// auditArmed says a flush of the audit backlog is armed or running,
	// auditRound counts the flushes without progress (for the backoff).
	auditArmed bool
	auditRound int
}

// jobEntry is the replayer's record of a bulk job: its last status as the
// job reported it, its actor while that runs, and the work queue its
// replays run on (held here, dlq_job.go) while any may be in flight.
type jobEntry struct {
	status messages.JobStatus
	pid    *actor.PID // nil once stopped
	queue  *workQueue // nil once the job is finished
	// unreported are the results passed on to the job's actor that no
	// report of it counted yet, oldest first.
	unreported []messages.ReplayResult
	// crashed is the job's state, counted here, after its actor crashed
	// with replays in flight.
	crashed *bulkJob
}

func newDLQReplayer(outbox Outbox, cfg DLQConfig, log zerolog.Logger, m Metrics, rd ReplayDeps, audit *auditLog) actor.Producer {
	routes := make(map[string]messages.Route, len(rd.Routes))
	for _, r := range rd.Routes {
		routes[r.DLQPrefix] = r
	}
	log = log.With().Str("actor", "dlq").Str("child", "replayer").Logger()
	env := replayEnv{admin: rd.Admin, producer: rd.Producer, cfg: cfg.Replay, clock: cfg.Clock, log: log, audit: audit}
	return func() actor.Receiver {
		return &dlqReplayer{
			cfg: cfg, env: env, outbox: outbox, log: log, metrics: orNop(m), routes: routes,
			queue:     newWorkQueue(cfg.Replay.Concurrency),
			work:      newWorkQueue(cfg.Concurrency),
			jobs:      make(map[string]*jobEntry),
			jobQueues: make(map[*workQueue]*jobEntry),
		}
	}
}

// Results of the replayer's jobs and its timer messages.
type (
	adminDone struct {
		op  string // "replay", "discard" or "keep"
		res messages.ReplayResult
		// detail is what failed, for the log only: it may name addresses
		// that res.Err, which the caller sees, must not.
		detail  string
		target  messages.ReplayTarget
		caller  messages.Caller
		reason  string
		jobID   string
		replyTo *actor.PID
		took    time.Duration
		// produced says a record reached Kafka (for the metric).
		produced bool
		tried    bool
		auditErr error
		// keptTTL is a keep's time to live after.
		keptTTL time.Duration
	}
	auditDone  struct{ err error }
	markedSent struct {
		eventID string
		key     string
		round   int
		err     error
		took    time.Duration
	}
	retryReplayMark struct {
		from    *dlqReplayer
		eventID string
		key     string
		round   int
	}
)

func (r *dlqReplayer) Receive(c *actor.Context) {
	switch m := c.Message().(type) {
	case actor.Started:
		r.engine, r.self = c.Engine(), c.PID()
		r.queue.bind(r.engine, r.self)
		r.work.bind(r.engine, r.self)
		r.kickAudit() // a backlog left by a crashed predecessor
	case messages.Replay:
		r.onReplay(m, c.Sender())
	case messages.Discard:
		r.onDiscard(m, c.Sender())
	case messages.Keep:
		r.onKeep(m, c.Sender())
	case messages.BulkReplay:
		r.onBulk(m, c.Sender())
	case messages.JobQuery:
		if e := r.jobs[m.ID]; e != nil {
			c.Respond(copyStatus(e.status))
		} else {
			c.Respond(messages.JobNotFound{ID: m.ID})
		}
	case messages.CancelJob:
		r.onCancel(m, c)
	case messages.Audit:
		r.audit(m.Record)
	case jobStart:
		// A start of a job whose actor was stopped cannot come: its
		// starts arrive before its crash report or its final report.
		if e := r.jobs[m.id]; e != nil && e.pid != nil && e.pid.Equals(m.pid) && e.queue != nil {
			e.queue.push(m.work)
		}
	case jobProgress:
		r.onJobProgress(m)
	case messages.ChildCrashed:
		r.onJobCrashed(m)
	case workDone:
		switch m.q {
		case r.queue:
			r.queue.done()
		case r.work:
			r.work.done()
		default:
			e := r.jobQueues[m.q]
			if e == nil {
				// A job of a crashed predecessor: a replay of it that
				// published still gets its SENT mark.
				if d, ok := m.result.(adminDone); ok {
					r.onAdminDone(d)
					r.kickAudit()
				}
				return
			}
			e.queue.done()
			r.onJobDone(e, m.result.(adminDone))
			r.kickAudit()
			r.checkDrained()
			return
		}
		r.onWork(m.result)
		r.kickAudit()
		r.checkDrained()
	case auditFlush:
		if m.from == r {
			r.onAuditFlush()
		}
	case retryReplayMark:
		if m.from == r {
			if r.draining {
				r.log.Warn().Str("eventId", m.eventID).Str("key", m.key).
					Msg("shutting down: SENT mark of a replayed event abandoned; it stays FAILED in the backend although it was published")
				return
			}
			r.markReplayed(m.eventID, m.key, m.round)
		}
	case messages.Drain:
		r.drainTo = m.ReplyTo
		r.onDrain()
		r.checkDrained()
	case actor.Stopped:
		// The jobs are not hollywood children (see startJob): stop them
		// here, each once, also when this instance crashed.
		for _, e := range r.jobs {
			r.stopJob(e)
		}
	}
}

// answer sends msg to a request's sender, if there is one.
func (r *dlqReplayer) answer(to *actor.PID, msg any) {
	if to != nil {
		r.engine.Send(to, msg)
	}
}

// check refuses a target the replayer cannot or must not replay.
func (r *dlqReplayer) check(key string, t *messages.ReplayTarget) *messages.ReplayResult {
	switch {
	case r.draining:
		return &messages.ReplayResult{Key: key, Status: messages.ReplayUnavailable, Err: "the processor is shutting down"}
	case r.env.admin == nil || (t != nil && r.env.producer == nil):
		return &messages.ReplayResult{Key: key, Status: messages.ReplayUnavailable, Err: "replays are not configured"}
	case !strings.HasPrefix(key, "dlq:"):
		return &messages.ReplayResult{Key: key, Status: messages.ReplayInvalid, Err: "not a DLQ key"}
	case !r.ownsKey(key):
		return &messages.ReplayResult{Key: key, Status: messages.ReplayInvalid, Err: "not a DLQ key of this service (" + r.prefixList() + ")"}
	}
	if t == nil {
		return nil
	}
	rt, ok := r.routes[t.Route.DLQPrefix]
	id := strings.TrimPrefix(t.Key, rt.DLQPrefix)
	switch {
	case !ok || rt != t.Route:
		return &messages.ReplayResult{Key: key, Status: messages.ReplayInvalid, Err: fmt.Sprintf("no route has the DLQ prefix %q", t.Route.DLQPrefix)}
	case t.EventID == "" || !strings.HasPrefix(t.Key, rt.DLQPrefix) || (id != t.EventID && id != ":"+t.EventID):
		return &messages.ReplayResult{Key: key, Status: messages.ReplayInvalid, Err: "the key does not name the eventId under its route's prefix"}
	}
	return nil
}

// ownsKey reports whether key is under a route's DLQ prefix, in its
// current or its legacy doubled-colon form.
func (r *dlqReplayer) ownsKey(key string) bool {
	for p := range r.routes {
		if strings.HasPrefix(key, p) && len(key) > len(p) {
			return true
		}
	}
	return false
}

func (r *dlqReplayer) prefixList() string {
	ps := make([]string, 0, len(r.routes))
	for p := range r.routes {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	return strings.Join(ps, ", ")
}

func (r *dlqReplayer) onReplay(m messages.Replay, replyTo *actor.PID) {
	if res := r.check(m.Target.Key, &m.Target); res != nil {
		r.answer(replyTo, *res)
		return
	}
	r.queue.push(r.env.replayJob(m.Target, m.Caller, "", m.Force, replyTo))
}

// replayJob returns the work of one replay, audited, for a work queue.
func (env replayEnv) replayJob(t messages.ReplayTarget, caller messages.Caller, jobID string, force bool, replyTo *actor.PID) func() any {
	return func() any {
		start := time.Now()
		r := adminDone{op: messages.AuditReplay, target: t, caller: caller, jobID: jobID, replyTo: replyTo}
		o := replayOne(env, t, force)
		r.res, r.tried, r.produced, r.detail = o.res, o.tried, o.produced, o.detail
		r.took = time.Since(start)
		r.auditErr = writeAudit(env.audit, messages.AuditRecord{
			Time: env.clock.Now().UTC(), Action: messages.AuditReplay, Key: t.Key, EventID: t.EventID, Topic: t.Route.Topic,
			JobID: jobID, Outcome: r.res.Status.String(), Error: r.res.Err, Caller: caller,
			Forced: force, RefusedBecause: o.refusedBecause,
		})
		return r
	}
}

// replayOutcome is what replayOne did. tried says a produce was attempted,
// produced that it succeeded; detail is the underlying error for the log;
// refusedBecause is why the value failed Encoding.CheckValue (a forced replay
// publishes it all the same).
type replayOutcome struct {
	res            messages.ReplayResult
	tried          bool
	produced       bool
	detail         string
	refusedBecause string
}

// Texts of the outage errors callers see; the underlying error, which may
// name addresses, goes to the log only.
const (
	errRedisUnavailable = "redis unavailable; retry later"
	errKafkaUnavailable = "kafka unavailable or did not take the record in time; retry later"
)

// replayOne runs one replay on a work goroutine; see the top of the file.
func replayOne(env replayEnv, t messages.ReplayTarget, force bool) (o replayOutcome) {
	admin, producer, cfg, log := env.admin, env.producer, env.cfg, env.log
	o.res = messages.ReplayResult{Key: t.Key, Topic: t.Route.Topic}
	fail := func(s messages.ReplayStatus, msg string, cause error) replayOutcome {
		o.res.Status, o.res.Err = s, msg
		if cause != nil {
			o.detail = cause.Error()
		}
		return o
	}
	token, ok, err := lock(admin, cfg, t.Key)
	switch {
	case err != nil:
		return fail(messages.ReplayStoreFailed, errRedisUnavailable, fmt.Errorf("lock: %w", err))
	case !ok:
		return fail(messages.ReplayBusy, "another replay or discard of "+t.Key+" is running", nil)
	}
	stop := keepLocked(env, t.Key, token)
	release := func() {
		stop()
		ctx, cancel := context.WithTimeout(context.Background(), cfg.RedisTimeout)
		defer cancel()
		if err := admin.Unlock(ctx, t.Key, token); err != nil {
			log.Warn().Err(err).Str("key", t.Key).Msg("replay lock not released; it expires by itself")
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), cfg.RedisTimeout)
	value, size, found, err := admin.Value(ctx, t.Key, cfg.MaxValueBytes)
	cancel()
	switch {
	case errors.Is(err, ErrWrongType):
		release()
		return fail(messages.ReplayWrongType, t.Key+" holds another Redis type than a string, so it is no dead letter; discard it (DELETE) or remove it with redis-cli", nil)
	case err != nil:
		release()
		return fail(messages.ReplayStoreFailed, errRedisUnavailable, fmt.Errorf("read: %w", err))
	case !found:
		release()
		return fail(messages.ReplayNotFound, "no DLQ entry at "+t.Key, nil)
	case value == nil && size > cfg.MaxValueBytes:
		release()
		return fail(messages.ReplayTooLarge, fmt.Sprintf("the value is %d bytes, more than the %d a Kafka record takes; fix or discard the entry", size, cfg.MaxValueBytes), nil)
	}
	if err := t.Route.Encoding.CheckValue(value); err != nil {
		if !force {
			release()
			return fail(messages.ReplayBadValue, err.Error()+"; fix the entry or discard it, or replay it with force=true to publish it as it is", nil)
		}
		o.refusedBecause = err.Error()
		log.Warn().Str("key", t.Key).Str("refusedBecause", err.Error()).Msg("forced replay: publishing a value that is not a record of its topic")
	}

	rec := &kgo.Record{Topic: t.Route.Topic, Key: t.Route.Encoding.ReplayKey(t.EventID, env.clock.Now()), Value: value,
		Headers: messages.RecordHeaders(t.Route.EventType, cfg.ProducerName, "", []byte(t.EventID))}
	o.tried = true
	err = produceOnce(producer, cfg.ProduceTimeout, rec)
	if errors.Is(err, kerr.UnknownTopicID) {
		// A fresh record: the client filled in the failed one's producer state.
		rec = &kgo.Record{Topic: rec.Topic, Key: rec.Key, Value: rec.Value, Headers: rec.Headers}
		err = produceOnce(producer, cfg.ProduceTimeout, rec)
	}
	switch {
	case errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge):
		release()
		return fail(messages.ReplayTooLarge, "kafka refused the record as too large; fix or discard the entry", err)
	case err != nil:
		release()
		return fail(messages.ReplayKafkaFailed, errKafkaUnavailable, err)
	}
	o.produced = true
	o.res.Partition, o.res.Offset = rec.Partition, rec.Offset

	if _, err := cfg.Delete.run(func(ctx context.Context) error {
		_, err := admin.Delete(ctx, t.Key)
		return err
	}); err != nil {
		// Keep the lock until it expires: a replay started right away
		// would publish the entry again.
		stop()
		return fail(messages.ReplayNotRemoved, "published to "+t.Route.Topic+", but redis was unavailable to remove the DLQ entry; discard it once redis is back", err)
	}
	release()
	o.res.Status = messages.ReplayDone
	return o
}

// produceOnce produces rec and waits for its outcome, at most timeout:
// the client fails a record whose context ended only when it looks at it
// again, which while no broker answers may be seconds later.
func produceOnce(producer Producer, timeout time.Duration, rec *kgo.Record) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	acked := make(chan error, 1)
	producer.Produce(ctx, rec, func(_ *kgo.Record, err error) { acked <- err })
	select {
	case err := <-acked:
		return err
	case <-ctx.Done():
		return fmt.Errorf("produce timed out after %v: %w", timeout, ctx.Err())
	}
}

// lock takes the replay lock of key once: a retried SET NX whose first
// reply was lost would find its own lock and give up anyway.
func lock(admin DeadLetterAdmin, cfg ReplayConfig, key string) (string, bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cfg.RedisTimeout)
	defer cancel()
	return admin.Lock(ctx, key, cfg.LockTTL)
}

// keepLocked refreshes the lock every third of its TTL, on the clock,
// until the returned stop is called (idempotent), so a replay that takes
// long keeps it. stop waits for a refresh in flight: none comes after it,
// so none can log a lock it released as lost.
func keepLocked(env replayEnv, key, token string) (stop func()) {
	k := &lockKeeper{env: env, key: key, token: token}
	k.mu.Lock()
	k.timer = env.clock.AfterFunc(env.cfg.LockTTL/3, k.refresh)
	k.mu.Unlock()
	return k.stop
}

type lockKeeper struct {
	env        replayEnv
	key, token string

	mu      sync.Mutex // held during a refresh
	stopped bool
	timer   Timer
}

// refresh runs on the clock's goroutine, never in an actor's Receive.
func (k *lockKeeper) refresh() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.stopped {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), k.env.cfg.RedisTimeout)
	held, err := k.env.admin.Refresh(ctx, k.key, k.token, k.env.cfg.LockTTL)
	cancel()
	if err != nil || !held {
		k.env.log.Error().Err(err).Bool("held", held).Str("key", k.key).Msg("replay lock could not be refreshed; a concurrent replay may start")
	}
	k.timer = k.env.clock.AfterFunc(k.env.cfg.LockTTL/3, k.refresh)
}

func (k *lockKeeper) stop() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.stopped {
		k.stopped = true
		k.timer.Stop()
	}
}

// writeAudit writes rec through the actor's audit log: at once, or kept in
// memory behind records Redis refused (dlq_audit.go). Called from jobs.
func writeAudit(l *auditLog, rec messages.AuditRecord) error {
	if l == nil {
		return nil
	}
	return l.write(rec)
}
func (r *dlqReplayer) onDiscard(m messages.Discard, replyTo *actor.PID) {
	if res := r.check(m.Key, nil); res != nil {
		r.answer(replyTo, *res)
		return
	}
	env := r.env
	r.queue.push(func() any {
		start := time.Now()
		d := adminDone{op: messages.AuditDiscard, target: messages.ReplayTarget{Key: m.Key}, caller: m.Caller, reason: m.Reason, replyTo: replyTo}
		d.res = discardOne(env.admin, env.cfg, env.log, m.Key)
		d.took = time.Since(start)
		d.auditErr = writeAudit(env.audit, messages.AuditRecord{
			Time: env.clock.Now().UTC(), Action: messages.AuditDiscard, Key: m.Key,
			Outcome: d.res.Status.String(), Error: d.res.Err, Reason: m.Reason, Caller: m.Caller,
		})
		return d
	})
}

func discardOne(admin DeadLetterAdmin, cfg ReplayConfig, log zerolog.Logger, key string) messages.ReplayResult {
	res := messages.ReplayResult{Key: key}
	token, ok, err := lock(admin, cfg, key)
	switch {
	case err != nil:
		res.Status, res.Err = messages.ReplayStoreFailed, errRedisUnavailable
		log.Warn().Err(err).Str("key", key).Msg("discard: lock failed")
		return res
	case !ok:
		res.Status, res.Err = messages.ReplayBusy, "a replay or discard of "+key+" is running"
		return res
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), cfg.RedisTimeout)
		defer cancel()
		_ = admin.Unlock(ctx, key, token)
	}()
	var existed bool
	_, err = cfg.Delete.run(func(ctx context.Context) (err error) {
		existed, err = admin.Delete(ctx, key)
		return err
	})
	switch {
	case err != nil:
		res.Status, res.Err = messages.ReplayStoreFailed, errRedisUnavailable
		log.Warn().Err(err).Str("key", key).Msg("discard: delete failed")
	case !existed:
		res.Status, res.Err = messages.ReplayNotFound, "no DLQ entry at "+key
	default:
		res.Status = messages.ReplayDone
	}
	return res
}

// onAdminWork handles the result of a job of the replay queue, or of an

// onWork handles the result of a job of either work queue.
func (r *dlqReplayer) onWork(result any) {
	switch d := result.(type) {
	case adminDone:
		r.onAdminDone(d)
	case auditDone:
		if d.err != nil {
			r.log.Warn().Err(d.err).Msg("audit record not written yet; kept in memory until Redis takes it")
		}
	case auditFlushed:
		r.onAuditFlushed(d)
	case markedSent:
		r.onMarkedSent(d)
	}
}

// onAdminDone logs and measures a replay, discard or keep (of a request
// or of a bulk job), answers the request, and marks a replayed event SENT.
func (r *dlqReplayer) onAdminDone(d adminDone) {
	if d.auditErr != nil {
		r.log.Warn().Err(d.auditErr).Str("key", d.target.Key).Str("op", d.op).Msg("audit record not written yet; kept in memory until Redis takes it")
	}
	if d.op == messages.AuditReplay && d.tried {
		var err error
		if !d.produced {
			err = errors.New(d.res.Err)
		}
		r.metrics.ProduceDone(d.target.Route.EventType, d.took, err)
	}
	ev := r.log.Info()
	if d.res.Status != messages.ReplayDone {
		ev = r.log.Warn()
	}
	ev.Str("op", d.op).Str("key", d.target.Key).Str("outcome", d.res.Status.String()).Str("error", d.res.Err).Str("detail", d.detail).
		Str("caller", d.caller.Addr).Str("operator", d.caller.Operator).Str("reason", d.reason).Str("jobId", d.jobID).
		Dur("took", d.took).Msg("DLQ " + d.op)
	if d.op == messages.AuditKeep {
		r.answer(d.replyTo, messages.KeepResult{Key: d.res.Key, Status: d.res.Status, Err: d.res.Err, TTL: d.keptTTL})
	} else {
		r.answer(d.replyTo, d.res)
	}
	if d.op == messages.AuditReplay && (d.res.Status == messages.ReplayDone || d.res.Status == messages.ReplayNotRemoved) {
		// NotRemoved: the record is in Kafka all the same; the entry left
		// behind is reported to the caller and guarded by the lock until it
		// expires.
		r.metrics.Replayed(d.target.Route.EventType)
		r.markReplayed(d.target.EventID, d.target.Key, 1)
	}
}

// markReplayed marks a replayed event SENT on the replayer's work queue. A
// failed round is retried after a backoff, MarkRounds times at most; it
// never publishes again.
func (r *dlqReplayer) markReplayed(eventID, key string, round int) {
	outbox, policy := r.outbox, r.cfg.Mark
	r.work.push(func() any {
		start := time.Now()
		_, err := policy.run(func(ctx context.Context) error { return outbox.MarkSent(ctx, eventID) })
		return markedSent{eventID: eventID, key: key, round: round, err: err, took: time.Since(start)}
	})
}

func (r *dlqReplayer) onMarkedSent(m markedSent) {
	r.metrics.MarkDone(messages.StatusSent, m.took, m.err)
	log := r.log.With().Str("eventId", m.eventID).Str("key", m.key).Int("round", m.round).Logger()
	switch {
	case m.err == nil:
		log.Info().Msg("replayed event marked SENT")
	case m.round >= r.cfg.Replay.MarkRounds:
		log.Error().Err(m.err).Msg("replayed event published but its SENT mark failed for good; it stays FAILED in the backend (not published again)")
	case r.draining:
		log.Warn().Err(m.err).Msg("shutting down: SENT mark of a replayed event abandoned; it stays FAILED in the backend although it was published")
	default:
		wait := Doubling(r.cfg.Replay.MarkRoundBackoff, 0, m.round)
		log.Warn().Err(m.err).Dur("retryIn", wait).Msg("SENT mark after a replay failed; retrying the mark, not the publish")
		engine, self, next := r.engine, r.self, retryReplayMark{from: r, eventID: m.eventID, key: m.key, round: m.round + 1}
		r.cfg.Clock.AfterFunc(wait, func() { engine.Send(self, next) })
	}
}

// audit writes rec on the work queue.
func (r *dlqReplayer) audit(rec messages.AuditRecord) {
	if r.env.admin == nil {
		return
	}
	if rec.Time.IsZero() {
		rec.Time = r.cfg.Clock.Now().UTC()
	}
	audit := r.env.audit
	r.work.push(func() any { return auditDone{err: writeAudit(audit, rec)} })
}

func newJobID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// onBulk checks a bulk job, records it, answers its first status and
// starts its actor.
func (r *dlqReplayer) onBulk(m messages.BulkReplay, replyTo *actor.PID) {
	switch {
	case r.draining:
		r.answer(replyTo, messages.BulkRefused{Status: messages.ReplayUnavailable, Err: "the processor is shutting down"})
		return
	case r.env.admin == nil || (r.env.producer == nil && m.Op != messages.JobOpKeep):
		r.answer(replyTo, messages.BulkRefused{Status: messages.ReplayUnavailable, Err: "replays are not configured"})
		return
	case m.Op == messages.JobOpKeep && m.TTL < time.Second:
		r.answer(replyTo, messages.BulkRefused{Status: messages.ReplayInvalid, Err: "a keep job needs a TTL of at least a second"})
		return
	}
	if m.Op == "" {
		m.Op = messages.JobOpReplay
	}
	if m.Rate < 1 {
		r.answer(replyTo, messages.BulkRefused{Status: messages.ReplayInvalid, Err: "rate must be at least 1 per second"})
		return
	}
	running := 0
	for _, e := range r.jobs {
		if e.status.State == messages.JobRunning {
			running++
		}
	}
	if running >= r.cfg.Replay.MaxRunningJobs {
		r.answer(replyTo, messages.BulkRefused{Status: messages.ReplayBusy,
			Err: fmt.Sprintf("%d bulk jobs are running, the most allowed; wait for one to end or cancel one", running)})
		return
	}
	j := &bulkJob{
		status: messages.JobStatus{
			ID: newJobID(), State: messages.JobRunning, Op: m.Op, Prefix: m.Prefix, Rate: m.Rate, Truncated: m.Truncated,
			Caller: m.Caller, CreatedAt: r.cfg.Clock.Now().UTC(), Errors: []messages.JobError{}, InvalidKeys: []messages.JobError{},
		},
		interval: time.Second / time.Duration(m.Rate),
	}
	if m.Op == messages.JobOpKeep {
		j.ttl = m.TTL
		j.status.TTLSeconds = int64(m.TTL / time.Second)
	}
	j.status.Matched = len(m.Targets) + len(m.Invalid)
	for _, inv := range m.Invalid {
		j.status.Invalid++
		j.addInvalid(inv.Key, inv.Err, r.cfg.Replay.MaxJobErrors)
	}
	for _, t := range m.Targets {
		target := &t
		if m.Op == messages.JobOpKeep {
			target = nil // a keep needs no route
		}
		if res := r.check(t.Key, target); res != nil {
			j.status.Invalid++
			j.addInvalid(t.Key, res.Err, r.cfg.Replay.MaxJobErrors)
			continue
		}
		j.targets = append(j.targets, t)
	}
	e := &jobEntry{status: j.snapshot(), queue: newWorkQueue(r.cfg.Replay.JobInflight)}
	e.queue.bind(r.engine, r.self)
	r.jobQueues[e.queue] = e
	r.keepJob(e)
	r.log.Info().Str("jobId", j.status.ID).Str("prefix", m.Prefix).Int("rate", m.Rate).Int("matched", j.status.Matched).
		Str("op", m.Op).Str("caller", m.Caller.Addr).Str("operator", m.Caller.Operator).Msg("bulk job started")
	r.audit(messages.AuditRecord{Action: messages.AuditBulkStart, Prefix: m.Prefix, JobID: j.status.ID,
		Outcome: messages.JobRunning, Caller: m.Caller, Rate: m.Rate, Counts: j.counts(),
		Op: j.auditOp(), TTLSeconds: j.status.TTLSeconds, Filter: m.Filter})
	// Spawned before the answer, so that the job's actor is registered
	// once the caller has the job's id.
	e.pid = r.startJob(j)
	r.answer(replyTo, copyStatus(e.status))
}

// startJob spawns the actor that runs j. It is spawned beside this actor,
// not as its hollywood child: stopping a parent while one of its children
// is still stopping hangs in hollywood v1.0.5 (docs/engine-notes.md), and
// jobs end all the time. The replayer stops each job once, when it ended
// or when the replayer itself stops.
func (r *dlqReplayer) startJob(j *bulkJob) *actor.PID {
	producer := newBulkJobActor(j, r.env, r.cfg.Replay, r.self)
	return r.engine.Spawn(producer, r.self.ID+"/job",
		actor.WithID(j.status.ID),
		actor.WithInboxSize(16),
		actor.WithMiddleware(recoverChild("dlq:job", r.self)),
		actor.WithMiddleware(r.cfg.ChildMiddleware...))
}

// keepJob adds e, forgetting the oldest ended jobs past KeepJobs.
func (r *dlqReplayer) keepJob(e *jobEntry) {
	r.jobs[e.status.ID] = e
	r.jobOrder = append(r.jobOrder, e.status.ID)
	for i := 0; len(r.jobs) > r.cfg.Replay.KeepJobs && i < len(r.jobOrder); {
		id := r.jobOrder[i]
		if old := r.jobs[id]; old != nil && old.status.State != messages.JobRunning && old.pid == nil && old.queue == nil {
			delete(r.jobs, id)
			r.jobOrder = append(r.jobOrder[:i], r.jobOrder[i+1:]...)
			continue
		}
		i++
	}
}

// onJobDone takes the result of one of a job's replays or keeps: it is
// logged, measured and, for a replay, marked SENT here, so that the mark
// outlives the job, even one whose actor crashed; then it is passed on to
// the job's actor to count, or counted here if that crashed.
func (r *dlqReplayer) onJobDone(e *jobEntry, d adminDone) {
	r.onAdminDone(d)
	switch {
	case e.pid != nil:
		e.unreported = append(e.unreported, d.res)
		r.engine.Send(e.pid, jobResult{res: d.res})
	case e.crashed != nil:
		e.crashed.count(d.res, r.cfg.Replay.MaxJobErrors)
		e.status = e.crashed.snapshot()
		r.finishQueue(e)
	}
}

// finishQueue lets go of the work queue of a job whose actor is stopped,
// once nothing of it is in flight.
func (r *dlqReplayer) finishQueue(e *jobEntry) {
	if e.pid != nil || e.queue == nil || !e.queue.idle() {
		return
	}
	if e.crashed != nil {
		r.log.Info().Str("jobId", e.status.ID).Int("replayed", e.status.Replayed).Int("failed", e.status.Failed).
			Msg("the replays in flight of a crashed bulk job finished")
	}
	delete(r.jobQueues, e.queue)
	e.queue, e.crashed, e.unreported = nil, nil, nil
}

// onJobProgress takes a job's report: its status, and whether it is
// finished.
func (r *dlqReplayer) onJobProgress(m jobProgress) {
	e := r.jobs[m.id]
	if e == nil || e.pid == nil || !e.pid.Equals(m.pid) {
		return // a job of a crashed predecessor, stopped already
	}
	if m.counted && len(e.unreported) > 0 {
		e.unreported = e.unreported[1:]
	}
	st := m.status
	if e.status.State != messages.JobRunning {
		// Ended here (cancelled, aborted): that state stands; the job's
		// replays in flight still count.
		st.State, st.EndedAt, st.EndReason = e.status.State, e.status.EndedAt, e.status.EndReason
		e.status = st
	} else {
		e.status = st
		if st.State != messages.JobRunning {
			r.logJobEnd(e, st.Caller)
		}
	}
	if m.final {
		r.stopJob(e)
		r.finishQueue(e)
		r.checkDrained()
	}
}

// endJob ends a running job from here (cancel, shutdown, crash) and tells
// its actor to start nothing more; by is who ended it, for the audit trail.
func (r *dlqReplayer) endJob(e *jobEntry, state, reason string, by messages.Caller) {
	now := r.cfg.Clock.Now().UTC()
	e.status.State, e.status.EndedAt, e.status.EndReason = state, &now, reason
	r.logJobEnd(e, by)
	if e.pid != nil {
		r.engine.Send(e.pid, jobEnd{state: state, reason: reason, at: now})
	}
}

// logJobEnd logs and audits the end of a job.
func (r *dlqReplayer) logJobEnd(e *jobEntry, by messages.Caller) {
	s := e.status
	action := messages.AuditBulkEnd
	if s.State == messages.JobCancelled {
		action = messages.AuditBulkCancel
	}
	op := ""
	if s.Op == messages.JobOpKeep {
		op = messages.JobOpKeep
	}
	counts := s.JobCounts
	r.log.Info().Str("jobId", s.ID).Str("state", s.State).Str("reason", s.EndReason).Int("replayed", s.Replayed).
		Int("failed", s.Failed).Int("skipped", s.Skipped).Msg("bulk replay ended")
	r.audit(messages.AuditRecord{Action: action, Prefix: s.Prefix, JobID: s.ID, Outcome: s.State,
		Error: s.EndReason, Caller: by, Rate: s.Rate, Counts: &counts, Op: op, TTLSeconds: s.TTLSeconds})
}

// stopJob stops a job's actor, once.
func (r *dlqReplayer) stopJob(e *jobEntry) {
	if e.pid != nil {
		r.engine.Poison(e.pid)
		e.pid = nil
	}
}

// onJobCrashed ends a job whose actor panicked: it is not restarted (the
// operator starts a new job for what is left), and it is stopped. Its
// replays in flight go on: the replayer marks those that published SENT
// and counts them in the job's status until none is left. Its end is
// audited here unless it had ended already (then it was audited then).
func (r *dlqReplayer) onJobCrashed(m messages.ChildCrashed) {
	for _, e := range r.jobs {
		if e.pid == nil || !e.pid.Equals(m.PID) {
			continue
		}
		r.log.Error().Str("jobId", e.status.ID).Str("reason", m.Reason).Str("stack", m.Stack).Msg("bulk job crashed")
		r.stopJob(e)
		if e.queue != nil {
			// The job's counts as last reported, plus the results its
			// actor got but never counted; in flight is what the queue runs.
			j := &bulkJob{status: copyStatus(e.status), inflight: e.queue.active + e.queue.pending.len() + len(e.unreported)}
			for _, res := range e.unreported {
				j.count(res, r.cfg.Replay.MaxJobErrors)
			}
			e.crashed, e.unreported = j, nil
			e.status = j.snapshot()
		}
		if e.status.State == messages.JobRunning {
			r.endJob(e, messages.JobAborted, "the job crashed: "+m.Reason, e.status.Caller)
			if e.crashed != nil {
				e.crashed.status = copyStatus(e.status)
			}
		}
		r.finishQueue(e)
		r.checkDrained()
		return
	}
}

func (r *dlqReplayer) onCancel(m messages.CancelJob, c *actor.Context) {
	e := r.jobs[m.ID]
	if e == nil {
		c.Respond(messages.JobNotFound{ID: m.ID})
		return
	}
	if e.status.State == messages.JobRunning {
		r.endJob(e, messages.JobCancelled, "cancelled by "+callerName(m.Caller), m.Caller)
	}
	c.Respond(copyStatus(e.status))
}

func callerName(c messages.Caller) string {
	if c.Operator != "" {
		return c.Operator + " (" + c.Addr + ")"
	}
	return c.Addr
}

// copyStatus is s as answered: it shares nothing mutable.
func copyStatus(s messages.JobStatus) messages.JobStatus {
	s.Errors = append([]messages.JobError{}, s.Errors...)
	s.InvalidKeys = append([]messages.JobError{}, s.InvalidKeys...)
	if s.EndedAt != nil {
		t := *s.EndedAt
		s.EndedAt = &t
	}
	return s
}

// onDrain stops taking management work: running jobs are aborted (their
// replays in flight finish) and later requests are refused.
func (r *dlqReplayer) onDrain() {
	if r.draining {
		return
	}
	r.draining = true
	for _, id := range r.jobOrder {
		if e := r.jobs[id]; e != nil && e.status.State == messages.JobRunning {
			r.endJob(e, messages.JobAborted, "the processor is shutting down", e.status.Caller)
		}
	}
}

// checkDrained answers a drain once no replay, mark or audit write runs
// and every job's actor is stopped and its replays in flight finished
// (those of a crashed job too).
func (r *dlqReplayer) checkDrained() {
	if r.drainTo == nil || !r.queue.idle() || !r.work.idle() {
		return
	}
	for _, e := range r.jobs {
		if e.pid != nil || e.queue != nil {
			return
		}
	}
	r.log.Info().Msg("drained")
	r.engine.Send(r.drainTo, messages.Drained{From: r.self})
	r.drainTo = nil
}
