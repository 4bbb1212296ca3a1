package testenv

import (
	"context"
	"fmt"
	"net"
	"sort"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestKafkaRoundTrip(t *testing.T) {
	t.Parallel()
	k := Kafka(t)
	for _, a := range k.Addrs() {
		host, _, err := net.SplitHostPort(a)
		if err != nil || host != "127.0.0.1" {
			t.Fatalf("broker address %q is not on 127.0.0.1 (%v)", a, err)
		}
	}
	const topic, n = "hobom.messages", 5
	cl := k.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for i := range n {
		recs = append(recs, &kgo.Record{Topic: topic, Key: fmt.Appendf(nil, "e%d", i), Value: fmt.Appendf(nil, "v%d", i)})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce to seeded topic: %v", err)
	}

	got := k.ReadTopic(t, topic, n, 10*time.Second)
	if keys := sortedKeys(got); fmt.Sprint(keys) != "[e0 e1 e2 e3 e4]" {
		t.Fatalf("ReadTopic keys = %v", keys)
	}
	if c := k.Count(t, topic, 200*time.Millisecond); c != n {
		t.Fatalf("Count = %d, want %d", c, n)
	}
	if c := k.Count(t, "hobom.logs", 100*time.Millisecond); c != 0 {
		t.Fatalf("Count of the empty seeded topic = %d, want 0", c)
	}
	if c := k.Count(t, "no.such.topic", 100*time.Millisecond); c != 0 {
		t.Fatalf("Count of a missing topic = %d, want 0", c)
	}
}

func TestKafkaAutoCreateAndOptions(t *testing.T) {
	t.Parallel()
	k := Kafka(t, kfake.DefaultNumPartitions(1))
	cl := k.Client(t, kgo.AllowAutoTopicCreation())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 3 {
		r := &kgo.Record{Topic: "auto.created", Value: fmt.Appendf(nil, "%d", i)}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("produce to auto-created topic: %v", err)
		}
	}
	got := k.ReadAll(t, "auto.created", 200*time.Millisecond)
	if len(got) != 3 {
		t.Fatalf("ReadAll = %d records, want 3", len(got))
	}
	for i, r := range got { // one partition: in order
		if string(r.Value) != fmt.Sprint(i) || r.Partition != 0 {
			t.Fatalf("record %d = %q on partition %d", i, r.Value, r.Partition)
		}
	}
}

func sortedKeys(rs []*kgo.Record) []string {
	var keys []string
	for _, r := range rs {
		keys = append(keys, string(r.Key))
	}
	sort.Strings(keys)
	return keys
}
