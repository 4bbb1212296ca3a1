package actors_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hobom/hobom-event-processor/actors"
	"github.com/hobom/hobom-event-processor/messages"
)

// The actor tests run the real tree against the in-memory ports below:
// no gRPC, Kafka or Redis, so `go test ./actors/` runs in seconds. Every
// effect on a port is appended to one shared journal, so a test can assert
// the order of effects across ports (the DLQ entry before the FAILED mark).

var errDown = errors.New("down (injected)")

// journal is the ordered list of effects on every port of one test.
type journal struct {
	mu      sync.Mutex
	entries []string
}

func (j *journal) add(format string, args ...any) {
	j.mu.Lock()
	j.entries = append(j.entries, fmt.Sprintf(format, args...))
	j.mu.Unlock()
}

// index returns the position of the first entry equal to e, -1 if none.
func (j *journal) index(e string) int {
	j.mu.Lock()
	defer j.mu.Unlock()
	for i, x := range j.entries {
		if x == e {
			return i
		}
	}
	return -1
}

func (j *journal) count(e string) int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return occurrences(j.entries, e)
}

// occurrences is how many times x stands in xs.
func occurrences[T comparable](xs []T, x T) int {
	n := 0
	for _, y := range xs {
		if y == x {
			n++
		}
	}
	return n
}

func (j *journal) String() string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return fmt.Sprint(j.entries)
}

// memBackend is the outbox backend in memory: Find returns the PENDING
// events of a type, marks change their status. failFinds and failMarks
// make that many calls fail first (-1: every call).
type memBackend struct {
	j         *journal
	mu        sync.Mutex
	events    []*messages.Event
	status    map[string]string
	finds     int
	limits    []int // the limit of every find, in order
	failFinds int
	failMarks int
	// markHook, when set, is called before each mark, outside the lock
	// (a test blocks chosen marks in it).
	markHook func(id, status string)
	// findHook, when set before the first find, is called in each find
	// after the rows are read, outside the lock (a test blocks a find in
	// it).
	findHook func()
	// markLeft is the time each mark's context had left when the mark
	// came, in order.
	markLeft []time.Duration
	// skipped are the ids each find through skippingBackend left out.
	skipped [][]string
	// afters is the cursor of every find through skippingBackend, in
	// order ("": none); ignoreCursor makes it a backend that does not
	// know the field.
	afters       []string
	ignoreCursor bool
	// ignoreLimit makes it an old backend that returns every matching row.
	ignoreLimit bool
}

func newBackend(j *journal) *memBackend { return &memBackend{j: j, status: map[string]string{}} }

// add makes n MESSAGE events PENDING, ids prefix-0 .. prefix-(n-1).
func (b *memBackend) add(prefix string, n int) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var ids []string
	for i := range n {
		id := fmt.Sprintf("%s-%d", prefix, i)
		b.events = append(b.events, &messages.Event{ID: "row-" + id, EventID: id, EventType: messages.EventTypeMessage,
			Status: messages.StatusPending, Message: &messages.MessagePayload{Title: id, Body: "b", Recipient: "r"}})
		b.status[id] = messages.StatusPending
		ids = append(ids, id)
	}
	return ids
}

// addWithoutEventID makes one PENDING MESSAGE row that has no eventId:
// the publisher cannot process it, so it stays PENDING and every find
// returns it again.
func (b *memBackend) addWithoutEventID(row string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.events = append(b.events, &messages.Event{ID: row, EventType: messages.EventTypeMessage,
		Status: messages.StatusPending, Message: &messages.MessagePayload{Title: row, Body: "b", Recipient: "r"}})
	b.status[""] = messages.StatusPending // statuses are kept by eventId
}

func (b *memBackend) Find(_ context.Context, _ messages.FindRPC, eventType, status string, limit int) ([]messages.Event, error) {
	out, _, err := b.find(eventType, status, limit, "")
	if b.findHook != nil {
		b.findHook() // with the rows read: rows added meanwhile are not in them
	}
	return out, err
}

// skippingBackend is memBackend as an actors.SkippingFinder, with the find
// cursor in the order rows were added (unless ignoreCursor): it records the
// cursor of each find (afters) and the ids each find left out (skipped),
// in order.
type skippingBackend struct{ *memBackend }

