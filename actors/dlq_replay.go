package actors

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hobom/hobom-event-processor/messages"
)

// The DLQ actor's part of the management API: single replays, discards,
// bulk replay jobs and the audit trail. The HTTP handlers ask with
// engine.Request; the actor starts the I/O on its replay work queue and
// answers the request's sender when the job's result comes back, so a slow
// Kafka or Redis never blocks its inbox.
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
	// Concurrency bounds replays and discards running at once (16).
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
	// JobInflight bounds one job's replays in flight (8).
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

// replayState is the DLQ actor's management API state.
type replayState struct {
	admin    DeadLetterAdmin
	producer Producer
	routes   map[string]messages.Route // by DLQ prefix
	queue    *workQueue
	jobs     map[string]*bulkJob
	jobOrder []string // ids, oldest first
	draining bool
}

func newReplayState(rd ReplayDeps, cfg ReplayConfig) replayState {
	routes := make(map[string]messages.Route, len(rd.Routes))
	for _, r := range rd.Routes {
		routes[r.DLQPrefix] = r
	}
	return replayState{
		admin: rd.Admin, producer: rd.Producer, routes: routes,
		queue: newWorkQueue(cfg.Concurrency),
		jobs:  make(map[string]*bulkJob),
	}
}

// bulkJob is a running or ended bulk replay.
type bulkJob struct {
	status    messages.JobStatus
	targets   []messages.ReplayTarget
	next      int       // index of the next target to start
	nextAt    time.Time // earliest start of the next target (rate)
	interval  time.Duration
	ttl       time.Duration // a keep job's
	tickArmed bool
	inflight  int
	failRun   int // replays failed by an outage in a row
}

// Results of the replay queue's jobs and timer messages.
type (
	adminDone struct {
		op  string // "replay" or "discard"
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
		from    *DLQ
		eventID string
		key     string
		round   int
	}
	jobTick struct {
		from *DLQ
		id   string
	}
)

func (d *DLQ) receiveAdmin(c *actor.Context) {
	switch m := c.Message().(type) {
	case messages.Replay:
		d.onReplay(m, c.Sender())
	case messages.Discard:
		d.onDiscard(m, c.Sender())
	case messages.Keep:
		d.onKeep(m, c.Sender())
	case messages.BulkReplay:
		d.onBulk(m, c.Sender())
	case messages.JobQuery:
		if j := d.replay.jobs[m.ID]; j != nil {
			c.Respond(j.snapshot())
		} else {
			c.Respond(messages.JobNotFound{ID: m.ID})
		}
	case messages.CancelJob:
		d.onCancel(m, c)
	case messages.Audit:
		d.audit(m.Record)
	case auditFlush:
		if m.from == d {
			d.onAuditFlush()
		}
	case retryReplayMark:
		if m.from == d {
			if d.replay.draining {
				d.log.Warn().Str("eventId", m.eventID).Str("key", m.key).
					Msg("shutting down: SENT mark of a replayed event abandoned; it stays FAILED in the backend although it was published")
				return
			}
			d.markReplayed(m.eventID, m.key, m.round)
		}
	case jobTick:
		if j := d.replay.jobs[m.id]; j != nil && m.from == d {
			j.tickArmed = false
			d.pumpJob(j)
		}
	}
}

// answer sends msg to a request's sender, if there is one.
func (d *DLQ) answer(to *actor.PID, msg any) {
	if to != nil {
		d.engine.Send(to, msg)
	}
}

// check refuses a target the actor cannot or must not replay.
func (d *DLQ) check(key string, t *messages.ReplayTarget) *messages.ReplayResult {
	switch {
	case d.replay.draining:
		return &messages.ReplayResult{Key: key, Status: messages.ReplayUnavailable, Err: "the processor is shutting down"}
	case d.replay.admin == nil || (t != nil && d.replay.producer == nil):
		return &messages.ReplayResult{Key: key, Status: messages.ReplayUnavailable, Err: "replays are not configured"}
	case !strings.HasPrefix(key, "dlq:"):
		return &messages.ReplayResult{Key: key, Status: messages.ReplayInvalid, Err: "not a DLQ key"}
	case !d.ownsKey(key):
		return &messages.ReplayResult{Key: key, Status: messages.ReplayInvalid, Err: "not a DLQ key of this service (" + d.prefixList() + ")"}
	}
	if t == nil {
		return nil
	}
	r, ok := d.replay.routes[t.Route.DLQPrefix]
	id := strings.TrimPrefix(t.Key, r.DLQPrefix)
	switch {
	case !ok || r != t.Route:
		return &messages.ReplayResult{Key: key, Status: messages.ReplayInvalid, Err: fmt.Sprintf("no route has the DLQ prefix %q", t.Route.DLQPrefix)}
	case t.EventID == "" || !strings.HasPrefix(t.Key, r.DLQPrefix) || (id != t.EventID && id != ":"+t.EventID):
		return &messages.ReplayResult{Key: key, Status: messages.ReplayInvalid, Err: "the key does not name the eventId under its route's prefix"}
	}
	return nil
}

