package messages

import (
	"encoding/json"
	"errors"
	"strconv"
	"time"
)

// The Kafka record encodings of docs/contract.md §2. The encoders append to a
// caller-owned buffer so that a poller can reuse one buffer per batch and
// encode without allocating; they match, byte for byte, what encoding/json
// writes for the same documented fields (see the tests).

// ErrNoPayload is returned for an event whose payload is missing. The caller
// cannot build a record from it and dead-letters it (see AppendUnencodable).
var ErrNoPayload = errors.New("messages: event has no payload")

// defaultMessageType is sent when a message payload names no type: the old
// service always sent it, so consumers handle it.
const defaultMessageType = "MAIL_MESSAGE"

// AppendMessageValue appends the hobom.messages record value of p to dst:
// {"type","title","body","recipient","senderId","sentAt"} in that order.
// type is p.Type, MAIL_MESSAGE when empty; senderId is omitted when empty,
// every other field is always present; sentAt is the time of publishing in
// RFC 3339 (UTC, nanoseconds as needed).
//
// A nil p returns dst unchanged and ErrNoPayload.
func AppendMessageValue(dst []byte, p *MessagePayload, sentAt time.Time) ([]byte, error) {
	if p == nil {
		return dst, ErrNoPayload
	}
	typ := p.Type
	if typ == "" {
		typ = defaultMessageType
	}
	dst = append(dst, `{"type":`...)
	dst = appendJSONString(dst, typ)
	dst = append(dst, `,"title":`...)
	dst = appendJSONString(dst, p.Title)
	dst = append(dst, `,"body":`...)
	dst = appendJSONString(dst, p.Body)
	dst = append(dst, `,"recipient":`...)
	dst = appendJSONString(dst, p.Recipient)
	if p.SenderID != "" {
		dst = append(dst, `,"senderId":`...)
		dst = appendJSONString(dst, p.SenderID)
	}
	// An RFC 3339 time holds only digits, letters and -:.+ , none of which
	// JSON escapes, so it is formatted straight into dst.
	dst = append(dst, `,"sentAt":"`...)
	dst = sentAt.UTC().AppendFormat(dst, time.RFC3339Nano)
	return append(dst, `"}`...), nil
}

// AppendLogObject appends one element of a hobom.logs record value to dst.
// The flat fields serviceType, level, traceId, message, httpMethod (from
// p.Method), path, statusCode (a number), host and userId are always present,
// in that order; then payload holds the whole LogPayload as the backend's
// camelCase HoBomLogPayload in proto field order, with every empty field
// omitted (see appendLogPayload).
//
// A nil p returns dst unchanged and ErrNoPayload.
func AppendLogObject(dst []byte, p *LogPayload) ([]byte, error) {
	if p == nil {
		return dst, ErrNoPayload
	}
	dst = append(dst, `{"serviceType":`...)
	dst = appendJSONString(dst, p.ServiceType)
	dst = append(dst, `,"level":`...)
	dst = appendJSONString(dst, p.Level)
	dst = append(dst, `,"traceId":`...)
	dst = appendJSONString(dst, p.TraceID)
	dst = append(dst, `,"message":`...)
	dst = appendJSONString(dst, p.Message)
	dst = append(dst, `,"httpMethod":`...)
	dst = appendJSONString(dst, p.Method)
	dst = append(dst, `,"path":`...)
	dst = appendJSONString(dst, p.Path)
	dst = append(dst, `,"statusCode":`...)
	dst = strconv.AppendInt(dst, int64(p.StatusCode), 10)
	dst = append(dst, `,"host":`...)
	dst = appendJSONString(dst, p.Host)
	dst = append(dst, `,"userId":`...)
	dst = appendJSONString(dst, p.UserID)
	dst = append(dst, `,"payload":`...)
	dst = appendLogPayload(dst, p)
	return append(dst, '}'), nil
}