func (b skippingBackend) FindSkipping(_ context.Context, q messages.FindQuery, skip func(string) bool) ([]messages.Event, bool, error) {
	out, applied, err := b.find(q.EventType, q.Status, q.Limit, q.AfterEventID)
	if b.findHook != nil {
		b.findHook()
	}
	var left []string
	out = slices.DeleteFunc(out, func(e messages.Event) bool {
		if e.EventID != "" && skip != nil && skip(e.EventID) {
			left = append(left, e.EventID)
			return true
		}
		return false
	})
	b.mu.Lock()
	b.skipped = append(b.skipped, left)
	b.afters = append(b.afters, q.AfterEventID)
	b.mu.Unlock()
	return out, applied, err
}

// findCursors returns the cursor of each FindSkipping.
func (b *memBackend) findCursors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.afters)
}

// skippedByFind returns the ids each FindSkipping left out.
func (b *memBackend) skippedByFind() [][]string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.skipped)
}

// find returns the rows of eventType with status, after the row of the
// eventId after when it is set and known (applied).
func (b *memBackend) find(eventType, status string, limit int, after string) (out []messages.Event, applied bool, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.finds++
	b.limits = append(b.limits, limit)
	if b.ignoreLimit {
		limit = 0
	}
	if b.failFinds != 0 {
		b.failFinds--
		return nil, false, errDown
	}
	rows := b.events
	if after != "" && !b.ignoreCursor {
		if i := slices.IndexFunc(rows, func(e *messages.Event) bool { return e.EventID == after }); i >= 0 {
			rows, applied = rows[i+1:], true
		}
	}
	for _, e := range rows {
		if e.EventType == eventType && b.status[e.EventID] == status && (limit <= 0 || len(out) < limit) {
			out = append(out, *e)
		}
	}
	return out, applied, nil
}

func (b *memBackend) mark(id, status string) error {
	b.mu.Lock()
	hook := b.markHook
	b.mu.Unlock()
	if hook != nil {
		hook(id, status)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.failMarks != 0 {
		b.failMarks--
		return errDown
	}
	b.status[id] = status
	b.j.add("mark %s %s", status, id)
	return nil
}

func (b *memBackend) MarkSent(ctx context.Context, id string) error {
	b.noteDeadline(ctx)
	return b.mark(id, messages.StatusSent)
}
func (b *memBackend) MarkFailed(ctx context.Context, id, _ string) error {
	b.noteDeadline(ctx)
	return b.mark(id, messages.StatusFailed)
}

func (b *memBackend) noteDeadline(ctx context.Context) {
	left := time.Duration(-1) // no deadline
	if d, ok := ctx.Deadline(); ok {
		left = time.Until(d)
	}
	b.mu.Lock()
	b.markLeft = append(b.markLeft, left)
	b.mu.Unlock()
}

// marksLeft returns markLeft.
func (b *memBackend) marksLeft() []time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.markLeft)
}

func (b *memBackend) statusOf(id string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.status[id]
}

func (b *memBackend) findCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.finds
}

func (b *memBackend) findLimits() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]int(nil), b.limits...)
}

func (b *memBackend) set(f func(b *memBackend)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f(b)
}

// memKafka is the producer: it acks each record at once, from its own
// goroutine as franz-go does, unless fail says the attempt fails or hold
// is set (then promises wait until release).
type memKafka struct {
	j     *journal
	mu    sync.Mutex
	fail  func(key string, attempt int) bool
	tries map[string]int
	hold  bool
	held  []func()
}

func newKafka(j *journal) *memKafka { return &memKafka{j: j, tries: map[string]int{}} }

func (k *memKafka) Produce(_ context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	key := string(r.Key)
	k.mu.Lock()
	k.tries[key]++
	attempt := k.tries[key]
	var err error
	if k.fail != nil && k.fail(key, attempt) {
		err = errDown
	} else {
		k.j.add("record %s", key)
	}
	done := func() { promise(r, err) }
	if k.hold {
		k.held = append(k.held, done)
		k.mu.Unlock()
		return
	}
	k.mu.Unlock()
	go done()
}

