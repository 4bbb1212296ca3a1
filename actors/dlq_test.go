package actors_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/rs/zerolog"

	"github.com/hobom/hobom-event-processor/actors"
	"github.com/hobom/hobom-event-processor/messages"
)

// dlqRig is the DLQ actor on its own, spawned by the test on the in-memory
// ports and a manual clock: the tests send it what the publisher and the
// HTTP API send, and its answers to the publisher arrive in replies.
type dlqRig struct {
	j       *journal
	backend *memBackend
	kafka   *memKafka
	store   *memDLQ
	clock   *manualClock
	engine  *actor.Engine
	pid     *actor.PID
	inbox   *actor.PID
	replies chan any
}

func startDLQ(t *testing.T, mutate func(*actors.DLQConfig)) *dlqRig {
	t.Helper()
	j := &journal{}
	r := &dlqRig{j: j, backend: newBackend(j), kafka: newKafka(j), store: newDLQ(j),
		clock: newManualClock(), replies: make(chan any, 100)}
	once := actors.RetryPolicy{Attempts: 1, Timeout: time.Second}
	cfg := actors.DLQConfig{TTL: time.Hour, Write: once, Mark: once, Concurrency: 1, MaxReasonBytes: 1024,
		Replay: actors.ReplayConfig{LockTTL: 3 * time.Second, ProduceTimeout: wait, RedisTimeout: time.Second, MarkRounds: 1},
		Clock:  r.clock}
	if mutate != nil {
		mutate(&cfg)
	}
	engine, err := actor.NewEngine(actor.NewEngineConfig())
	if err != nil {
		t.Fatal(err)
	}
	r.engine = engine
	r.inbox = engine.SpawnFunc(func(c *actor.Context) {
		switch c.Message().(type) {
		case actor.Initialized, actor.Started, actor.Stopped:
		default:
			r.replies <- c.Message()
		}
	}, "inbox")
	r.pid = engine.Spawn(actors.NewDLQ(r.store, newMemory(j), r.backend, cfg, zerolog.Nop(), nil,
		actors.ReplayDeps{Admin: r.store, Producer: actors.NeverFull{Client: r.kafka}, Routes: messages.DefaultRoutes()}), "dlq", actor.WithID("0"))
	t.Cleanup(func() {
		r.kafka.release()
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		<-engine.PoisonCtx(ctx, r.pid).Done()
		if ctx.Err() != nil {
			t.Errorf("the DLQ actor did not stop within %v", wait)
		}
	})
	return r
}

// ask sends msg to the DLQ actor as the HTTP API does and returns the answer.
func (r *dlqRig) ask(t *testing.T, msg any) any {
	t.Helper()
	return askDLQ(t, r.engine, r.pid, msg)
}

func askDLQ(t *testing.T, e *actor.Engine, pid *actor.PID, msg any) any {
	t.Helper()
	res, err := e.Request(pid, msg, wait).Result()
	if err != nil {
		t.Fatalf("ask %T: %v", msg, err)
	}
	return res
}

// bulkHeldInFlight seeds the entries of ids under prefix, has Kafka hold
// their records, starts a bulk replay of them at 1,000/s and returns once
// every replay is in flight (one start a millisecond of the rig's clock).
func (r *dlqRig) bulkHeldInFlight(t *testing.T, prefix string, ids []string) messages.JobStatus {
	t.Helper()
	m := messages.BulkReplay{Prefix: prefix, Rate: 1000, Caller: messages.Caller{Addr: "test"}}
	for _, id := range ids {
		m.Targets = append(m.Targets, target(id))
	}
	r.store.seed(ids...)
	r.kafka.hold = true
	job, ok := r.ask(t, m).(messages.JobStatus)
	if !ok {
		t.Fatalf("bulk: %+v", job)
	}
	eventually(t, "every replay in flight", func() bool {
		for _, id := range ids {
			if r.kafka.attempts(id) != 1 {
				r.clock.Advance(time.Millisecond)
				return false
			}
		}
		return true
	})
	return job
}

// reply waits for the next answer to the publisher's side.
func (r *dlqRig) reply(t *testing.T) any {
	t.Helper()
	return within(t, r.replies, "no answer from the DLQ actor")
}

func target(id string) messages.ReplayTarget {
	route := messages.DefaultRoutes()[0]
	return messages.ReplayTarget{Key: route.DLQKey(id), EventID: id, Route: route}
}

