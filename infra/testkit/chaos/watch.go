package chaos

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// watcher reads both topics from the start, all the time, and keeps, per
// event id, the timestamps of the records carrying it: what a topic held
// before a restart empty or a recreation is known although the topic is
// gone. One watcher is one generation: it is closed before the topics are
// destroyed and a new one reads the new topics from their start.
//
// A consumer may read a record again (its fetch offset reset after a
// partition moved to another node, or a connection cut); each
// (partition, offset) is counted once. Within one generation an offset
// names one record: kfake keeps one log per partition whichever node
// leads it, and the topics are only destroyed between generations.
type watcher struct {
	cl     *kgo.Client
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	stamps  map[string]map[string][]time.Time // topic → event id → record timestamps
	seen    map[string]map[int32]map[int64]bool
	records map[string]int             // topic → distinct records
	rereads int                        // records read again, not counted
	next    map[string]map[int32]int64 // topic → partition → next offset
}

func newWatcher(addrs []string) (*watcher, error) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(addrs...),
		kgo.ConsumeTopics(topicMessages, topicLogs),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200*time.Millisecond),
	)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &watcher{cl: cl, cancel: cancel, done: make(chan struct{}),
		stamps:  map[string]map[string][]time.Time{topicMessages: {}, topicLogs: {}},
		seen:    map[string]map[int32]map[int64]bool{topicMessages: {}, topicLogs: {}},
		records: map[string]int{},
		next:    map[string]map[int32]int64{topicMessages: {}, topicLogs: {}}}
	go w.run(ctx)
	return w, nil
}

func (w *watcher) run(ctx context.Context) {
	defer close(w.done)
	for ctx.Err() == nil {
		fs := w.cl.PollFetches(ctx)
		w.mu.Lock()
		fs.EachRecord(func(r *kgo.Record) {
			seen := w.seen[r.Topic]
			if seen == nil {
				return
			}
			if seen[r.Partition] == nil {
				seen[r.Partition] = map[int64]bool{}
			}
			if seen[r.Partition][r.Offset] {
				w.rereads++
				return
			}
			seen[r.Partition][r.Offset] = true
			w.records[r.Topic]++
			for _, id := range recordIDs(r) {
				w.stamps[r.Topic][id] = append(w.stamps[r.Topic][id], r.Timestamp)
			}
			if n := w.next[r.Topic]; r.Offset+1 > n[r.Partition] {
				n[r.Partition] = r.Offset + 1
			}
		})
		w.mu.Unlock()
	}
}

// catchUp waits, up to timeout, until the watcher has read up to the end
// offsets the topics have now.
func (w *watcher) catchUp(timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ends, err := kadm.NewClient(w.cl).ListEndOffsets(ctx, topicMessages, topicLogs)
	if err != nil {
		return
	}
	for ctx.Err() == nil {
		behind := false
		w.mu.Lock()
		ends.Each(func(o kadm.ListedOffset) {
			if o.Err == nil && w.next[o.Topic][o.Partition] < o.Offset {
				behind = true
			}
		})
		w.mu.Unlock()
		if !behind {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// close stops the watcher and returns, for topics, the record timestamps
// per event id, the distinct records and the re-reads it skipped. A
// generation reads each topic from the start, so what it read of a topic
// that outlives it is read again by the next one: only the destroyed
// topics are taken.
func (w *watcher) close(topics ...string) (map[string][]time.Time, int, int) {
	w.cancel()
	<-w.done
	w.cl.Close()
	w.mu.Lock()
	defer w.mu.Unlock()
	out, n := map[string][]time.Time{}, 0
	for _, t := range topics {
		for id, ts := range w.stamps[t] {
			out[id] = append(out[id], ts...)
		}
		n += w.records[t]
	}
	return out, n, w.rereads
}

// recordIDs are the event ids a record carries: a message record's key, a
// log record's event-id header (else its elements' traceIds).
func recordIDs(r *kgo.Record) []string {
	if r.Topic == topicMessages {
		return []string{string(r.Key)}
	}
	if h := header(r, "event-id"); h != "" {
		return strings.Split(h, ",")
	}
	var arr []struct {
		TraceID string `json:"traceId"`
	}
	_ = json.Unmarshal(r.Value, &arr)
	ids := make([]string, 0, len(arr))
	for _, e := range arr {
		ids = append(ids, e.TraceID)
	}
	return ids
}
