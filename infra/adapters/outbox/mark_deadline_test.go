package outbox_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/hobom/hobom-event-processor/infra/adapters/outbox"
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
	if end := <-backend.ended; end.hadDeadline {
		t.Error("the backend was given a deadline (grpc-timeout)")
	}
}
