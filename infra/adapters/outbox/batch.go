package outbox

import (
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hobom/hobom-event-processor/messages"
	"github.com/hobom/hobom-event-processor/proto/gen/outboxbatchv1"
)

// ErrBatchUnsupported says the backend does not implement the optional
// batch-mark rpc (it answered UNIMPLEMENTED): mark one event per call.
var ErrBatchUnsupported = messages.ErrBatchUnsupported

// MaxBatchMarks is the most ids MarkMany sends in one call; the rpc's
// documentation promises the backend no more than that.
const MaxBatchMarks = 1000

// batchState remembers whether the backend implements the batch rpc.
type batchState struct {
	recheck time.Duration // how long an UNIMPLEMENTED answer is trusted
	mu      sync.Mutex
	until   time.Time // not implemented until then (zero: try it)
	logged  bool
}

// BatchMarks reports whether MarkMany is worth calling: true until the
// backend answers UNIMPLEMENTED, then false for Config.BatchRecheck, then
// true again so that a backend upgraded meanwhile is noticed.
func (c *Client) BatchMarks() bool {
	c.batch.mu.Lock()
	defer c.batch.mu.Unlock()
	return c.batch.until.IsZero() || time.Now().After(c.batch.until)
}

// MarkMany marks the ids of sent SENT and those of failed FAILED in one
// call of the backend's optional batch rpc (outbox.batch). It returns the
// ids the backend does not know (the single-event rpcs answer NOT_FOUND
// for them); every other id was marked. On UNIMPLEMENTED it returns
// ErrBatchUnsupported and BatchMarks turns false for a while; on any other
// error some, all or none of the ids may have been marked (marking again
// is harmless). At most MaxBatchMarks ids in all.
func (c *Client) MarkMany(ctx context.Context, sent []string, failed []messages.FailedMark) (unknown []string, err error) {
	if n := len(sent) + len(failed); n > MaxBatchMarks {
		return nil, fmt.Errorf("outbox: batch mark of %d events, at most %d per call", n, MaxBatchMarks)
	}
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	req := &outboxbatchv1.BatchMarkRequest{SentEventIds: sent}
	if len(failed) > 0 {
		req.Failed = make([]*outboxbatchv1.FailedMark, len(failed))
		for i, f := range failed {
			req.Failed[i] = &outboxbatchv1.FailedMark{EventId: f.EventID, ErrorMessage: f.ErrorMessage}
		}
	}
	var reply outboxbatchv1.BatchMarkResponse
	err = c.markConn().Invoke(ctx, outboxbatchv1.BatchPatchOutboxController_PatchOutboxMarkManyUseCase_FullMethodName, req, &reply)
	if status.Code(err) == codes.Unimplemented {
		c.batch.mu.Lock()
		c.batch.until = time.Now().Add(c.batch.recheck)
		first := !c.batch.logged
		c.batch.logged = true
		c.batch.mu.Unlock()
		if first {
			c.log.Info().Dur("recheckEvery", c.batch.recheck).
				Msg("the backend does not implement batch marks; marking one event per call")
		}
		return nil, fmt.Errorf("%w: %w", ErrBatchUnsupported, err)
	}
	if err != nil {
		return nil, fmt.Errorf("outbox: batch mark of %d sent and %d failed events: %w", len(sent), len(failed), err)
	}
	c.batch.mu.Lock()
	if !c.batch.until.IsZero() {
		c.log.Info().Msg("the backend implements batch marks now")
	}
	c.batch.until, c.batch.logged = time.Time{}, false
	c.batch.mu.Unlock()
	return reply.GetUnknownEventIds(), nil
}
