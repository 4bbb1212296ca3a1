package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Topics the processor writes (docs/contract.md §2).
const (
	topicMessages = "hobom.messages"
	topicLogs     = "hobom.logs"
)

// kafkaWorld is the kfake cluster and the knobs the faults turn. Two
// controls are installed for the whole run and consult the knobs: one on
// produce requests (errors, holds) and one on every request (the cluster
// or one broker gone: the connection is closed, as a dead broker's is).
type kafkaWorld struct {
	c     *kfake.Cluster
	addrs []string
	ports map[int32]int

	mu      sync.Mutex
	rng     *rand.Rand
	down    bool
	removed map[int32]bool
	errWin  *Fault
	holdWin *Fault

	failed, held, closed atomic.Int64
}

var errBrokerGone = errors.New("chaos: broker gone")

func startKafka(brokers int, seed uint64) (*kafkaWorld, error) {
	c, err := kfake.NewCluster(
		kfake.NumBrokers(brokers),
		kfake.AllowAutoTopicCreation(),
		kfake.SeedTopics(3, topicMessages, topicLogs),
	)
	if err != nil {
		return nil, fmt.Errorf("kfake: %w", err)
	}
	k := &kafkaWorld{
		c: c, addrs: c.ListenAddrs(), ports: map[int32]int{}, removed: map[int32]bool{},
		rng: rand.New(rand.NewPCG(seed, 7)),
	}
	for i, a := range k.addrs {
		var port int
		if _, err := fmt.Sscanf(a[lastColon(a)+1:], "%d", &port); err != nil {
			c.Close()
			return nil, fmt.Errorf("kfake address %q: %w", a, err)
		}
		k.ports[int32(i)] = port // kfake numbers its first brokers 0..n-1
	}
	c.ControlKey(int16(kmsg.Produce), k.controlProduce)
	c.Control(k.controlAll)
	return k, nil
}

func lastColon(s string) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == ':' {
			return i
		}
	}
	return -1
}

func (k *kafkaWorld) Close() { k.c.Close() }

// gone reports whether the broker answering the current request is gone;
// called from a control function.
func (k *kafkaWorld) gone() bool {
	node := k.c.CurrentNode()
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.down || k.removed[node]
}

func (k *kafkaWorld) controlAll(kmsg.Request) (kmsg.Response, error, bool) {
	k.c.KeepControl()
	if k.gone() {
		k.closed.Add(1)
		return nil, errBrokerGone, true
	}
	return nil, nil, false
}

func (k *kafkaWorld) controlProduce(kreq kmsg.Request) (kmsg.Response, error, bool) {
	k.c.KeepControl()
	if k.gone() {
		k.closed.Add(1)
		return nil, errBrokerGone, true
	}
	k.mu.Lock()
	hold, fail := k.holdWin, k.errWin
	holdIt := hold != nil && k.rng.Float64() < hold.Rate
	failIt := !holdIt && fail != nil && k.rng.Float64() < fail.Rate
	k.mu.Unlock()
	switch {
	case holdIt:
		k.held.Add(1)
		// SleepControl lets the cluster serve other connections meanwhile.
		k.c.SleepControl(func() { time.Sleep(hold.Hold) })
		if hold.Append {
			return nil, nil, false // appended now, perhaps after the client gave up
		}
		return produceError(kreq, kerr.RequestTimedOut.Code)
	case failIt:
		k.failed.Add(1)
		return produceError(kreq, fail.Code)
	}
	return nil, nil, false
}

// produceError answers every partition of a produce request with code.
func produceError(kreq kmsg.Request, code int16) (kmsg.Response, error, bool) {
	req := kreq.(*kmsg.ProduceRequest)
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewProduceResponseTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		for _, rp := range rt.Partitions {
			sp := kmsg.NewProduceResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.ErrorCode = code
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil, true
}

func (k *kafkaWorld) setErrWindow(f *Fault)  { k.mu.Lock(); k.errWin = f; k.mu.Unlock() }
func (k *kafkaWorld) setHoldWindow(f *Fault) { k.mu.Lock(); k.holdWin = f; k.mu.Unlock() }
func (k *kafkaWorld) setDown(down bool)      { k.mu.Lock(); k.down = down; k.mu.Unlock() }

// removeNode takes a broker out of the cluster (its partitions move to the
// others) and cuts its connections.
func (k *kafkaWorld) removeNode(node int32) error {
	k.mu.Lock()
	k.removed[node] = true
	k.mu.Unlock()
	return k.c.RemoveNode(node)
}

// addNode brings a removed broker back on its old port, so the processor's
// seed list stays right.
func (k *kafkaWorld) addNode(node int32) error {
	var err error
	for range 50 {
		if _, _, err = k.c.AddNode(node, k.ports[node]); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond) // the old listener may linger
	}
	k.mu.Lock()
	delete(k.removed, node)
	k.mu.Unlock()
	return err
}

// clear undoes every Kafka fault.
func (k *kafkaWorld) clear() {
	k.mu.Lock()
	k.down, k.errWin, k.holdWin = false, nil, nil
	k.mu.Unlock()
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
			if r.Offset < ends[r.Partition] {
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
