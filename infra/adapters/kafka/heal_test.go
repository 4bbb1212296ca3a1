package kafka_test

import (
	"bytes"
	"context"
	"errors"
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
