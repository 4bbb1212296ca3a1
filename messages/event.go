// Package messages holds the domain types that the actors exchange: outbox
// events, the route table that says where each event type goes, the Kafka
// record encodings of docs/contract.md §2 and the messages sent between actors.
package messages

// Outbox statuses, plain strings on the wire (docs/contract.md §1).
const (
	StatusPending = "PENDING"
	StatusSent    = "SENT"
	StatusFailed  = "FAILED"
)

// Event types known to the default route table.
const (
	EventTypeMessage  = "MESSAGE"
	EventTypeHoBomLog = "HOBOM_LOG"
)

// Event is one outbox row as the backend returns it. Exactly one of Message
// and Log is set, according to the find rpc that returned it; either may be
// nil when the backend sent no payload.
type Event struct {
	ID         string
	EventID    string
	EventType  string
	Status     string
	RetryCount int32
	Version    int32
	SentAt     string
	FailedAt   string
	LastError  string
	CreatedAt  string
	UpdatedAt  string

	Message *MessagePayload
	Log     *LogPayload

	// Defect, when not empty, says why the event cannot be relayed as is,
	// e.g. "invalid UTF-8 in payload.title" for strings the outbox client
	// had to repair; the publisher sends such an event to the DLQ with the
	// reason instead of to Kafka. Set by the outbox client.
	Defect string
}

// MessagePayload is the payload of a MESSAGE event.
type MessagePayload struct {
	ID        string
	Title     string
	Body      string
	Recipient string
	SenderID  string
	Type      string // MAIL_MESSAGE or PUSH_MESSAGE
}

// LogPayload is the payload of a HOBOM_LOG event (HoBomLogPayload).
type LogPayload struct {
	TraceID     string
	Level       string
	Method      string
	Path        string
	StatusCode  int32
	Host        string
	UserID      string
	Detail      *LogPayloadDetail
	ServiceType string
	Message     string
}

// LogPayloadDetail is the request detail of a log event (LogPayloadDetail).
type LogPayloadDetail struct {
	Query   map[string]string
	Body    map[string]string
	Headers map[string]string
	Error   string
}
