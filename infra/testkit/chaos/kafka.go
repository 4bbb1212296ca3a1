package chaos

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hobom/hobom-event-processor/infra/testkit/brokerproc"
)

// Topics the processor writes (docs/contract.md §2).
const (
	topicMessages = "hobom.messages"
	topicLogs     = "hobom.logs"
)

// kafkaWorld is the Kafka cluster: a kfake broker process of its own
// (infra/brokerproc), so that the suite can SIGKILL it, SIGSTOP it and
// restart it empty, and the knobs of the gentler faults (produce errors and
// holds, the cluster's connections closed, a node removed), which the
// broker process applies from commands on its stdin.
//
// The knobs are kept here too: a command the broker cannot take (it is
// killed or paused) is applied once it runs again, and a restarted broker
// gets the faults still in force.
//
// A restart empty or a topic recreated loses records already in Kafka, so
// a consumer reads both topics all the time (watch): before such a fault
// it catches up with the end offsets, and what it read is kept (lost) and
// added to the final read by the verifier.
type kafkaWorld struct {
	b     *brokerproc.Broker
	addrs []string

	mu   sync.Mutex
	down bool
	// removed are the nodes the faults want out of the cluster; applied
	// those the running broker process has removed. They differ while
	// the broker is paused or killed (a bounce that starts or ends then
	// waits) and after a restart (a new process has every node):
	// reapply sends the difference, never a node's removal twice.
	removed map[int32]bool
	applied map[int32]bool
	errWin  *Fault
	holdWin *Fault
	paused  bool
	// frozen: keep has stopped appends and lifted kafka-down to read the
	// topics about to be destroyed; a window that ends or starts meanwhile
	// (apply runs on the window's timer, without op) only records its
	// knob, which the destroyer's reapply sends once they are gone.
	frozen bool

	logPath string // the broker's stderr

	// op serialises the process faults (kill, restart, recreate, pause,
	// resume, clear): window ends run on timers of their own.
	op    sync.Mutex
	watch *watcher
	// lost holds, per event id, the timestamps of the records read from
	// topics that were destroyed since (restart empty, topic recreated, the
	// broker process killed or crashed); destroyed names the faults that
	// destroyed them; rereads counts records the watchers read twice.
	lost        map[string][]time.Time
	lostRecords int
	rereads     int
	destroyed   []string
	keepErrors  []string // topics keep could not read before their destruction

	// crashes are the broker processes that died by themselves (a kfake
	// panic, say): harness events, each followed by a restart (empty).
	crashes []brokerCrash
	// onCrash, when set, is told of each crash (the runner records it as a
	// moment that can publish twice: records in flight were lost).
	onCrash func(at time.Time)
	stop    chan struct{}
	stopped chan struct{}
}

// brokerCrash is a broker process that died without the suite killing it.
type brokerCrash struct {
	at      time.Time
	exit    string
	restart error // of the restart that followed (nil: it serves again)
	log     string
}

func startKafka(dir string, brokers int, seed uint64) (*kafkaWorld, error) {
	bin, err := brokerproc.Build(context.Background(), dir)
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "kafka.log"))
	if err != nil {
		return nil, err
	}
	b, err := brokerproc.Start(bin, brokerproc.Options{
		Brokers: brokers, Seed: seed, Topics: []string{topicMessages, topicLogs}, Partitions: 3, Stderr: logf,
	})
	if err != nil {
		return nil, err
	}
	k := &kafkaWorld{b: b, addrs: b.Addrs(), removed: map[int32]bool{}, applied: map[int32]bool{}, lost: map[string][]time.Time{},
		stop: make(chan struct{}), stopped: make(chan struct{})}
	if k.watch, err = newWatcher(k.addrs); err != nil {
		b.Close()
		return nil, err
	}
	k.logPath = logf.Name()
	go k.monitor()
	return k, nil
}

func (k *kafkaWorld) Close() {
	close(k.stop)
	<-k.stopped
	if k.watch != nil {
		k.watch.close()
	}
	k.b.Close()
}