// releaseFirst acks the first n held records (in the order they came)
// and goes on holding the others and new ones.
func (k *memKafka) releaseFirst(n int) {
	k.mu.Lock()
	n = min(n, len(k.held))
	first := slices.Clone(k.held[:n])
	k.held = slices.Delete(k.held, 0, n)
	k.mu.Unlock()
	for _, f := range first {
		go f()
	}
}

// release acks the held records and stops holding.
func (k *memKafka) release() {
	k.mu.Lock()
	held := k.held
	k.held, k.hold = nil, false
	k.mu.Unlock()
	for _, f := range held {
		go f()
	}
}

func (k *memKafka) attempts(key string) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.tries[key]
}

// memDLQ is the dead-letter queue in memory: the store the writer puts
// entries in and the admin side the replayer reads, deletes, locks and
// audits through. failPuts makes that many writes fail first (-1: every
// write). Every write is journalled ("dlq <key>", "delete <key>", "lock
// <key>", "refresh <key>", "unlock <key>", "audit <action> <key>").
type memDLQ struct {
	j        *journal
	mu       sync.Mutex
	entries  map[string]actors.DeadLetterMeta
	values   map[string][]byte
	locks    map[string]string // key -> token
	tokens   int
	audits   []messages.AuditRecord
	failPuts int
	// gate, when set for a key, holds a replay's read of it until closed.
	gate map[string]chan struct{}
	// afterPut, when set before the first write, is called after each
	// entry is written (outside the lock).
	afterPut func(key string)
	// afterFail, when set before the first write, is called after each
	// write failed by failPuts (outside the lock).
	afterFail func(key string)
}

func newDLQ(j *journal) *memDLQ {
	return &memDLQ{j: j, entries: map[string]actors.DeadLetterMeta{}, values: map[string][]byte{},
		locks: map[string]string{}, gate: map[string]chan struct{}{}}
}

func (d *memDLQ) Put(_ context.Context, key string, value []byte, meta actors.DeadLetterMeta, _ time.Duration) error {
	d.mu.Lock()
	if d.failPuts != 0 {
		d.failPuts--
		d.mu.Unlock()
		if d.afterFail != nil {
			d.afterFail(key)
		}
		return errDown
	}
	d.entries[key] = meta
	d.values[key] = value
	d.j.add("dlq %s", key)
	d.mu.Unlock()
	if d.afterPut != nil {
		d.afterPut(key)
	}
	return nil
}

func (d *memDLQ) entry(key string) (actors.DeadLetterMeta, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	m, ok := d.entries[key]
	return m, ok
}

// seed puts MESSAGE entries for ids without journalling them.
func (d *memDLQ) seed(ids ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, id := range ids {
		key := "dlq:menu:" + id
		d.entries[key] = actors.DeadLetterMeta{EventType: messages.EventTypeMessage, EventID: id}
		d.values[key] = []byte(`{"type":"MAIL_MESSAGE","title":"` + id + `","body":"b","recipient":"r"}`)
	}
}

func (d *memDLQ) Value(ctx context.Context, key string, _ int) ([]byte, int, bool, error) {
	d.mu.Lock()
	g := d.gate[key]
	d.mu.Unlock()
	if g != nil {
		select {
		case <-g:
		case <-ctx.Done():
			return nil, 0, false, ctx.Err()
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	v, ok := d.values[key]
	return v, len(v), ok, nil
}

func (d *memDLQ) Delete(_ context.Context, key string) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.values[key]
	delete(d.values, key)
	delete(d.entries, key)
	d.j.add("delete %s", key)
	return ok, nil
}

func (d *memDLQ) Lock(_ context.Context, key string, _ time.Duration) (string, bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, held := d.locks[key]; held {
		return "", false, nil
	}
	d.tokens++
	token := fmt.Sprint(d.tokens)
	d.locks[key] = token
	d.j.add("lock %s", key)
	return token, true, nil
}

func (d *memDLQ) Refresh(_ context.Context, key, token string, _ time.Duration) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.j.add("refresh %s", key)
	return d.locks[key] == token, nil
}

func (d *memDLQ) Unlock(_ context.Context, key, token string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.locks[key] == token {
		delete(d.locks, key)
		d.j.add("unlock %s", key)
	}
	return nil
}

func (d *memDLQ) locked(key string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.locks[key]
	return ok
}

// lockAs makes another process hold key's replay lock.
func (d *memDLQ) lockAs(key, token string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.locks[key] = token
}

