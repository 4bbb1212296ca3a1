package main_test

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hobom/hobom-event-processor/infra/devkit/fakebackend"
	"github.com/hobom/hobom-event-processor/infra/testkit/testenv"
	"github.com/hobom/hobom-event-processor/messages"
)

type instance struct {
	id     string
	cmd    *exec.Cmd
	out    *bytes.Buffer
	exited chan error
}

func TestThreeInstancesShareTheLeasesAndTakeOverFromAKilledHolder(t *testing.T) {
	backend, err := fakebackend.Start(fakebackend.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(backend.Close)
	kafka, redis := testenv.Kafka(t), testenv.Redis(t)
	rdb := redis.Client(t)
	const ttl = time.Second

	instances := map[string]*instance{}
	for i := range 3 {
		in := &instance{id: fmt.Sprintf("inst-%d", i), out: &bytes.Buffer{}, exited: make(chan error, 1)}
		in.cmd = exec.Command(binary)
		in.cmd.Env = testenv.ChildEnv(
			"HOBOM_GRPC_ADDR="+backend.Addr(),
			"HOBOM_KAFKA_BROKER="+strings.Join(kafka.Addrs(), ","),
			"HOBOM_REDIS_ADDR="+redis.Addr(),
			"HOBOM_HTTP_ADDR=127.0.0.1:0",
			"HOBOM_POLL_INTERVAL=50ms",
			"HOBOM_LEASE_TTL="+ttl.String(),
			"HOBOM_INSTANCE_ID="+in.id,
			"HOBOM_INTERNAL_API_KEY=test-key",
		)
		in.cmd.Stdout, in.cmd.Stderr = in.out, in.out
		if err := in.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { in.exited <- in.cmd.Wait() }()
		instances[in.id] = in
		t.Cleanup(func() { in.cmd.Process.Kill() })
	}
	holder := func(eventType string) string {
		v, _ := rdb.Get(context.Background(), "hobom:lease:"+eventType).Result()
		owner, _, _ := strings.Cut(v, "|")
		return owner
	}
	// Each type's lease is held, by different instances: types spread.
	testenv.Eventually(t, 20*time.Second, "the two leases held by two different instances", func() bool {
		m, l := holder(messages.EventTypeMessage), holder(messages.EventTypeHoBomLog)
		return m != "" && l != "" && m != l
	})

	seq := 0
	add := func(n int) []string {
		var ids []string
		for range n {
			seq++
			id := fmt.Sprintf("m-%d", seq)
			backend.Add(messages.Event{EventID: id, EventType: messages.EventTypeMessage, Message: &messages.MessagePayload{Title: id}})
			ids = append(ids, id)
		}
		return ids
	}
	allSent := func(ids []string) func() bool {
		return func() bool {
			for _, id := range ids {
				if e, _ := backend.Event(id); e.Status != messages.StatusSent {
					return false
				}
			}
			return true
		}
	}
	before := add(200)
	testenv.Eventually(t, 20*time.Second, "the first events SENT", allSent(before))

	victim := instances[holder(messages.EventTypeMessage)]
	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-victim.exited
	killed := time.Now()
	after := add(200)
	testenv.Eventually(t, 20*time.Second, "events SENT after the holder was killed", allSent(after))
	took := time.Since(killed)
	newHolder := holder(messages.EventTypeMessage)
	t.Logf("MESSAGE lease: %s killed, %s took over; new events SENT %v after the kill (lease TTL %v)", victim.id, newHolder, took.Round(time.Millisecond), ttl)
	if newHolder == victim.id || newHolder == "" {
		t.Fatalf("lease holder after the kill = %q", newHolder)
	}
	if took > 3*ttl+2*time.Second {
		t.Errorf("takeover took %v, want about the lease TTL %v", took, ttl)
	}

	// Nothing lost, nothing published twice.
	recs := kafka.ReadAll(t, "hobom.messages", 300*time.Millisecond)
	seen := map[string]int{}
	for _, r := range recs {
		seen[string(r.Key)]++
	}
	for _, id := range append(before, after...) {
		if seen[id] != 1 {
			t.Errorf("event %s is in Kafka %d times", id, seen[id])
		}
	}

	for _, in := range instances {
		if in == victim {
			continue
		}
		in.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-in.exited:
			if err != nil {
				t.Errorf("%s: %v\n%s", in.id, err, tail(in.out.String(), 2000))
			}
		case <-time.After(30 * time.Second):
			t.Errorf("%s did not stop", in.id)
		}
	}
	// A clean shutdown gives the leases back at once.
	if h := holder(messages.EventTypeMessage); h != "" {
		t.Errorf("MESSAGE lease still held by %s after every instance stopped", h)
	}
}