// TestTheWriterWritesTheEntryBeforeTheFailedMarkAndRemembersBeforeTheSentMark:
// through the whole tree, an event that fails for good is in the DLQ before
// it is marked FAILED, and an acked event is in the memory of unmarked
// events before it is marked SENT (and forgotten after).
func TestTheWriterWritesTheEntryBeforeTheFailedMarkAndRemembersBeforeTheSentMark(t *testing.T) {
	w := start(t, nil, func(w *world) {
		w.memory = newMemory(w.j)
		w.backend.add("e", 4)
		w.kafka.fail = func(key string, _ int) bool { return key == "e-1" || key == "e-3" }
	})
	eventually(t, "every event resolved", func() bool {
		return w.allStatus(messages.StatusSent, "e-0", "e-2")() && w.allStatus(messages.StatusFailed, "e-1", "e-3")()
	})
	for _, id := range []string{"e-1", "e-3"} {
		entry, mark := w.j.index("dlq dlq:menu:"+id), w.j.index("mark FAILED "+id)
		if entry < 0 || mark < 0 || entry > mark {
			t.Errorf("%s: DLQ entry at %d, FAILED mark at %d; want the entry first: %s", id, entry, mark, w.j)
		}
	}
	for _, id := range []string{"e-0", "e-2"} {
		remembered, mark := w.j.index("remember "+id), w.j.index("mark SENT "+id)
		if remembered < 0 || mark < 0 || remembered > mark {
			t.Errorf("%s: remembered at %d, SENT mark at %d; want the memory first: %s", id, remembered, mark, w.j)
		}
	}
	eventually(t, "the SENT events forgotten", func() bool { return w.j.count("forget e-0") == 1 && w.j.count("forget e-2") == 1 })
}

// TestTheSentMarkWaitsForTheMemoryWrite: while the writer's write of the
// acked events to the memory of unmarked events hangs, the publisher makes
// no SENT mark; once it is written, the events are marked.
func TestTheSentMarkWaitsForTheMemoryWrite(t *testing.T) {
	gate := make(chan struct{})
	// flushed counts the memFlush messages the publisher handled: it
	// turns the acks it took into the memory write then, and a mark made
	// at the ack would have been queued by then.
	var flushed atomic.Int32
	w := start(t, func(cfg *actors.TreeConfig) {
		cfg.ChildMiddleware = []actor.MiddlewareFunc{func(next actor.ReceiveFunc) actor.ReceiveFunc {
			return func(c *actor.Context) {
				next(c)
				if strings.Contains(c.PID().ID, "publisher") && fmt.Sprintf("%T", c.Message()) == "actors.memFlush" {
					flushed.Add(1)
				}
			}
		}}
	}, func(w *world) {
		w.memory = newMemory(w.j)
		w.memory.gate = gate
		w.backend.add("e", 2)
	})
	var once sync.Once
	open := func() { once.Do(func() { close(gate) }) }
	t.Cleanup(open) // before the tree's stop, which waits for the write
	eventually(t, "the acked events' memory write under way", func() bool { return w.memory.entered.Load() > 0 })
	eventually(t, "the publisher handled the acks", func() bool { return flushed.Load() > 0 && w.kafka.attempts("e-0") == 1 && w.kafka.attempts("e-1") == 1 })
	if n := w.j.count("mark SENT e-0") + w.j.count("mark SENT e-1"); n != 0 {
		t.Fatalf("%d SENT marks while the memory write hangs: %s", n, w.j)
	}
	open()
	eventually(t, "the events SENT once remembered", w.allStatus(messages.StatusSent, "e-0", "e-1"))
}

// within returns the next value of ch, failing with failure when none
// comes within wait.
func within[T any](t *testing.T, ch <-chan T, failure string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(wait):
		t.Fatal(failure)
		var zero T
		return zero
	}
}