func (d *memDLQ) Audit(_ context.Context, rec messages.AuditRecord) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.audits = append(d.audits, rec)
	d.j.add("audit %s %s", rec.Action, rec.Key)
	return nil
}

func (d *memDLQ) Keep(_ context.Context, key string, ttl time.Duration) (time.Duration, bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.values[key]
	if ok {
		d.j.add("keep %s", key)
	}
	return ttl, ok, nil
}

// hold makes replays of keys wait in their read until the returned
// function is called.
func (d *memDLQ) hold(keys ...string) (release func()) {
	g := make(chan struct{})
	d.mu.Lock()
	for _, k := range keys {
		d.gate[k] = g
	}
	d.mu.Unlock()
	var once sync.Once
	return func() { once.Do(func() { close(g) }) }
}

// memMemory is the publisher's memory of unmarked events in memory;
// writes are journalled ("remember <id>", "forget <id>").
type memMemory struct {
	j  *journal
	mu sync.Mutex
	m  map[string]messages.Unmarked
	// gate, when set, holds every write until it is closed; entered
	// counts the writes that began.
	gate    chan struct{}
	entered atomic.Int32
}

func newMemory(j *journal) *memMemory { return &memMemory{j: j, m: map[string]messages.Unmarked{}} }

func (m *memMemory) Write(_ context.Context, ops []actors.UnmarkedOp) error {
	m.entered.Add(1)
	if m.gate != nil {
		<-m.gate
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, op := range ops {
		for _, id := range op.EventIDs {
			if op.Forget {
				delete(m.m, id)
				m.j.add("forget %s", id)
			} else {
				m.m[id] = op.Unmarked
				m.j.add("remember %s", id)
			}
		}
	}
	return nil
}

func (m *memMemory) Lookup(_ context.Context, ids []string) (map[string]messages.Unmarked, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]messages.Unmarked{}
	for _, id := range ids {
		if u, ok := m.m[id]; ok {
			out[id] = u
		}
	}
	return out, nil
}

// memLease is the Redis side of the leases in memory: a lease is free or
// held by an owner under a token; share is the fair share Renew answers
// (0: every renewal says lost); down makes every call fail.
type memLease struct {
	j      *journal
	mu     sync.Mutex
	holder map[string]string
	tokens map[string]int64
	next   int64
	share  int
	down   bool
	// hang, while set, holds every Acquire and Renew until it is closed:
	// Redis neither answers nor fails.
	hang chan struct{}
	// hanging counts the calls that began waiting on hang.
	hanging atomic.Int32
}

func (l *memLease) waitHang() {
	l.mu.Lock()
	h := l.hang
	l.mu.Unlock()
	if h != nil {
		l.hanging.Add(1)
		<-h
	}
}

func newLease(j *journal) *memLease {
	return &memLease{j: j, holder: map[string]string{}, tokens: map[string]int64{}, share: 100}
}

func (l *memLease) Acquire(_ context.Context, name, owner string, _ time.Duration, held int) (int64, bool, error) {
	l.waitHang()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.down {
		return 0, false, errDown
	}
	switch h := l.holder[name]; {
	case h == owner:
		return l.tokens[name], true, nil
	case h != "" || held >= l.share:
		return 0, false, nil
	}
	l.next++
	l.holder[name], l.tokens[name] = owner, l.next
	l.j.add("acquire %s %d", name, l.next)
	return l.next, true, nil
}

func (l *memLease) Renew(_ context.Context, name, owner string, token int64, _ time.Duration) (int, error) {
	l.waitHang()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.down {
		return 0, errDown
	}
	if l.holder[name] != owner || l.tokens[name] != token {
		return 0, nil
	}
	l.j.add("renew %s %d", name, token)
	return l.share, nil
}

func (l *memLease) Release(_ context.Context, name, owner string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.down {
		l.j.add("release failed %s", name)
		return errDown
	}
	if l.holder[name] == owner {
		delete(l.holder, name)
		l.j.add("release %s", name)
	}
	return nil
}

func (l *memLease) set(f func(l *memLease)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f(l)
}

// steal gives the lease to another owner, as if this one's had expired.
func (l *memLease) steal(name string) {
	l.set(func(l *memLease) {
		l.next++
		l.holder[name], l.tokens[name] = "another-instance", l.next
	})
}

