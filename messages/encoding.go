package messages

import (
	"fmt"
	"time"
)

// Encoding is how a route's events become Kafka records, the shape of the
// records on its topic (docs/contract.md §2). A route carries one; the
// publisher, the replays and the value checks call through it, so a new
// event type written in an existing shape is one more Route. The two
// shapes are MessageEncoding and LogArrayEncoding.
//
// Implementations are comparable values without state, safe for
// concurrent use.
type Encoding interface {
	// Name names the shape in configuration and logs.
	Name() string
	// Encode builds the records of one poll's events and hands each to
	// sink.Record, in order; an event that cannot be published (no
	// payload, over maxBytes on its own) goes to sink.Reject with its DLQ
	// value instead. now is read for each timestamp a record carries.
	Encode(events []*Event, maxBytes int, now func() time.Time, sink RecordSink)
	// DefectValue is the DLQ value of an event with a Defect: its record
	// as it would have been encoded, or the AppendUnencodable placeholder
	// when it cannot be.
	DefectValue(e *Event, now time.Time) []byte
	// SpanValue is the DLQ value of one event of a record that failed for
	// good, from its Span of the record value: a record of its own.
	SpanValue(span []byte) []byte
	// ReplayKey is the key of a record replayed from eventID's dead
	// letter at now.
	ReplayKey(eventID string, now time.Time) []byte
	// CheckValue reports whether a dead letter's value has the shape of
	// this encoding's records (see the implementations); errors wrap
	// ErrBadValue.
	CheckValue(value []byte) error
}

// RecordSink receives what Encoding.Encode builds.
type RecordSink interface {
	// Record is one Kafka record: its key and value, the trace id all its
	// events share ("" when they differ), the event-id header value (the
	// ids comma-separated) and each event's span of the value. The sink
	// owns the slices: the encoder never writes them again. Key and ids
	// may be the same slice, and the slices of a batch's records may share
	// one array (their capacity ends where they do, so appending to one
	// copies it).
	Record(key, value []byte, traceID string, ids []byte, spans []Span)
	// Reject is an event that cannot be published: its DLQ value and why.
	Reject(eventID string, value []byte, reason string)
}

// TooLarge is the DLQ reason of a record of n bytes over limit.
func TooLarge(n, limit int) string {
	return fmt.Sprintf("record too large: %d bytes, limit %d", n, limit)
}

// Encodings lists the known shapes, for configuration and validation.
func Encodings() []Encoding { return []Encoding{MessageEncoding, LogArrayEncoding} }

// EncodingByName is the encoding whose Name is name.
func EncodingByName(name string) (Encoding, error) {
	for _, e := range Encodings() {
		if e.Name() == name {
			return e, nil
		}
	}
	return nil, fmt.Errorf("unknown encoding %q", name)
}

// MessageEncoding writes one hobom.messages record per event: the JSON
// object of AppendMessageValue, keyed by the eventId.
var MessageEncoding Encoding = messageEncoding{}

// LogArrayEncoding writes the events of one poll as hobom.logs records:
// JSON arrays of AppendLogObject elements, keyed hobom-log-<unix nanos>,
// split so that no record exceeds the size limit.
var LogArrayEncoding Encoding = logArrayEncoding{}

type messageEncoding struct{}

func (messageEncoding) Name() string { return "message" }

// Encode writes every key and value of the batch into one arena and every
// span into one array: a batch costs a few allocations instead of several
// per event (the value grown from an empty slice, the key, the span). The
// arena lives until the last of its records is done with.
func (messageEncoding) Encode(events []*Event, maxBytes int, now func() time.Time, sink RecordSink) {
	size := 0
	for _, e := range events {
		size += len(e.EventID) + messageValueHint(e.Message)
	}
	arena := make([]byte, 0, size)
	spans := make([]Span, len(events))
	for i, e := range events {
		start := len(arena)
		arena = append(arena, e.EventID...)
		idEnd := len(arena)
		var err error
		if arena, err = AppendMessageValue(arena, e.Message, now()); err != nil {
			arena = arena[:start]
			sink.Reject(e.EventID, AppendUnencodable(nil, e.EventID, e.EventType, err.Error()), "encode: "+err.Error())
			continue
		}
		// Key and event-id header are the same bytes: one copy of the id.
		// Full slice expressions: nothing appended later reaches them.
		id, value := arena[start:idEnd:idEnd], arena[idEnd:len(arena):len(arena)]
		if len(value) > maxBytes {
			sink.Reject(e.EventID, value, TooLarge(len(value), maxBytes))
			continue
		}
		spans[i] = Span{EventID: e.EventID, Lo: 0, Hi: len(value)}
		sink.Record(id, value, "", id, spans[i:i+1:i+1])
	}
}