// eventually is testenv.Eventually with the tests' usual wait, checking
// every millisecond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", wait, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestFailedMarksAreFencedLikeSentMarks: a dead letter of a batch fetched
// under a lease tenure whose deadline has passed gets neither its entry
// nor its FAILED mark (the event stays PENDING for the new holder); one
// whose deadline passes between the entry and the mark keeps the entry
// and is not marked; a tenure before its deadline gets both.
func TestFailedMarksAreFencedLikeSentMarks(t *testing.T) {
	r := startDLQ(t, nil)
	const valid, lost, lostAfterWrite = 1, 2, 3
	now := r.clock.Now()
	until := map[int64]time.Time{
		valid:          now.Add(time.Hour),
		lost:           now.Add(-time.Nanosecond),
		lostAfterWrite: now.Add(time.Second),
	}
	// The write of "late" takes the clock past its tenure's deadline.
	r.store.afterPut = func(key string) {
		if key == "dlq:menu:late" {
			r.clock.Advance(2 * time.Second)
		}
	}
	route := messages.DefaultRoutes()[0]
	send := func(id string, token int64, stored bool) messages.DeadLetterResult {
		t.Helper()
		r.engine.Send(r.pid, messages.DeadLetter{Route: route, EventID: id, Value: []byte(`{}`), Reason: "kafka: down",
			StoredAlready: stored, Fence: messages.Fence{Name: route.EventType, Token: token, Until: until[token]}, ReplyTo: r.inbox})
		res, ok := r.reply(t).(messages.DeadLetterResult)
		if !ok || res.EventID != id {
			t.Fatalf("answer %+v, want the DeadLetterResult of %s", res, id)
		}
		return res
	}
	if res := send("ok", valid, false); res.Outcome != messages.OutcomeFailed {
		t.Errorf("valid tenure: outcome %v, want failed", res.Outcome)
	}
	if res := send("gone", lost, false); res.Outcome != messages.OutcomeDeferred {
		t.Errorf("lost tenure: outcome %v, want deferred (left PENDING)", res.Outcome)
	}
	if res := send("late", lostAfterWrite, false); res.Outcome != messages.OutcomeDeferred {
		t.Errorf("tenure lost after the write: outcome %v, want deferred", res.Outcome)
	}
	if res := send("retry", lost, true); res.Outcome != messages.OutcomeDeferred {
		t.Errorf("mark retry under a lost tenure: outcome %v, want deferred", res.Outcome)
	}
	want := map[string]bool{"dlq dlq:menu:ok": true, "mark FAILED ok": true, "dlq dlq:menu:late": true}
	for _, e := range []string{"dlq dlq:menu:ok", "mark FAILED ok", "dlq dlq:menu:gone", "mark FAILED gone",
		"dlq dlq:menu:late", "mark FAILED late", "mark FAILED retry"} {
		if got := r.j.count(e) == 1; got != want[e] {
			t.Errorf("%q written: %v, want %v (journal %s)", e, got, want[e], r.j)
		}
	}
}

// TestADLQWriteRetryPastTheDeadlineIsNotWritten: the fence is checked
// before every try of the DLQ write, not once before the first: a retry
// that comes after the tenure's deadline writes no entry, and the answer
// says fenced.
func TestADLQWriteRetryPastTheDeadlineIsNotWritten(t *testing.T) {
	r := startDLQ(t, func(cfg *actors.DLQConfig) {
		cfg.Write = actors.RetryPolicy{Attempts: 3, Timeout: time.Second}
	})
	r.store.failPuts = 1
	// The failed first try takes the clock past the tenure's deadline.
	r.store.afterFail = func(string) { r.clock.Advance(2 * time.Second) }
	route := messages.DefaultRoutes()[0]
	r.engine.Send(r.pid, messages.DeadLetter{Route: route, EventID: "late", Value: []byte(`{}`), Reason: "kafka: down",
		Fence: messages.Fence{Name: route.EventType, Token: 1, Until: r.clock.Now().Add(time.Second)}, ReplyTo: r.inbox})
	res, ok := r.reply(t).(messages.DeadLetterResult)
	if n := r.j.count("dlq dlq:menu:late") + r.j.count("mark FAILED late"); n != 0 {
		t.Fatalf("entry or mark written after the deadline: %s", r.j)
	}
	if !ok || res.Outcome != messages.OutcomeDeferred || !res.Fenced {
		t.Fatalf("answer %+v, want deferred and fenced", res)
	}
}

