package outbox

import (
	"bytes"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/hobom/hobom-event-processor/messages"
	"github.com/hobom/hobom-event-processor/proto/gen/outboxlogv1"
	"github.com/hobom/hobom-event-processor/proto/gen/outboxmessagev1"
)

// decoded is what a find response decodes to.
type decoded struct {
	Events       []messages.Event
	AfterApplied bool
}

// viaProtobuf decodes a find response as the client did before findReply:
// proto.Unmarshal into the generated Response, then messageEvents or
// logEvents.
func viaProtobuf(wire []byte, log bool) (decoded, error) {
	if log {
		var r outboxlogv1.Response
		if err := proto.Unmarshal(wire, &r); err != nil {
			return decoded{}, err
		}
		return decoded{logEvents(r.GetItems()), r.GetAfterApplied()}, nil
	}
	var r outboxmessagev1.Response
	if err := proto.Unmarshal(wire, &r); err != nil {
		return decoded{}, err
	}
	return decoded{messageEvents(r.GetItems()), r.GetAfterApplied()}, nil
}

// viaDecoder decodes it with findReply, the wire split over two buffers
// as gRPC may hand it.
func viaDecoder(wire []byte, log bool) (decoded, []repair, error) {
	half := len(wire) / 2
	data := mem.BufferSlice{mem.SliceBuffer(bytes.Clone(wire[:half])), mem.SliceBuffer(bytes.Clone(wire[half:]))}
	r := findReply{log: log}
	err := codec{}.Unmarshal(data, &r)
	return decoded{r.events, r.afterApplied}, r.repairs, err
}

func mustMarshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// findWires are responses of both rpcs with every field, rows without a
// payload, repeated fields, unknown fields and known fields of the wrong
// wire type. The second element says whether it is the log rpc's.
func findWires(t testing.TB) []struct {
	name string
	wire []byte
	log  bool
} {
	full := &outboxmessagev1.QueryResult{Id: "row-1", EventId: "e1", EventType: "MESSAGE", Status: "PENDING", RetryCount: 2, Version: -3,
		SentAt: "s", FailedAt: "f", LastError: "le", CreatedAt: "c", UpdatedAt: "u",
		Payload: &outboxmessagev1.MessagePayload{Id: "m1", Title: "Hello", Body: "Body 안녕", Recipient: "a@example.com", SenderId: "s1", Type: "PUSH_MESSAGE"}}
	bare := &outboxmessagev1.QueryResult{EventId: "e2", Version: 1}
	fullLog := &outboxlogv1.QueryResult{Id: "row-l1", EventId: "l1", EventType: "HOBOM_LOG", Status: "PENDING", RetryCount: 1, Version: 4,
		SentAt: "s", FailedAt: "f", LastError: "le", CreatedAt: "c", UpdatedAt: "u",
		Payload: &outboxlogv1.HoBomLogPayload{TraceId: "t", Level: "ERROR", Method: "POST", Path: "/x", StatusCode: 503, Host: "h", UserId: "u",
			ServiceType: "HOBOM_BACKEND", Message: "boom",
			Payload: &outboxlogv1.LogPayloadDetail{Query: map[string]string{"page": "2", "": "empty key"}, Body: map[string]string{"name": ""},
				Headers: map[string]string{"content-type": "application/json"}, Error: "stack"}}}
	noDetail := &outboxlogv1.QueryResult{EventId: "l2", Payload: &outboxlogv1.HoBomLogPayload{Level: "INFO"}}

	msgResp := mustMarshal(t, &outboxmessagev1.Response{Items: []*outboxmessagev1.QueryResult{full, bare, {}}})
	logResp := mustMarshal(t, &outboxlogv1.Response{Items: []*outboxlogv1.QueryResult{fullLog, noDetail, {EventId: "l3"}}})
	msgAfter := mustMarshal(t, &outboxmessagev1.Response{Items: []*outboxmessagev1.QueryResult{bare}, AfterApplied: true})
	logAfter := mustMarshal(t, &outboxlogv1.Response{Items: []*outboxlogv1.QueryResult{noDetail}, AfterApplied: true})
	// afterApplied set, then unset by a later occurrence; set by a value
	// other than 1; and sent as bytes (the wrong wire type: unknown).
	afterTwice := varint(varint(nil, 2, 1), 2, 0)
	afterTwo := varint(nil, 2, 2)
	afterBytes := str(nil, 2, "yes")
	afterThenBytes := str(varint(nil, 2, 1), 2, "no")

	// One row sent as two parts: scalars of the second win, its payload
	// merges into the first's.
	part1 := mustMarshal(t, &outboxmessagev1.QueryResult{EventId: "first", Payload: &outboxmessagev1.MessagePayload{Title: "t1", Body: "b1"}})
	part2 := mustMarshal(t, &outboxmessagev1.QueryResult{EventId: "second", Payload: &outboxmessagev1.MessagePayload{Title: "t2"}})
	merged := msg(nil, 1, append(part1, part2...))
	logPart1 := mustMarshal(t, &outboxlogv1.QueryResult{EventId: "l", Payload: &outboxlogv1.HoBomLogPayload{
		Payload: &outboxlogv1.LogPayloadDetail{Headers: map[string]string{"a": "1", "b": "2"}}}})
	logPart2 := mustMarshal(t, &outboxlogv1.QueryResult{Payload: &outboxlogv1.HoBomLogPayload{StatusCode: 200,
		Payload: &outboxlogv1.LogPayloadDetail{Headers: map[string]string{"a": "3"}}}})
	logMerged := msg(nil, 1, append(logPart1, logPart2...))

	// Unknown fields everywhere, and known fields of the wrong wire type
	// (skipped as unknown by protobuf).
	var odd []byte
	odd = str(odd, 2, "odd")
	odd = varint(odd, 3, 7)                                                              // eventType as a varint
	odd = msg(odd, 4, varint(str(nil, 2, "title"), 99, 1))                               // payload with an unknown field
	odd = protowire.AppendFixed32(protowire.AppendTag(odd, 6, protowire.Fixed32Type), 5) // retryCount as fixed32
	odd = protowire.AppendFixed64(protowire.AppendTag(odd, 50, protowire.Fixed64Type), 1)
	odd = protowire.AppendTag(odd, 51, protowire.StartGroupType)
	odd = str(odd, 1, "in a group")
	odd = protowire.AppendTag(odd, 51, protowire.EndGroupType)
	oddResp := append(str(nil, 7, "unknown top-level field"), msg(nil, 1, odd)...)
	oddResp = varint(oddResp, 1, 3) // items as a varint: unknown

	// A map entry without its value, one without its key.
	var detail []byte
	detail = msg(detail, 1, str(nil, 1, "k"))
	detail = msg(detail, 2, str(nil, 2, "v"))
	logEntries := msg(nil, 1, msg(str(nil, 2, "l4"), 12, msg(nil, 8, detail)))

	return []struct {
		name string
		wire []byte
		log  bool
	}{
		{"message rows", msgResp, false},
		{"log rows", logResp, true},
		{"empty", nil, false},
		{"merged message row", merged, false},
		{"merged log row", logMerged, true},
		{"unknown and mistyped fields", oddResp, false},
		{"map entries without key or value", logEntries, true},
		{"message rows after the cursor", msgAfter, false},
		{"log rows after the cursor", logAfter, true},
		{"afterApplied set, then unset", afterTwice, false},
		{"afterApplied 2", afterTwo, true},
		{"afterApplied as bytes", afterBytes, false},
		{"afterApplied, then field 2 as bytes", afterThenBytes, false},
	}
}

func TestFindDecodeMatchesProtobuf(t *testing.T) {
	for _, c := range findWires(t) {
		want, err := viaProtobuf(c.wire, c.log)
		if err != nil {
			t.Fatalf("%s: protobuf: %v", c.name, err)
		}
		got, repairs, err := viaDecoder(c.wire, c.log)
		if err != nil || len(repairs) != 0 {
			t.Fatalf("%s: decoder: %v, repairs %v", c.name, err, repairs)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %+v\nwant %+v", c.name, got, want)
		}
	}
}

