package outbox

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"

	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/hobom/hobom-event-processor/proto/gen/outboxmessagev1"
)

// codec is the client's gRPC codec: gRPC's protobuf codec, except that a
// response rejected only because a string field holds invalid UTF-8 is
// repaired instead of failing the whole call.
//
// Go's protobuf refuses a proto3 message with any invalid UTF-8 string,
// while protobufjs (the backend) encodes a JS string's lone UTF-16
// surrogates as such bytes; without the repair one bad row would fail every
// find of its event type for good. Valid responses take gRPC's own path
// (one proto.Unmarshal); only after an invalid-UTF-8 failure is the wire
// walked, the offending strings replaced with strings.ToValidUTF8(s,
// "\uFFFD"), and the result unmarshalled again.
//
// Its name is "proto", so calls go out as application/grpc+proto and the
// backend decodes them as ever.
type codec struct {
	// repairs, when not nil, collects what the call's response had
	// repaired. A codec with repairs serves a single call (a per-call
	// option): gRPC unmarshals a unary response on the caller's goroutine,
	// so the caller reads repairs once the call returned.
	repairs *[]repair
}

// repair is one string field repaired in a response: Top is the top-level
// field it was found under, Index the element of Top when Top is repeated
// (its position in the decoded slice) and -1 otherwise, and Path the
// field's path below that element in proto field names, map entries as
// "<map>[key]" or "<map>[value]", e.g. "payload.title".
type repair struct {
	Top   protoreflect.Name
	Index int
	Path  string
}

var _ encoding.CodecV2 = codec{}

func (codec) Name() string { return grpcproto.Name }

// Marshal is gRPC's protobuf marshalling, except for a mark request,
// which is written by hand (marshalMark).
func (codec) Marshal(v any) (mem.BufferSlice, error) {
	if m, ok := v.(*outboxmessagev1.MarkRequest); ok {
		if data, ok := marshalMark(m); ok {
			return data, nil
		}
	}
	return encoding.GetCodecV2(grpcproto.Name).Marshal(v)
}

// marshalMark writes the wire of m, the request of the processor's most
// frequent rpc, into a pooled buffer: the same bytes as proto.Marshal (one
// string field), without its size pass and without the new byte slice
// and boxed mem.SliceBuffer that gRPC's codec makes for a small message.
// It reports false, for the generic path, for what it does not write the
// same way: an empty id (an empty message), an id too long for the pool's
// buffers, invalid UTF-8 (which proto.Marshal refuses) and unknown fields.
func marshalMark(m *outboxmessagev1.MarkRequest) (mem.BufferSlice, bool) {
	id := m.GetEventId()
	n := protowire.SizeTag(markEventIDField) + protowire.SizeBytes(len(id))
	if id == "" || n > markWireCap || !utf8.ValidString(id) || len(m.ProtoReflect().GetUnknown()) > 0 {
		return nil, false
	}
	buf := markWire.Get(n)
	b := protowire.AppendTag((*buf)[:0], markEventIDField, protowire.BytesType)
	*buf = protowire.AppendString(b, id)
	return mem.BufferSlice{mem.NewBuffer(buf, &markWire)}, true
}

// markEventIDField is MarkRequest.eventId's field number.
const markEventIDField = 1

// markWireCap is the capacity of markWire's buffers: above gRPC's pooling
// threshold (1 KiB), so that the mem.Buffer made of one is a pooled one
// that gRPC hands back to markWire once it has written the request (a
// smaller one would be a SliceBuffer, boxed, and left to the GC).
const markWireCap = 1152

// markWire pools the mark requests' wire buffers.
var markWire wirePool

// wirePool is a mem.BufferPool of buffers of markWireCap bytes.
type wirePool struct{ pool sync.Pool }

func (p *wirePool) Get(n int) *[]byte {
	if b, ok := p.pool.Get().(*[]byte); ok && cap(*b) >= n {
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n, max(n, markWireCap))
	return &b
}

func (p *wirePool) Put(b *[]byte) {
	if cap(*b) >= markWireCap {
		p.pool.Put(b)
	}
}