// appendLogPayload appends p as the camelCase JSON object of HoBomLogPayload:
// fields in proto order (traceId, level, method, path, statusCode, host,
// userId, payload, serviceType, message), each omitted when empty as
// docs/contract.md §2 requires (proto3 defaults are not sent). The detail goes under
// payload and is omitted when nil or when all its fields are empty. With
// every field empty the result is {}.
func appendLogPayload(dst []byte, p *LogPayload) []byte {
	start := len(dst)
	dst = appendOptString(dst, `,"traceId":`, p.TraceID)
	dst = appendOptString(dst, `,"level":`, p.Level)
	dst = appendOptString(dst, `,"method":`, p.Method)
	dst = appendOptString(dst, `,"path":`, p.Path)
	if p.StatusCode != 0 {
		dst = append(dst, `,"statusCode":`...)
		dst = strconv.AppendInt(dst, int64(p.StatusCode), 10)
	}
	dst = appendOptString(dst, `,"host":`, p.Host)
	dst = appendOptString(dst, `,"userId":`, p.UserID)
	if d := p.Detail; d != nil {
		dst = appendLogDetail(dst, d)
	}
	dst = appendOptString(dst, `,"serviceType":`, p.ServiceType)
	dst = appendOptString(dst, `,"message":`, p.Message)
	return endObject(dst, start)
}

// appendLogDetail appends the member ,"payload":{...} holding d's non-empty
// fields (query, body, headers, error), or nothing when all are empty.
func appendLogDetail(dst []byte, d *LogPayloadDetail) []byte {
	if len(d.Query) == 0 && len(d.Body) == 0 && len(d.Headers) == 0 && d.Error == "" {
		return dst
	}
	dst = append(dst, `,"payload":`...)
	start := len(dst)
	dst = appendOptMap(dst, `,"query":`, d.Query)
	dst = appendOptMap(dst, `,"body":`, d.Body)
	dst = appendOptMap(dst, `,"headers":`, d.Headers)
	dst = appendOptString(dst, `,"error":`, d.Error)
	return endObject(dst, start)
}

// appendOptString appends the member key (",\"name\":") and s unless s is empty.
func appendOptString(dst []byte, key, s string) []byte {
	if s == "" {
		return dst
	}
	return appendJSONString(append(dst, key...), s)
}

// appendOptMap appends the member key (",\"name\":") and m unless m is empty.
func appendOptMap(dst []byte, key string, m map[string]string) []byte {
	if len(m) == 0 {
		return dst
	}
	return appendStringMap(append(dst, key...), m)
}

// logRecordKeyPrefix starts every hobom.logs record key.
const logRecordKeyPrefix = "hobom-log-"

// LogRecordKey appends the hobom.logs record key hobom-log-<unix nanos> of a
// record published at now. The consumers expect this form; it carries no
// event identity because one record holds many events.
func LogRecordKey(dst []byte, now time.Time) []byte {
	dst = append(dst, logRecordKeyPrefix...)
	return strconv.AppendInt(dst, now.UnixNano(), 10)
}

// AppendUnencodable appends {"eventId":..,"eventType":..,"error":..}, the DLQ
// value kept for an event whose payload could not be encoded (for instance a
// missing payload). The old service marked such events FAILED and kept
// nothing, so operators never learnt why; this entry records the reason.
func AppendUnencodable(dst []byte, eventID, eventType, reason string) []byte {
	dst = append(dst, `{"eventId":`...)
	dst = appendJSONString(dst, eventID)
	dst = append(dst, `,"eventType":`...)
	dst = appendJSONString(dst, eventType)
	dst = append(dst, `,"error":`...)
	dst = appendJSONString(dst, reason)
	return append(dst, '}')
}

// IsUnencodable reports whether a DLQ value is the placeholder written by
// AppendUnencodable (alone, or as the one element of a log array) rather
// than a record: replaying it would hand consumers an object they cannot
// read. A real message record always has "type", a log element "serviceType".
func IsUnencodable(value []byte) bool {
	var one map[string]json.RawMessage
	if err := json.Unmarshal(value, &one); err != nil {
		var arr []map[string]json.RawMessage
		if err := json.Unmarshal(value, &arr); err != nil || len(arr) != 1 {
			return false
		}
		one = arr[0]
	}
	_, hasErr := one["error"]
	_, hasID := one["eventId"]
	_, hasType := one["type"]
	_, hasService := one["serviceType"]
	return hasErr && hasID && !hasType && !hasService
}