// TestReplayLocking: a replay holds its key's lock while it runs and
// refreshes it on the clock, so a second replay of the key is refused as
// locked; the lock is released after; a lock another process holds
// refuses the replay without reading or publishing anything.
func TestReplayLocking(t *testing.T) {
	r := startDLQ(t, nil)
	r.store.seed("r1", "r2")
	key := target("r1").Key
	r.kafka.hold = true
	first := make(chan any, 1)
	go func() {
		res, err := r.engine.Request(r.pid, messages.Replay{Target: target("r1")}, wait).Result()
		if err != nil {
			res = err
		}
		first <- res
	}()
	eventually(t, "the first replay producing", func() bool { return r.kafka.attempts("r1") == 1 })

	if res := r.ask(t, messages.Replay{Target: target("r1")}).(messages.ReplayResult); res.Status != messages.ReplayBusy {
		t.Errorf("second replay of a locked key: %v (%s), want busy", res.Status, res.Err)
	}
	// A long replay: every third of the lock's TTL it is refreshed.
	for i := 1; i <= 3; i++ {
		r.clock.Advance(time.Second)
		if n := r.j.count("refresh " + key); n != i {
			t.Fatalf("after %v the lock was refreshed %d times, want %d", time.Duration(i)*time.Second, n, i)
		}
	}
	if !r.store.locked(key) {
		t.Fatal("the lock was lost during the replay")
	}
	r.kafka.release()
	if res, ok := (<-first).(messages.ReplayResult); !ok || res.Status != messages.ReplayDone {
		t.Fatalf("first replay: %+v, want done", res)
	}
	if r.store.locked(key) || r.j.count("unlock "+key) != 1 {
		t.Errorf("the lock is still held after the replay: %s", r.j)
	}
	if _, ok := r.store.entry(key); ok {
		t.Error("the entry is still there after the replay")
	}
	r.clock.Advance(time.Hour)
	if n := r.j.count("refresh " + key); n != 3 {
		t.Errorf("refreshed %d times, 3 before the replay ended and none after", n)
	}
	eventually(t, "the replayed event marked SENT", func() bool { return r.backend.statusOf("r1") == messages.StatusSent })

	// Another process holds r2's lock.
	r.store.lockAs(target("r2").Key, "other-process")
	if res := r.ask(t, messages.Replay{Target: target("r2")}).(messages.ReplayResult); res.Status != messages.ReplayBusy {
		t.Errorf("replay of a key another process holds: %v (%s), want busy", res.Status, res.Err)
	}
	if _, ok := r.store.entry(target("r2").Key); !ok || r.kafka.attempts("r2") != 0 {
		t.Errorf("a refused replay touched the entry or Kafka: %s", r.j)
	}
}

// jobPID is the PID of a bulk job's actor, nil when it is not running.
func (r *dlqRig) jobPID(id string) *actor.PID {
	return r.engine.Registry.GetPID(r.pid.ID+"/replayer/0/job", id)
}

func (r *dlqRig) job(t *testing.T, id string) messages.JobStatus {
	t.Helper()
	s, ok := r.ask(t, messages.JobQuery{ID: id}).(messages.JobStatus)
	if !ok {
		t.Fatalf("job %s not found", id)
	}
	return s
}

