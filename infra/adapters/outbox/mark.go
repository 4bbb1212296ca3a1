package outbox

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/hobom/hobom-event-processor/proto/gen/outboxmessagev1"
)

// markCall is the request and reply of one mark rpc, reused through
// markCalls: gRPC is done with both when Invoke returns, and a mark is
// the processor's most frequent call.
type markCall struct {
	sent   outboxmessagev1.MarkRequest
	failed outboxmessagev1.MarkFailedRequest
	reply  emptypb.Empty
}

var markCalls = sync.Pool{New: func() any { return new(markCall) }}

// MarkSent marks an event SENT (the backend sets sentAt, clears lastError
// and bumps version). It serves events of every type.
func (c *Client) MarkSent(ctx context.Context, eventID string) error {
	callCtx, cancel, err := c.markContext(ctx)
	if err != nil {
		return fmt.Errorf("outbox: mark event %s sent: %w", eventID, err)
	}
	defer cancel()
	mc := markCalls.Get().(*markCall)
	mc.sent.EventId = eventID
	err = c.markConn().Invoke(callCtx, outboxmessagev1.PatchOutboxController_PatchOutboxMarkAsSentUseCase_FullMethodName, &mc.sent, &mc.reply)
	mc.sent.EventId = ""
	markCalls.Put(mc)
	if err != nil {
		return fmt.Errorf("outbox: mark event %s sent: %w", eventID, deadlineStatus(ctx, err))
	}
	return nil
}

// MarkFailed marks an event FAILED with errorMessage as its lastError (the
// backend sets failedAt and bumps retryCount and version).
func (c *Client) MarkFailed(ctx context.Context, eventID, errorMessage string) error {
	callCtx, cancel, err := c.markContext(ctx)
	if err != nil {
		return fmt.Errorf("outbox: mark event %s failed: %w", eventID, err)
	}
	defer cancel()
	mc := markCalls.Get().(*markCall)
	mc.failed.EventId, mc.failed.ErrorMessage = eventID, errorMessage
	err = c.markConn().Invoke(callCtx, outboxmessagev1.PatchOutboxController_PatchOutboxMarkAsFailedUseCase_FullMethodName, &mc.failed, &mc.reply)
	mc.failed.EventId, mc.failed.ErrorMessage = "", ""
	markCalls.Put(mc)
	if err != nil {
		return fmt.Errorf("outbox: mark event %s failed: %w", eventID, deadlineStatus(ctx, err))
	}
	return nil
}

// markContext bounds one mark rpc like callContext, and keeps the bound on
// this side: gRPC is not told the deadline, so it sends no grpc-timeout,
// and the backend arms no timer of its own for a call that updates one row.
// The call still ends at the deadline: gRPC watches ctx.Done, resets the
// stream (the backend sees RST_STREAM, as for any abandoned call) and
// reports DeadlineExceeded (see deadlineStatus). What gRPC did with the
// deadline before sending, refuse a call whose deadline has passed, is
// done here: a context's Done may close a little after its deadline (a
// late timer), and the fencing of marks (a lease's deadline bounds every
// try) must not send one after it. The relay-only load test measured 7-17 %
// more events per second without grpc-timeout
// (docs/decisions/0007-mark-deadlines-stay-local.md).
func (c *Client) markContext(ctx context.Context) (context.Context, context.CancelFunc, error) {
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return nil, nil, status.Error(codes.DeadlineExceeded, context.DeadlineExceeded.Error())
	}
	callCtx, cancel := c.callContext(ctx)
	return localDeadline{callCtx}, cancel, nil
}

// localDeadline is a context whose deadline, enforced by its Done, is not
// shown to the gRPC client.
type localDeadline struct{ context.Context }

func (localDeadline) Deadline() (time.Time, bool) { return time.Time{}, false }

// deadlineStatus gives a call that ended because ctx reached its deadline
// the code DeadlineExceeded, as gRPC does for a context.WithTimeout. gRPC
// derives the call's context from ctx; when ctx enforces its deadline by
// cancelling a parent (the publisher's mark workers reuse one cancel
// context and timer across tries), the derived context ends Canceled and
// gRPC reports Canceled although ctx itself says DeadlineExceeded. gRPC's
// text is kept, its "context canceled" said as the deadline it was: it
// may tell where the call was waiting ("... while waiting for connections
// to become ready") or why ("latest balancer error: ...").
func deadlineStatus(ctx context.Context, err error) error {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.Canceled || !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return err
	}
	msg := strings.ReplaceAll(st.Message(), context.Canceled.Error(), context.DeadlineExceeded.Error())
	return status.Error(codes.DeadlineExceeded, msg)
}
