package messages

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sinkRecord is one record a test sink received.
type sinkRecord struct {
	key, value, ids []byte
	trace           string
	spans           []Span
}

type testSink struct {
	records  []sinkRecord
	rejected map[string]string // eventId → reason
	values   map[string][]byte // eventId → DLQ value
}

func (s *testSink) Record(key, value []byte, traceID string, ids []byte, spans []Span) {
	s.records = append(s.records, sinkRecord{key: key, value: value, ids: ids, trace: traceID, spans: spans})
}

func (s *testSink) Reject(eventID string, value []byte, reason string) {
	if s.rejected == nil {
		s.rejected, s.values = map[string]string{}, map[string][]byte{}
	}
	s.rejected[eventID], s.values[eventID] = reason, value
}

func fixedClock(at time.Time) func() time.Time { return func() time.Time { return at } }

func TestMessageEncodingOneRecordPerEventKeyedByEventID(t *testing.T) {
	at := time.Unix(1700000000, 5)
	p := &MessagePayload{Title: "t", Body: "b", Recipient: "r", SenderID: "s"}
	events := []*Event{
		{EventID: "m-1", EventType: EventTypeMessage, Message: p},
		{EventID: "m-nil", EventType: EventTypeMessage},
		{EventID: "m-big", EventType: EventTypeMessage, Message: &MessagePayload{Title: strings.Repeat("x", 200)}},
		{EventID: "m-2", EventType: EventTypeMessage, Message: p},
	}
	var s testSink
	MessageEncoding.Encode(events, 150, fixedClock(at), &s)
	want, _ := AppendMessageValue(nil, p, at)
	if len(s.records) != 2 {
		t.Fatalf("%d records, want 2", len(s.records))
	}
	for i, id := range []string{"m-1", "m-2"} {
		r := s.records[i]
		if string(r.key) != id || string(r.ids) != id || r.trace != "" || !bytes.Equal(r.value, want) ||
			len(r.spans) != 1 || r.spans[0] != (Span{EventID: id, Lo: 0, Hi: len(want)}) {
			t.Errorf("record %d: key %q ids %q trace %q value %s spans %v", i, r.key, r.ids, r.trace, r.value, r.spans)
		}
	}
	if got := string(s.values["m-nil"]); got != string(AppendUnencodable(nil, "m-nil", EventTypeMessage, ErrNoPayload.Error())) ||
		s.rejected["m-nil"] != "encode: "+ErrNoPayload.Error() {
		t.Errorf("m-nil rejected with %s, %q", got, s.rejected["m-nil"])
	}
	if !strings.HasPrefix(s.rejected["m-big"], "record too large: ") || !strings.HasSuffix(s.rejected["m-big"], "limit 150") {
		t.Errorf("m-big rejected with %q", s.rejected["m-big"])
	}
	if got := MessageEncoding.SpanValue(want); !bytes.Equal(got, want) {
		t.Errorf("SpanValue = %s", got)
	}
	if got := string(MessageEncoding.ReplayKey("m-1", at)); got != "m-1" {
		t.Errorf("ReplayKey = %q, want the eventId", got)
	}
	if got := MessageEncoding.DefectValue(events[0], at); !bytes.Equal(got, want) {
		t.Errorf("DefectValue = %s, want the record", got)
	}
	def := &Event{EventID: "m-d", EventType: EventTypeMessage, Defect: "bad"}
	if got := string(MessageEncoding.DefectValue(def, at)); got != string(AppendUnencodable(nil, "m-d", EventTypeMessage, "bad; encode: "+ErrNoPayload.Error())) {
		t.Errorf("DefectValue without payload = %s", got)
	}
}