// TestEachBulkJobRunsInAnActorOfItsOwn: two jobs run at once, each paced
// by its own actor on the clock; cancelling one stops its starts, not the
// other's; each job's actor is gone once the job ended and its replays in
// flight finished, and its status stays queryable.
func TestEachBulkJobRunsInAnActorOfItsOwn(t *testing.T) {
	r := startDLQ(t, nil)
	r.store.seed("a0", "a1", "a2", "b0", "b1", "b2")
	r.kafka.hold = true
	bulk := func(prefix string) messages.JobStatus {
		t.Helper()
		m := messages.BulkReplay{Prefix: "dlq:menu:" + prefix, Rate: 1, Caller: messages.Caller{Addr: "test"}}
		for i := range 3 {
			m.Targets = append(m.Targets, target(prefix+string(rune('0'+i))))
		}
		s, ok := r.ask(t, m).(messages.JobStatus)
		if !ok || s.State != messages.JobRunning {
			t.Fatalf("bulk %s: %+v", prefix, s)
		}
		return s
	}
	a, b := bulk("a"), bulk("b")
	if a.ID == b.ID || r.jobPID(a.ID) == nil || r.jobPID(b.ID) == nil {
		t.Fatalf("two jobs, want an actor each: %s %v, %s %v", a.ID, r.jobPID(a.ID), b.ID, r.jobPID(b.ID))
	}
	// Rate 1/s: each job started its first replay at once, both in flight together.
	eventually(t, "a0 and b0 in flight", func() bool { return r.kafka.attempts("a0") == 1 && r.kafka.attempts("b0") == 1 })

	cancelled, ok := r.ask(t, messages.CancelJob{ID: a.ID, Caller: messages.Caller{Addr: "test"}}).(messages.JobStatus)
	if !ok || cancelled.State != messages.JobCancelled {
		t.Fatalf("cancel: %+v", cancelled)
	}
	if n := r.kafka.attempts("b1"); n != 0 {
		t.Fatalf("b1 started before its time (rate 1/s)")
	}
	// The clock moves on until b's last replay started (each start arms
	// the next tick after the job's actor handled the previous one).
	eventually(t, "b1 and b2 started", func() bool {
		r.clock.Advance(time.Second)
		return r.kafka.attempts("b1") == 1 && r.kafka.attempts("b2") == 1
	})
	r.clock.Advance(5 * time.Second)
	if n := r.kafka.attempts("a1") + r.kafka.attempts("a2"); n != 0 {
		t.Errorf("the cancelled job started %d more replays", n)
	}
	r.kafka.release()
	eventually(t, "both jobs' actors gone", func() bool { return r.jobPID(a.ID) == nil && r.jobPID(b.ID) == nil })
	if s := r.job(t, a.ID); s.State != messages.JobCancelled || s.Replayed != 1 || s.InFlight != 0 || s.Remaining != 2 {
		t.Errorf("cancelled job: state %s, replayed %d, in flight %d, remaining %d; want cancelled, 1, 0, 2", s.State, s.Replayed, s.InFlight, s.Remaining)
	}
	if s := r.job(t, b.ID); s.State != messages.JobDone || s.Replayed != 3 {
		t.Errorf("job b: state %s, replayed %d; want done, 3", s.State, s.Replayed)
	}
	for _, k := range []string{"a1", "a2"} {
		if _, ok := r.store.entry(target(k).Key); !ok {
			t.Errorf("%s replayed by a cancelled job", k)
		}
	}
}

// TestAReplayerPanicDoesNotRestartTheWriter: while the replayer crashes
// again and again, the DLQ actor restarts it (with backoff) and nothing
// else: the writer keeps its one instance and failures keep being
// dead-lettered and marked FAILED; once the panics stop, replays work.
func TestAReplayerPanicDoesNotRestartTheWriter(t *testing.T) {
	var on atomic.Bool
	on.Store(true)
	var writerStarts atomic.Int32
	countWriter := func(next actor.ReceiveFunc) actor.ReceiveFunc {
		return func(c *actor.Context) {
			if _, ok := c.Message().(actor.Started); ok && strings.HasSuffix(c.PID().ID, "/writer/0") {
				writerStarts.Add(1)
			}
			next(c)
		}
	}
	m := &restarts{}
	w := startWith(t, func(cfg *actors.TreeConfig) {
		cfg.ChildMiddleware = []actor.MiddlewareFunc{countWriter, panicking("replayer", &on)}
	}, func(w *world) {
		w.admin = true
		w.dlq.seed("r")
		w.kafka.fail = func(key string, _ int) bool { return strings.HasPrefix(key, "f-") }
	}, m)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // keeps the replayer crashing
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
				w.engine.Send(w.tree.DLQ(), messages.Replay{Target: target("r")})
			}
		}
	}()
	eventually(t, "the replayer crashing", func() bool { return len(m.of("dlq:replayer")) >= 2 })
	ids := w.backend.add("f", 20)
	eventually(t, "failures dead-lettered and marked FAILED meanwhile", w.allStatus(messages.StatusFailed, ids...))
	crashes := len(m.of("dlq:replayer"))
	close(stop)
	wg.Wait()
	for _, id := range ids {
		if _, ok := w.dlq.entry("dlq:menu:" + id); !ok {
			t.Errorf("%s FAILED without its DLQ entry", id)
		}
	}
	if n, d := len(m.of("dlq:writer")), len(m.of("dlq")); n != 0 || d != 0 || writerStarts.Load() != 1 {
		t.Errorf("writer restarted %d times (started %d times), DLQ actor %d times; want 0, 1, 0", n, writerStarts.Load(), d)
	}
	t.Logf("the replayer crashed %d times while 20 events were dead-lettered", crashes)
	on.Store(false)
	eventually(t, "replays work again", func() bool {
		// A request sent while the replayer was down is lost (the asker
		// times out); one that timed out on a loaded machine may still
		// have replayed the entry, and the next finds it gone.
		res, err := w.engine.Request(w.tree.DLQ(), messages.Replay{Target: target("r")}, time.Second).Result()
		rr, ok := res.(messages.ReplayResult)
		return err == nil && ok && (rr.Status == messages.ReplayDone || rr.Status == messages.ReplayNotFound)
	})
	if _, ok := w.dlq.entry(target("r").Key); ok || w.j.count("record r") != 1 {
		t.Errorf("after the panics the entry was not replayed once: %s", w.j)
	}
}

