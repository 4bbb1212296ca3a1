package chaos

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// testKafka starts the suite's Kafka world with that many brokers, closed
// when t ends.
func testKafka(t *testing.T, brokers int) *kafkaWorld {
	t.Helper()
	k, err := startKafka(t.TempDir(), brokers, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	return k
}

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
	k := testKafka(t, 3)
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

// produceLogs writes n records to the logs topic, one event id each, and
// returns the ids.
func produceLogs(t *testing.T, addrs []string, n int) []string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.DefaultProduceTopic(topicLogs))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("chaos-l-test-%d", i)
		r := &kgo.Record{Value: []byte("[]"), Headers: []kgo.RecordHeader{{Key: "event-id", Value: []byte(ids[i])}}}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

// TestFailedRecreationKeepsNothing: a recreation whose deletion fails
// leaves the topic and its records in place, so nothing it read counts as
// destroyed (else the final read finds each record a second time: 616
// "unexplained duplicates" in one chaos run); one that succeeds keeps
// every record.
func TestFailedRecreationKeepsNothing(t *testing.T) {
	k := testKafka(t, 3)
	ids := produceLogs(t, k.addrs, 5)

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if err := k.recreateTopic(cancelled, topicLogs); err == nil || !strings.Contains(err.Error(), "the topic stands") {
		t.Fatalf("recreation with a cancelled context: %v, want a deletion that failed and a topic that stands", err)
	}
	lost, records, _, destroyed := k.lostView()
	if len(lost) != 0 || records != 0 || len(destroyed) != 0 {
		t.Fatalf("after a failed recreation: kept %d ids, %d records, destroyed %v; want nothing", len(lost), records, destroyed)
	}
	stamps, n, err := readStamps(k.addrs, []string{topicLogs}, 10*time.Second)
	if err != nil || n != len(ids) {
		t.Fatalf("the topic after a failed recreation: %d records (%v), want %d", n, err, len(ids))
	}

	if err := k.recreateTopic(context.Background(), topicLogs); err != nil {
		t.Fatalf("recreation: %v", err)
	}
	lost, records, _, destroyed = k.lostView()
	if records != len(ids) || !slices.Equal(destroyed, []string{"topic " + topicLogs + " recreated"}) {
		t.Fatalf("after a recreation: kept %d records, destroyed %v; want %d and the recreation", records, destroyed, len(ids))
	}
	for _, id := range ids {
		if len(lost[id]) != 1 || !lost[id][0].Equal(stamps[id][0]) {
			t.Fatalf("kept %s at %v, want once at %v", id, lost[id], stamps[id])
		}
	}
	if _, n, err := readStamps(k.addrs, []string{topicLogs}, 10*time.Second); err != nil || n != 0 {
		t.Fatalf("the recreated topic: %d records (%v), want 0", n, err)
	}
}

// TestBounceableNodesLeaveTheControllerInPlace: after a bounce of any
// node a plan may pick, the topics can still be recreated. kfake's
// RemoveNode (the version pinned in go.mod) does not move the controller:
// once the controller's node is removed, every CreateTopics and
// DeleteTopics is answered NOT_CONTROLLER for the cluster's life, even
// after the node is added back. So plans never bounce the controller (the
// last node), and the last part pins that behaviour: should kfake fix it,
// this test fails and the rule can go.
func TestBounceableNodesLeaveTheControllerInPlace(t *testing.T) {
	const brokers = 3
	k := testKafka(t, brokers)
	for _, node := range bounceable(brokers) {
		if err := k.removeNode(node); err != nil {
			t.Fatal(err)
		}
		if err := k.addNode(node); err != nil {
			t.Fatal(err)
		}
		if err := k.recreateTopic(context.Background(), topicLogs); err != nil {
			t.Fatalf("recreation after a bounce of node %d: %v", node, err)
		}
	}

	controller := int32(brokers - 1)
	if slices.Contains(bounceable(brokers), controller) {
		t.Fatalf("plans may bounce node %d, the controller", controller)
	}
	ids := produceLogs(t, k.addrs, 3)
	_, keptBefore, _, destroyedBefore := k.lostView()
	if err := k.removeNode(controller); err != nil {
		t.Fatal(err)
	}
	if err := k.addNode(controller); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	err := k.recreateTopic(ctx, topicLogs)
	if !errors.Is(err, kerr.NotController) || !strings.Contains(err.Error(), "the topic stands") {
		t.Fatalf("recreation after a bounce of the controller: %v, want NOT_CONTROLLER and the topic standing (kfake's bug, the reason for bounceable)", err)
	}
	// What the suite read before that failed deletion does not count: the
	// records are still in the topic.
	if _, kept, _, destroyed := k.lostView(); kept != keptBefore || !slices.Equal(destroyed, destroyedBefore) {
		t.Fatalf("after the failed recreation: %d records kept, destroyed %v; want %d and %v as before", kept, destroyed, keptBefore, destroyedBefore)
	}
	if _, n, err := readStamps(k.addrs, []string{topicLogs}, 10*time.Second); err != nil || n != len(ids) {
		t.Fatalf("the topic after the failed recreation: %d records (%v), want %d", n, err, len(ids))
	}
}

// TestAWindowEndingWhileTopicsAreKeptLeavesThemFrozen: while the suite
// reads the topics about to be destroyed, appends are refused; a produce
// error window that ends meanwhile (its timer runs apply, outside op) must
// not lift that, or records appended between the read and the destruction
// would be counted nowhere (LOST). Once the destruction is done, the
// knobs apply again.
func TestAWindowEndingWhileTopicsAreKeptLeavesThemFrozen(t *testing.T) {
	k := testKafka(t, 3)
	produceLogs(t, k.addrs, 1)
	kept := k.keep("a test's recreation", topicLogs)
	if err := k.setErrWindow(nil); err != nil { // a window ends
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.addrs...), kgo.DefaultProduceTopic(topicLogs),
		kgo.RecordDeliveryTimeout(time.Second), kgo.AllowIdempotentProduceCancellation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("[]")}).FirstErr(); err == nil {
		t.Fatal("a record appended while the topics were kept, after a window ended")
	}
	k.op.Lock()
	k.thaw()
	err = k.reapply()
	k.op.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	after, cancelAfter := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelAfter()
	if err := cl.ProduceSync(after, &kgo.Record{Value: []byte("[]")}).FirstErr(); err != nil {
		t.Fatalf("a record after the freeze ended: %v", err)
	}
	if kept.records != 1 {
		t.Fatalf("kept %d records, want 1", kept.records)
	}
}