// monitor restarts a broker process that died by itself. The suite's own
// kills are not crashes (brokerproc.Reap tells them apart); a crash is
// recorded, what the watcher read of the lost topics is kept, and an empty
// broker with the faults in force takes its place, so that the run goes on
// and is verified rather than ending with no broker.
func (k *kafkaWorld) monitor() {
	defer close(k.stopped)
	for {
		exited, start := k.b.Exited()
		if exited == nil { // killed on purpose; a restart comes
			select {
			case <-k.stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		select {
		case <-k.stop:
			return
		case <-exited:
		}
		k.op.Lock()
		if crashed, exit := k.b.Reap(start); crashed {
			k.recoverCrash(exit)
		}
		k.op.Unlock()
	}
}

// recoverCrash runs with op held, after a crash was reaped.
func (k *kafkaWorld) recoverCrash(exit error) {
	c := brokerCrash{at: time.Now(), exit: exit.Error(), log: lastPanic(k.logPath)}
	if k.onCrash != nil {
		k.onCrash(c.at)
	}
	k.mu.Lock()
	k.destroyed = append(k.destroyed, "broker process crashed")
	k.paused = false
	k.mu.Unlock()
	if k.watch != nil {
		k.archive(k.watch.close(topicMessages, topicLogs))
		k.watch = nil
	}
	if c.restart = k.b.Restart(); c.restart == nil {
		k.started()
		if err := k.reapply(); err != nil {
			c.restart = err
		} else {
			c.restart = k.rewatch()
		}
	}
	k.mu.Lock()
	k.crashes = append(k.crashes, c)
	k.mu.Unlock()
}

// archive adds what a closed watcher read of destroyed topics to lost.
func (k *kafkaWorld) archive(stamps map[string][]time.Time, records, rereads int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for id, ts := range stamps {
		k.lost[id] = append(k.lost[id], ts...)
	}
	k.lostRecords += records
	k.rereads += rereads
}

// crashView returns the broker crashes so far.
func (k *kafkaWorld) crashView() []brokerCrash {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.crashes)
}

// lastPanic is the first line of the last panic the broker's stderr shows,
// with the line of kfake it happened at, for the report.
func lastPanic(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	s := string(b)
	i := strings.LastIndex(s, "panic: ")
	if i < 0 {
		return ""
	}
	s = s[i:]
	first, _, _ := strings.Cut(s, "\n")
	if j := strings.Index(s, "kfake."); j >= 0 {
		if loc, _, ok := strings.Cut(s[j:], " +"); ok {
			_, at, _ := strings.Cut(loc, "\n\t")
			first += " at " + filepath.Base(at)
		}
	}
	return first
}

// commandTimeout bounds a command to a running broker.
const commandTimeout = 5 * time.Second

// apply sends the knobs' state to the broker unless it is paused, gone or
// frozen by keep.
func (k *kafkaWorld) apply() error {
	k.mu.Lock()
	if k.paused || k.frozen || !k.b.Running() {
		k.mu.Unlock()
		return nil
	}
	cmds := []string{"produce-error 0 0", "produce-hold 0 0s false", "up"}
	if f := k.errWin; f != nil {
		cmds[0] = fmt.Sprintf("produce-error %d %g", f.Code, f.Rate)
	}
	if f := k.holdWin; f != nil {
		cmds[1] = fmt.Sprintf("produce-hold %g %s %t", f.Rate, f.Hold, f.Append)
	}
	if k.down {
		cmds[2] = "down"
	}
	k.mu.Unlock()
	for _, c := range cmds {
		if err := k.b.Command(c, commandTimeout); err != nil {
			return err
		}
	}
	return nil
}

func (k *kafkaWorld) setErrWindow(f *Fault) error {
	k.mu.Lock()
	k.errWin = f
	k.mu.Unlock()
	return k.apply()
}

func (k *kafkaWorld) setHoldWindow(f *Fault) error {
	k.mu.Lock()
	k.holdWin = f
	k.mu.Unlock()
	return k.apply()
}

func (k *kafkaWorld) setDown(down bool) error {
	k.mu.Lock()
	k.down = down
	k.mu.Unlock()
	return k.apply()
}

// isDown reports whether kafka-down is in force.
func (k *kafkaWorld) isDown() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.down
}

