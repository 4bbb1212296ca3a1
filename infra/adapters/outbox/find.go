package outbox

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hobom/hobom-event-processor/messages"
	"github.com/hobom/hobom-event-processor/proto/gen/outboxlogv1"
	"github.com/hobom/hobom-event-processor/proto/gen/outboxmessagev1"
)

// ErrResponseTooLarge is wrapped by the error of a Find whose response
// exceeded Config.MaxRecvBytes. The backend's find is unbounded, so this is
// how a backlog grown too large shows up; callers can test for it with
// errors.Is.
var ErrResponseTooLarge = errors.New("backlog response exceeded the receive limit")

// Find lists the rows of eventType with status through the find rpc of
// the route. limit > 0 asks for at most limit rows (an old backend ignores
// it and returns them all); 0 leaves the request field unset.
func (c *Client) Find(ctx context.Context, rpc messages.FindRPC, eventType, status string, limit int) ([]messages.Event, error) {
	return c.FindSkipping(ctx, rpc, eventType, status, limit, nil)
}

// FindSkipping is Find without the rows whose eventId skip reports, which
// are not decoded (nil: none left out). The poller passes the ids it has in
// flight, which every find returns while they are PENDING. A row whose
// eventId is not valid UTF-8 is not left out: it is repaired and marked
// defective like any other. skip runs on the caller's goroutine.
func (c *Client) FindSkipping(ctx context.Context, rpc messages.FindRPC, eventType, status string, limit int, skip func(eventID string) bool) ([]messages.Event, error) {
	if limit < 0 {
		return nil, fmt.Errorf("outbox: find %s/%s: negative limit %d", eventType, status, limit)
	}
	find, ok := finders[rpc]
	if !ok {
		return nil, fmt.Errorf("outbox: find %s/%s: unknown find rpc %q", eventType, status, rpc.Name())
	}
	events, err := find(c, ctx, eventType, status, limit, skip)
	if err != nil {
		return nil, c.findError(rpc, eventType, status, err)
	}
	return events, nil
}

// finder calls one find rpc and turns its rows into events, but for those
// skip (if not nil) reports.
type finder func(c *Client, ctx context.Context, eventType, status string, limit int, skip func(string) bool) ([]messages.Event, error)

// finders maps each find shape of messages.FindRPCs to its gRPC method,
// once; routes name a shape and Find calls through this map.
var finders = map[messages.FindRPC]finder{
	messages.FindMessageOutbox: (*Client).findMessages,
	messages.FindLogOutbox:     (*Client).findLogs,
}

func (c *Client) findMessages(ctx context.Context, eventType, status string, limit int, skip func(string) bool) ([]messages.Event, error) {
	req := &outboxmessagev1.Request{EventType: eventType, Status: status, Limit: limitField(limit)}
	return c.find(ctx, outboxmessagev1.FindHoBomMessageOutboxController_FindOutboxByEventTypeAndStatusUseCase_FullMethodName, req, false, skip, eventType, status)
}

func (c *Client) findLogs(ctx context.Context, eventType, status string, limit int, skip func(string) bool) ([]messages.Event, error) {
	req := &outboxlogv1.Request{EventType: eventType, Status: status, Limit: limitField(limit)}
	return c.find(ctx, outboxlogv1.FindHoBomLogOutboxController_FindLogOutboxByEventTypeAndStatusUseCase_FullMethodName, req, true, skip, eventType, status)
}

// find calls a find rpc and decodes its rows straight into events (the
// codec's findReply), the log rpc's when log is set, leaving out those
// skip reports.
func (c *Client) find(ctx context.Context, method string, req any, log bool, skip func(string) bool, eventType, status string) ([]messages.Event, error) {
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	reply := findReply{log: log, skip: skip}
	if err := c.conn.Invoke(ctx, method, req, &reply); err != nil {
		return nil, err
	}
	c.markDefects(reply.events, reply.repairs, eventType, status)
	return reply.events, nil
}

// limitField is the optional request field: unset for 0, so that "no
// limit" is what an old backend sees too. Limits beyond int32 are clamped.
func limitField(limit int) *int32 {
	if limit <= 0 {
		return nil
	}
	n := int32(min(limit, math.MaxInt32))
	return &n
}

// findError wraps a find failure with its context. A response over the
// receive limit gets an error that tells the operator what to change, and
// is logged here because it will not go away by retrying.
func (c *Client) findError(rpc messages.FindRPC, eventType, st string, err error) error {
	if status.Code(err) == codes.ResourceExhausted {
		c.log.Error().Err(err).
			Str("rpc", rpc.Name()).Str("event_type", eventType).Str("status", st).
			Int("max_recv_bytes", c.maxRecvBytes).
			Msg("outbox find response exceeded the receive limit; raise HOBOM_GRPC_MAX_RECV_BYTES or set HOBOM_FIND_LIMIT")
		return fmt.Errorf("outbox: find %s/%s (%s rpc): %w of %d bytes; raise HOBOM_GRPC_MAX_RECV_BYTES or set HOBOM_FIND_LIMIT: %w",
			eventType, st, rpc, ErrResponseTooLarge, c.maxRecvBytes, err)
	}
	return fmt.Errorf("outbox: find %s/%s (%s rpc): %w", eventType, st, rpc, err)
}

// markDefects sets the Defect of the events whose strings the codec
// repaired (items is field 1 of both find responses), so that they go to
// the DLQ instead of being relayed with replacement characters, and logs
// them: one line per find, ids and field names only, never contents.
func (c *Client) markDefects(events []messages.Event, repairs []repair, eventType, st string) {
	if len(repairs) == 0 {
		return
	}
	fields := map[int][]string{}
	var other []string
	for _, r := range repairs {
		if r.Top != "items" || r.Index < 0 || r.Index >= len(events) {
			other = append(other, r.Field())
			continue
		}
		if !slices.Contains(fields[r.Index], r.Path) {
			fields[r.Index] = append(fields[r.Index], r.Path)
		}
	}
	ids := make([]string, 0, len(fields))
	for i := range events {
		if f := fields[i]; f != nil {
			events[i].Defect = "invalid UTF-8 in " + strings.Join(f, ", ")
			ids = append(ids, events[i].EventID)
		}
	}
	ev := c.log.Error().Str("event_type", eventType).Str("status", st).Int("events", len(ids)).Strs("eventIds", ids)
	if len(other) > 0 {
		ev = ev.Strs("other_fields", other)
	}
	ev.Msg("outbox find response had strings with invalid UTF-8 (lone UTF-16 surrogates?); repaired with U+FFFD, those events go to the DLQ")
}
