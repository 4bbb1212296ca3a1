package outbox

import (
	"context"
	"fmt"

	"github.com/hobom/hobom-event-processor/proto/gen/outboxmessagev1"
)

// MarkSent marks an event SENT (the backend sets sentAt, clears lastError
// and bumps version). It serves events of every type.
func (c *Client) MarkSent(ctx context.Context, eventID string) error {
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	if _, err := c.patch.PatchOutboxMarkAsSentUseCase(ctx, &outboxmessagev1.MarkRequest{EventId: eventID}); err != nil {
		return fmt.Errorf("outbox: mark event %s sent: %w", eventID, err)
	}
	return nil
}

// MarkFailed marks an event FAILED with errorMessage as its lastError (the
// backend sets failedAt and bumps retryCount and version).
func (c *Client) MarkFailed(ctx context.Context, eventID, errorMessage string) error {
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	req := &outboxmessagev1.MarkFailedRequest{EventId: eventID, ErrorMessage: errorMessage}
	if _, err := c.patch.PatchOutboxMarkAsFailedUseCase(ctx, req); err != nil {
		return fmt.Errorf("outbox: mark event %s failed: %w", eventID, err)
	}
	return nil
}
