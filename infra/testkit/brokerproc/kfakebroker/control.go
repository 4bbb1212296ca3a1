package main

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// faults are the in-broker faults a harness turns on and off with lines on
// stdin (see command). Two controls stay installed for the broker's life
// and consult them: one on produce requests (error codes, holds) and one on
// every request (a broker node gone: its connection is closed).
type faults struct {
	c     *kfake.Cluster
	ports []int

	mu       sync.Mutex
	rng      *rand.Rand
	down     bool
	removed  map[int32]bool
	errCode  int16
	errRate  float64
	holdRate float64
	hold     time.Duration
	appendIt bool
}

var errBrokerGone = errors.New("kfakebroker: broker gone")

func installFaults(c *kfake.Cluster, ports []int, seed uint64) *faults {
	f := &faults{c: c, ports: ports, removed: map[int32]bool{}, rng: rand.New(rand.NewPCG(seed, 7))}
	c.ControlKey(int16(kmsg.Produce), f.controlProduce)
	c.Control(f.controlAll)
	return f
}

func (f *faults) gone() bool {
	node := f.c.CurrentNode()
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.down || f.removed[node]
}

func (f *faults) controlAll(kmsg.Request) (kmsg.Response, error, bool) {
	f.c.KeepControl()
	if f.gone() {
		return nil, errBrokerGone, true
	}
	return nil, nil, false
}

func (f *faults) controlProduce(kreq kmsg.Request) (kmsg.Response, error, bool) {
	f.c.KeepControl()
	nameTopicIDs(kreq.(*kmsg.ProduceRequest))
	if f.gone() {
		return nil, errBrokerGone, true
	}
	f.mu.Lock()
	holdIt := f.holdRate > 0 && f.rng.Float64() < f.holdRate
	failIt := !holdIt && f.errRate > 0 && f.rng.Float64() < f.errRate
	hold, appendIt, code := f.hold, f.appendIt, f.errCode
	f.mu.Unlock()
	switch {
	case holdIt:
		// SleepControl lets the cluster serve other connections meanwhile.
		f.c.SleepControl(func() { time.Sleep(hold) })
		if appendIt {
			return nil, nil, false // appended now, perhaps after the client gave up
		}
		return produceError(kreq, kerr.RequestTimedOut.Code)
	case failIt:
		return produceError(kreq, code)
	}
	return nil, nil, false
}

// nameTopicIDs works around a kfake bug (docs/engine-notes.md, "kfake
// panics on a produce naming two unknown topic IDs"): from v13 a produce
// request names its topics by ID only, and kfake's handleProduce keys the
// partitions it already answered by topic name, which is "" for every
// topic whose ID it does not know. Two unknown IDs in one request (what a
// producer sends after the broker restarted empty, or after both topics
// were recreated) then share keys, and answering the second one indexes
// the first one's list: index out of range, the broker process dies.
// Giving every nameless topic a name of its own (its ID) keeps the keys
// apart; v13 responses carry the ID, not the name, so the client sees
// exactly what a real broker answers (UNKNOWN_TOPIC_ID for those topics).
func nameTopicIDs(req *kmsg.ProduceRequest) {
	if req.Version < 13 {
		return
	}
	for i := range req.Topics {
		if req.Topics[i].Topic == "" {
			req.Topics[i].Topic = fmt.Sprintf("topic-id-%x", req.Topics[i].TopicID)
		}
	}
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

// command runs one line of the control protocol and returns its answer
// ("ok" or "error ..."):
//
//	produce-error <code> <rate>          answer that share of produce requests with code
//	produce-hold <rate> <dur> <append>   hold that share for dur, then append (true) or time out
//	down | up                            close every request's connection, or stop doing so
//	remove <node> | add <node>           take a broker node out (partitions move) / back on its port
//	clear                                undo every fault but removed nodes
func (f *faults) command(line string) string {
	w := strings.Fields(line)
	if len(w) == 0 {
		return "error empty command"
	}
	bad := func(err error) string { return fmt.Sprintf("error %s: %v", w[0], err) }
	switch {
	case w[0] == "produce-error" && len(w) == 3:
		code, err := strconv.ParseInt(w[1], 10, 16)
		if err != nil {
			return bad(err)
		}
		rate, err := strconv.ParseFloat(w[2], 64)
		if err != nil {
			return bad(err)
		}
		f.mu.Lock()
		f.errCode, f.errRate = int16(code), rate
		f.mu.Unlock()
	case w[0] == "produce-hold" && len(w) == 4:
		rate, err := strconv.ParseFloat(w[1], 64)
		if err != nil {
			return bad(err)
		}
		d, err := time.ParseDuration(w[2])
		if err != nil {
			return bad(err)
		}
		app, err := strconv.ParseBool(w[3])
		if err != nil {
			return bad(err)
		}
		f.mu.Lock()
		f.holdRate, f.hold, f.appendIt = rate, d, app
		f.mu.Unlock()
	case w[0] == "down" || w[0] == "up":
		f.mu.Lock()
		f.down = w[0] == "down"
		f.mu.Unlock()
	case (w[0] == "remove" || w[0] == "add") && len(w) == 2:
		n, err := strconv.ParseInt(w[1], 10, 32)
		if err != nil || n < 0 || int(n) >= len(f.ports) {
			return bad(fmt.Errorf("no node %q", w[1]))
		}
		node := int32(n)
		if w[0] == "remove" {
			f.mu.Lock()
			f.removed[node] = true
			f.mu.Unlock()
			if err := f.c.RemoveNode(node); err != nil {
				return bad(err)
			}
			break
		}
		for range 50 {
			if _, _, err = f.c.AddNode(node, f.ports[node]); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond) // the old listener may linger
		}
		f.mu.Lock()
		delete(f.removed, node)
		f.mu.Unlock()
		if err != nil {
			return bad(err)
		}
	case w[0] == "clear":
		f.mu.Lock()
		f.down, f.errRate, f.holdRate = false, 0, 0
		f.mu.Unlock()
	default:
		return fmt.Sprintf("error unknown command %q", line)
	}
	return "ok"
}
