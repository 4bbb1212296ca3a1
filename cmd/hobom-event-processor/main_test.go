package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hobom/hobom-event-processor/infra/devkit/fakebackend"
	"github.com/hobom/hobom-event-processor/infra/testkit/testenv"
	"github.com/hobom/hobom-event-processor/messages"
)

// binary is the processor built once for these tests: they check what only
// a real process shows, exit statuses and signals.
var binary string

func TestMain(m *testing.M) {
	os.Exit(testenv.RunWithBinary(m, "hobom-event-processor", &binary))
}

func runBinary(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = testenv.ChildEnv(env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("run: %v", err)
	}
	return cmd.ProcessState.ExitCode(), out.String()
}

func TestBadConfigurationExitsWithStatus2(t *testing.T) {
	for _, c := range []struct{ env, want string }{
		{"HOBOM_POLL_INTERVAL=soon", "HOBOM_POLL_INTERVAL"},
		{"HOBOM_PUBLISH_ATTEMPTS=0", "HOBOM_PUBLISH_ATTEMPTS"},
		{"HOBOM_KAFKA_BROKER=,", "HOBOM_KAFKA_BROKER"},
		{"HOBOM_DLQ_TTL=-1h", "HOBOM_DLQ_TTL"},
		{"HOBOM_LOG_LEVEL=loud", "HOBOM_LOG_LEVEL"},
		// What a careless operator tried: each refused at start, named.
		{"HOBOM_DLQ_TTL=1ms", "HOBOM_DLQ_TTL"},
		{"HOBOM_POLL_INTERVAL=1ns", "HOBOM_POLL_INTERVAL"},
		{"HOBOM_POLL_MAX_BACKOFF=1ns", "HOBOM_POLL_MAX_BACKOFF"},
		{"HOBOM_READY_INTERVAL=1ns", "HOBOM_READY_INTERVAL"},
		{"HOBOM_DLQ_SAMPLE_INTERVAL=1ns", "HOBOM_DLQ_SAMPLE_INTERVAL"},
		{"HOBOM_REDIS_ADDR=bogus", "HOBOM_REDIS_ADDR"},
		{"HOBOM_GRPC_ADDR=::::", "HOBOM_GRPC_ADDR"},
		{"HOBOM_KAFKA_BROKER=nohost", "HOBOM_KAFKA_BROKER"},
		{"HOBOM_LOG_LEVEL=disabled", "HOBOM_LOG_LEVEL"},
		{"HOBOM_LOG_LEVEL=panic", "HOBOM_LOG_LEVEL"},
		{"HOBOM_LOG_LEVEL=7", "HOBOM_LOG_LEVEL"},
		{"HOBOM_INTERNAL_API_KEY=secret ", "HOBOM_INTERNAL_API_KEY"},
		{"HOBOM_HTTP_ADDR=bogus", "HOBOM_HTTP_ADDR"},
		{"HOBOM_PUBLISH_ATTEMPTS=60", "HOBOM_PUBLISH_ATTEMPTS"},
		{"HOBOM_INSTANCE_ID=pod|7", "HOBOM_INSTANCE_ID"}, // the lease refuses '|' in an owner
	} {
		// A key, so that the only fault is the one under test (the key
		// case overrides it).
		code, out := runBinary(t, []string{"HOBOM_INTERNAL_API_KEY=k", c.env})
		if code != 2 || !strings.Contains(out, c.want) {
			t.Errorf("%s: exit %d, output %q; want 2 naming %s", c.env, code, out, c.want)
		}
	}
	if code, out := runBinary(t, nil, "--poll-interval", "x"); code != 2 || !strings.Contains(out, "--poll-interval") {
		t.Errorf("bad flag: exit %d, output %q", code, out)
	}
}

// TestWithoutAPIKeyTheProcessRefusesToStart: the API fails closed, unless
// the operator opts into an open API.
func TestWithoutAPIKeyTheProcessRefusesToStart(t *testing.T) {
	code, out := runBinary(t, []string{"HOBOM_INTERNAL_API_KEY=", "HOBOM_INTERNAL_API_OPEN="})
	if code != 2 || !strings.Contains(out, "HOBOM_INTERNAL_API_KEY") || !strings.Contains(out, "HOBOM_INTERNAL_API_OPEN=true") {
		t.Fatalf("exit %d, output %q; want 2 naming HOBOM_INTERNAL_API_KEY and the opt-in", code, out)
	}
}

