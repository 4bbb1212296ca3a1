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
	events, _, err := c.FindSkipping(ctx, messages.FindQuery{RPC: rpc, EventType: eventType, Status: status, Limit: limit}, nil)
	return events, err
}

// FindSkipping is the find of q without the rows whose eventId skip
// reports, which are not decoded (nil: none left out), and reports whether
// the backend applied q.AfterEventID. The poller passes the ids it has in
// flight, which a find returns while they are PENDING unless the cursor
// left them out. A row whose eventId is not valid UTF-8 is not left out:
// it is repaired and marked defective like any other. skip runs on the
// caller's goroutine.
func (c *Client) FindSkipping(ctx context.Context, q messages.FindQuery, skip func(eventID string) bool) (events []messages.Event, afterApplied bool, err error) {
	if q.Limit < 0 {
		return nil, false, fmt.Errorf("outbox: find %s/%s: negative limit %d", q.EventType, q.Status, q.Limit)
	}
	find, ok := finders[q.RPC]
	if !ok {
		return nil, false, fmt.Errorf("outbox: find %s/%s: unknown find rpc %q", q.EventType, q.Status, q.RPC.Name())
	}
	reply := findReply{skip: skip}
	if err := find(c, ctx, q, &reply); err != nil {
		return nil, false, c.findError(q.RPC, q.EventType, q.Status, err)
	}
	c.markDefects(reply.events, reply.repairs, q.EventType, q.Status)
	return reply.events, reply.afterApplied, nil
}

// finder calls one find rpc and decodes its response into reply.
type finder func(c *Client, ctx context.Context, q messages.FindQuery, reply *findReply) error

// finders maps each find shape of messages.FindRPCs to its gRPC method,
// once; routes name a shape and Find calls through this map.
var finders = map[messages.FindRPC]finder{
	messages.FindMessageOutbox: (*Client).findMessages,
	messages.FindLogOutbox:     (*Client).findLogs,
}

func (c *Client) findMessages(ctx context.Context, q messages.FindQuery, reply *findReply) error {
	req := &outboxmessagev1.Request{EventType: q.EventType, Status: q.Status, Limit: limitField(q.Limit), AfterEventId: afterField(q.AfterEventID)}
	return c.invoke(ctx, outboxmessagev1.FindHoBomMessageOutboxController_FindOutboxByEventTypeAndStatusUseCase_FullMethodName, req, reply)
}

func (c *Client) findLogs(ctx context.Context, q messages.FindQuery, reply *findReply) error {
	req := &outboxlogv1.Request{EventType: q.EventType, Status: q.Status, Limit: limitField(q.Limit), AfterEventId: afterField(q.AfterEventID)}
	reply.log = true
	return c.invoke(ctx, outboxlogv1.FindHoBomLogOutboxController_FindLogOutboxByEventTypeAndStatusUseCase_FullMethodName, req, reply)
}

// invoke calls a find rpc; the codec decodes its rows straight into
// reply's events (findReply).
func (c *Client) invoke(ctx context.Context, method string, req any, reply *findReply) error {
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	return c.conn.Invoke(ctx, method, req, reply)
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

// afterField is the optional cursor field: unset for "", so that an old
// backend and a find without a cursor see the same request.
func afterField(eventID string) *string {
	if eventID == "" {
		return nil
	}
	return &eventID
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