// TestASlowBulkJobDoesNotDelayDeadLettering: a bulk job whose replays are
// slow to read and whose SENT marks hang does not hold up the failures
// the publisher dead-letters meanwhile (the writer has one DLQ write in
// flight at a time here).
func TestASlowBulkJobDoesNotDelayDeadLettering(t *testing.T) {
	gate := make(chan struct{})
	var old []string
	w := start(t, nil, func(w *world) {
		w.admin = true
		for i := range 10 {
			old = append(old, "old-"+string(rune('0'+i)))
		}
		w.dlq.seed(old...)
		w.backend.markHook = func(id, status string) {
			if strings.HasPrefix(id, "old-") {
				<-gate // the backend hangs on the replayed events' SENT marks
			}
		}
		w.kafka.fail = func(key string, _ int) bool { return strings.HasPrefix(key, "e-") }
	})
	defer func() {
		select {
		case <-gate:
		default:
			close(gate)
		}
	}()
	var keys []string
	for _, id := range old[5:] {
		keys = append(keys, target(id).Key)
	}
	releaseReads := w.dlq.hold(keys...) // and half of the replays wait in their read
	defer releaseReads()
	m := messages.BulkReplay{Prefix: "dlq:menu:old-", Rate: 1000, Caller: messages.Caller{Addr: "test"}}
	for _, id := range old {
		m.Targets = append(m.Targets, target(id))
	}
	job, ok := askDLQ(t, w.engine, w.tree.DLQ(), m).(messages.JobStatus)
	if !ok {
		t.Fatalf("bulk: %+v", job)
	}
	eventually(t, "the job's first replays published", func() bool { return w.j.count("record old-0") == 1 })

	ids := w.backend.add("e", 5)
	eventually(t, "failures dead-lettered while the job hangs", w.allStatus(messages.StatusFailed, ids...))
	if s, _ := askDLQ(t, w.engine, w.tree.DLQ(), messages.JobQuery{ID: job.ID}).(messages.JobStatus); s.State != messages.JobRunning {
		t.Fatalf("the job is %s, want it still running while the failures were handled", s.State)
	}
	close(gate)
	releaseReads()
	eventually(t, "the job done", func() bool {
		s, _ := askDLQ(t, w.engine, w.tree.DLQ(), messages.JobQuery{ID: job.ID}).(messages.JobStatus)
		return s.State == messages.JobDone && s.Replayed == 10
	})
	eventually(t, "the replayed events marked SENT", w.allStatus(messages.StatusSent, old...))
}

// TestAWriterPanicRestartsOnlyTheWriterAndThePublisherIsTold: the DLQ
// actor restarts its crashed writer, not the replayer, and tells the
// publisher, which leaves the events it had handed over PENDING instead of
// waiting for answers that will not come (the batch timeout here is
// longer than the test waits); once the panics stop they are dead-lettered.
func TestAWriterPanicRestartsOnlyTheWriterAndThePublisherIsTold(t *testing.T) {
	var on atomic.Bool
	on.Store(true)
	m := &restarts{}
	w := startWith(t, func(cfg *actors.TreeConfig) {
		cfg.ChildMiddleware = []actor.MiddlewareFunc{panicking("writer", &on)}
	}, func(w *world) {
		w.admin = true
		w.kafka.fail = func(key string, _ int) bool { return strings.HasPrefix(key, "w-") }
	}, m)
	ids := w.backend.add("w", 3)
	eventually(t, "the writer crashing", func() bool { return len(m.of("dlq:writer")) >= 2 })
	on.Store(false)
	eventually(t, "the events dead-lettered once the writer works", w.allStatus(messages.StatusFailed, ids...))
	if r, d := len(m.of("dlq:replayer")), len(m.of("dlq")); r != 0 || d != 0 {
		t.Errorf("replayer restarted %d times, DLQ actor %d times; want 0, 0", r, d)
	}
}

