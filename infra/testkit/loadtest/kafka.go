package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hobom/hobom-event-processor/messages"
)

// offsets are a topic's end offsets by partition.
type offsets map[int32]int64

// endOffsets asks the broker for the end offset of every partition of topic.
func endOffsets(ctx context.Context, cl *kgo.Client, topic string) (offsets, error) {
	listed, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err == nil {
		err = listed.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("end offsets of %s: %w", topic, err)
	}
	out := offsets{}
	listed.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out, nil
}

// since is the number of records appended after from.
func (o offsets) since(from offsets) int64 {
	var n int64
	for p, end := range o {
		n += end - from[p]
	}
	return n
}

// kafkaSnapshot is the end offsets of the load test's topics.
type kafkaSnapshot map[string]offsets

func snapshotTopics(ctx context.Context, cl *kgo.Client) (kafkaSnapshot, error) {
	s := kafkaSnapshot{}
	for _, t := range []string{TopicMessages, TopicLogs, TopicSynthetic} {
		o, err := endOffsets(ctx, cl, t)
		if err != nil {
			return nil, err
		}
		s[t] = o
	}
	return s, nil
}

// countLogElements reads the records of TopicLogs between two snapshots and
// counts the elements of their JSON arrays: one per relayed log event.
func countLogElements(ctx context.Context, addrs []string, from, to offsets) (records, elements int, err error) {
	want := to.since(from)
	if want == 0 {
		return 0, 0, nil
	}
	parts := map[string]map[int32]kgo.Offset{TopicLogs: {}}
	for p, start := range from {
		if to[p] > start {
			parts[TopicLogs][p] = kgo.NewOffset().At(start)
		}
	}
	for p, end := range to {
		if _, ok := from[p]; !ok && end > 0 {
			parts[TopicLogs][p] = kgo.NewOffset().At(0)
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumePartitions(parts), kgo.FetchMaxBytes(64<<20))
	if err != nil {
		return 0, 0, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for int64(records) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return records, elements, fmt.Errorf("read %s: %d of %d records: %w", TopicLogs, records, want, ctx.Err())
		}
		fs.EachError(func(_ string, _ int32, e error) { err = e })
		if err != nil {
			return records, elements, err
		}
		for _, r := range fs.Records() {
			if r.Offset >= to[r.Partition] {
				continue
			}
			records++
			n, err := arrayLen(r.Value)
			if err != nil {
				return records, elements, fmt.Errorf("log record %d/%d: %w", r.Partition, r.Offset, err)
			}
			elements += n
		}
	}
	return records, elements, nil
}

// arrayLen counts the top-level elements of a JSON array.
func arrayLen(v []byte) (int, error) {
	dec := json.NewDecoder(bytes.NewReader(v))
	if t, err := dec.Token(); err != nil || t != json.Delim('[') {
		return 0, fmt.Errorf("not a JSON array")
	}
	n := 0
	var raw json.RawMessage
	for dec.More() {
		if err := dec.Decode(&raw); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// ceilingRecords are the records the relay would write for a backlog of
// messages and logs, encoded up front: what the produce ceiling sends.
type ceilingRecords struct {
	recs   []*kgo.Record
	events int
}

// buildMessageRecords are n hobom.messages records of seeded-style events,
// with the headers the publisher writes.
func buildMessageRecords(n int, producer string) ceilingRecords {
	now := time.Now()
	out := ceilingRecords{recs: make([]*kgo.Record, 0, n), events: n}
	for i := range n {
		ev := synthetic(messages.EventTypeMessage, i)
		v, _ := messages.AppendMessageValue(nil, ev.Message, now)
		key := fmt.Appendf(nil, "ceil-msg-%d", i)
		out.recs = append(out.recs, &kgo.Record{Topic: TopicMessages, Key: key, Value: v,
			Headers: messages.RecordHeaders(messages.EventTypeMessage, producer, "", key)})
	}
	return out
}

// buildLogRecords are the hobom.logs arrays for n log events found perPoll
// at a time, split below maxBytes (value and event-id header) as the
// publisher splits them, with its headers.
func buildLogRecords(n, perPoll, maxBytes int, producer string) ceilingRecords {
	now := time.Now()
	out := ceilingRecords{events: n}
	var (
		b   messages.LogArrayBuilder
		obj []byte
	)
	flush := func() {
		if b.Len() > 0 {
			value, ids, _ := b.Take()
			out.recs = append(out.recs, &kgo.Record{Topic: TopicLogs, Key: messages.LogRecordKey(nil, now), Value: value,
				Headers: messages.RecordHeaders(messages.EventTypeHoBomLog, producer, "", ids)})
		}
	}
	for i := range n {
		if perPoll > 0 && i%perPoll == 0 {
			flush()
		}
		ev := synthetic(messages.EventTypeHoBomLog, i)
		id := "ceil-log-" + strconv.Itoa(i)
		obj, _ = messages.AppendLogObject(obj[:0], ev.Log)
		if b.Len() > 0 && b.SizeWith(id, obj) > maxBytes {
			flush()
		}
		b.Add(id, obj)
	}
	flush()
	return out
}