// The records of a batch share one arena: each still holds exactly its own
// bytes, also when escapes outgrow the arena's estimate, and appending to
// one's key or value leaves the others alone.
func TestMessageEncodingRecordsShareNoBytes(t *testing.T) {
	at := time.Unix(1700000000, 0)
	var events []*Event
	for i := range 50 {
		title := strings.Repeat("\x01\"", i) // escaped to 7 bytes each: more than the estimate
		events = append(events, &Event{EventID: "m-" + strconv.Itoa(i), EventType: EventTypeMessage,
			Message: &MessagePayload{Title: title, Body: "b", Recipient: "r"}})
	}
	var s testSink
	MessageEncoding.Encode(events, 1<<20, fixedClock(at), &s)
	if len(s.records) != len(events) {
		t.Fatalf("%d records, want %d", len(s.records), len(events))
	}
	for i := range s.records {
		s.records[i].key = append(s.records[i].key, "-changed"...)
		s.records[i].value = append(s.records[i].value, "garbage"...)
	}
	for i, r := range s.records {
		want, _ := AppendMessageValue(nil, events[i].Message, at)
		if got := string(r.value[:len(r.value)-len("garbage")]); got != string(want) {
			t.Errorf("record %d value %s, want %s", i, got, want)
		}
		if got := string(r.key); got != events[i].EventID+"-changed" {
			t.Errorf("record %d key %q", i, got)
		}
	}
}

func TestLogArrayEncodingSplitsUnderTheLimitKeyedByTime(t *testing.T) {
	at := time.Unix(1700000000, 7)
	var events []*Event
	for i := range 10 {
		events = append(events, &Event{EventID: "l-" + strconv.Itoa(i), EventType: EventTypeHoBomLog,
			Log: &LogPayload{TraceID: "tr", Level: "INFO", ServiceType: "api", Message: strings.Repeat("m", 100)}})
	}
	events = append(events, &Event{EventID: "l-nil", EventType: EventTypeHoBomLog},
		&Event{EventID: "l-big", EventType: EventTypeHoBomLog, Log: &LogPayload{Message: strings.Repeat("x", 2000)}})
	const limit = 1000
	var s testSink
	LogArrayEncoding.Encode(events, limit, fixedClock(at), &s)
	if len(s.records) < 2 {
		t.Fatalf("%d records for ~4 kB under a %d byte limit, want a split", len(s.records), limit)
	}
	var ids []string
	for _, r := range s.records {
		if len(r.value)+len(r.ids) > limit {
			t.Errorf("record of %d+%d bytes over %d", len(r.value), len(r.ids), limit)
		}
		if string(r.key) != "hobom-log-"+strconv.FormatInt(at.UnixNano(), 10) || r.trace != "tr" {
			t.Errorf("key %q trace %q", r.key, r.trace)
		}
		var arr []json.RawMessage
		if err := json.Unmarshal(r.value, &arr); err != nil || len(arr) != len(r.spans) {
			t.Fatalf("value %s (%v) for %d spans", r.value, err, len(r.spans))
		}
		for i, sp := range r.spans {
			if !bytes.Equal(arr[i], r.value[sp.Lo:sp.Hi]) {
				t.Errorf("span %v is not element %d", sp, i)
			}
			one := LogArrayEncoding.SpanValue(r.value[sp.Lo:sp.Hi])
			if err := LogArrayEncoding.CheckValue(one); err != nil {
				t.Errorf("SpanValue %s: %v", one, err)
			}
			ids = append(ids, sp.EventID)
		}
		if string(r.ids) != strings.Join(ids[len(ids)-len(r.spans):], ",") {
			t.Errorf("ids header %q", r.ids)
		}
	}
	if len(ids) != 10 {
		t.Errorf("%d events in records, want 10", len(ids))
	}
	if !strings.HasPrefix(string(s.values["l-nil"]), `[{"eventId":"l-nil"`) || s.rejected["l-nil"] != "encode: "+ErrNoPayload.Error() {
		t.Errorf("l-nil rejected with %s, %q", s.values["l-nil"], s.rejected["l-nil"])
	}
	if !strings.HasPrefix(s.rejected["l-big"], "record too large: ") || s.values["l-big"][0] != '[' {
		t.Errorf("l-big rejected with %q", s.rejected["l-big"])
	}
	if got := string(LogArrayEncoding.ReplayKey("l-1", at)); got != "hobom-log-"+strconv.FormatInt(at.UnixNano(), 10) {
		t.Errorf("ReplayKey = %q, want a new hobom-log- key", got)
	}
	obj, _ := AppendLogObject(nil, events[0].Log)
	if got := string(LogArrayEncoding.DefectValue(events[0], at)); got != "["+string(obj)+"]" {
		t.Errorf("DefectValue = %s", got)
	}
}

