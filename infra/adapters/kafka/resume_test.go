package kafka_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hobom/hobom-event-processor/infra/adapters/kafka"
	"github.com/hobom/hobom-event-processor/infra/testkit/testenv"
)

// attempt produces one record through p with the publisher's attempt
// deadline, and returns how long it took and its error.
func attempt(p *kafka.Healing, deadline time.Duration) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	start := time.Now()
	done := make(chan error, 1)
	p.Produce(ctx, &kgo.Record{Topic: "hobom.messages", Value: []byte(`{}`)}, func(_ *kgo.Record, err error) { done <- err })
	err := <-done
	return time.Since(start), err
}

// TestProducerTriesABrokerBackFromAnOutageWithinAnAttempt: after an
// outage long enough for the client's backoff to grow (every attempt
// refused for 12 s), a broker restarted empty on its port answers the
// first attempt made after it is back, well within the write timeout
// (UNKNOWN_TOPIC_ID, which heals, or the record taken), and the record
// lands within two attempts. With franz-go's default backoff (250 ms
// doubling per failure up to 5 s, kept until a request succeeds), the
// client did not try the broker again for up to 5 s: longer than the
// publisher's three attempts, so the first events after an outage went
// to the DLQ.
func TestProducerTriesABrokerBackFromAnOutageWithinAnAttempt(t *testing.T) {
	if testing.Short() {
		t.Skip("a 12 s outage; skipped under -short")
	}
	const writeTimeout = time.Second
	b := testenv.BrokerProcess(t)
	cl, err := kafka.NewProducer(kafka.Config{Brokers: []string{b.Addr()}, Acks: "all", WriteTimeout: writeTimeout, MaxBufferedRecords: 100}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	p := kafka.NewHealing(cl, zerolog.Nop())
	if _, err := attempt(p, writeTimeout); err != nil {
		t.Fatalf("produce before the outage: %v", err)
	}

	b.Kill()
	for end := time.Now().Add(12 * time.Second); time.Now().Before(end); {
		if _, err := attempt(p, writeTimeout); err == nil {
			t.Fatal("a record taken while the broker was killed")
		}
	}
	if err := b.Restart(); err != nil {
		t.Fatal(err)
	}
	// Let the port answer dials, as a broker back for a moment does.
	time.Sleep(300 * time.Millisecond)

	took, err := attempt(p, writeTimeout)
	answered := err == nil || errors.Is(err, kerr.UnknownTopicID)
	if !answered || took > writeTimeout/2 {
		t.Fatalf("first attempt after the broker came back: %v after %v; want an answer (the record taken, or UNKNOWN_TOPIC_ID) within %v", err, took, writeTimeout/2)
	}
	if err != nil {
		if took, err = attempt(p, writeTimeout); err != nil {
			t.Fatalf("second attempt after the broker came back: %v after %v; want the record taken", err, took)
		}
	}
	if got := testenv.KafkaAt(b.Addr()).Count(t, "hobom.messages", 300*time.Millisecond); got != 1 {
		t.Fatalf("%d records in Kafka after the restart, want 1", got)
	}
}