// node runs remove or add for a node, now or (paused, killed) when the
// broker runs again.
func (k *kafkaWorld) node(verb string, node int32) error {
	k.mu.Lock()
	if verb == "remove" {
		k.removed[node] = true
	} else {
		delete(k.removed, node)
	}
	skip := k.paused || !k.b.Running()
	k.mu.Unlock()
	if skip {
		return nil
	}
	return k.command(verb, node)
}

// command sends remove or add for node to the running broker and records
// what it applied.
func (k *kafkaWorld) command(verb string, node int32) error {
	if err := k.b.Command(fmt.Sprintf("%s %d", verb, node), commandTimeout); err != nil {
		return err
	}
	k.mu.Lock()
	if verb == "remove" {
		k.applied[node] = true
	} else {
		delete(k.applied, node)
	}
	k.mu.Unlock()
	return nil
}

// removeNode takes a broker out of the cluster (its partitions move to the
// others) and cuts its connections.
func (k *kafkaWorld) removeNode(node int32) error { return k.node("remove", node) }

// addNode brings a removed broker back on its old port, so the processor's
// seed list stays right.
func (k *kafkaWorld) addNode(node int32) error { return k.node("add", node) }

// pause SIGSTOPs the broker: connections are accepted, nothing answers.
func (k *kafkaWorld) pause() error {
	k.op.Lock()
	defer k.op.Unlock()
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.b.Pause(); err != nil {
		return err
	}
	k.paused = true
	return nil
}

// resume SIGCONTs it and applies what changed meanwhile.
func (k *kafkaWorld) resume() error {
	k.op.Lock()
	defer k.op.Unlock()
	return k.resumeLocked()
}

func (k *kafkaWorld) resumeLocked() error {
	if !k.b.Running() { // a kill meanwhile ended the pause
		return nil
	}
	k.mu.Lock()
	if err := k.b.Resume(); err != nil {
		k.mu.Unlock()
		return err
	}
	k.paused = false
	k.mu.Unlock()
	return k.reapply()
}

// reapply sends every knob to the broker, and the node removals and
// additions it has not applied yet.
func (k *kafkaWorld) reapply() error {
	if err := k.apply(); err != nil {
		return err
	}
	k.mu.Lock()
	var remove, add []int32
	for n := range k.removed {
		if !k.applied[n] {
			remove = append(remove, n)
		}
	}
	for n := range k.applied {
		if !k.removed[n] {
			add = append(add, n)
		}
	}
	k.mu.Unlock()
	for _, n := range remove {
		if err := k.command("remove", n); err != nil {
			return err
		}
	}
	for _, n := range add {
		if err := k.command("add", n); err != nil {
			return err
		}
	}
	return nil
}

// started records that a new broker process runs: it has every node.
func (k *kafkaWorld) started() {
	k.mu.Lock()
	clear(k.applied)
	k.mu.Unlock()
}

// keep reads what the topics to be destroyed hold, and ends the watcher's
// generation: it stops appends (every produce request answered
// NOT_ENOUGH_REPLICAS, which the client retries; a paused broker is
// continued first, kafka-down lifted meanwhile), then reads those topics
// from the start up to their end offsets with a client of its own. The
// watcher, which reads all along, is the fallback when that read fails (and
// the only source when the broker crashes): a long-lived consumer may lag
// or start over after partitions moved, and a 2-minute run lost 1,416
// events' records to a watcher that had not caught up when the broker was
// killed. why names the fault. The caller destroys, commits what keep read
// once the topics are gone, thaws, then calls rewatch and re-applies the
// knobs.
func (k *kafkaWorld) keep(why string, topics ...string) kept {
	c := kept{why: why}
	read := false
	if k.b.Running() {
		k.mu.Lock()
		if k.paused {
			_ = k.b.Resume()
			k.paused = false
		}
		k.frozen = true
		k.mu.Unlock()
		_ = k.b.Command("up", commandTimeout)
		_ = k.b.Command(fmt.Sprintf("produce-error %d 1", kerr.NotEnoughReplicas.Code), commandTimeout)
		stamps, n, err := readStamps(k.addrs, topics, 30*time.Second)
		if err == nil {
			c.stamps, c.records = stamps, n
			read = true
		} else {
			k.mu.Lock()
			k.keepErrors = append(k.keepErrors, fmt.Sprintf("%s: %v (the watcher's reads were kept instead)", why, err))
			k.mu.Unlock()
			if k.watch != nil {
				k.watch.catchUp(5 * time.Second)
			}
		}
	}
	if k.watch == nil {
		return c
	}
	stamps, n, rereads := k.watch.close(topics...)
	if !read {
		c.stamps, c.records = stamps, n
	}
	k.archive(nil, 0, rereads)
	k.watch = nil
	return c
}