// The repairs name the row and the field as the generic repair does.
func TestFindDecodeRepairsInvalidUTF8(t *testing.T) {
	wire := response(messageItem("ok", "fine", "fine"), messageItem("bad", "x"+surrogate, "y"+surrogate), messageItem("bad"+surrogate, "t", "b"))
	got, repairs, err := viaDecoder(wire, false)
	if err != nil {
		t.Fatal(err)
	}
	want := []repair{{Top: "items", Index: 1, Path: "payload.title"}, {Top: "items", Index: 1, Path: "payload.body"},
		{Top: "items", Index: 2, Path: "id"}, {Top: "items", Index: 2, Path: "eventId"}}
	if !reflect.DeepEqual(repairs, want) {
		t.Errorf("repairs = %+v, want %+v", repairs, want)
	}
	if ev := got.Events; len(ev) != 3 || ev[1].Message.Title != "x\uFFFD" || ev[2].EventID != "bad\uFFFD" || ev[0].Message.Title != "fine" {
		t.Errorf("events = %+v", ev)
	}
	got, repairs, err = viaDecoder(response(logItem("l", [][2]string{{"k" + surrogate, "v"}, {"k2", surrogate}})), true)
	if err != nil {
		t.Fatal(err)
	}
	want = []repair{{Top: "items", Index: 0, Path: "payload.payload.headers[key]"}, {Top: "items", Index: 0, Path: "payload.payload.headers[value]"}}
	if h := got.Events[0].Log.Detail.Headers; !reflect.DeepEqual(repairs, want) || h["k\uFFFD"] != "v" || h["k2"] != "\uFFFD" {
		t.Errorf("repairs = %+v, want %+v; headers %v", repairs, want, h)
	}
}

// viaSkippingDecoder is viaDecoder leaving out the rows skip reports.
func viaSkippingDecoder(wire []byte, log bool, skip func(string) bool) ([]messages.Event, []repair, error) {
	r := findReply{log: log, skip: skip}
	err := codec{}.Unmarshal(mem.BufferSlice{mem.SliceBuffer(bytes.Clone(wire))}, &r)
	return r.events, r.repairs, err
}

// TestFindDecodeSkipsRows: the rows whose eventId skip reports (the last
// occurrence of the field, as decoded) are left out; the others decode as
// without skip.
func TestFindDecodeSkipsRows(t *testing.T) {
	for _, c := range findWires(t) {
		all, _, err := viaDecoder(c.wire, c.log)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		for _, left := range []map[string]bool{{}, {"e1": true, "l1": true, "second": true, "l": true, "odd": true},
			{"e2": true, "l3": true, "first": true}} {
			var asked []string
			got, _, err := viaSkippingDecoder(c.wire, c.log, func(id string) bool { asked = append(asked, id); return left[id] })
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			var want []messages.Event
			for _, e := range all.Events {
				if !left[e.EventID] {
					want = append(want, e)
				}
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s skipping %v:\n got %+v\nwant %+v", c.name, left, got, want)
			}
			for _, id := range asked {
				if !slices.ContainsFunc(all.Events, func(e messages.Event) bool { return e.EventID == id }) {
					t.Errorf("%s: skip asked about %q, no row's eventId", c.name, id)
				}
			}
		}
	}
}

// A row whose eventId is not valid UTF-8 is never left out (it goes to the
// DLQ through the repair); the repairs name rows by their place among the
// rows decoded.
func TestFindDecodeSkipKeepsRowsToRepair(t *testing.T) {
	wire := response(messageItem("gone", "t", "b"), messageItem("bad"+surrogate, "t", "b"), messageItem("gone2", "t", "b"),
		messageItem("kept", "x"+surrogate, "b"))
	got, repairs, err := viaSkippingDecoder(wire, false, func(id string) bool { return id != "kept" })
	if err != nil {
		t.Fatal(err)
	}
	want := []repair{{Top: "items", Index: 0, Path: "id"}, {Top: "items", Index: 0, Path: "eventId"}, {Top: "items", Index: 1, Path: "payload.title"}}
	if len(got) != 2 || got[0].EventID != "bad\uFFFD" || got[1].EventID != "kept" || !reflect.DeepEqual(repairs, want) {
		t.Errorf("events %+v, repairs %+v; want bad\uFFFD and kept, repairs %+v", got, repairs, want)
	}
}

