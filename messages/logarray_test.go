package messages

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func TestLogArrayBuilderMatchesEncodingJSON(t *testing.T) {
	all := encodeLogCases(t)
	for _, n := range []int{0, 1, 2, len(all)} {
		objs := all[:n]
		raw := make([]json.RawMessage, n)
		var ids []string
		var b LogArrayBuilder
		for i, o := range objs {
			raw[i] = o
			id := fmt.Sprintf("e%d", i)
			ids = append(ids, id)
			predicted := b.SizeWith(id, o)
			b.Add(id, o)
			if b.Size() != predicted {
				t.Errorf("SizeWith predicted %d, Size is %d", predicted, b.Size())
			}
		}
		want := mustMarshal(t, raw)
		size, count := b.Size(), b.Len()
		value, gotIDs, spans := b.Take()
		if !bytes.Equal(value, want) || count != n || size != len(value)+len(gotIDs) {
			t.Errorf("%d objects: %s (Size %d, Len %d)\nwant %s", n, value, size, count, want)
		}
		if string(gotIDs) != strings.Join(ids, ",") {
			t.Errorf("%d objects: ids %q", n, gotIDs)
		}
		for i, s := range spans {
			if s.EventID != ids[i] || !bytes.Equal(value[s.Lo:s.Hi], objs[i]) {
				t.Errorf("span %d = %+v does not hold object %d", i, s, i)
			}
		}
		if b.Len() != 0 || b.Size() != 2 {
			t.Errorf("Take left %d events, size %d", b.Len(), b.Size())
		}
	}
}

func TestLogArrayBuilderTakeGivesOwnership(t *testing.T) {
	var b LogArrayBuilder
	if v, ids, spans := b.Take(); string(v) != "[]" || ids != nil || spans != nil {
		t.Errorf("empty builder: %s %q %v", v, ids, spans)
	}
	b.Add("a", []byte(`{"a":1}`))
	b.Add("b", []byte(`{"b":2}`))
	first, firstIDs, _ := b.Take()
	b.Add("c", []byte(`{"c":3}`))
	if v, ids, _ := b.Take(); string(v) != `[{"c":3}]` || string(ids) != "c" {
		t.Errorf("reused: %s %s", v, ids)
	}
	if string(first) != `[{"a":1},{"b":2}]` || string(firstIDs) != "a,b" {
		t.Errorf("a taken record changed under its owner: %s %s", first, firstIDs)
	}
}

// TestLogArraySplitting splits encoded objects as the publisher does and
// checks that every record, value and event-id header together, respects
// the limit and that all objects come out in order.
func TestLogArraySplitting(t *testing.T) {
	objs := encodeLogCases(t)
	maxObj := 0
	for _, o := range objs {
		maxObj = max(maxObj, len(o))
	}
	for _, limit := range []int{maxObj + 8, maxObj + 100, 4 * maxObj, 1 << 20} {
		type record struct{ value, ids []byte }
		var records []record
		var b LogArrayBuilder
		take := func() {
			v, ids, _ := b.Take()
			records = append(records, record{v, ids})
		}
		for i, o := range objs {
			id := fmt.Sprintf("e%d", i)
			if b.Len() > 0 && b.SizeWith(id, o) > limit {
				take()
			}
			b.Add(id, o)
		}
		take()

		var seen []json.RawMessage
		for _, r := range records {
			if len(r.value)+len(r.ids) > limit {
				t.Errorf("limit %d: record of %d bytes", limit, len(r.value)+len(r.ids))
			}
			var arr []json.RawMessage
			if err := json.Unmarshal(r.value, &arr); err != nil {
				t.Fatalf("limit %d: %v", limit, err)
			}
			seen = append(seen, arr...)
		}
		if len(seen) != len(objs) {
			t.Fatalf("limit %d: %d objects out, %d in", limit, len(seen), len(objs))
		}
		for i := range objs {
			if !bytes.Equal(seen[i], objs[i]) {
				t.Errorf("limit %d: object %d changed", limit, i)
			}
		}
	}
}

// BenchmarkLogArrayBuilder builds a 100-event record from encoded objects.
func BenchmarkLogArrayBuilder(b *testing.B) {
	b.ReportAllocs()
	obj, _ := AppendLogObject(nil, benchLog)
	ids := make([]string, 100)
	for i := range ids {
		ids[i] = fmt.Sprintf("0190f7a2-6b1c-7c3e-9d1a-%012d", i)
	}
	lb := LogArrayBuilder{Capacity: 128 * len(obj)} // as the publisher sizes its records
	var value []byte
	for b.Loop() {
		for _, id := range ids {
			lb.Add(id, obj)
		}
		value, _, _ = lb.Take()
	}
	b.SetBytes(int64(len(value)))
}
