package chaos

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// brokerNodes lists the node ids the cluster's metadata names.
func brokerNodes(t *testing.T, addrs []string) []int32 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	md, err := kadm.NewClient(cl).BrokerMetadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	nodes := md.Brokers.NodeIDs()
	slices.Sort(nodes)
	return nodes
}

// TestBrokerBounceAcrossAPause: a bounce (a node removed, then added back)
// whose start or end falls while the broker process is paused takes
// effect once it runs again, and a removal applied before the pause is
// not sent a second time at the resume (kfake refuses it: "node 1 not
// found", which failed a whole chaos run).
func TestBrokerBounceAcrossAPause(t *testing.T) {
	k, err := startKafka(t.TempDir(), 3, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	all := brokerNodes(t, k.addrs)
	if len(all) != 3 {
		t.Fatalf("%d brokers at the start, want 3: %v", len(all), all)
	}
	others := slices.DeleteFunc(slices.Clone(all), func(n int32) bool { return n == 1 })

	// Removed while running, paused and resumed before the bounce ends.
	if err := k.removeNode(1); err != nil {
		t.Fatal(err)
	}
	if err := k.pause(); err != nil {
		t.Fatal(err)
	}
	if err := k.resume(); err != nil {
		t.Fatalf("resume during a bounce: %v", err)
	}
	if got := brokerNodes(t, k.addrs); !slices.Equal(got, others) {
		t.Fatalf("brokers after a pause during a bounce: %v, want %v", got, others)
	}
	if err := k.addNode(1); err != nil {
		t.Fatal(err)
	}
	if got := brokerNodes(t, k.addrs); !slices.Equal(got, all) {
		t.Fatalf("brokers after the bounce: %v, want %v", got, all)
	}

	// Removed while running, added back while paused.
	if err := k.removeNode(1); err != nil {
		t.Fatal(err)
	}
	if err := k.pause(); err != nil {
		t.Fatal(err)
	}
	if err := k.addNode(1); err != nil {
		t.Fatal(err)
	}
	if err := k.resume(); err != nil {
		t.Fatalf("resume after a bounce that ended during the pause: %v", err)
	}
	if got := brokerNodes(t, k.addrs); !slices.Equal(got, all) {
		t.Fatalf("brokers after the bounce ended during the pause: %v, want %v", got, all)
	}

	// Removed while paused, added back once running.
	if err := k.pause(); err != nil {
		t.Fatal(err)
	}
	if err := k.removeNode(1); err != nil {
		t.Fatal(err)
	}
	if err := k.resume(); err != nil {
		t.Fatalf("resume after a bounce that started during the pause: %v", err)
	}
	if got := brokerNodes(t, k.addrs); !slices.Equal(got, others) {
		t.Fatalf("brokers after a removal during the pause: %v, want %v", got, others)
	}
	if err := k.addNode(1); err != nil {
		t.Fatal(err)
	}
	if got := brokerNodes(t, k.addrs); !slices.Equal(got, all) {
		t.Fatalf("brokers after the node was added back: %v, want %v", got, all)
	}
}