// TestABulkJobThatPanicsEndsAbortedAndTheReplayerGoesOn: a job's actor
// that panics is not restarted; its job ends as aborted with the reason,
// its actor is stopped, and the replayer serves the next request.
func TestABulkJobThatPanicsEndsAbortedAndTheReplayerGoesOn(t *testing.T) {
	var on atomic.Bool
	on.Store(true)
	r := startDLQ(t, func(cfg *actors.DLQConfig) { cfg.ChildMiddleware = []actor.MiddlewareFunc{panicking("job", &on)} })
	r.store.seed("j0", "j1", "single")
	job, ok := r.ask(t, messages.BulkReplay{Prefix: "dlq:menu:j", Rate: 1, Targets: []messages.ReplayTarget{target("j0"), target("j1")}, Caller: messages.Caller{Addr: "test"}}).(messages.JobStatus)
	if !ok {
		t.Fatalf("bulk: %+v", job)
	}
	eventually(t, "the job aborted", func() bool {
		s := r.job(t, job.ID)
		return s.State == messages.JobAborted && strings.Contains(s.EndReason, "crashed")
	})
	eventually(t, "the job's actor gone", func() bool { return r.jobPID(job.ID) == nil })
	on.Store(false)
	if res := r.ask(t, messages.Replay{Target: target("single")}).(messages.ReplayResult); res.Status != messages.ReplayDone {
		t.Errorf("replay after a job crashed: %v (%s)", res.Status, res.Err)
	}
}

// TestABulkJobThatPanicsWithReplaysInFlightLeavesNoneFailedInTheBackend:
// a job's actor panics while its replays are in flight (Kafka holds their
// records). Those replays go on, publish and delete their entries after
// the job is gone, so each must still get its SENT mark: no event is in
// Kafka without its DLQ entry and still FAILED in the backend. The job's
// end is in the audit trail, its status counts the replays that finished
// after the crash, and a drain waits for them.
func TestABulkJobThatPanicsWithReplaysInFlightLeavesNoneFailedInTheBackend(t *testing.T) {
	var on atomic.Bool
	r := startDLQ(t, func(cfg *actors.DLQConfig) { cfg.ChildMiddleware = []actor.MiddlewareFunc{panicking("job", &on)} })
	const n = 8 // the default JobInflight: every replay in flight at once
	var ids []string
	for i := range n {
		ids = append(ids, "p"+string(rune('0'+i)))
	}
	job := r.bulkHeldInFlight(t, "dlq:menu:p", ids)
	on.Store(true)
	r.engine.Send(r.jobPID(job.ID), "poke") // the job's actor panics on it
	eventually(t, "the job aborted and its actor gone", func() bool {
		s := r.job(t, job.ID)
		return s.State == messages.JobAborted && strings.Contains(s.EndReason, "crashed") && r.jobPID(job.ID) == nil
	})
	r.engine.Send(r.pid, messages.Drain{ReplyTo: r.inbox})
	select {
	case m := <-r.replies:
		t.Fatalf("drained (%T) while the crashed job's replays were in flight", m)
	case <-time.After(50 * time.Millisecond):
	}
	r.kafka.release()
	eventually(t, "every replay published and its entry deleted", func() bool {
		for _, id := range ids {
			if _, kept := r.store.entry(target(id).Key); kept || r.j.count("record "+id) != 1 {
				return false
			}
		}
		return true
	})
	if _, ok := r.reply(t).(messages.Drained); !ok {
		t.Errorf("no Drained after the crashed job's replays finished")
	}
	// The drain waited for the SENT marks too: each is made by now.
	for _, id := range ids {
		if s := r.backend.statusOf(id); s != messages.StatusSent || r.j.count("mark SENT "+id) != 1 {
			t.Errorf("%s published and its DLQ entry deleted, but the backend has it %q after %d SENT marks, want SENT after 1: %s",
				id, s, r.j.count("mark SENT "+id), r.j)
		}
	}
	s := r.job(t, job.ID)
	if s.Replayed != n || s.InFlight != 0 || s.Remaining != 0 {
		t.Errorf("crashed job: replayed %d, in flight %d, remaining %d; want %d, 0, 0", s.Replayed, s.InFlight, s.Remaining, n)
	}
	ends := 0
	r.store.mu.Lock()
	for _, a := range r.store.audits {
		if a.JobID == job.ID && a.Action == messages.AuditBulkEnd && a.Outcome == messages.JobAborted && strings.Contains(a.Error, "crashed") {
			ends++
		}
	}
	r.store.mu.Unlock()
	if ends != 1 {
		t.Errorf("the audit trail has %d records of the crashed job's end, want 1: %s", ends, r.j)
	}
}