// thaw ends keep's freeze for apply: the topics are destroyed (or stand),
// and the caller reapplies the knobs.
func (k *kafkaWorld) thaw() {
	k.mu.Lock()
	k.frozen = false
	k.mu.Unlock()
}

// kept is what keep read of topics about to be destroyed. It counts as in
// Kafka only once they are gone (commit): a destruction that fails leaves
// the records in place, where the next watcher (which reads from the
// start) and the final read find them, and counting both would make every
// one of them a duplicate (a failed recreation once reported 616
// "unexplained duplicates", pairs of records with one timestamp).
type kept struct {
	why     string
	stamps  map[string][]time.Time
	records int
}

// commit records the destruction keep prepared and adds what it read to
// lost.
func (k *kafkaWorld) commit(c kept) {
	k.mu.Lock()
	k.destroyed = append(k.destroyed, c.why)
	k.mu.Unlock()
	k.archive(c.stamps, c.records, 0)
}

// readStamps reads topics from the start to their end offsets and returns
// the record timestamps per event id and the records.
func readStamps(addrs, topics []string, timeout time.Duration) (map[string][]time.Time, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, n := map[string][]time.Time{}, 0
	for _, t := range topics {
		recs, err := readTopic(ctx, addrs, t)
		if err != nil {
			return nil, 0, err
		}
		n += len(recs)
		for _, r := range recs {
			for _, id := range recordIDs(r) {
				out[id] = append(out[id], r.Timestamp)
			}
		}
	}
	return out, n, nil
}

// rewatch starts a new watcher generation, reading from the start.
func (k *kafkaWorld) rewatch() error {
	w, err := newWatcher(k.addrs)
	if err != nil {
		return err
	}
	k.watch = w
	return nil
}

// kill SIGKILLs the broker process (the port refuses from then on) after
// keeping what the topics held.
func (k *kafkaWorld) kill(why string) {
	k.op.Lock()
	defer k.op.Unlock()
	kept := k.keep(why, topicMessages, topicLogs)
	k.mu.Lock()
	k.paused = false
	k.mu.Unlock()
	k.b.Kill()
	k.thaw()
	k.commit(kept)
}

// restart starts an empty broker on the same ports (topics with new IDs),
// with the faults in force, and a new watcher.
func (k *kafkaWorld) restart() error {
	k.op.Lock()
	defer k.op.Unlock()
	return k.restartLocked()
}

func (k *kafkaWorld) restartLocked() error {
	if k.b.Running() {
		// Restart kills the running process first: the topics go even
		// when the new one fails to start.
		k.commit(k.keep("restart empty", topicMessages, topicLogs))
	}
	err := k.b.Restart()
	k.thaw()
	if err != nil {
		return err
	}
	k.started()
	k.mu.Lock()
	k.paused = false
	k.mu.Unlock()
	if err := k.reapply(); err != nil {
		return err
	}
	return k.rewatch()
}

