package fakebackend

import (
	"strconv"

	"github.com/hobom/hobom-event-processor/messages"
)

// synthetic is the i-th row Seed makes when given no constructor: small but
// realistic payloads. The event id is left to the store, which makes it
// unique across Seed calls.
func synthetic(eventType string, i int) messages.Event {
	n := strconv.Itoa(i)
	ev := messages.Event{EventType: eventType}
	if eventType == messages.EventTypeHoBomLog {
		ev.Log = &messages.LogPayload{
			TraceID:     "trace-" + n,
			Level:       "INFO",
			Method:      "GET",
			Path:        "/api/items/" + n,
			StatusCode:  200,
			Host:        "fake-host",
			UserID:      "user-" + n,
			ServiceType: "HOBOM_BACKEND",
			Message:     "request " + n,
		}
		return ev
	}
	ev.Message = &messages.MessagePayload{
		ID:        "msg-" + n,
		Title:     "title " + n,
		Body:      "body " + n,
		Recipient: "user" + n + "@example.com",
		SenderID:  "sender-" + n,
		Type:      "MAIL_MESSAGE",
	}
	return ev
}
