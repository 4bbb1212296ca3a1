package messages

import (
	"fmt"
	"strings"
)

// FindRPC is the shape of the backend rpc that lists an event type's
// outbox rows: which gRPC service answers and what its rows carry. The
// outbox adapter maps each shape to its gRPC method once, when it is built,
// and calls through that map. The values are FindMessageOutbox and
// FindLogOutbox; the zero FindRPC is none and fails Route.Validate.
type FindRPC struct{ name string }

var (
	// FindMessageOutbox is FindHoBomMessageOutboxController/FindOutboxByEventTypeAndStatusUseCase:
	// rows with a message payload.
	FindMessageOutbox = FindRPC{"message"}
	// FindLogOutbox is FindHoBomLogOutboxController/FindLogOutboxByEventTypeAndStatusUseCase:
	// rows with a log payload.
	FindLogOutbox = FindRPC{"log"}
)

// FindQuery is one find through a FindRPC, with the request's optional
// fields (docs/contract.md §1).
type FindQuery struct {
	RPC       FindRPC
	EventType string
	Status    string
	// Limit > 0 asks for at most Limit rows; a backend that ignores the
	// field returns them all.
	Limit int
	// AfterEventID, when set, asks only for the rows after that event's
	// row in the backend's order (the find cursor). A backend that ignores
	// the field, or does not know the event, answers from the start, and
	// the response says which it did.
	AfterEventID string
}

// FindRPCs lists the known find shapes.
func FindRPCs() []FindRPC { return []FindRPC{FindMessageOutbox, FindLogOutbox} }

// FindRPCByName is the find shape whose Name is name.
func FindRPCByName(name string) (FindRPC, error) {
	for _, f := range FindRPCs() {
		if f.name == name {
			return f, nil
		}
	}
	return FindRPC{}, fmt.Errorf("unknown find rpc %q", name)
}

// Name names the shape in configuration and logs.
func (f FindRPC) Name() string { return f.name }

// String is Name, so that logs and errors print the shape.
func (f FindRPC) String() string { return f.name }

// Route says where one event type comes from and where it goes. The route
// table drives the pollers: adding an event type is adding one Route.
type Route struct {
	EventType string
	Find      FindRPC
	Topic     string
	// DLQPrefix is the Redis key prefix of the type's dead letters; the key
	// is DLQPrefix + eventId.
	DLQPrefix string
	// Encoding builds the records of the type's events and checks the
	// values of its dead letters (MessageEncoding, LogArrayEncoding).
	Encoding Encoding
}

// DefaultRoutes is the route table of docs/contract.md §2 and §3.
func DefaultRoutes() []Route {
	return []Route{
		{EventType: EventTypeMessage, Find: FindMessageOutbox, Topic: "hobom.messages", DLQPrefix: "dlq:menu:", Encoding: MessageEncoding},
		{EventType: EventTypeHoBomLog, Find: FindLogOutbox, Topic: "hobom.logs", DLQPrefix: "dlq:log:", Encoding: LogArrayEncoding},
	}
}

// DLQKey is the Redis key of an event's dead letter.
func (r Route) DLQKey(eventID string) string { return r.DLQPrefix + eventID }

// Validate reports a route that cannot work.
func (r Route) Validate() error {
	switch {
	case r.EventType == "":
		return fmt.Errorf("route: empty event type")
	case r.Topic == "":
		return fmt.Errorf("route %s: empty topic", r.EventType)
	case !strings.HasPrefix(r.DLQPrefix, "dlq:") || !strings.HasSuffix(r.DLQPrefix, ":"):
		return fmt.Errorf("route %s: DLQ prefix %q must start with \"dlq:\" and end with \":\"", r.EventType, r.DLQPrefix)
	}
	if _, err := FindRPCByName(r.Find.name); err != nil {
		return fmt.Errorf("route %s: %w", r.EventType, err)
	}
	if r.Encoding == nil || r.Encoding.Name() == "" {
		return fmt.Errorf("route %s: no encoding", r.EventType)
	}
	return nil
}

// ValidateRoutes checks every route and that no event type or DLQ prefix is
// used twice (a prefix must name one event type for replays to find it).
func ValidateRoutes(rs []Route) error {
	types := map[string]bool{}
	prefixes := map[string]bool{}
	for _, r := range rs {
		if err := r.Validate(); err != nil {
			return err
		}
		if types[r.EventType] {
			return fmt.Errorf("route %s: event type listed twice", r.EventType)
		}
		if prefixes[r.DLQPrefix] {
			return fmt.Errorf("route %s: DLQ prefix %q used by another route", r.EventType, r.DLQPrefix)
		}
		types[r.EventType], prefixes[r.DLQPrefix] = true, true
	}
	return nil
}