// ownsKey reports whether key is under a route's DLQ prefix, in its
// current or its legacy doubled-colon form.
func (d *DLQ) ownsKey(key string) bool {
	for p := range d.replay.routes {
		if strings.HasPrefix(key, p) && len(key) > len(p) {
			return true
		}
	}
	return false
}

func (d *DLQ) prefixList() string {
	ps := make([]string, 0, len(d.replay.routes))
	for p := range d.replay.routes {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	return strings.Join(ps, ", ")
}

func (d *DLQ) onReplay(m messages.Replay, replyTo *actor.PID) {
	if res := d.check(m.Target.Key, &m.Target); res != nil {
		d.answer(replyTo, *res)
		return
	}
	d.startReplay(m.Target, m.Caller, "", m.Force, replyTo)
}

func (d *DLQ) startReplay(t messages.ReplayTarget, caller messages.Caller, jobID string, force bool, replyTo *actor.PID) {
	admin, producer, cfg, log, audit := d.replay.admin, d.replay.producer, d.cfg.Replay, d.log, d.auditLog
	d.replay.queue.push(func() any {
		start := time.Now()
		r := adminDone{op: messages.AuditReplay, target: t, caller: caller, jobID: jobID, replyTo: replyTo}
		o := replayOne(admin, producer, cfg, log, t, force)
		r.res, r.tried, r.produced, r.detail = o.res, o.tried, o.produced, o.detail
		r.took = time.Since(start)
		r.auditErr = writeAudit(audit, messages.AuditRecord{
			Time: time.Now().UTC(), Action: messages.AuditReplay, Key: t.Key, EventID: t.EventID, Topic: t.Route.Topic,
			JobID: jobID, Outcome: r.res.Status.String(), Error: r.res.Err, Caller: caller,
			Forced: force, RefusedBecause: o.refusedBecause,
		})
		return r
	})
}

// replayOutcome is what replayOne did. tried says a produce was attempted,
// produced that it succeeded; detail is the underlying error for the log;
// refusedBecause is why the value failed CheckValue (a forced replay
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
func replayOne(admin DeadLetterAdmin, producer Producer, cfg ReplayConfig, log zerolog.Logger, t messages.ReplayTarget, force bool) (o replayOutcome) {
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
	stop := keepLocked(admin, cfg, log, t.Key, token)
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
	if err := messages.CheckValue(t.Route.Encoding, value); err != nil {
		if !force {
			release()
			return fail(messages.ReplayBadValue, err.Error()+"; fix the entry or discard it, or replay it with force=true to publish it as it is", nil)
		}
		o.refusedBecause = err.Error()
		log.Warn().Str("key", t.Key).Str("refusedBecause", err.Error()).Msg("forced replay: publishing a value that is not a record of its topic")
	}

	rec := &kgo.Record{Topic: t.Route.Topic, Value: value,
		Headers: messages.RecordHeaders(t.Route.EventType, cfg.ProducerName, "", []byte(t.EventID))}
	if t.Route.Encoding == messages.EncodingLogArray {
		rec.Key = messages.LogRecordKey(nil, time.Now())
	} else {
		rec.Key = []byte(t.EventID)
	}
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

// keepLocked refreshes the lock every third of its TTL until the returned
// stop is called (idempotent), so a replay that takes long keeps it.
func keepLocked(admin DeadLetterAdmin, cfg ReplayConfig, log zerolog.Logger, key, token string) (stop func()) {
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(cfg.LockTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				ctx, cancel := context.WithTimeout(context.Background(), cfg.RedisTimeout)
				held, err := admin.Refresh(ctx, key, token, cfg.LockTTL)
				cancel()
				if err != nil || !held {
					log.Error().Err(err).Bool("held", held).Str("key", key).Msg("replay lock could not be refreshed; a concurrent replay may start")
				}
			}
		}
	}()
	var once bool
	return func() {
		if !once {
			once = true
			close(done)
			<-stopped
		}
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

func (d *DLQ) onDiscard(m messages.Discard, replyTo *actor.PID) {
	if res := d.check(m.Key, nil); res != nil {
		d.answer(replyTo, *res)
		return
	}
	admin, cfg, log, audit := d.replay.admin, d.cfg.Replay, d.log, d.auditLog
	d.replay.queue.push(func() any {
		start := time.Now()
		r := adminDone{op: messages.AuditDiscard, target: messages.ReplayTarget{Key: m.Key}, caller: m.Caller, reason: m.Reason, replyTo: replyTo}
		r.res = discardOne(admin, cfg, log, m.Key)
		r.took = time.Since(start)
		r.auditErr = writeAudit(audit, messages.AuditRecord{
			Time: time.Now().UTC(), Action: messages.AuditDiscard, Key: m.Key,
			Outcome: r.res.Status.String(), Error: r.res.Err, Reason: m.Reason, Caller: m.Caller,
		})
		return r
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
// audit or mark job of the shared queue.
func (d *DLQ) onAdminWork(result any) {
	switch r := result.(type) {
	case adminDone:
		d.onAdminDone(r)
	case auditDone:
		if r.err != nil {
			d.log.Warn().Err(r.err).Msg("audit record not written yet; kept in memory until Redis takes it")
		}
	case auditFlushed:
		d.onAuditFlushed(r)
	case markedSent:
		d.onMarkedSent(r)
	}
}

func (d *DLQ) onAdminDone(r adminDone) {
	if r.auditErr != nil {
		d.log.Warn().Err(r.auditErr).Str("key", r.target.Key).Str("op", r.op).Msg("audit record not written yet; kept in memory until Redis takes it")
	}
	if r.op == messages.AuditReplay && r.tried {
		var err error
		if !r.produced {
			err = errors.New(r.res.Err)
		}
		d.metrics.ProduceDone(r.target.Route.EventType, r.took, err)
	}
	ev := d.log.Info()
	if r.res.Status != messages.ReplayDone {
		ev = d.log.Warn()
	}
	ev.Str("op", r.op).Str("key", r.target.Key).Str("outcome", r.res.Status.String()).Str("error", r.res.Err).Str("detail", r.detail).
		Str("caller", r.caller.Addr).Str("operator", r.caller.Operator).Str("reason", r.reason).Str("jobId", r.jobID).
		Dur("took", r.took).Msg("DLQ " + r.op)
	if r.op == messages.AuditKeep {
		d.answer(r.replyTo, messages.KeepResult{Key: r.res.Key, Status: r.res.Status, Err: r.res.Err, TTL: r.keptTTL})
	} else {
		d.answer(r.replyTo, r.res)
	}
	if r.op == messages.AuditReplay && (r.res.Status == messages.ReplayDone || r.res.Status == messages.ReplayNotRemoved) {
		// NotRemoved: the record is in Kafka all the same; the entry left
		// behind is reported to the caller and guarded by the lock until it
		// expires.
		d.metrics.Replayed(r.target.Route.EventType)
		d.markReplayed(r.target.EventID, r.target.Key, 1)
	}
	if r.jobID != "" {
		if j := d.replay.jobs[r.jobID]; j != nil {
			d.onJobReplayed(j, r.res)
		}
	}
}

// markReplayed marks a replayed event SENT on the shared work queue. A
// failed round is retried after a backoff, MarkRounds times at most; it
// never publishes again.
func (d *DLQ) markReplayed(eventID, key string, round int) {
	outbox, policy := d.outbox, d.cfg.Mark
	d.work.push(func() any {
		start := time.Now()
		_, err := policy.run(func(ctx context.Context) error { return outbox.MarkSent(ctx, eventID) })
		return markedSent{eventID: eventID, key: key, round: round, err: err, took: time.Since(start)}
	})
}

func (d *DLQ) onMarkedSent(m markedSent) {
	d.metrics.MarkDone(messages.StatusSent, m.took, m.err)
	log := d.log.With().Str("eventId", m.eventID).Str("key", m.key).Int("round", m.round).Logger()
	switch {
	case m.err == nil:
		log.Info().Msg("replayed event marked SENT")
	case m.round >= d.cfg.Replay.MarkRounds:
		log.Error().Err(m.err).Msg("replayed event published but its SENT mark failed for good; it stays FAILED in the backend (not published again)")
	case d.replay.draining:
		log.Warn().Err(m.err).Msg("shutting down: SENT mark of a replayed event abandoned; it stays FAILED in the backend although it was published")
	default:
		wait := doubling(d.cfg.Replay.MarkRoundBackoff, 0, m.round)
		log.Warn().Err(m.err).Dur("retryIn", wait).Msg("SENT mark after a replay failed; retrying the mark, not the publish")
		engine, self, next := d.engine, d.self, retryReplayMark{from: d, eventID: m.eventID, key: m.key, round: m.round + 1}
		time.AfterFunc(wait, func() { engine.Send(self, next) })
	}
}

// audit writes rec on the shared work queue.
func (d *DLQ) audit(rec messages.AuditRecord) {
	if d.replay.admin == nil {
		return
	}
	if rec.Time.IsZero() {
		rec.Time = time.Now().UTC()
	}
	audit := d.auditLog
	d.work.push(func() any { return auditDone{err: writeAudit(audit, rec)} })
}

func newJobID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (d *DLQ) onBulk(m messages.BulkReplay, replyTo *actor.PID) {
	switch {
	case d.replay.draining:
		d.answer(replyTo, messages.BulkRefused{Status: messages.ReplayUnavailable, Err: "the processor is shutting down"})
		return
	case d.replay.admin == nil || (d.replay.producer == nil && m.Op != messages.JobOpKeep):
		d.answer(replyTo, messages.BulkRefused{Status: messages.ReplayUnavailable, Err: "replays are not configured"})
		return
	case m.Op == messages.JobOpKeep && m.TTL < time.Second:
		d.answer(replyTo, messages.BulkRefused{Status: messages.ReplayInvalid, Err: "a keep job needs a TTL of at least a second"})
		return
	}
	if m.Op == "" {
		m.Op = messages.JobOpReplay
	}
	if m.Rate < 1 {
		d.answer(replyTo, messages.BulkRefused{Status: messages.ReplayInvalid, Err: "rate must be at least 1 per second"})
		return
	}
	running := 0
	for _, j := range d.replay.jobs {
		if j.status.State == messages.JobRunning {
			running++
		}
	}
	if running >= d.cfg.Replay.MaxRunningJobs {
		d.answer(replyTo, messages.BulkRefused{Status: messages.ReplayBusy,
			Err: fmt.Sprintf("%d bulk jobs are running, the most allowed; wait for one to end or cancel one", running)})
		return
	}
	now := time.Now()
	j := &bulkJob{
		status: messages.JobStatus{
			ID: newJobID(), State: messages.JobRunning, Op: m.Op, Prefix: m.Prefix, Rate: m.Rate, Truncated: m.Truncated,
			Caller: m.Caller, CreatedAt: now.UTC(), Errors: []messages.JobError{}, InvalidKeys: []messages.JobError{},
		},
		interval: time.Second / time.Duration(m.Rate),
		nextAt:   now,
	}
	if m.Op == messages.JobOpKeep {
		j.ttl = m.TTL
		j.status.TTLSeconds = int64(m.TTL / time.Second)
	}
	j.status.Matched = len(m.Targets) + len(m.Invalid)
	for _, inv := range m.Invalid {
		j.status.Invalid++
		j.addInvalid(inv.Key, inv.Err, d.cfg.Replay.MaxJobErrors)
	}
	for _, t := range m.Targets {
		target := &t
		if m.Op == messages.JobOpKeep {
			target = nil // a keep needs no route
		}
		if res := d.check(t.Key, target); res != nil {
			j.status.Invalid++
			j.addInvalid(t.Key, res.Err, d.cfg.Replay.MaxJobErrors)
			continue
		}
		j.targets = append(j.targets, t)
	}
	d.keepJob(j)
	d.log.Info().Str("jobId", j.status.ID).Str("prefix", m.Prefix).Int("rate", m.Rate).Int("matched", j.status.Matched).
		Str("op", m.Op).Str("caller", m.Caller.Addr).Str("operator", m.Caller.Operator).Msg("bulk job started")
	d.audit(messages.AuditRecord{Action: messages.AuditBulkStart, Prefix: m.Prefix, JobID: j.status.ID,
		Outcome: messages.JobRunning, Caller: m.Caller, Rate: m.Rate, Counts: j.counts(),
		Op: j.auditOp(), TTLSeconds: j.status.TTLSeconds, Filter: m.Filter})
	d.answer(replyTo, j.snapshot())
	d.pumpJob(j)
}

// keepJob adds j, forgetting the oldest ended jobs past KeepJobs.
func (d *DLQ) keepJob(j *bulkJob) {
	d.replay.jobs[j.status.ID] = j
	d.replay.jobOrder = append(d.replay.jobOrder, j.status.ID)
	for i := 0; len(d.replay.jobs) > d.cfg.Replay.KeepJobs && i < len(d.replay.jobOrder); {
		id := d.replay.jobOrder[i]
		if old := d.replay.jobs[id]; old != nil && old.status.State != messages.JobRunning {
			delete(d.replay.jobs, id)
			d.replay.jobOrder = append(d.replay.jobOrder[:i], d.replay.jobOrder[i+1:]...)
			continue
		}
		i++
	}
}

// pumpJob starts the job's next replays as the rate and its in-flight bound
// allow, arms a timer for the next one, and ends the job when all are done.
func (d *DLQ) pumpJob(j *bulkJob) {
	now := time.Now()
	for j.status.State == messages.JobRunning && j.next < len(j.targets) && j.inflight < d.cfg.Replay.JobInflight {
		if wait := j.nextAt.Sub(now); wait > 0 {
			if !j.tickArmed {
				j.tickArmed = true
				engine, self, tick := d.engine, d.self, jobTick{from: d, id: j.status.ID}
				time.AfterFunc(wait, func() { engine.Send(self, tick) })
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
		if j.status.Op == messages.JobOpKeep {
			d.startKeep(t.Key, j.ttl, j.status.Caller, j.status.ID, nil)
		} else {
			d.startReplay(t, j.status.Caller, j.status.ID, false, nil)
		}
	}
	if j.status.State == messages.JobRunning && j.next >= len(j.targets) && j.inflight == 0 {
		d.endJob(j, messages.JobDone, "", j.status.Caller)
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func (d *DLQ) onJobReplayed(j *bulkJob, res messages.ReplayResult) {
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
		j.addInvalid(res.Key, res.Status.String()+": "+res.Err, d.cfg.Replay.MaxJobErrors)
	default:
		j.status.Failed++
		j.failRun++
		j.addError(res.Key, res.Status.String()+": "+res.Err, d.cfg.Replay.MaxJobErrors)
	}
	if j.status.State == messages.JobRunning && j.failRun >= d.cfg.Replay.AbortAfterFailures {
		d.endJob(j, messages.JobAborted, fmt.Sprintf("%d replays failed in a row (Redis or Kafka unavailable); last: %s", j.failRun, res.Err), j.status.Caller)
		return
	}
	d.pumpJob(j)
}

// endJob ends a running job; by is who ended it, for the audit trail.
func (d *DLQ) endJob(j *bulkJob, state, reason string, by messages.Caller) {
	now := time.Now().UTC()
	j.status.State, j.status.EndedAt, j.status.EndReason = state, &now, reason
	j.targets = nil
	action := messages.AuditBulkEnd
	if state == messages.JobCancelled {
		action = messages.AuditBulkCancel
	}
	d.log.Info().Str("jobId", j.status.ID).Str("state", state).Str("reason", reason).Int("replayed", j.status.Replayed).
		Int("failed", j.status.Failed).Int("skipped", j.status.Skipped).Msg("bulk replay ended")
	d.audit(messages.AuditRecord{Action: action, Prefix: j.status.Prefix, JobID: j.status.ID, Outcome: state,
		Error: reason, Caller: by, Rate: j.status.Rate, Counts: j.counts(), Op: j.auditOp(), TTLSeconds: j.status.TTLSeconds})
}

func (d *DLQ) onCancel(m messages.CancelJob, c *actor.Context) {
	j := d.replay.jobs[m.ID]
	if j == nil {
		c.Respond(messages.JobNotFound{ID: m.ID})
		return
	}
	if j.status.State == messages.JobRunning {
		d.endJob(j, messages.JobCancelled, "cancelled by "+callerName(m.Caller), m.Caller)
	}
	c.Respond(j.snapshot())
}

func callerName(c messages.Caller) string {
	if c.Operator != "" {
		return c.Operator + " (" + c.Addr + ")"
	}
	return c.Addr
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

// snapshot is the job's status as answered; it shares nothing mutable.
func (j *bulkJob) snapshot() messages.JobStatus {
	s := j.status
	s.JobCounts = *j.counts()
	s.Errors = append([]messages.JobError{}, j.status.Errors...)
	s.InvalidKeys = append([]messages.JobError{}, j.status.InvalidKeys...)
	if j.status.EndedAt != nil {
		t := *j.status.EndedAt
		s.EndedAt = &t
	}
	return s
}

// onDrain stops taking management work: running jobs are aborted (their
// replays in flight finish) and later requests are refused.
func (d *DLQ) onDrain() {
	if d.replay.draining {
		return
	}
	d.replay.draining = true
	for _, id := range d.replay.jobOrder {
		if j := d.replay.jobs[id]; j != nil && j.status.State == messages.JobRunning {
			d.endJob(j, messages.JobAborted, "the processor is shutting down", j.status.Caller)
		}
	}
}
