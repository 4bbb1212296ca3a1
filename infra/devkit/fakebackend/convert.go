package fakebackend

import (
	"github.com/hobom/hobom-event-processor/messages"
	"github.com/hobom/hobom-event-processor/proto/gen/outboxlogv1"
	"github.com/hobom/hobom-event-processor/proto/gen/outboxmessagev1"
)

// The fake stores rows in the domain type and converts them per response,
// the way the backend maps its table to the proto. Strings and maps are
// shared with the stored rows: marshalling only reads them.

func messageResults(events []messages.Event) []*outboxmessagev1.QueryResult {
	out := make([]*outboxmessagev1.QueryResult, len(events))
	for i := range events {
		e := &events[i]
		out[i] = &outboxmessagev1.QueryResult{
			Id:         e.ID,
			EventId:    e.EventID,
			EventType:  e.EventType,
			Payload:    messagePayload(e.Message),
			Status:     e.Status,
			RetryCount: e.RetryCount,
			SentAt:     e.SentAt,
			FailedAt:   e.FailedAt,
			LastError:  e.LastError,
			Version:    e.Version,
			CreatedAt:  e.CreatedAt,
			UpdatedAt:  e.UpdatedAt,
		}
	}
	return out
}

func messagePayload(p *messages.MessagePayload) *outboxmessagev1.MessagePayload {
	if p == nil {
		return nil
	}
	return &outboxmessagev1.MessagePayload{
		Id:        p.ID,
		Title:     p.Title,
		Body:      p.Body,
		Recipient: p.Recipient,
		SenderId:  p.SenderID,
		Type:      p.Type,
	}
}

func logResults(events []messages.Event) []*outboxlogv1.QueryResult {
	out := make([]*outboxlogv1.QueryResult, len(events))
	for i := range events {
		e := &events[i]
		out[i] = &outboxlogv1.QueryResult{
			Id:         e.ID,
			EventId:    e.EventID,
			EventType:  e.EventType,
			Status:     e.Status,
			RetryCount: e.RetryCount,
			SentAt:     e.SentAt,
			FailedAt:   e.FailedAt,
			LastError:  e.LastError,
			Version:    e.Version,
			CreatedAt:  e.CreatedAt,
			UpdatedAt:  e.UpdatedAt,
			Payload:    logPayload(e.Log),
		}
	}
	return out
}

func logPayload(p *messages.LogPayload) *outboxlogv1.HoBomLogPayload {
	if p == nil {
		return nil
	}
	out := &outboxlogv1.HoBomLogPayload{
		TraceId:     p.TraceID,
		Level:       p.Level,
		Method:      p.Method,
		Path:        p.Path,
		StatusCode:  p.StatusCode,
		Host:        p.Host,
		UserId:      p.UserID,
		ServiceType: p.ServiceType,
		Message:     p.Message,
	}
	if d := p.Detail; d != nil {
		out.Payload = &outboxlogv1.LogPayloadDetail{Query: d.Query, Body: d.Body, Headers: d.Headers, Error: d.Error}
	}
	return out
}