func TestFindDecodeRefusesBrokenWire(t *testing.T) {
	for name, wire := range map[string][]byte{
		"truncated length": {0x0a, 0x05, 'a'},
		"field number 0":   {0x02, 0x00},
		"end group alone":  {0x0c},
		"truncated varint": {0x08, 0x80},
		"bad nested field": msg(nil, 1, []byte{0x12, 0x09, 'x'}),
	} {
		if _, err := viaProtobuf(wire, false); err == nil {
			t.Fatalf("%s: protobuf accepts it; not a broken wire", name)
		}
		if _, _, err := viaDecoder(wire, false); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
}

// FuzzFindDecode: whatever protobuf decodes, the decoder decodes to the
// same events; whatever the decoder accepts and protobuf refuses, protobuf
// refuses for invalid UTF-8 only.
func FuzzFindDecode(f *testing.F) {
	for _, c := range findWires(f) {
		f.Add(c.wire, c.log)
	}
	f.Add(response(messageItem("bad", "x"+surrogate, "y")), false)
	f.Fuzz(func(t *testing.T, wire []byte, log bool) {
		want, perr := viaProtobuf(wire, log)
		got, repairs, err := viaDecoder(wire, log)
		switch {
		case perr == nil && err != nil:
			t.Fatalf("protobuf decodes it, the decoder fails: %v", err)
		case perr == nil && len(repairs) > 0:
			t.Fatalf("repairs %v of a response protobuf accepts", repairs)
		case perr == nil && !reflect.DeepEqual(got, want):
			t.Fatalf("\n got %+v\nwant %+v", got, want)
		case perr != nil && err == nil && !isInvalidUTF8(perr):
			t.Fatalf("the decoder accepts what protobuf refuses with %v", perr)
		case perr != nil && err == nil && len(repairs) == 0:
			t.Fatalf("protobuf refuses it for invalid UTF-8 (%v), the decoder repaired nothing", perr)
		}
		if err == nil {
			checkSkipping(t, wire, log, got.Events)
		}
	})
}

// checkSkipping: whatever the decoder decodes to all, it decodes with skip
// to all but the rows skip reports. skip reports no id with U+FFFD, so a
// repaired eventId (never skipped) is not reported either way.
func checkSkipping(t *testing.T, wire []byte, log bool, all []messages.Event) {
	t.Helper()
	skip := func(id string) bool { return id != "" && len(id)%2 == 0 && !strings.ContainsRune(id, utf8.RuneError) }
	var want []messages.Event
	for _, e := range all {
		if !skip(e.EventID) {
			want = append(want, e)
		}
	}
	got, _, err := viaSkippingDecoder(wire, log, skip)
	if err != nil {
		t.Fatalf("decodes without skip, fails with it: %v", err)
	}
	if len(got) != len(want) || (len(want) > 0 && !reflect.DeepEqual(got, want)) {
		t.Fatalf("with skip:\n got %+v\nwant %+v", got, want)
	}
}

func BenchmarkFindDecode(b *testing.B) {
	items := make([]*outboxmessagev1.QueryResult, 5000)
	for i := range items {
		items[i] = &outboxmessagev1.QueryResult{Id: "row-" + string(rune('a'+i%26)), EventId: "0f8fad5b-d9cb-469f-a165-70867728950e",
			EventType: "MESSAGE", Status: "PENDING", Version: 1, CreatedAt: "2024-01-01T00:00:00Z", UpdatedAt: "2024-01-01T00:00:00Z",
			Payload: &outboxmessagev1.MessagePayload{Id: "m", Title: "title", Body: "a body of some length", Recipient: "user@example.com",
				SenderId: "sender", Type: "MAIL_MESSAGE"}}
	}
	wire := mustMarshal(b, &outboxmessagev1.Response{Items: items})
	data := mem.BufferSlice{mem.SliceBuffer(wire)}
	b.Run("decoder", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r := findReply{}
			if err := (codec{}).Unmarshal(data, &r); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(items)), "ns/row")
	})
	// A find overlapping a batch in flight: the first half of the rows
	// are in flight (SkippingFinder), left out undecoded.
	inFlight := map[string]bool{}
	for i := range items[:len(items)/2] {
		items[i].EventId = fmt.Sprintf("in-flight-%d", i)
		inFlight[items[i].EventId] = true
	}
	halfWire := mustMarshal(b, &outboxmessagev1.Response{Items: items})
	half := mem.BufferSlice{mem.SliceBuffer(halfWire)}
	for _, c := range []struct {
		name string
		skip func(string) bool
	}{{"decoder, half in flight, all decoded", nil}, {"decoder, half in flight, skipped", func(id string) bool { return inFlight[id] }}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r := findReply{skip: c.skip}
				if err := (codec{}).Unmarshal(half, &r); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(items)), "ns/row")
		})
	}
	b.Run("protobuf", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var r outboxmessagev1.Response
			if err := (codec{}).Unmarshal(data, &r); err != nil {
				b.Fatal(err)
			}
			_ = messageEvents(r.GetItems())
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(items)), "ns/row")
	})
}