// TestAReplayerPanicWithJobReplaysInFlightStillMarksThemSent: the replayer
// crashes while a bulk job's replays are in flight (Kafka holds their
// records); the job ends with it. The replays go on and publish after the
// replayer was restarted, and the new replayer marks each SENT once.
func TestAReplayerPanicWithJobReplaysInFlightStillMarksThemSent(t *testing.T) {
	boom := func(next actor.ReceiveFunc) actor.ReceiveFunc {
		return func(c *actor.Context) {
			if s, ok := c.Message().(string); ok && s == "boom" {
				panic("injected panic in " + c.PID().ID)
			}
			next(c)
		}
	}
	r := startDLQ(t, func(cfg *actors.DLQConfig) { cfg.ChildMiddleware = []actor.MiddlewareFunc{boom} })
	ids := []string{"q0", "q1", "q2", "q3"}
	job := r.bulkHeldInFlight(t, "dlq:menu:q", ids)
	replayer := r.engine.Registry.GetPID(r.pid.ID+"/replayer", "0")
	if replayer == nil {
		t.Fatal("no replayer")
	}
	r.engine.Send(replayer, "boom")
	eventually(t, "a new replayer, without the job", func() bool {
		r.clock.Advance(100 * time.Millisecond) // the restart's backoff is on the clock
		res, err := r.engine.Request(r.pid, messages.JobQuery{ID: job.ID}, 200*time.Millisecond).Result()
		_, gone := res.(messages.JobNotFound)
		return err == nil && gone
	})
	r.kafka.release()
	eventually(t, "every published replay marked SENT once", func() bool {
		for _, id := range ids {
			if _, kept := r.store.entry(target(id).Key); kept || r.j.count("record "+id) != 1 ||
				r.backend.statusOf(id) != messages.StatusSent || r.j.count("mark SENT "+id) != 1 {
				return false
			}
		}
		return true
	})
}

// TestWriteRetriesWaitTheirBackoffOnTheClock: a DLQ write that failed is
// tried again only once the policy's clock has passed the (jittered)
// backoff, and
// the entry is then written before the FAILED mark.
func TestWriteRetriesWaitTheirBackoffOnTheClock(t *testing.T) {
	backoff := newManualClock() // the retries' own clock: no other timer on it
	r := startDLQ(t, func(cfg *actors.DLQConfig) {
		cfg.Write = actors.RetryPolicy{Attempts: 3, Backoff: time.Second, Timeout: time.Second, Clock: backoff}
	})
	r.store.failPuts = 1
	route := messages.DefaultRoutes()[0]
	r.engine.Send(r.pid, messages.DeadLetter{Route: route, EventID: "slow", Value: []byte(`{}`), Reason: "kafka: down", ReplyTo: r.inbox})
	eventually(t, "the worker waiting its backoff", func() bool { return backoff.Pending() == 1 })
	// The backoff is 1 s less up to a fifth of jitter: nothing before 0.8 s.
	backoff.Advance(800*time.Millisecond - time.Millisecond)
	if backoff.Pending() != 1 || r.j.count("dlq dlq:menu:slow") != 0 {
		t.Fatalf("retried before the backoff passed: pending %d, %s", backoff.Pending(), r.j)
	}
	backoff.Advance(200*time.Millisecond + time.Millisecond)
	res, ok := r.reply(t).(messages.DeadLetterResult)
	if !ok || res.Outcome != messages.OutcomeFailed {
		t.Fatalf("answer %+v, want failed (entry and mark written)", res)
	}
	if r.j.count("dlq dlq:menu:slow") != 1 || r.j.count("mark FAILED slow") != 1 {
		t.Fatalf("want one entry and one FAILED mark after the retry: %s", r.j)
	}
}
