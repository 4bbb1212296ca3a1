package messages

import (
	"fmt"
	"strings"
)

// FindRPC names the backend rpc that lists an event type's outbox rows.
type FindRPC string

const (
	// FindMessageOutbox is FindHoBomMessageOutboxController/FindOutboxByEventTypeAndStatusUseCase.
	FindMessageOutbox FindRPC = "message"
	// FindLogOutbox is FindHoBomLogOutboxController/FindLogOutboxByEventTypeAndStatusUseCase.
	FindLogOutbox FindRPC = "log"
)

// Encoding names how a route's events become Kafka records.
type Encoding string

const (
	// EncodingMessage writes one JSON object per event, keyed by eventId.
	EncodingMessage Encoding = "message"
	// EncodingLogArray writes the events of one poll as JSON arrays, keyed
	// hobom-log-<unix nanos>, split so that no record exceeds the size limit.
	EncodingLogArray Encoding = "log-array"
)

// Route says where one event type comes from and where it goes. The route
// table drives the pollers: adding an event type is adding one Route.
type Route struct {
	EventType string
	Find      FindRPC
	Topic     string
	// DLQPrefix is the Redis key prefix of the type's dead letters; the key
	// is DLQPrefix + eventId.
	DLQPrefix string
	Encoding  Encoding
}

// DefaultRoutes is the route table of docs/contract.md §2 and §3.
func DefaultRoutes() []Route {
	return []Route{
		{EventType: EventTypeMessage, Find: FindMessageOutbox, Topic: "hobom.messages", DLQPrefix: "dlq:menu:", Encoding: EncodingMessage},
		{EventType: EventTypeHoBomLog, Find: FindLogOutbox, Topic: "hobom.logs", DLQPrefix: "dlq:log:", Encoding: EncodingLogArray},
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
	switch r.Find {
	case FindMessageOutbox, FindLogOutbox:
	default:
		return fmt.Errorf("route %s: unknown find rpc %q", r.EventType, r.Find)
	}
	switch r.Encoding {
	case EncodingMessage, EncodingLogArray:
	default:
		return fmt.Errorf("route %s: unknown encoding %q", r.EventType, r.Encoding)
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