// TestEveryLogLineIsJSON runs the processor with its backend, Kafka and
// Redis all refusing connections and an open API (which warns), and checks
// that every line it writes, go-redis's, grpc's and net/http's included,
// is one JSON record.
func TestEveryLogLineIsJSON(t *testing.T) {
	closed := func() string { return fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)) }
	cmd := exec.Command(binary)
	cmd.Env = testenv.ChildEnv(
		"HOBOM_GRPC_ADDR="+closed(), "HOBOM_KAFKA_BROKER="+closed(), "HOBOM_REDIS_ADDR="+closed(),
		"HOBOM_HTTP_ADDR=127.0.0.1:0", "HOBOM_INTERNAL_API_OPEN=true", "HOBOM_INTERNAL_API_KEY=",
		"HOBOM_POLL_INTERVAL=50ms", "HOBOM_POLL_MAX_BACKOFF=200ms", "HOBOM_READY_INTERVAL=200ms", "HOBOM_READY_TIMEOUT=100ms",
		"HOBOM_DLQ_SAMPLE_INTERVAL=200ms", "HOBOM_LOG_LEVEL=debug", "HOBOM_LOG_FORMAT=json",
	)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(45 * time.Second):
		cmd.Process.Kill()
		<-done
	}
	lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	components := map[string]bool{}
	for _, l := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("a log line is not JSON: %q", l)
		}
		if c, ok := rec["component"].(string); ok {
			components[c] = true
		}
	}
	if len(lines) < 10 || !strings.Contains(out.String(), "management API open") {
		t.Fatalf("%d lines, no warning about the open API:\n%s", len(lines), tail(out.String(), 3000))
	}
	t.Logf("%d JSON lines; components %v", len(lines), components)
}

func TestHelpListsEverySettingWithItsEnvironmentName(t *testing.T) {
	code, out := runBinary(t, nil, "--help")
	if code != 0 {
		t.Fatalf("--help exit %d", code)
	}
	for _, env := range []string{"HOBOM_GRPC_ADDR", "HOBOM_GRPC_API_KEY", "HOBOM_KAFKA_BROKER", "HOBOM_REDIS_ADDR", "HOBOM_INTERNAL_API_KEY",
		"HOBOM_HTTP_ADDR", "HOBOM_POLL_INTERVAL", "HOBOM_PUBLISH_ATTEMPTS", "HOBOM_PUBLISH_BACKOFF", "HOBOM_KAFKA_WRITE_TIMEOUT", "HOBOM_DLQ_TTL", "HOBOM_LOG_LEVEL"} {
		if !strings.Contains(out, env) {
			t.Errorf("--help does not mention %s", env)
		}
	}
}

