package loadtest

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hobom/hobom-event-processor/infra/devkit/fakebackend"
	"github.com/hobom/hobom-event-processor/messages"
)

// TestRawMarkClientMarksOverTheStandIn: the raw client's calls are
// real mark rpcs: over TCP to the stand-in, with its API key, many at once
// on one connection, each row ends SENT; an unknown id is the backend's
// NOT_FOUND, a wrong key its refusal, and a closed server fails the calls
// instead of leaving them waiting. The answers' 5 bytes of DATA each add
// up past the connection's initial receive window of 65,535 bytes, so the
// client must hand the window back.
func TestRawMarkClientMarksOverTheStandIn(t *testing.T) {
	const key, n = "sweep-key", 15_000
	srv, err := fakebackend.Start(fakebackend.Options{APIKey: key})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	for i := range n {
		srv.Add(messages.Event{EventType: messages.EventTypeMessage, EventID: fmt.Sprintf("raw-%d", i), Status: messages.StatusPending})
	}
	c, err := dialRawMark(srv.Addr(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A client that stopped being answered would wait for good: closing
	// the connection fails its calls instead.
	guard := time.AfterFunc(30*time.Second, func() { _ = c.Close() })
	defer guard.Stop()

	var wg sync.WaitGroup
	errs := make(chan error, n)
	for g := range 50 {
		wg.Go(func() {
			call := newRawMarkCall()
			for i := g; i < n; i += 50 {
				if err := c.Mark(call, fmt.Sprintf("raw-%d", i)); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("mark: %v", err)
	}
	for i := range n {
		if ev, _ := srv.Event(fmt.Sprintf("raw-%d", i)); ev.Status != messages.StatusSent {
			t.Fatalf("raw-%d is %s, want SENT", i, ev.Status)
		}
	}
	if got := srv.Calls(fakebackend.MarkSent); got != n {
		t.Fatalf("%d mark rpcs served, want %d", got, n)
	}

	call := newRawMarkCall()
	if err := c.Mark(call, "no-such-event"); err == nil || !strings.Contains(err.Error(), `grpc-status "5"`) {
		t.Fatalf("an unknown id: %v, want NOT_FOUND (grpc-status 5)", err)
	}
	wrong, err := dialRawMark(srv.Addr(), "not-the-key")
	if err != nil {
		t.Fatal(err)
	}
	defer wrong.Close()
	if err := wrong.Mark(newRawMarkCall(), "raw-0"); err == nil {
		t.Fatal("a call with the wrong API key succeeded")
	}

	srv.Close()
	if err := c.Mark(call, "raw-1"); err == nil {
		t.Fatal("a call to a closed server succeeded")
	}
}
