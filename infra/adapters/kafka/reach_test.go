package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hobom/hobom-event-processor/infra/adapters/kafka"
	"github.com/hobom/hobom-event-processor/infra/testkit/testenv"
)

// TestExplainNamesWhyNoBrokerTookTheRecord: a record that times out while
// the only broker's port refuses connections is explained by the refused
// dial; a broker's own rejection is not decorated.
func TestExplainNamesWhyNoBrokerTookTheRecord(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)) // nothing listens there: the dial is refused
	cl, err := kafka.NewProducer(kafka.Config{Brokers: []string{addr}, Acks: "all", WriteTimeout: time.Second, MaxBufferedRecords: 10}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	reach := kafka.NewReach(cl, time.Second, zerolog.Nop(), nil)
	defer reach.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	perr := cl.ProduceSync(ctx, &kgo.Record{Topic: "hobom.messages", Value: []byte(`{}`)}).FirstErr()
	if perr == nil {
		t.Fatal("a produce to a refusing port succeeded")
	}
	got := reach.Explain(perr).Error()
	if !strings.HasPrefix(got, perr.Error()) || !strings.Contains(got, "last broker connection") || !strings.Contains(got, "refused") {
		t.Fatalf("Explain(%q) = %q; want the error followed by the refused dial", perr, got)
	}
	if !errors.Is(reach.Explain(context.DeadlineExceeded), context.DeadlineExceeded) {
		t.Fatal("Explain hides the error it wraps")
	}
	if err := reach.Explain(nil); err != nil {
		t.Fatalf("Explain(nil) = %v", err)
	}
}

// TestOutageHoldsOnlyWhatTheNextAttemptCanHeal: with
// HOBOM_KAFKA_OUTAGE=hold, no broker taking the record and a topic whose ID
// changed under the producer (a cluster restarted empty) keep the events
// PENDING; a broker rejecting the record does not.
func TestOutageHoldsOnlyWhatTheNextAttemptCanHeal(t *testing.T) {
	var r *kafka.Reach // Outage reads nothing of the Reach
	for err, want := range map[error]bool{
		fmt.Errorf("unable to dial: %w", errors.New("connection refused")): true,
		kgo.ErrRecordTimeout:                                     true,
		fmt.Errorf("produce: %w", kerr.UnknownTopicID):           true,
		kerr.MessageTooLarge:                                     false,
		fmt.Errorf("produce: %w", kerr.TopicAuthorizationFailed): false,
		fmt.Errorf("produce: %w", kerr.InvalidRecord):            false,
	} {
		if got := r.Outage(err); got != want {
			t.Errorf("Outage(%v) = %v, want %v", err, got, want)
		}
	}
}