// messageValueHint is about the length of p's record value, to size the
// arena: its strings and the fixed part (field names, quotes, sentAt).
// Escapes make a value longer; the arena then grows.
func messageValueHint(p *MessagePayload) int {
	if p == nil {
		return 0
	}
	return 112 + len(p.Type) + len(p.Title) + len(p.Body) + len(p.Recipient) + len(p.SenderID)
}

func (messageEncoding) DefectValue(e *Event, now time.Time) []byte {
	value, err := AppendMessageValue(nil, e.Message, now)
	if err != nil {
		return AppendUnencodable(nil, e.EventID, e.EventType, e.Defect+"; encode: "+err.Error())
	}
	return value
}

func (messageEncoding) SpanValue(span []byte) []byte { return span }

func (messageEncoding) ReplayKey(eventID string, _ time.Time) []byte { return []byte(eventID) }

// CheckValue: one JSON object with the string fields type, title, body and
// recipient (type not empty), and senderId and sentAt strings when present.
func (messageEncoding) CheckValue(value []byte) error { return checkValue(value, checkMessage) }

type logArrayEncoding struct{}

func (logArrayEncoding) Name() string { return "log-array" }

// Encode starts a new record whenever the next element would push it over
// maxBytes (the old service lost whole batches to Kafka's 1 MB limit).
func (logArrayEncoding) Encode(events []*Event, maxBytes int, now func() time.Time, sink RecordSink) {
	var (
		obj   []byte
		err   error
		b     = LogArrayBuilder{Capacity: min(maxBytes, 64<<10)}
		alone LogArrayBuilder // stays empty: sizes an event on its own
		trace string          // the events' common trace id, "" when they differ
	)
	flush := func() {
		if b.Len() == 0 {
			return
		}
		value, ids, spans := b.Take()
		sink.Record(LogRecordKey(nil, now()), value, trace, ids, spans)
	}
	for i, e := range events {
		obj, err = AppendLogObject(obj[:0], e.Log)
		if err != nil {
			one := append([]byte{'['}, AppendUnencodable(nil, e.EventID, e.EventType, err.Error())...)
			sink.Reject(e.EventID, append(one, ']'), "encode: "+err.Error())
			continue
		}
		if alone.SizeWith(e.EventID, obj) > maxBytes {
			one := make([]byte, 0, len(obj)+2)
			one = append(append(append(one, '['), obj...), ']')
			sink.Reject(e.EventID, one, TooLarge(len(one), maxBytes))
			continue
		}
		if b.Len() > 0 && b.SizeWith(e.EventID, obj) > maxBytes {
			flush()
		}
		if b.Len() == 0 {
			trace = e.Log.TraceID
			// Size the record from this event and those left, as if they
			// were alike (an eighth more), up to the limit: a record grown
			// by doubling from 64 KB to 1 MB copied about twice its size.
			per := len(obj) + len(e.EventID) + 2
			n := min(len(events)-i, maxBytes/per+1)
			b.Capacity, b.Events = min(maxBytes, n*per+n*per/8), n+n/8
		} else if e.Log.TraceID != trace {
			trace = ""
		}
		b.Add(e.EventID, obj)
	}
	flush()
}

func (logArrayEncoding) DefectValue(e *Event, _ time.Time) []byte {
	value, err := AppendLogObject([]byte{'['}, e.Log)
	if err != nil {
		value = append([]byte{'['}, AppendUnencodable(nil, e.EventID, e.EventType, e.Defect+"; encode: "+err.Error())...)
	}
	return append(value, ']')
}

func (logArrayEncoding) SpanValue(span []byte) []byte {
	one := make([]byte, 0, len(span)+2)
	return append(append(append(one, '['), span...), ']')
}

func (logArrayEncoding) ReplayKey(_ string, now time.Time) []byte { return LogRecordKey(nil, now) }

// CheckValue: a JSON array of one or more objects, each with the string
// fields serviceType and level, statusCode a number and payload an object
// when present.
func (logArrayEncoding) CheckValue(value []byte) error { return checkValue(value, checkLogArray) }