// world is one tree on the in-memory ports. A setup may set clock (the
// tree then runs on it) and lease (leases on; the test's mutate sets
// TreeConfig.Lease.TTL).
type world struct {
	j       *journal
	backend *memBackend
	kafka   *memKafka
	dlq     *memDLQ
	lease   *memLease
	clock   *manualClock
	tree    *actors.Tree
	engine  *actor.Engine
	// admin gives the tree w.dlq as its DeadLetterAdmin (replays); memory,
	// when set, is its UnmarkedStore. Set them in setup.
	admin  bool
	memory *memMemory
	// skipping gives the tree the backend as an actors.SkippingFinder.
	skipping bool
	// logs holds every line the tree logged (error level and above).
	logs logLines
}

// logLines collects log lines from the actors' goroutines.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, string(p))
	return len(p), nil
}

// count is how many lines contain s.
func (l *logLines) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n
}

// testConfig is a tree of the MESSAGE route with millisecond timings.
func testConfig() actors.TreeConfig {
	once := actors.RetryPolicy{Attempts: 1, Timeout: time.Second}
	return actors.TreeConfig{
		Routes: messages.DefaultRoutes()[:1],
		Poller: actors.PollerConfig{Interval: 10 * time.Millisecond, MaxBackoff: 40 * time.Millisecond, FindLimit: 100,
			FindTimeout: time.Second, BatchTimeout: 10 * time.Second},
		Publisher: actors.PublisherConfig{Attempts: 3, Backoff: time.Millisecond, MaxRecordBytes: 990_000, MaxInflightRecords: 100,
			Mark: once, MarkConcurrency: 4, UnmarkedMemory: 1000, Lookup: time.Second},
		DLQ:            actors.DLQConfig{TTL: time.Hour, Write: once, Mark: once, Concurrency: 1, MaxReasonBytes: 1024},
		RestartBackoff: 5 * time.Millisecond, MaxRestartBackoff: 40 * time.Millisecond, StableAfter: time.Minute, PollerInboxSize: 8,
	}
}

// start runs a tree built from testConfig, changed by mutate, on fresh
// in-memory ports; setup may configure the ports before the first poll.
// The tree is stopped when the test ends.
func start(t *testing.T, mutate func(*actors.TreeConfig), setup func(*world)) *world {
	t.Helper()
	return startWith(t, mutate, setup, nil)
}

// startWith is start with the actors' measurements sent to m.
func startWith(t *testing.T, mutate func(*actors.TreeConfig), setup func(*world), m actors.Metrics) *world {
	t.Helper()
	j := &journal{}
	w := &world{j: j, backend: newBackend(j), kafka: newKafka(j), dlq: newDLQ(j)}
	if setup != nil {
		setup(w)
	}
	cfg := testConfig()
	if mutate != nil {
		mutate(&cfg)
	}
	engine, err := actor.NewEngine(actor.NewEngineConfig())
	if err != nil {
		t.Fatal(err)
	}
	w.engine = engine
	log := zerolog.New(io.MultiWriter(zerolog.NewTestWriter(t), &w.logs)).Level(zerolog.ErrorLevel)
	deps := actors.Deps{Outbox: w.backend, Producer: actors.NeverFull{Client: w.kafka}, Store: w.dlq, Log: log, Metrics: m}
	if w.skipping {
		deps.Outbox = skippingBackend{w.backend}
	}
	if w.admin {
		deps.Admin = w.dlq
	}
	if w.memory != nil {
		deps.Memory = w.memory
	}
	if w.lease != nil {
		deps.Lease = w.lease
		if cfg.Lease.Owner == "" {
			cfg.Lease.Owner = "this-instance"
		}
	}
	if w.clock != nil {
		cfg.Clock = w.clock
	}
	w.tree, err = actors.StartTree(engine, cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.stop(t) })
	return w
}

func (w *world) stop(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.tree.Stop(ctx); err != nil {
		t.Errorf("stop: %v", err)
	}
}

func (w *world) allStatus(status string, ids ...string) func() bool {
	return func() bool {
		for _, id := range ids {
			if w.backend.statusOf(id) != status {
				return false
			}
		}
		return true
	}
}
