package outbox

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/hobom/hobom-event-processor/messages"
	"github.com/hobom/hobom-event-processor/proto/gen/outboxlogv1"
	"github.com/hobom/hobom-event-processor/proto/gen/outboxmessagev1"
)

// surrogate is how protobufjs encodes a lone UTF-16 surrogate (U+D800):
// invalid UTF-8 for Go.
const surrogate = "\xed\xa0\x80"

// Hand-built wire: field helpers.
func str(dst []byte, num protowire.Number, s string) []byte {
	return protowire.AppendString(protowire.AppendTag(dst, num, protowire.BytesType), s)
}

func msg(dst []byte, num protowire.Number, body []byte) []byte {
	return protowire.AppendBytes(protowire.AppendTag(dst, num, protowire.BytesType), body)
}

func varint(dst []byte, num protowire.Number, v uint64) []byte {
	return protowire.AppendVarint(protowire.AppendTag(dst, num, protowire.VarintType), v)
}

// messageItem is a message QueryResult: eventId 2, payload 4 {title 2, body 3}, retryCount 6.
func messageItem(eventID, title, body string) []byte {
	var payload []byte
	payload = str(payload, 2, title)
	payload = str(payload, 3, body)
	var it []byte
	it = str(it, 1, "row-"+eventID)
	it = str(it, 2, eventID)
	it = msg(it, 4, payload)
	it = varint(it, 6, 2)
	return it
}

// logItem is a log QueryResult: eventId 2, payload 12 {traceId 1, statusCode 5,
// payload 8 {headers 3 map entries, error 4}}.
func logItem(eventID string, headers [][2]string) []byte {
	var detail []byte
	for _, kv := range headers {
		var entry []byte
		entry = str(entry, 1, kv[0])
		entry = str(entry, 2, kv[1])
		detail = msg(detail, 3, entry)
	}
	detail = str(detail, 4, "stack")
	var payload []byte
	payload = str(payload, 1, "t-"+eventID)
	payload = varint(payload, 5, 500)
	payload = msg(payload, 8, detail)
	var it []byte
	it = str(it, 2, eventID)
	it = msg(it, 12, payload)
	return it
}

func response(items ...[]byte) []byte {
	var b []byte
	for _, it := range items {
		b = msg(b, 1, it)
	}
	return b
}

func unmarshal(t *testing.T, c codec, wire []byte, m proto.Message) error {
	t.Helper()
	return c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(bytes.Clone(wire))}, m)
}

func TestCodecValidInputIsUnchanged(t *testing.T) {
	wire := response(messageItem("e1", "Hello", "안녕"), messageItem("e2", "", "b"))
	var repairs []repair
	got := &outboxmessagev1.Response{}
	if err := unmarshal(t, codec{repairs: &repairs}, wire, got); err != nil {
		t.Fatal(err)
	}
	want := &outboxmessagev1.Response{}
	if err := proto.Unmarshal(wire, want); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, want) || len(repairs) != 0 {
		t.Fatalf("got %v repairs %v, want %v and no repairs", got, repairs, want)
	}
	if (codec{}).Name() != "proto" {
		t.Fatalf("codec name %q: calls must go out as application/grpc+proto", (codec{}).Name())
	}
}

// The fast path costs what gRPC's own codec costs: one proto.Unmarshal and
// nothing more.
func TestCodecFastPathAllocatesLikeGRPCs(t *testing.T) {
	wire := response(logItem("l1", [][2]string{{"a", "b"}}), messageItem("e1", "x", "y"))
	measure := func(c encoding.CodecV2) float64 {
		return testing.AllocsPerRun(200, func() {
			if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(wire)}, &outboxlogv1.Response{}); err != nil {
				t.Fatal(err)
			}
		})
	}
	ours, theirs := measure(codec{}), measure(encoding.GetCodecV2(grpcproto.Name))
	if ours > theirs {
		t.Fatalf("codec allocates %v per valid response, gRPC's %v", ours, theirs)
	}
}

