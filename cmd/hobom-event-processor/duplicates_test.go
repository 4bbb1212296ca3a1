package main_test

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hobom/hobom-event-processor/infra/fakebackend"
	"github.com/hobom/hobom-event-processor/infra/testenv"
	"github.com/hobom/hobom-event-processor/messages"
)

// world is what the processes under test talk to: the stand-in backend,
// kfake over TCP and a real redis-server.
type world struct {
	backend *fakebackend.Server
	kafka   *testenv.KafkaCluster
	redis   *testenv.RedisServer
}

func newWorld(t *testing.T) *world {
	t.Helper()
	backend, err := fakebackend.Start(fakebackend.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(backend.Close)
	return &world{backend: backend, kafka: testenv.Kafka(t), redis: testenv.Redis(t)}
}

// env is the processor's environment against w.
func (w *world) env(extra ...string) []string {
	return append([]string{
		"HOBOM_GRPC_ADDR=" + w.backend.Addr(),
		"HOBOM_KAFKA_BROKER=" + strings.Join(w.kafka.Addrs(), ","),
		"HOBOM_REDIS_ADDR=" + w.redis.Addr(),
		"HOBOM_POLL_INTERVAL=200ms",
		"HOBOM_LOG_LEVEL=warn",
		"HOBOM_INTERNAL_API_KEY=test-key",
	}, extra...)
}

// seed adds n MESSAGE events with ids prefix-0 .. prefix-(n-1).
func (w *world) seed(prefix string, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	w.backend.Seed(messages.EventTypeMessage, n, func(i int) messages.Event {
		return messages.Event{EventID: ids[i], Message: &messages.MessagePayload{Title: ids[i], Body: "b", Recipient: "r"}}
	})
	return ids
}

// waitSent waits until the backend has at least n MESSAGE events SENT,
// checking often, so that a fault lands close to that point.
func (w *world) waitSent(t *testing.T, n int, timeout time.Duration) int {
	t.Helper()
	var got int
	testenv.EventuallyEvery(t, timeout, time.Millisecond, fmt.Sprintf("%d MESSAGE events SENT", n), func() bool {
		got = w.backend.Count(messages.EventTypeMessage, messages.StatusSent)
		return got >= n
	})
	return got
}

// deliveries counts, per event id, the records in hobom.messages and fails
// the test for any id of ids that is not there (a loss). It returns the
// number of ids there more than once (the duplicates).
func (w *world) deliveries(t *testing.T, ids []string) (dups int) {
	t.Helper()
	seen := map[string]int{}
	for _, r := range w.kafka.ReadAll(t, "hobom.messages", 300*time.Millisecond) {
		seen[string(r.Key)]++
	}
	lost := 0
	for _, id := range ids {
		switch n := seen[id]; {
		case n == 0:
			lost++
		case n > 1:
			dups++
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d events not in Kafka (lost)", lost, len(ids))
	}
	return dups
}

// failEveryThirdMark makes every third SENT mark rpc fail, so that marks
// lag behind Kafka's acks and are retried.
func failEveryThirdMark(b *fakebackend.Server) {
	var n atomic.Int64
	b.SetHook(fakebackend.MarkSent, func(any) error {
		if n.Add(1)%3 == 0 {
			return status.Error(codes.Unavailable, "every third mark fails")
		}
		return nil
	})
}

// dupBudget is the duplicates allowed when a process dies in the middle of
// a batch: 1% of the batch, only what Kafka acked in the last milliseconds
// before the kill, before its memory write.
func dupBudget(batch int) int { return batch / 100 }

func TestSIGKILLMidBatchThenRestartRepublishesAtMostOnePercent(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the processor as a child process")
	}
	w := newWorld(t)
	failEveryThirdMark(w.backend)
	const batch = 2000
	ids := w.seed("kill", batch)

	first := startProc(t, "first", w.env()...)
	atKill := w.waitSent(t, 340, 30*time.Second)
	first.kill(t)
	t.Logf("SIGKILL with %d of %d SENT", atKill, batch)

	second := startProc(t, "second", w.env()...)
	w.waitSent(t, batch, 60*time.Second)
	second.stop(t)

	dups := w.deliveries(t, ids)
	t.Logf("republished after the SIGKILL: %d of %d (budget %d)", dups, batch, dupBudget(batch))
	if dups > dupBudget(batch) {
		t.Errorf("%d of %d events published twice, budget %d\nfirst:\n%s\nsecond:\n%s", dups, batch, dupBudget(batch),
			tail(first.out.String(), 3000), tail(second.out.String(), 3000))
	}
}
