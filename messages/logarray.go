package messages

// Span locates one event's share of a record value: the whole value for a
// message, one element of the array for a log record. A record that fails
// for good is dead-lettered one event at a time through its spans.
type Span struct {
	EventID string
	Lo, Hi  int
}

// LogArrayBuilder packs log events, as encoded by AppendLogObject, into one
// hobom.logs record: the JSON array value, its event-id header (the ids,
// comma-separated, in array order) and the span of each event. Sizes count
// the value and that header together, as both count towards Kafka's
// record limit; a caller starts a new record before one would exceed it:
//
//	if b.Len() > 0 && b.SizeWith(id, obj) > limit {
//		value, ids, spans := b.Take()
//		...
//	}
//	b.Add(id, obj)
//
// The publisher splits a poll's log events with it, and the load test
// builds its produce ceiling's records the same way. The zero value is an
// empty builder.
type LogArrayBuilder struct {
	// Capacity is the room a new record's value starts with, and Events
	// the events it is expected to hold (room for their ids and spans);
	// sized to the records expected, they save growing them by copying.
	Capacity int
	Events   int

	value []byte // "[" and the objects joined by ","; Take adds the "]"
	ids   []byte
	spans []Span
}

// Len is the number of events added since the last Take.
func (b *LogArrayBuilder) Len() int { return len(b.spans) }

// Size is the length of the value Take would return plus its header.
func (b *LogArrayBuilder) Size() int {
	if b.Len() == 0 {
		return 2 // []
	}
	return len(b.value) + 1 + len(b.ids)
}

// SizeWith is what Size would be after Add(id, obj). On an empty builder it
// is the size of a record holding that event alone.
func (b *LogArrayBuilder) SizeWith(id string, obj []byte) int {
	if b.Len() == 0 {
		return 2 + len(obj) + len(id)
	}
	return b.Size() + 1 + len(obj) + 1 + len(id)
}

// Add appends the object of event id.
func (b *LogArrayBuilder) Add(id string, obj []byte) {
	if b.Len() == 0 {
		if b.value == nil {
			b.value = make([]byte, 0, max(b.Capacity, len(obj)+2))
			b.ids = make([]byte, 0, max(b.Events*(len(id)+1), len(id)))
			b.spans = make([]Span, 0, max(b.Events, 1))
		}
		b.value = append(b.value[:0], '[')
		b.ids = b.ids[:0]
	} else {
		b.value = append(b.value, ',')
		b.ids = append(b.ids, ',')
	}
	lo := len(b.value)
	b.value = append(b.value, obj...)
	b.ids = append(b.ids, id...)
	b.spans = append(b.spans, Span{EventID: id, Lo: lo, Hi: len(b.value)})
}

// Take returns the record built so far and empties the builder. The caller
// owns what it returns (a record handed to an asynchronous producer must
// not change under it); the builder starts its next record afresh.
func (b *LogArrayBuilder) Take() (value, ids []byte, spans []Span) {
	if b.Len() == 0 {
		return []byte("[]"), nil, nil
	}
	value, ids, spans = append(b.value, ']'), b.ids, b.spans
	*b = LogArrayBuilder{Capacity: b.Capacity, Events: b.Events}
	return value, ids, spans
}
