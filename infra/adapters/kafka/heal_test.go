package kafka_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hobom/hobom-event-processor/infra/adapters/kafka"
	"github.com/hobom/hobom-event-processor/infra/testkit/testenv"
)

func produceVia(p *kafka.Healing, topic string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	p.Produce(ctx, &kgo.Record{Topic: topic, Value: []byte("v")}, func(_ *kgo.Record, err error) { done <- err })
	return <-done
}

// TestHealingAdoptsARecreatedTopic deletes and recreates a topic with kadm
// between two produces: the client fails the first record after that with
// UNKNOWN_TOPIC_ID, Healing purges the topic before reporting it, and the
// next record goes to the new topic.
func TestHealingAdoptsARecreatedTopic(t *testing.T) {
	k := testenv.Kafka(t)
	var logs bytes.Buffer
	cl, err := kafka.NewProducer(kafka.Config{Brokers: k.Addrs(), Acks: "all", WriteTimeout: 3 * time.Second, MaxBufferedRecords: 100}, zerolog.New(&logs))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	p := kafka.NewHealing(cl, zerolog.New(&logs))
	const topic = "hobom.messages"
	if err := produceVia(p, topic); err != nil {
		t.Fatalf("produce before: %v", err)
	}
	adm := kadm.NewClient(k.Client(t))
	ctx := context.Background()
	if _, err := adm.DeleteTopics(ctx, topic); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateTopic(ctx, 3, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	var errs []error
	for i := 0; i < 3; i++ {
		err := produceVia(p, topic)
		if err == nil {
			break
		}
		errs = append(errs, err)
	}
	if len(errs) > 1 || (len(errs) == 1 && !errors.Is(errs[0], kerr.UnknownTopicID)) {
		t.Fatalf("produce after the topic was recreated: %v; want at most one UNKNOWN_TOPIC_ID, then success", errs)
	}
	if len(errs) == 1 && p.Purges(topic) != 1 {
		t.Errorf("purges = %d, want 1", p.Purges(topic))
	}
	if got := testenv.KafkaAt(k.Addrs()...).Count(t, topic, 200*time.Millisecond); got != 1 {
		t.Errorf("%d records in the recreated topic, want 1", got)
	}
	t.Logf("after the recreate: %d failed attempt(s) (%v), %d purge(s)", len(errs), errs, p.Purges(topic))
}

// TestClientErrorsAreLoggedAsText: a refused dial shows as its message,
// not as {}.
func TestClientErrorsAreLoggedAsText(t *testing.T) {
	var logs bytes.Buffer
	cl, err := kafka.NewProducer(kafka.Config{Brokers: []string{"127.0.0.1:1"}, Acks: "all", WriteTimeout: time.Second, MaxBufferedRecords: 10}, zerolog.New(&logs))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = cl.ProduceSync(ctx, &kgo.Record{Topic: "t", Value: []byte("v")}).FirstErr()
	cl.Close()
	out := logs.String()
	if !strings.Contains(out, `"err":"dial tcp 127.0.0.1:1: connect: connection refused"`) || strings.Contains(out, `"err":{}`) {
		t.Fatalf("client log does not carry the error text:\n%s", out)
	}
}

// TestHealingTryProduceRefusesWhenTheClientIsFull: with no broker
// answering (a port that refuses connections), records stay in the
// client; once it holds MaxBufferedRecords, Room is 0 and TryProduce
// hands the next record back at once with kgo.ErrMaxBuffered, where
// Produce would block its caller.
func TestHealingTryProduceRefusesWhenTheClientIsFull(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	_ = lis.Close() // the port now refuses connections
	const capacity = 2
	cl, err := kafka.NewProducer(kafka.Config{Brokers: []string{addr}, Acks: "all", WriteTimeout: 5 * time.Second, MaxBufferedRecords: capacity}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	p := kafka.NewHealing(cl, zerolog.Nop())
	if got := p.Room(); got != capacity {
		t.Fatalf("room %d in an empty client, want %d", got, capacity)
	}
	done := make(chan error, capacity+1)
	promise := func(_ *kgo.Record, err error) { done <- err }
	for range capacity {
		p.TryProduce(context.Background(), &kgo.Record{Topic: "hobom.messages", Value: []byte("v")}, promise)
	}
	if got := p.Room(); got != 0 {
		t.Fatalf("room %d with %d records held, want 0", got, capacity)
	}
	start := time.Now()
	p.TryProduce(context.Background(), &kgo.Record{Topic: "hobom.messages", Value: []byte("v")}, promise)
	if took := time.Since(start); took > time.Second {
		t.Fatalf("TryProduce took %v with the client full: it blocked", took)
	}
	select {
	case err := <-done:
		if !errors.Is(err, kgo.ErrMaxBuffered) {
			t.Fatalf("the record beyond the capacity failed with %v, want kgo.ErrMaxBuffered", err)
		}
	case <-time.After(time.Second):
		t.Fatal("the record beyond the capacity was neither taken nor refused")
	}
}