func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	if r, ok := v.(*findReply); ok {
		return r.decode(data)
	}
	m := messageOf(v)
	if m == nil {
		return fmt.Errorf("outbox codec: cannot unmarshal into %T, want a proto message", v)
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	wire := buf.ReadOnlyData()
	err := proto.Unmarshal(wire, m)
	if err == nil || !isInvalidUTF8(err) {
		return err
	}
	var found []repair
	fixed, err2 := repairUTF8(nil, wire, m.ProtoReflect().Descriptor(), &found)
	if err2 != nil || len(found) == 0 {
		return err // the walk found nothing to repair: report the original failure
	}
	if err := proto.Unmarshal(fixed, m); err != nil {
		return fmt.Errorf("outbox codec: after repairing invalid UTF-8: %w", err)
	}
	if c.repairs != nil {
		*c.repairs = append(*c.repairs, found...)
	}
	return nil
}

func messageOf(v any) proto.Message {
	switch v := v.(type) {
	case protoadapt.MessageV2:
		return v
	case protoadapt.MessageV1:
		return protoadapt.MessageV2Of(v)
	}
	return nil
}

// isInvalidUTF8 reports whether err is protobuf's invalid UTF-8 failure.
// The fast path's error has an InvalidUTF8 method, the reflective path's
// only its text; TestCodecRecognisesProtobufsInvalidUTF8Error pins both.
func isInvalidUTF8(err error) bool {
	var u interface{ InvalidUTF8() bool }
	if errors.As(err, &u) && u.InvalidUTF8() {
		return true
	}
	return strings.Contains(err.Error(), "invalid UTF-8")
}

// repairUTF8 appends to dst the message wire of md with every invalid UTF-8
// string field replaced by its valid form, recursing into message fields
// and map entries; unknown fields and everything else are copied as they
// are. found collects what was repaired, indexed by the top-level field.
func repairUTF8(dst, wire []byte, md protoreflect.MessageDescriptor, found *[]repair) ([]byte, error) {
	counts := map[protoreflect.FieldNumber]int{}
	for len(wire) > 0 {
		num, typ, n := protowire.ConsumeTag(wire)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		fd := md.Fields().ByNumber(num)
		index := -1
		if fd != nil && fd.Cardinality() == protoreflect.Repeated {
			index = counts[num]
			counts[num]++
		}
		if typ != protowire.BytesType || fd == nil || !(fd.Kind() == protoreflect.StringKind || fd.Kind() == protoreflect.MessageKind) {
			m := protowire.ConsumeFieldValue(num, typ, wire[n:])
			if m < 0 {
				return nil, protowire.ParseError(m)
			}
			dst = append(dst, wire[:n+m]...)
			wire = wire[n+m:]
			continue
		}
		val, m := protowire.ConsumeBytes(wire[n:])
		if m < 0 {
			return nil, protowire.ParseError(m)
		}
		wire = wire[n+m:]
		dst = protowire.AppendTag(dst, num, typ)
		if fd.Kind() == protoreflect.StringKind {
			if !utf8.Valid(val) {
				*found = append(*found, repair{Top: fd.Name(), Index: index})
				val = []byte(strings.ToValidUTF8(string(val), "\uFFFD"))
			}
			dst = protowire.AppendBytes(dst, val)
			continue
		}
		var sub []repair
		inner, err := repairUTF8(nil, val, fd.Message(), &sub)
		if err != nil {
			return nil, err
		}
		for _, r := range sub {
			below := joinPath(string(r.Top), r.Path)
			if fd.IsMap() {
				below = joinPath("["+string(r.Top)+"]", r.Path)
			}
			*found = append(*found, repair{Top: fd.Name(), Index: index, Path: below})
		}
		dst = protowire.AppendBytes(dst, inner)
	}
	return dst, nil
}

// Field is the repaired field's full path, e.g. "items.payload.title".
func (r repair) Field() string { return joinPath(string(r.Top), r.Path) }

// joinPath appends the path rest below name: "a"+"b" is "a.b", a map
// entry "a"+"[value]" is "a[value]".
func joinPath(name, rest string) string {
	switch {
	case rest == "":
		return name
	case rest[0] == '[':
		return name + rest
	}
	return name + "." + rest
}
