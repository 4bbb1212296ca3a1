package brokerproc_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hobom/hobom-event-processor/infra/testkit/brokerproc"
)

func produce(t *testing.T, addr string, timeout time.Duration) error {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RecordDeliveryTimeout(timeout), kgo.AllowIdempotentProduceCancellation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return cl.ProduceSync(ctx, &kgo.Record{Topic: "t", Value: []byte("v")}).FirstErr()
}

// TestPauseKillRestart checks the three faults the broker process offers:
// paused it accepts and never answers, killed it refuses, restarted it
// serves again on the same address.
func TestPauseKillRestart(t *testing.T) {
	bin, err := brokerproc.Build(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b, err := brokerproc.Start(bin, brokerproc.Options{Topics: []string{"t"}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := produce(t, b.Addr(), 5*time.Second); err != nil {
		t.Fatalf("produce to a running broker: %v", err)
	}
	if err := b.Pause(); err != nil {
		t.Fatal(err)
	}
	if err := produce(t, b.Addr(), time.Second); err == nil {
		t.Fatal("a paused broker acked a record")
	}
	if err := b.Resume(); err != nil {
		t.Fatal(err)
	}
	b.Kill()
	if err := produce(t, b.Addr(), time.Second); err == nil {
		t.Fatal("a killed broker acked a record")
	}
	if err := b.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := produce(t, b.Addr(), 5*time.Second); err != nil {
		t.Fatalf("produce after the restart: %v", err)
	}
	if b.Starts() != 2 {
		t.Fatalf("starts = %d, want 2", b.Starts())
	}
}
