package messages

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Record header names. Consumers that ignore headers see the records of
// docs/contract.md §2 unchanged.
const (
	// HeaderEventID is the eventId of a message record, or the eventIds of a
	// log record's array elements, comma-separated in array order.
	HeaderEventID = "event-id"
	// HeaderEventType is the outbox event type.
	HeaderEventType = "event-type"
	// HeaderProducer is "hobom-event-processor/<version>".
	HeaderProducer = "producer"
	// HeaderTraceparent is the W3C trace context of the request a log
	// record describes.
	HeaderTraceparent = "traceparent"
)

// RecordHeaders returns the headers of a record carrying events of
// eventType; ids are its events' ids, traceID the trace the backend gave
// (empty when none).
func RecordHeaders(eventType, producer, traceID string, ids []byte) []kgo.RecordHeader {
	return NewHeaderValues(eventType, producer).Append(make([]kgo.RecordHeader, 0, 4), traceID, ids)
}

// HeaderValues holds the header values that every record of one event type
// carries alike, built once and shared by all of its records: franz-go only
// reads a record's headers, so the publisher need not copy two constant
// strings into fresh slices for every record it produces.
type HeaderValues struct {
	eventType, producer []byte
}

// NewHeaderValues returns the constant header values of eventType's records.
func NewHeaderValues(eventType, producer string) HeaderValues {
	return HeaderValues{eventType: []byte(eventType), producer: []byte(producer)}
}

// Append appends the headers of one record to dst, exactly those of
// RecordHeaders: ids are its events' ids, traceID the trace the backend
// gave (empty when none). The values are shared: callers must not change
// them.
func (v HeaderValues) Append(dst []kgo.RecordHeader, traceID string, ids []byte) []kgo.RecordHeader {
	dst = append(dst,
		kgo.RecordHeader{Key: HeaderEventID, Value: ids},
		kgo.RecordHeader{Key: HeaderEventType, Value: v.eventType},
		kgo.RecordHeader{Key: HeaderProducer, Value: v.producer},
	)
	if tp, ok := Traceparent(traceID); ok {
		dst = append(dst, kgo.RecordHeader{Key: HeaderTraceparent, Value: []byte(tp)})
	}
	return dst
}

// Traceparent builds a W3C traceparent from a backend trace id, when it is
// one: 32 lowercase hex digits, not all zero. The outbox carries no span
// id, so the parent id is derived from the trace id: stable, non-zero, and
// it joins the record to the right trace, which is what consumers need.
func Traceparent(traceID string) (string, bool) {
	if len(traceID) != 32 {
		return "", false
	}
	zero := true
	for i := 0; i < len(traceID); i++ {
		c := traceID[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "", false
		}
		zero = zero && c == '0'
	}
	if zero {
		return "", false
	}
	sum := sha256.Sum256([]byte(traceID))
	sum[0] |= 1 // never the invalid all-zero parent id
	return "00-" + traceID + "-" + hex.EncodeToString(sum[:8]) + "-01", true
}
