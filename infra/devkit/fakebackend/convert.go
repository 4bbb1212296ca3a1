package fakebackend

import (
	"github.com/hobom/hobom-event-processor/messages"
	"github.com/hobom/hobom-event-processor/proto/gen/outboxlogv1"
	"github.com/hobom/hobom-event-processor/proto/gen/outboxmessagev1"
)

// The fake stores rows in the domain type and converts them per response,
// the way the backend maps its table to the proto, with the store locked
// (a response is a snapshot of the rows). Strings and maps are shared with
// the stored rows: marshalling only reads them, and a mark replaces a
// row's strings rather than writing into them. A response's messages are
// cut from one slice per kind, not allocated one by one: a find returns
// thousands of rows, and the fake shares the CPU with the processor it
// serves.

// messageResults converts the rows of a message find.
type messageResults struct {
	items    []*outboxmessagev1.QueryResult
	rows     []outboxmessagev1.QueryResult
	payloads []outboxmessagev1.MessagePayload
}

// add converts e, the i-th of n rows.
func (m *messageResults) add(i, n int, e *messages.Event) {
	if i == 0 {
		m.items, m.rows = make([]*outboxmessagev1.QueryResult, n), make([]outboxmessagev1.QueryResult, n)
	}
	r := &m.rows[i]
	r.Id, r.EventId, r.EventType, r.Status = e.ID, e.EventID, e.EventType, e.Status
	r.RetryCount, r.Version = e.RetryCount, e.Version
	r.SentAt, r.FailedAt, r.LastError = e.SentAt, e.FailedAt, e.LastError
	r.CreatedAt, r.UpdatedAt = e.CreatedAt, e.UpdatedAt
	if p := e.Message; p != nil {
		if m.payloads == nil {
			m.payloads = make([]outboxmessagev1.MessagePayload, n)
		}
		q := &m.payloads[i]
		q.Id, q.Title, q.Body, q.Recipient, q.SenderId, q.Type = p.ID, p.Title, p.Body, p.Recipient, p.SenderID, p.Type
		r.Payload = q
	}
	m.items[i] = r
}

// logResults converts the rows of a log find.
type logResults struct {
	items    []*outboxlogv1.QueryResult
	rows     []outboxlogv1.QueryResult
	payloads []outboxlogv1.HoBomLogPayload
}

// add converts e, the i-th of n rows.
func (l *logResults) add(i, n int, e *messages.Event) {
	if i == 0 {
		l.items, l.rows = make([]*outboxlogv1.QueryResult, n), make([]outboxlogv1.QueryResult, n)
	}
	r := &l.rows[i]
	r.Id, r.EventId, r.EventType, r.Status = e.ID, e.EventID, e.EventType, e.Status
	r.RetryCount, r.Version = e.RetryCount, e.Version
	r.SentAt, r.FailedAt, r.LastError = e.SentAt, e.FailedAt, e.LastError
	r.CreatedAt, r.UpdatedAt = e.CreatedAt, e.UpdatedAt
	if p := e.Log; p != nil {
		if l.payloads == nil {
			l.payloads = make([]outboxlogv1.HoBomLogPayload, n)
		}
		q := &l.payloads[i]
		q.TraceId, q.Level, q.Method, q.Path, q.StatusCode = p.TraceID, p.Level, p.Method, p.Path, p.StatusCode
		q.Host, q.UserId, q.ServiceType, q.Message = p.Host, p.UserID, p.ServiceType, p.Message
		if d := p.Detail; d != nil {
			q.Payload = &outboxlogv1.LogPayloadDetail{Query: d.Query, Body: d.Body, Headers: d.Headers, Error: d.Error}
		}
		r.Payload = q
	}
	l.items[i] = r
}
