package main

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestProduceNamingTwoUnknownTopicIDs sends what a producer sends after the
// broker restarted empty: one v13 produce request for two topics whose IDs
// the broker does not know. Unpatched kfake panics on it (nameTopicIDs'
// comment); the broker must answer UNKNOWN_TOPIC_ID for both and keep
// serving.
func TestProduceNamingTwoUnknownTopicIDs(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "a", "b"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	installFaults(c, []int{0}, 1)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	req := kmsg.NewPtrProduceRequest()
	req.Acks = -1
	req.TimeoutMillis = 1000
	for i := range 2 {
		rt := kmsg.NewProduceRequestTopic()
		rt.TopicID = [16]byte{byte(i + 1)}
		for p := range int32(2) {
			rp := kmsg.NewProduceRequestTopicPartition()
			rp.Partition = p
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("produce with two unknown topic IDs: %v", err)
	}
	if resp.Version < 13 {
		t.Fatalf("the request went out as v%d; the bug needs v13", resp.Version)
	}
	if len(resp.Topics) != 2 {
		t.Fatalf("answered %d topics, want 2: %+v", len(resp.Topics), resp.Topics)
	}
	for _, rt := range resp.Topics {
		if len(rt.Partitions) != 2 {
			t.Fatalf("topic %x: %d partitions answered, want 2", rt.TopicID, len(rt.Partitions))
		}
		for _, rp := range rt.Partitions {
			if rp.ErrorCode != kerr.UnknownTopicID.Code {
				t.Errorf("topic %x partition %d: code %d, want UNKNOWN_TOPIC_ID", rt.TopicID, rp.Partition, rp.ErrorCode)
			}
		}
	}
	// The broker still serves: a normal produce goes through.
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "a", Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatalf("produce after: %v", err)
	}
}