func TestCodecRepairsANestedString(t *testing.T) {
	wire := response(messageItem("e1", "ok", "ok"), messageItem("e2", "bad "+surrogate+" title", "fine"), messageItem("e3", "x", "y"))
	if err := proto.Unmarshal(wire, &outboxmessagev1.Response{}); !isInvalidUTF8(err) {
		t.Fatalf("plain unmarshal: %v, want an invalid UTF-8 error", err)
	}
	var repairs []repair
	got := &outboxmessagev1.Response{}
	if err := unmarshal(t, codec{repairs: &repairs}, wire, got); err != nil {
		t.Fatal(err)
	}
	if n := len(got.Items); n != 3 {
		t.Fatalf("%d items, want 3", n)
	}
	if title := got.Items[1].GetPayload().GetTitle(); title != "bad \uFFFD title" {
		t.Fatalf("repaired title %q", title)
	}
	if got.Items[0].GetPayload().GetTitle() != "ok" || got.Items[2].GetEventId() != "e3" || got.Items[1].GetRetryCount() != 2 {
		t.Fatalf("other fields changed: %v", got)
	}
	want := []repair{{Top: "items", Index: 1, Path: "payload.title"}}
	if !reflect.DeepEqual(repairs, want) {
		t.Fatalf("repairs %+v, want %+v", repairs, want)
	}
}

func TestCodecRepairsAMapValueAndKey(t *testing.T) {
	wire := response(
		logItem("l1", [][2]string{{"a", "1"}}),
		logItem("l2", [][2]string{{"ok", "v"}, {"user-agent", "x" + surrogate}, {"k" + surrogate, "v2"}}),
	)
	var repairs []repair
	got := &outboxlogv1.Response{}
	if err := unmarshal(t, codec{repairs: &repairs}, wire, got); err != nil {
		t.Fatal(err)
	}
	h := got.Items[1].GetPayload().GetPayload().GetHeaders()
	if h["user-agent"] != "x\uFFFD" || h["k\uFFFD"] != "v2" || h["ok"] != "v" || len(h) != 3 {
		t.Fatalf("repaired headers %q", h)
	}
	if got.Items[1].GetPayload().GetStatusCode() != 500 || got.Items[1].GetPayload().GetPayload().GetError() != "stack" {
		t.Fatalf("other fields changed: %v", got.Items[1])
	}
	want := []repair{
		{Top: "items", Index: 1, Path: "payload.payload.headers[value]"},
		{Top: "items", Index: 1, Path: "payload.payload.headers[key]"},
	}
	if !reflect.DeepEqual(repairs, want) {
		t.Fatalf("repairs %+v, want %+v", repairs, want)
	}

	// The events get their Defect, and one error line names their ids only.
	var logs bytes.Buffer
	c := &Client{log: zerolog.New(&logs)}
	events := logEvents(got.Items)
	c.markDefects(events, repairs, messages.EventTypeHoBomLog, messages.StatusPending)
	if events[0].Defect != "" || events[1].Defect != "invalid UTF-8 in payload.payload.headers[value], payload.payload.headers[key]" {
		t.Fatalf("defects %q, %q", events[0].Defect, events[1].Defect)
	}
	line := logs.String()
	if strings.Count(line, "\n") != 1 || !strings.Contains(line, `"level":"error"`) || !strings.Contains(line, `"eventIds":["l2"]`) ||
		!strings.Contains(line, `"events":1`) || strings.Contains(line, "user-agent") {
		t.Fatalf("log: %s", line)
	}
}

func TestCodecRepairsOnlyTheBadItemsOfMany(t *testing.T) {
	items := make([][]byte, 10)
	for i := range items {
		title := "t"
		if i == 3 || i == 7 {
			title = surrogate
		}
		items[i] = messageItem(string(rune('a'+i)), title, map[bool]string{true: surrogate + surrogate, false: "b"}[i == 7])
	}
	var repairs []repair
	got := &outboxmessagev1.Response{}
	if err := unmarshal(t, codec{repairs: &repairs}, response(items...), got); err != nil {
		t.Fatal(err)
	}
	c := &Client{log: zerolog.Nop()}
	events := messageEvents(got.Items)
	c.markDefects(events, repairs, messages.EventTypeMessage, messages.StatusPending)
	for i, e := range events {
		want := ""
		switch i {
		case 3:
			want = "invalid UTF-8 in payload.title"
		case 7:
			want = "invalid UTF-8 in payload.title, payload.body"
		}
		if e.Defect != want || e.EventID != string(rune('a'+i)) {
			t.Errorf("event %d %s: defect %q, want %q", i, e.EventID, e.Defect, want)
		}
	}
	if events[7].Message.Body != "\uFFFD" {
		t.Errorf("a run of invalid bytes is one replacement character: %q", events[7].Message.Body)
	}
}