// recreateTopic deletes topic with kadm and creates it again (3 partitions,
// a new topic ID) while the processor writes to it. The broker creates
// topics on first use too, so a produce may get there first: the topic
// then exists already, which is fine. A deletion that fails leaves the
// topic and its records as they were, and keeps nothing (see kept); one
// whose answer is lost (a timeout) is judged by whether the topic still
// has its old ID.
func (k *kafkaWorld) recreateTopic(ctx context.Context, topic string) error {
	k.op.Lock()
	defer k.op.Unlock()
	kept := k.keep("topic "+topic+" recreated", topic)
	defer func() {
		if err := k.rewatch(); err != nil {
			k.watch = nil
		}
		k.thaw()
		_ = k.reapply() // ends keep's freeze, and applies what waited while it was frozen or paused
	}()
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.addrs...))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	before, idErr := topicID(k.addrs, topic)
	del, err := adm.DeleteTopics(ctx, topic)
	if err == nil {
		err = del.Error()
	}
	if err != nil {
		after, afterErr := topicID(k.addrs, topic)
		if idErr == nil && afterErr == nil && after == before {
			return fmt.Errorf("delete %s: %w (the topic stands, with its records)", topic, err)
		}
		k.commit(kept)
		return fmt.Errorf("delete %s: %w", topic, err)
	}
	k.commit(kept)
	cr, err := adm.CreateTopic(ctx, 3, 1, nil, topic)
	if err == nil {
		err = cr.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("create %s: %w", topic, err)
	}
	return nil
}

// topicID is topic's ID as the cluster's metadata names it now. It asks
// with a client of its own (kadm's ListTopics answers from the client's
// metadata cache, which would still show a topic just deleted) and a
// deadline of its own (it judges a deletion whose context ended).
func topicID(addrs []string, topic string) (kadm.TopicID, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		return kadm.TopicID{}, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	td, err := kadm.NewClient(cl).ListTopics(ctx, topic)
	if err != nil {
		return kadm.TopicID{}, err
	}
	d, ok := td[topic]
	if !ok {
		return kadm.TopicID{}, fmt.Errorf("topic %s not in the metadata", topic)
	}
	if d.Err != nil {
		return kadm.TopicID{}, d.Err
	}
	return d.ID, nil
}

// clear undoes every Kafka fault.
func (k *kafkaWorld) clear() error {
	k.op.Lock()
	defer k.op.Unlock()
	k.mu.Lock()
	k.down, k.errWin, k.holdWin = false, nil, nil
	paused := k.paused
	k.mu.Unlock()
	if paused {
		if err := k.resumeLocked(); err != nil {
			return err
		}
	}
	if !k.b.Running() {
		if err := k.restartLocked(); err != nil {
			return err
		}
	}
	return k.reapply()
}

// lostView is what the destroyed topics held, read before they went, and
// the records the watchers read twice (not counted).
func (k *kafkaWorld) lostView() (map[string][]time.Time, int, int, []string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return maps.Clone(k.lost), k.lostRecords, k.rereads, slices.Clone(k.destroyed)
}

// keepErrorsView are the destructions whose topics could not be read first.
func (k *kafkaWorld) keepErrorsView() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.keepErrors)
}

// readTopic returns every record of topic, reading up to the end offsets
// it has when called.
func readTopic(ctx context.Context, addrs []string, topic string) ([]*kgo.Record, error) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(addrs...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200*time.Millisecond),
	)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ends, err := endOffsets(ctx, cl, topic)
	if err != nil {
		return nil, err
	}
	next := map[int32]int64{}
	seen := map[int32]map[int64]bool{} // a record read again is kept once
	done := func() bool {
		for p, end := range ends {
			if next[p] < end {
				return false
			}
		}
		return true
	}
	var recs []*kgo.Record
	for !done() {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("read %s: %d records, next offsets %v, end offsets %v: %w", topic, len(recs), next, ends, err)
		}
		// Fetch errors are retried by the client; a read that cannot finish
		// ends with ctx and says where it stopped.
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset+1 > next[r.Partition] {
				next[r.Partition] = r.Offset + 1
			}
			if seen[r.Partition] == nil {
				seen[r.Partition] = map[int64]bool{}
			}
			if r.Offset < ends[r.Partition] && !seen[r.Partition][r.Offset] {
				seen[r.Partition][r.Offset] = true
				recs = append(recs, r)
			}
		})
	}
	return recs, nil
}

// endOffsets is each partition's end offset of topic.
func endOffsets(ctx context.Context, cl *kgo.Client, topic string) (map[int32]int64, error) {
	listed, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err == nil {
		err = listed.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("end offsets of %s: %w", topic, err)
	}
	out := map[int32]int64{}
	listed.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out, nil
}