func TestSIGTERMDuringALargeBatchResolvesEveryEventAndExits0(t *testing.T) {
	backend, err := fakebackend.Start(fakebackend.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(backend.Close)
	kafka, redis := testenv.Kafka(t), testenv.Redis(t)
	const n = 20_000
	backend.Seed(messages.EventTypeMessage, n, nil)
	// Slow marks a little so that the signal lands inside the batch.
	backend.SetFault(fakebackend.MarkSent, fakebackend.Fault{Delay: 2 * time.Millisecond})

	cmd := exec.Command(binary)
	cmd.Env = testenv.ChildEnv(
		"HOBOM_GRPC_ADDR="+backend.Addr(),
		"HOBOM_KAFKA_BROKER="+strings.Join(kafka.Addrs(), ","),
		"HOBOM_REDIS_ADDR="+redis.Addr(),
		"HOBOM_HTTP_ADDR=127.0.0.1:0",
		"HOBOM_FIND_LIMIT=0",         // the whole backlog is one batch
		"HOBOM_MAX_IN_FLIGHT=100000", // above the backlog, whose share would split it
		"HOBOM_POLL_INTERVAL=100ms",
		"HOBOM_INTERNAL_API_KEY=test-key",
	)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited, waited := make(chan error, 1), make(chan struct{})
	go func() { exited <- cmd.Wait(); close(waited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-waited // out is complete, and no longer written
		if t.Failed() {
			t.Logf("output:\n%s", tail(out.String(), 3000))
		}
	})
	testenv.EventuallyEvery(t, 60*time.Second, 5*time.Millisecond, "the first event SENT", func() bool {
		return backend.Count(messages.EventTypeMessage, messages.StatusSent) > 0
	})
	sentAtSignal := backend.Count(messages.EventTypeMessage, messages.StatusSent)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
	if sentAtSignal >= n {
		t.Logf("warning: the batch was already done when the signal came (%d SENT)", sentAtSignal)
	}
	if got := backend.Count(messages.EventTypeMessage, messages.StatusSent); got != n {
		t.Fatalf("%d of %d events SENT after a clean shutdown (%d at the signal)", got, n, sentAtSignal)
	}
	if got := kafka.Count(t, "hobom.messages", 300*time.Millisecond); got != n {
		t.Fatalf("%d records in Kafka, want %d", got, n)
	}
	t.Logf("SIGTERM with %d of %d SENT; all %d SENT and in Kafka at exit 0", sentAtSignal, n, n)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// TestSIGTERMDuringAKafkaOutageExits0WithinTheShutdownTimeout kills the
// broker (a process of its own) and then signals the processor while 200
// events wait for Kafka: with the default write timeout (10 s) longer than
// the shutdown timeout (4 s), the drain cancels the attempts in flight, the
// process exits 0 in time, and the events it could not resolve stay PENDING
// (none is FAILED without its DLQ entry, none is lost).
func TestSIGTERMDuringAKafkaOutageExits0WithinTheShutdownTimeout(t *testing.T) {
	backend, err := fakebackend.Start(fakebackend.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(backend.Close)
	broker, redis := testenv.BrokerProcess(t), testenv.Redis(t)
	const shutdownTimeout = 4 * time.Second

	cmd := exec.Command(binary)
	cmd.Env = testenv.ChildEnv(
		"HOBOM_GRPC_ADDR="+backend.Addr(),
		"HOBOM_KAFKA_BROKER="+broker.Addr(),
		"HOBOM_REDIS_ADDR="+redis.Addr(),
		"HOBOM_HTTP_ADDR=127.0.0.1:0",
		"HOBOM_POLL_INTERVAL=200ms",
		"HOBOM_SHUTDOWN_TIMEOUT="+shutdownTimeout.String(),
		"HOBOM_INTERNAL_API_KEY=test-key",
	)
	out := &syncBuffer{} // read while the child still writes, on the failure paths
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	backend.Seed(messages.EventTypeMessage, 10, nil)
	deadline := time.Now().Add(30 * time.Second)
	for backend.Count(messages.EventTypeMessage, messages.StatusSent) < 10 {
		if time.Now().After(deadline) {
			t.Fatalf("traffic before the outage not SENT; output:\n%s", tail(out.String(), 3000))
		}
		time.Sleep(10 * time.Millisecond)
	}
	broker.Kill()
	backend.Seed(messages.EventTypeMessage, 100, nil)
	backend.Seed(messages.EventTypeHoBomLog, 100, nil)
	testenv.Eventually(t, 10*time.Second, "the events fetched", func() bool {
		return backend.Calls(fakebackend.FindMessages) > 2 && backend.Calls(fakebackend.FindLogs) > 1
	})
	time.Sleep(time.Second) // well inside the first attempt
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	signalled := time.Now()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit: %v; output:\n%s", err, tail(out.String(), 3000))
		}
	case <-time.After(shutdownTimeout + 5*time.Second):
		t.Fatalf("no exit %v after SIGTERM; output:\n%s", shutdownTimeout+5*time.Second, tail(out.String(), 3000))
	}
	took := time.Since(signalled)
	if took > shutdownTimeout+time.Second {
		t.Errorf("exit %v after SIGTERM, shutdown timeout %v", took, shutdownTimeout)
	}
	pending := backend.Count(messages.EventTypeMessage, messages.StatusPending) + backend.Count(messages.EventTypeHoBomLog, messages.StatusPending)
	failed := backend.Count(messages.EventTypeMessage, messages.StatusFailed) + backend.Count(messages.EventTypeHoBomLog, messages.StatusFailed)
	sent := backend.Count(messages.EventTypeMessage, messages.StatusSent) + backend.Count(messages.EventTypeHoBomLog, messages.StatusSent)
	if pending+failed+sent != 210 || sent != 10 {
		t.Errorf("after the exit: %d PENDING, %d FAILED, %d SENT; want 210 in all and only the 10 before the outage SENT", pending, failed, sent)
	}
	keys, err := redis.Client(t).Keys(context.Background(), "dlq:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) < failed {
		t.Errorf("%d FAILED events, only %d DLQ entries", failed, len(keys))
	}
	t.Logf("SIGTERM during a Kafka outage: exit 0 after %v (shutdown timeout %v); %d PENDING, %d FAILED", took.Round(time.Millisecond), shutdownTimeout, pending, failed)
}
