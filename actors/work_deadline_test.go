package actors

import (
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hobom/hobom-event-processor/infra/adapters/outbox"
	"github.com/hobom/hobom-event-processor/infra/devkit/fakebackend"
	"github.com/hobom/hobom-event-processor/messages"
)

// TestTimedOutTryReadsAsAWithTimeouts: a mark try that outlives its
// deadline against a slow backend fails the same way through the mark
// workers' reusable try contexts as through a context.WithTimeout: code
// DeadlineExceeded, and a text that says so, which operators search logs
// for.
func TestTimedOutTryReadsAsAWithTimeouts(t *testing.T) {
	srv, err := fakebackend.Start(fakebackend.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	srv.Add(messages.Event{ID: "1", EventID: "e-1", EventType: "MESSAGE", Status: "PENDING"})
	srv.SetFault(fakebackend.MarkSent, fakebackend.Fault{Delay: 300 * time.Millisecond})
	cli, err := outbox.Dial(outbox.Config{Addr: srv.Addr(), CallTimeout: 5 * time.Second}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	policy := RetryPolicy{Attempts: 1, Timeout: 50 * time.Millisecond}
	_, withTimeout := runFencedArg(policy, messages.Fence{}, time.Now, nil, cli.MarkSent, "e-1")
	var tc tryContexts
	_, reused := runFencedArg(policy, messages.Fence{}, time.Now, &tc, cli.MarkSent, "e-1")
	if status.Code(withTimeout) != codes.DeadlineExceeded || status.Code(reused) != codes.DeadlineExceeded {
		t.Fatalf("codes: context.WithTimeout %v, try contexts %v; want DeadlineExceeded for both\n%v\n%v",
			status.Code(withTimeout), status.Code(reused), withTimeout, reused)
	}
	// The exact text is gRPC's; what the reused contexts must never say
	// is the caller's cancellation.
	if txt := reused.Error(); strings.Contains(txt, "context canceled") || strings.Contains(txt, "code = Canceled") {
		t.Errorf("try contexts: %v; want a deadline, not a cancellation (context.WithTimeout: %v)", reused, withTimeout)
	}
}