func TestCodecLeavesOtherErrorsAlone(t *testing.T) {
	wire := response(messageItem("e1", "t", "b"))
	err := unmarshal(t, codec{}, wire[:len(wire)-2], &outboxmessagev1.Response{})
	want := proto.Unmarshal(wire[:len(wire)-2], &outboxmessagev1.Response{})
	if err == nil || want == nil || err.Error() != want.Error() || isInvalidUTF8(err) {
		t.Fatalf("truncated wire: %v, want %v", err, want)
	}
	if err := (codec{}).Unmarshal(mem.BufferSlice{mem.SliceBuffer(wire)}, struct{}{}); err == nil {
		t.Fatal("unmarshal into a non-message accepted")
	}
}

// isInvalidUTF8 must recognise protobuf's error on both of its paths: the
// generated fast path and the reflective one (dynamicpb).
func TestCodecRecognisesProtobufsInvalidUTF8Error(t *testing.T) {
	wire := response(messageItem("e1", surrogate, "b"))
	fast := proto.Unmarshal(wire, &outboxmessagev1.Response{})
	slow := proto.Unmarshal(wire, dynamicpb.NewMessage((&outboxmessagev1.Response{}).ProtoReflect().Descriptor()))
	for name, err := range map[string]error{"fast": fast, "reflective": slow} {
		if err == nil || !isInvalidUTF8(err) {
			t.Errorf("%s path error %v not recognised", name, err)
		}
	}
	if isInvalidUTF8(errors.New("proto: cannot parse invalid wire-format data")) {
		t.Error("a wire-format error taken for invalid UTF-8")
	}
	// And the codec repairs through either.
	dyn := dynamicpb.NewMessage((&outboxmessagev1.Response{}).ProtoReflect().Descriptor())
	if err := unmarshal(t, codec{}, wire, dyn); err != nil {
		t.Fatal(err)
	}
}

// TestCodecMarshalsMarkRequestsAsProtobufDoes: the hand-written mark
// request is proto.Marshal's wire byte for byte, what it does not write
// (empty, too long, invalid UTF-8, unknown fields) takes gRPC's path with
// its outcome, and its buffer goes back to the pool once gRPC frees it.
func TestCodecMarshalsMarkRequestsAsProtobufDoes(t *testing.T) {
	if f := (&outboxmessagev1.MarkRequest{}).ProtoReflect().Descriptor().Fields().ByName("eventId"); f == nil || f.Number() != markEventIDField {
		t.Fatalf("MarkRequest.eventId is %v, want field %d", f, markEventIDField)
	}
	withUnknown := &outboxmessagev1.MarkRequest{EventId: "e1"}
	withUnknown.ProtoReflect().SetUnknown(varint(nil, 9, 7))
	for _, m := range []*outboxmessagev1.MarkRequest{
		{EventId: "e1"},
		{EventId: "0f8c6f2e-7b1a-4c4e-9a57-3d3f1c2b9e10"},
		{EventId: "ünïcode ✓"},
		{EventId: strings.Repeat("x", 200)}, // a two-byte length
		{EventId: strings.Repeat("x", markWireCap)},
		{},
		{EventId: "bad" + surrogate},
		withUnknown,
	} {
		want, wantErr := proto.Marshal(m)
		data, err := codec{}.Marshal(m)
		if (err != nil) != (wantErr != nil) {
			t.Errorf("%.20q: error %v, proto.Marshal's %v", m.GetEventId(), err, wantErr)
			continue
		}
		if err == nil && !bytes.Equal(data.Materialize(), want) {
			t.Errorf("%.20q: wire %x, want %x", m.GetEventId(), data.Materialize(), want)
		}
		data.Free()
	}

	// A freed request's buffer serves the next: a mark allocates only
	// the BufferSlice, not the three allocations of gRPC's codec.
	if raceEnabled {
		return
	}
	m := &outboxmessagev1.MarkRequest{EventId: "0f8c6f2e-7b1a-4c4e-9a57-3d3f1c2b9e10"}
	allocs := testing.AllocsPerRun(1000, func() {
		data, err := codec{}.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		data.Free()
	})
	if allocs > 1 {
		t.Errorf("%.1f allocations per mark request, want at most 1", allocs)
	}
}
