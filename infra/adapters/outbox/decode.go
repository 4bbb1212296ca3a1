package outbox

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
	"unsafe"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/hobom/hobom-event-processor/messages"
)

// findReply is what the codec decodes a find response into: the events
// themselves, without the generated messages in between. The generic
// protobuf path allocated every string of every row on its own (some 20
// allocations per MESSAGE row, then a copy into messages.Event); this one
// copies the response once into a string and cuts every field out of it,
// so a page of rows costs a few slabs. The price is the one the slabs
// already had: an event kept after its poll keeps its page alive.
//
// It decodes exactly what proto.Unmarshal into the generated Response
// accepts, with the same values (TestFindDecodeMatchesProtobuf and
// FuzzFindDecode compare the two): unknown fields and known fields of the
// wrong wire type are skipped, a repeated scalar's last value wins, a
// repeated message field is merged, a map entry without key or value has
// the empty string. Strings with invalid UTF-8, which proto.Unmarshal
// rejects for the whole response, are repaired with U+FFFD and reported
// in repairs (see codec), so the other rows of the page flow.
type findReply struct {
	log bool // the log rpc's response, else the message rpc's
	// skip, when set, leaves out the rows whose eventId it reports,
	// undecoded (see findDecoder.skipped).
	skip    func(eventID string) bool
	events  []messages.Event
	repairs []repair
	// afterApplied is the response's afterApplied (field 2): the backend
	// applied the request's cursor.
	afterApplied bool
}

// errFindWire is wrapped by the error of a find response that is not
// valid protobuf wire.
var errFindWire = errors.New("outbox codec: cannot parse the find response")

// decode fills r from the response wire.
func (r *findReply) decode(data mem.BufferSlice) error {
	var sb strings.Builder
	sb.Grow(data.Len())
	for _, b := range data {
		sb.Write(b.ReadOnlyData())
	}
	d := findDecoder{s: sb.String(), log: r.log, skip: r.skip}
	if err := d.response(); err != nil {
		return fmt.Errorf("%w: %w", errFindWire, err)
	}
	r.events, r.repairs, r.afterApplied = d.events, d.repairs, d.afterApplied
	return nil
}

// findDecoder walks one response. Positions are byte offsets into s.
type findDecoder struct {
	s    string
	log  bool
	skip func(eventID string) bool

	events  []messages.Event
	msgs    []messages.MessagePayload // slabs, one element per row at most
	logs    []messages.LogPayload
	details []messages.LogPayloadDetail
	repairs []repair
	item    int // index of the row being decoded

	afterApplied bool
}

// field is one decoded tag and value: for BytesType the value is
// s[lo:hi], for VarintType it is v.
type field struct {
	num    protowire.Number
	typ    protowire.Type
	v      uint64
	lo, hi int
}

// next decodes the field at pos, which is before end, and returns the
// position after it.
func (d *findDecoder) next(pos, end int) (field, int, error) {
	b := d.bytes(pos, end)
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 {
		return field{}, 0, protowire.ParseError(n)
	}
	if num > protowire.MaxValidNumber { // ConsumeTag lets those through; protobuf refuses them
		return field{}, 0, fmt.Errorf("field number %d out of range", num)
	}
	f := field{num: num, typ: typ}
	switch typ {
	case protowire.VarintType:
		v, m := protowire.ConsumeVarint(b[n:])
		if m < 0 {
			return field{}, 0, protowire.ParseError(m)
		}
		f.v = v
		return f, pos + n + m, nil
	case protowire.BytesType:
		v, m := protowire.ConsumeBytes(b[n:])
		if m < 0 {
			return field{}, 0, protowire.ParseError(m)
		}
		f.hi = pos + n + m
		f.lo = f.hi - len(v)
		return f, f.hi, nil
	}
	m := protowire.ConsumeFieldValue(num, typ, b[n:])
	if m < 0 {
		return field{}, 0, protowire.ParseError(m)
	}
	return f, pos + n + m, nil
}

// bytes is s[lo:hi] as a byte slice for protowire, which only reads it:
// a view of the string's own bytes, which saves copying the response a
// second time. Nothing writes through it.
func (d *findDecoder) bytes(lo, hi int) []byte {
	s := d.s[lo:hi]
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// str returns the string field f, repaired when it is not valid UTF-8
// (path is its name below the row, for the row's Defect).
func (d *findDecoder) str(f field, path string) string {
	s := d.s[f.lo:f.hi]
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
		d.repairs = append(d.repairs, repair{Top: "items", Index: d.item, Path: path})
	}
	return s
}

