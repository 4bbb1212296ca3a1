package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/hobom/hobom-event-processor/infra/testkit/brokerproc"
)

// BrokerProcess builds the kfake broker binary and starts it as a separate
// process on a free port with ContractTopics; it is killed when t ends. The
// process can be killed (SIGKILL), paused (SIGSTOP) and restarted empty on
// the same port, which an in-process cluster cannot do for real.
func BrokerProcess(t testing.TB) *brokerproc.Broker {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bin, err := brokerproc.Build(ctx, t.TempDir())
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	b, err := brokerproc.Start(bin, brokerproc.Options{Topics: ContractTopics()})
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(b.Close)
	return b
}