func TestEncodingsCheckTheirOwnShape(t *testing.T) {
	msg := []byte(`{"type":"T","title":"t","body":"b","recipient":"r"}`)
	logs := []byte(`[{"serviceType":"api","level":"INFO"}]`)
	for _, tc := range []struct {
		enc   Encoding
		value []byte
		ok    bool
	}{
		{MessageEncoding, msg, true}, {MessageEncoding, logs, false},
		{LogArrayEncoding, logs, true}, {LogArrayEncoding, msg, false},
		{MessageEncoding, AppendUnencodable(nil, "e", "T", "why"), false},
	} {
		err := tc.enc.CheckValue(tc.value)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrBadValue)) {
			t.Errorf("%s.CheckValue(%s) = %v", tc.enc.Name(), tc.value, err)
		}
	}
}

func TestRouteValidationNeedsAFindShapeAndAnEncoding(t *testing.T) {
	ok := Route{EventType: "X", Find: FindLogOutbox, Topic: "t", DLQPrefix: "dlq:x:", Encoding: LogArrayEncoding}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	noFind, noEnc := ok, ok
	noFind.Find, noEnc.Encoding = FindRPC{}, nil
	for _, r := range []Route{noFind, noEnc} {
		if err := r.Validate(); err == nil {
			t.Errorf("%+v accepted", r)
		}
	}
	for _, name := range []string{"message", "log"} {
		if f, err := FindRPCByName(name); err != nil || f.Name() != name {
			t.Errorf("FindRPCByName(%q) = %v, %v", name, f, err)
		}
	}
	for _, name := range []string{"message", "log-array"} {
		if e, err := EncodingByName(name); err != nil || e.Name() != name {
			t.Errorf("EncodingByName(%q) = %v, %v", name, e, err)
		}
	}
	if _, err := FindRPCByName("bogus"); err == nil {
		t.Error("unknown find shape accepted")
	}
	if _, err := EncodingByName("bogus"); err == nil {
		t.Error("unknown encoding accepted")
	}
}

type discardSink struct{}

func (discardSink) Record([]byte, []byte, string, []byte, []Span) {}
func (discardSink) Reject(string, []byte, string)                 {}

var (
	keepValue, keepKey, keepIDs []byte
	keepSpans                   []Span
)

// A message record costs one allocation fewer than the publisher's own
// encoding did before Encoding (value, key, event-id header, span): key and
// event-id header share one copy of the id.
func TestMessageEncodingAllocationsPerEvent(t *testing.T) {
	if raceEnabled() {
		t.Skip("allocation counts are not meaningful under -race")
	}
	e := &Event{EventID: "m-1", EventType: EventTypeMessage, Message: benchMessage}
	events := []*Event{e}
	at := time.Unix(1700000000, 0)
	clock := fixedClock(at)
	before := testing.AllocsPerRun(100, func() {
		value, _ := AppendMessageValue(nil, e.Message, at)
		keepValue, keepKey, keepIDs = value, []byte(e.EventID), []byte(e.EventID)
		keepSpans = []Span{{EventID: e.EventID, Lo: 0, Hi: len(value)}}
	})
	now := testing.AllocsPerRun(100, func() { MessageEncoding.Encode(events, 1<<20, clock, discardSink{}) })
	if now >= before {
		t.Errorf("%v allocations per message event, the old encoding took %v", now, before)
	}
	t.Logf("allocations per message event: %v (the old encoding: %v)", now, before)
}
