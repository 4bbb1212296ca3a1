// Package testenv starts the real servers the processor talks to (Redis and a
// Kafka protocol fake) for tests of every package, and tears them down when
// the test ends. It talks to no shared server: each call gets its own process
// or in-memory cluster on a free loopback port, so tests can run in parallel
// and can stop and restart their servers without disturbing anyone else.
package testenv

import (
	"fmt"
	"testing"
	"time"

	"github.com/hobom/hobom-event-processor/infra/testkit/redisproc"
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago. The
// port is released before returning, so another process may take it first;
// callers that start a server on it should retry with a new port when the
// bind fails.
func FreePort(t testing.TB) int {
	t.Helper()
	port, err := redisproc.FreePort()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return port
}

// waitUntil polls cond every interval until it returns true or timeout
// passes; it returns the last error cond reported when time runs out. Tests
// wait for servers with it instead of sleeping a fixed time.
func waitUntil(timeout, interval time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		last = err
		if time.Now().After(deadline) {
			if last == nil {
				last = fmt.Errorf("condition still false")
			}
			return fmt.Errorf("after %v: %w", timeout, last)
		}
		time.Sleep(interval)
	}
}

// Eventually polls cond every 10 ms until it holds, and fails the test
// when timeout passes first: tests wait for conditions, never for fixed
// sleeps. It is the tests' one wait loop.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	EventuallyEvery(t, timeout, 10*time.Millisecond, what, cond)
}

// EventuallyEvery is Eventually polling every interval, for a test that
// must act close to the moment cond becomes true (inject a fault just
// after the first events are SENT).
func EventuallyEvery(t testing.TB, timeout, interval time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(interval)
	}
}
