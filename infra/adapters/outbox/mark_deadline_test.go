package outbox_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/hobom/hobom-event-processor/infra/adapters/outbox"
	"github.com/hobom/hobom-event-processor/infra/devkit/fakebackend"
	"github.com/hobom/hobom-event-processor/messages"
	"github.com/hobom/hobom-event-processor/proto/gen/outboxmessagev1"
)

// stuckMarks is a backend whose marks never answer: each reports, when the
// call ends on its side, whether gRPC gave it a deadline and how it ended.
type stuckMarks struct {
	outboxmessagev1.UnimplementedPatchOutboxControllerServer
	ended chan markEnd
}

type markEnd struct {
	hadDeadline bool
	err         error
}

func (s stuckMarks) wait(ctx context.Context) (*emptypb.Empty, error) {
	_, ok := ctx.Deadline()
	<-ctx.Done()
	s.ended <- markEnd{hadDeadline: ok, err: ctx.Err()}
	return nil, ctx.Err()
}

func (s stuckMarks) PatchOutboxMarkAsSentUseCase(ctx context.Context, _ *outboxmessagev1.MarkRequest) (*emptypb.Empty, error) {
	return s.wait(ctx)
}

func (s stuckMarks) PatchOutboxMarkAsFailedUseCase(ctx context.Context, _ *outboxmessagev1.MarkFailedRequest) (*emptypb.Empty, error) {
	return s.wait(ctx)
}

// startStuckMarks serves stuckMarks on a real socket and dials a client
// with callTimeout to it.
func startStuckMarks(t *testing.T, callTimeout time.Duration) (stuckMarks, *outbox.Client) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	backend := stuckMarks{ended: make(chan markEnd, 2)}
	srv := grpc.NewServer()
	outboxmessagev1.RegisterPatchOutboxControllerServer(srv, backend)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	cli, err := outbox.Dial(outbox.Config{Addr: lis.Addr().String(), CallTimeout: callTimeout}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	return backend, cli
}

// TestMarkDeadlinesStayLocal: a mark rpc carries no grpc-timeout (the
// backend's handler sees no deadline), yet ends at the caller's deadline
// with DeadlineExceeded, and the backend's handler is cancelled then (the
// client resets the stream) rather than left running.
func TestMarkDeadlinesStayLocal(t *testing.T) {
	backend, cli := startStuckMarks(t, 5*time.Second)

	marks := map[string]func(context.Context) error{
		"SENT":   func(ctx context.Context) error { return cli.MarkSent(ctx, "e-1") },
		"FAILED": func(ctx context.Context) error { return cli.MarkFailed(ctx, "e-1", "boom") },
	}
	for name, mark := range marks {
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		start := time.Now()
		err := mark(ctx)
		took := time.Since(start)
		cancel()
		if status.Code(err) != codes.DeadlineExceeded || took > 2*time.Second {
			t.Errorf("%s mark: %v after %s; want DeadlineExceeded at about 200ms", name, err, took)
		}
		select {
		case end := <-backend.ended:
			if end.hadDeadline {
				t.Errorf("%s mark: the backend was given a deadline (grpc-timeout)", name)
			}
			if end.err != context.Canceled {
				t.Errorf("%s mark: the backend's call ended with %v; want it cancelled by the client's reset", name, end.err)
			}
		case <-time.After(2 * time.Second):
			t.Errorf("%s mark: the backend's call still runs 2s after the client gave up", name)
		}
	}
}

// TestMarkWithoutADeadlineIsBoundByTheCallTimeout: a caller without a
// deadline still gets one, the client's call timeout, kept on this side
// like any other.
func TestMarkWithoutADeadlineIsBoundByTheCallTimeout(t *testing.T) {
	backend, cli := startStuckMarks(t, 300*time.Millisecond)
	start := time.Now()
	err := cli.MarkSent(context.Background(), "e-1")
	if took := time.Since(start); status.Code(err) != codes.DeadlineExceeded || took > 3*time.Second {
		t.Fatalf("mark: %v after %s; want DeadlineExceeded at about 300ms", err, took)
	}
	select {
	case end := <-backend.ended:
		if end.hadDeadline {
			t.Error("the backend was given a deadline (grpc-timeout)")
		}
	case <-time.After(2 * time.Second):
		t.Error("the backend's call still runs 2s after the client gave up")
	}
}

