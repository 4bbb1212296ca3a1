package outbox

import (
	"github.com/hobom/hobom-event-processor/messages"
	"github.com/hobom/hobom-event-processor/proto/gen/outboxlogv1"
	"github.com/hobom/hobom-event-processor/proto/gen/outboxmessagev1"
)

// messageEvents and logEvents convert the generated find responses as the
// client did before it decoded rows itself (findReply): the reference the
// decoder is compared with.

// rowFields are the getters the rows of both find rpcs have.
type rowFields interface {
	GetId() string
	GetEventId() string
	GetEventType() string
	GetStatus() string
	GetRetryCount() int32
	GetVersion() int32
	GetSentAt() string
	GetFailedAt() string
	GetLastError() string
	GetCreatedAt() string
	GetUpdatedAt() string
}

// setRow copies a row's fields but its payload into e.
func setRow(e *messages.Event, r rowFields) {
	e.ID = r.GetId()
	e.EventID = r.GetEventId()
	e.EventType = r.GetEventType()
	e.Status = r.GetStatus()
	e.RetryCount = r.GetRetryCount()
	e.Version = r.GetVersion()
	e.SentAt = r.GetSentAt()
	e.FailedAt = r.GetFailedAt()
	e.LastError = r.GetLastError()
	e.CreatedAt = r.GetCreatedAt()
	e.UpdatedAt = r.GetUpdatedAt()
}

// messageEvents converts the message find rpc's rows; Event.Message is set,
// or nil when the row has no payload.
func messageEvents(items []*outboxmessagev1.QueryResult) []messages.Event {
	if len(items) == 0 {
		return nil
	}
	events := make([]messages.Event, len(items))
	payloads := make([]messages.MessagePayload, countNonNil(items, (*outboxmessagev1.QueryResult).GetPayload))
	for i, it := range items {
		e := &events[i]
		setRow(e, it)
		if p := it.GetPayload(); p != nil {
			m := &payloads[0]
			payloads = payloads[1:]
			m.ID = p.GetId()
			m.Title = p.GetTitle()
			m.Body = p.GetBody()
			m.Recipient = p.GetRecipient()
			m.SenderID = p.GetSenderId()
			m.Type = p.GetType()
			e.Message = m
		}
	}
	return events
}

// logEvents converts the log find rpc's rows; Event.Log is set, or nil
// when the row has no payload, and likewise its Detail.
func logEvents(items []*outboxlogv1.QueryResult) []messages.Event {
	if len(items) == 0 {
		return nil
	}
	events := make([]messages.Event, len(items))
	payloads := make([]messages.LogPayload, countNonNil(items, (*outboxlogv1.QueryResult).GetPayload))
	details := make([]messages.LogPayloadDetail, countNonNil(items, func(it *outboxlogv1.QueryResult) *outboxlogv1.LogPayloadDetail {
		return it.GetPayload().GetPayload()
	}))
	for i, it := range items {
		e := &events[i]
		setRow(e, it)
		p := it.GetPayload()
		if p == nil {
			continue
		}
		l := &payloads[0]
		payloads = payloads[1:]
		l.TraceID = p.GetTraceId()
		l.Level = p.GetLevel()
		l.Method = p.GetMethod()
		l.Path = p.GetPath()
		l.StatusCode = p.GetStatusCode()
		l.Host = p.GetHost()
		l.UserID = p.GetUserId()
		l.ServiceType = p.GetServiceType()
		l.Message = p.GetMessage()
		if d := p.GetPayload(); d != nil {
			ld := &details[0]
			details = details[1:]
			ld.Query = d.GetQuery()
			ld.Body = d.GetBody()
			ld.Headers = d.GetHeaders()
			ld.Error = d.GetError()
			l.Detail = ld
		}
		e.Log = l
	}
	return events
}

// countNonNil counts the items whose sub-message get returns non-nil, to
// size a slab exactly.
func countNonNil[T any, P comparable](items []T, get func(T) P) int {
	var zero P
	n := 0
	for _, it := range items {
		if get(it) != zero {
			n++
		}
	}
	return n
}
