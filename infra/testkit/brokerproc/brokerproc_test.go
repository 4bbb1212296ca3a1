package brokerproc_test

import (
	"context"
	"syscall"
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
	b := startBroker(t)
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

// TestReapTellsACrashFromAKill checks what the chaos suite relies on to
// restart a broker that died by itself: a Kill (or Restart) is not a crash,
// a process that dies on its own is, once, and a Restart then serves again.
func TestReapTellsACrashFromAKill(t *testing.T) {
	b := startBroker(t)
	exited, start := b.Exited()
	b.Kill()
	<-exited
	if crashed, _ := b.Reap(start); crashed {
		t.Fatal("a Kill was reaped as a crash")
	}
	if err := b.Restart(); err != nil {
		t.Fatal(err)
	}
	exited, start = b.Exited()
	if crashed, _ := b.Reap(start); crashed {
		t.Fatal("a running broker was reaped as a crash")
	}
	// Dying by itself: a SIGKILL the harness did not send through Kill.
	if err := syscall.Kill(b.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the broker did not exit")
	}
	crashed, exit := b.Reap(start)
	if !crashed || exit == nil {
		t.Fatalf("Reap = %v, %v after the broker died by itself; want a crash with its exit", crashed, exit)
	}
	if b.Running() {
		t.Fatal("Running after a reaped crash")
	}
	if crashed, _ := b.Reap(start); crashed {
		t.Fatal("one crash reaped twice")
	}
	if err := b.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := produce(t, b.Addr(), 5*time.Second); err != nil {
		t.Fatalf("produce after restarting a crashed broker: %v", err)
	}
}

// startBroker builds the broker binary and starts it with topic "t"; it is
// closed when the test ends.
func startBroker(t *testing.T) *brokerproc.Broker {
	t.Helper()
	bin, err := brokerproc.Build(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b, err := brokerproc.Start(bin, brokerproc.Options{Topics: []string{"t"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}