// lateTimer is a context whose deadline has passed while its Done has not
// closed yet: a timer that fires late, on a loaded machine or after a
// pause.
type lateTimer struct {
	context.Context
	deadline time.Time
}

func (c lateTimer) Deadline() (time.Time, bool) { return c.deadline, true }

// TestMarkPastItsDeadlineIsNotSent: the deadline of a mark (a lease's,
// when that comes first) is checked against the clock before the call is
// sent, not left to the context's timer, so a late timer cannot let a
// fenced mark through.
func TestMarkPastItsDeadlineIsNotSent(t *testing.T) {
	e := setup(t, fakebackend.Options{}, nil)
	e.srv.Add(messages.Event{EventID: "e1", EventType: messages.EventTypeMessage, Message: &messages.MessagePayload{Title: "t"}})
	late := lateTimer{Context: context.Background(), deadline: time.Now().Add(-time.Millisecond)}
	if err := e.cli.MarkSent(late, "e1"); status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("SENT mark past its deadline: %v; want DeadlineExceeded", err)
	}
	if err := e.cli.MarkFailed(late, "e1", "boom"); status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("FAILED mark past its deadline: %v; want DeadlineExceeded", err)
	}
	if n, m := e.srv.Calls(fakebackend.MarkSent), e.srv.Calls(fakebackend.MarkFailed); n+m != 0 {
		t.Errorf("the backend received %d SENT and %d FAILED marks sent past their deadline; want none", n, m)
	}
}

// reusedTimer is a context like the publisher's mark workers' try
// contexts: its deadline is enforced by a timer that cancels a parent, so
// what gRPC derives from it ends Canceled, while it says DeadlineExceeded.
type reusedTimer struct {
	context.Context
	deadline time.Time
}

func (c reusedTimer) Deadline() (time.Time, bool) { return c.deadline, true }

func (c reusedTimer) Err() error {
	if c.Context.Err() != nil {
		return context.DeadlineExceeded
	}
	return nil
}

// TestMarkTimedOutKeepsGRPCsReason: a mark that times out while gRPC
// still waits for a connection (the backend accepts TCP and never speaks)
// reads as a deadline and keeps gRPC's word of where it waited, through a
// context.WithTimeout and through a reused timer alike.
func TestMarkTimedOutKeepsGRPCsReason(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lis.Close() })
	go func() {
		for {
			conn, err := lis.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { _ = conn.Close() }) // held open, silent
		}
	}()
	cli, err := outbox.Dial(outbox.Config{Addr: lis.Addr().String(), CallTimeout: 5 * time.Second}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() })

	const timeout = 200 * time.Millisecond
	contexts := map[string]func() (context.Context, func()){
		"context.WithTimeout": func() (context.Context, func()) { return context.WithTimeout(t.Context(), timeout) },
		"reused timer": func() (context.Context, func()) {
			base, cancel := context.WithCancel(t.Context())
			timer := time.AfterFunc(timeout, cancel)
			return reusedTimer{Context: base, deadline: time.Now().Add(timeout)}, func() { timer.Stop(); cancel() }
		},
	}
	for name, newContext := range contexts {
		ctx, done := newContext()
		err := cli.MarkSent(ctx, "e-1")
		done()
		txt := status.Convert(errors.Unwrap(err)).Message()
		if status.Code(errors.Unwrap(err)) != codes.DeadlineExceeded || !strings.Contains(txt, "while waiting for connections to become ready") || strings.Contains(txt, "canceled") {
			t.Errorf("%s: %v; want DeadlineExceeded saying it waited for a connection, and no cancellation", name, err)
		}
	}
}
