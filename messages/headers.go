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
	h := make([]kgo.RecordHeader, 0, 4)
	h = append(h,
		kgo.RecordHeader{Key: HeaderEventID, Value: ids},
		kgo.RecordHeader{Key: HeaderEventType, Value: []byte(eventType)},
		kgo.RecordHeader{Key: HeaderProducer, Value: []byte(producer)},
	)
	if tp, ok := Traceparent(traceID); ok {
		h = append(h, kgo.RecordHeader{Key: HeaderTraceparent, Value: []byte(tp)})
	}
	return h
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