func (d *findDecoder) response() error {
	// The first pass counts the rows to decode, and with d.skip notes
	// which rows are left out (by their order), for the second.
	n := 0
	var left []bool
	for pos := 0; pos < len(d.s); {
		f, next, err := d.next(pos, len(d.s))
		if err != nil {
			return err
		}
		if f.num == 2 && f.typ == protowire.VarintType {
			d.afterApplied = f.v != 0 // the last value wins, as in proto.Unmarshal
		}
		if f.num == 1 && f.typ == protowire.BytesType {
			skip, err := d.skipped(f.lo, f.hi)
			if err != nil {
				return err
			}
			if d.skip != nil {
				left = append(left, skip)
			}
			if !skip {
				n++
			}
		}
		pos = next
	}
	if n == 0 {
		return nil
	}
	d.events = make([]messages.Event, 0, n)
	if d.log {
		d.logs = make([]messages.LogPayload, 0, n)
		d.details = make([]messages.LogPayloadDetail, 0, n)
	} else {
		d.msgs = make([]messages.MessagePayload, 0, n)
	}
	for pos, row := 0, 0; pos < len(d.s); {
		f, next, err := d.next(pos, len(d.s))
		if err != nil {
			return err
		}
		pos = next
		if f.num != 1 || f.typ != protowire.BytesType {
			continue
		}
		row++
		if left != nil && left[row-1] {
			continue
		}
		d.item = len(d.events)
		d.events = append(d.events, messages.Event{})
		e := &d.events[d.item]
		if d.log {
			err = d.logRow(e, f.lo, f.hi)
		} else {
			err = d.messageRow(e, f.lo, f.hi)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// skipped reports whether the row s[lo:hi] is left out: d.skip reports its
// eventId, read as the row decoder would (the last occurrence wins). Only
// the row's own fields are walked, not its payload. An eventId that is not
// valid UTF-8 is never skipped: its row goes through the repair, and so
// to the DLQ. A row whose own fields are not valid wire returns the error
// the row decoder would; a skipped row's payload is not looked into, so a
// response that protobuf refuses for a broken payload of a skipped row
// decodes.
func (d *findDecoder) skipped(lo, hi int) (bool, error) {
	if d.skip == nil {
		return false, nil
	}
	num := messageRowNums.eventID
	if d.log {
		num = logRowNums.eventID
	}
	id, found := "", false
	for pos := lo; pos < hi; {
		// Most fields of a row are strings shorter than 128 bytes under a
		// one-byte tag: read those here, anything else through next
		// (which also reports what is not valid wire).
		if c := d.s[pos]; c < 0x80 && c>>3 != 0 && protowire.Type(c&7) == protowire.BytesType && pos+1 < hi && d.s[pos+1] < 0x80 {
			if end := pos + 2 + int(d.s[pos+1]); end <= hi {
				if protowire.Number(c>>3) == num {
					id, found = d.s[pos+2:end], true
				}
				pos = end
				continue
			}
		}
		f, next, err := d.next(pos, hi)
		if err != nil {
			return false, err
		}
		pos = next
		if f.num == num && f.typ == protowire.BytesType {
			id, found = d.s[f.lo:f.hi], true
		}
	}
	return found && utf8.ValidString(id) && d.skip(id), nil
}

// rowField decodes the fields every row has, numbered by the caller's
// table; it reports whether f was one of them.
func (d *findDecoder) rowField(e *messages.Event, f field, nums *rowNums) bool {
	switch {
	case f.typ == protowire.VarintType && f.num == nums.retryCount:
		e.RetryCount = int32(f.v)
	case f.typ == protowire.VarintType && f.num == nums.version:
		e.Version = int32(f.v)
	case f.typ != protowire.BytesType:
		return false
	case f.num == nums.id:
		e.ID = d.str(f, "id")
	case f.num == nums.eventID:
		e.EventID = d.str(f, "eventId")
	case f.num == nums.eventType:
		e.EventType = d.str(f, "eventType")
	case f.num == nums.status:
		e.Status = d.str(f, "status")
	case f.num == nums.sentAt:
		e.SentAt = d.str(f, "sentAt")
	case f.num == nums.failedAt:
		e.FailedAt = d.str(f, "failedAt")
	case f.num == nums.lastError:
		e.LastError = d.str(f, "lastError")
	case f.num == nums.createdAt:
		e.CreatedAt = d.str(f, "createdAt")
	case f.num == nums.updatedAt:
		e.UpdatedAt = d.str(f, "updatedAt")
	default:
		return false
	}
	return true
}

// rowNums are the field numbers of a QueryResult (they differ between the
// two find rpcs; proto/*/outbox/v1/*.proto).
type rowNums struct {
	id, eventID, eventType, status, retryCount, sentAt, failedAt, lastError, version, createdAt, updatedAt, payload protowire.Number
}

var (
	messageRowNums = rowNums{id: 1, eventID: 2, eventType: 3, payload: 4, status: 5, retryCount: 6, sentAt: 7, failedAt: 8,
		lastError: 9, version: 10, createdAt: 11, updatedAt: 12}
	logRowNums = rowNums{id: 1, eventID: 2, eventType: 3, status: 4, retryCount: 5, sentAt: 6, failedAt: 7, lastError: 8,
		version: 9, createdAt: 10, updatedAt: 11, payload: 12}
)

func (d *findDecoder) messageRow(e *messages.Event, lo, hi int) error {
	for pos := lo; pos < hi; {
		f, next, err := d.next(pos, hi)
		if err != nil {
			return err
		}
		pos = next
		if d.rowField(e, f, &messageRowNums) || f.num != messageRowNums.payload || f.typ != protowire.BytesType {
			continue
		}
		if e.Message == nil { // a second occurrence merges into the first
			d.msgs = append(d.msgs, messages.MessagePayload{})
			e.Message = &d.msgs[len(d.msgs)-1]
		}
		if err := d.messagePayload(e.Message, f.lo, f.hi); err != nil {
			return err
		}
	}
	return nil
}

func (d *findDecoder) messagePayload(p *messages.MessagePayload, lo, hi int) error {
	for pos := lo; pos < hi; {
		f, next, err := d.next(pos, hi)
		if err != nil {
			return err
		}
		pos = next
		if f.typ != protowire.BytesType {
			continue
		}
		switch f.num {
		case 1:
			p.ID = d.str(f, "payload.id")
		case 2:
			p.Title = d.str(f, "payload.title")
		case 3:
			p.Body = d.str(f, "payload.body")
		case 4:
			p.Recipient = d.str(f, "payload.recipient")
		case 5:
			p.SenderID = d.str(f, "payload.senderId")
		case 6:
			p.Type = d.str(f, "payload.type")
		}
	}
	return nil
}

func (d *findDecoder) logRow(e *messages.Event, lo, hi int) error {
	for pos := lo; pos < hi; {
		f, next, err := d.next(pos, hi)
		if err != nil {
			return err
		}
		pos = next
		if d.rowField(e, f, &logRowNums) || f.num != logRowNums.payload || f.typ != protowire.BytesType {
			continue
		}
		if e.Log == nil {
			d.logs = append(d.logs, messages.LogPayload{})
			e.Log = &d.logs[len(d.logs)-1]
		}
		if err := d.logPayload(e.Log, f.lo, f.hi); err != nil {
			return err
		}
	}
	return nil
}

func (d *findDecoder) logPayload(p *messages.LogPayload, lo, hi int) error {
	for pos := lo; pos < hi; {
		f, next, err := d.next(pos, hi)
		if err != nil {
			return err
		}
		pos = next
		if f.typ == protowire.VarintType && f.num == 5 {
			p.StatusCode = int32(f.v)
			continue
		}
		if f.typ != protowire.BytesType {
			continue
		}
		switch f.num {
		case 1:
			p.TraceID = d.str(f, "payload.traceId")
		case 2:
			p.Level = d.str(f, "payload.level")
		case 3:
			p.Method = d.str(f, "payload.method")
		case 4:
			p.Path = d.str(f, "payload.path")
		case 6:
			p.Host = d.str(f, "payload.host")
		case 7:
			p.UserID = d.str(f, "payload.userId")
		case 8:
			if p.Detail == nil {
				d.details = append(d.details, messages.LogPayloadDetail{})
				p.Detail = &d.details[len(d.details)-1]
			}
			if err := d.logDetail(p.Detail, f.lo, f.hi); err != nil {
				return err
			}
		case 9:
			p.ServiceType = d.str(f, "payload.serviceType")
		case 10:
			p.Message = d.str(f, "payload.message")
		}
	}
	return nil
}

// detailMaps names LogPayloadDetail's map fields, by field number.
var detailMaps = [4]string{1: "query", 2: "body", 3: "headers"}

func (d *findDecoder) logDetail(p *messages.LogPayloadDetail, lo, hi int) error {
	for pos := lo; pos < hi; {
		f, next, err := d.next(pos, hi)
		if err != nil {
			return err
		}
		pos = next
		var m *map[string]string
		switch f.num {
		case 1:
			m = &p.Query
		case 2:
			m = &p.Body
		case 3:
			m = &p.Headers
		case 4:
			if f.typ == protowire.BytesType {
				p.Error = d.str(f, "payload.payload.error")
			}
			continue
		default:
			continue
		}
		// Protobuf makes the map on any field of its number, before it
		// checks the wire type.
		if *m == nil {
			*m = make(map[string]string)
		}
		if f.typ != protowire.BytesType {
			continue
		}
		k, v, err := d.mapEntry(f.lo, f.hi, "payload.payload."+detailMaps[f.num])
		if err != nil {
			return err
		}
		(*m)[k] = v
	}
	return nil
}

// mapEntry decodes a map<string, string> entry: key 1, value 2.
func (d *findDecoder) mapEntry(lo, hi int, path string) (k, v string, err error) {
	for pos := lo; pos < hi; {
		f, next, err := d.next(pos, hi)
		if err != nil {
			return "", "", err
		}
		pos = next
		if f.typ != protowire.BytesType {
			continue
		}
		switch f.num {
		case 1:
			k = d.str(f, path+"[key]")
		case 2:
			v = d.str(f, path+"[value]")
		}
	}
	return k, v, nil
}
