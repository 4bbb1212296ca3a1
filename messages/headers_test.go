package messages

import (
	"strings"
	"testing"
)

func TestTraceparent(t *testing.T) {
	for _, c := range []struct {
		in string
		ok bool
	}{
		{"4bf92f3577b34da6a3ce929d0e0e4736", true},
		{"00000000000000000000000000000000", false},
		{"4BF92F3577B34DA6A3CE929D0E0E4736", false}, // W3C wants lowercase
		{"4bf92f3577b34da6", false},
		{"", false},
		{"zzf92f3577b34da6a3ce929d0e0e4736", false},
	} {
		tp, ok := Traceparent(c.in)
		if ok != c.ok {
			t.Errorf("Traceparent(%q) ok = %v", c.in, ok)
			continue
		}
		if ok {
			parts := strings.Split(tp, "-")
			if len(parts) != 4 || parts[0] != "00" || parts[1] != c.in || len(parts[2]) != 16 || parts[2] == "0000000000000000" || parts[3] != "01" {
				t.Errorf("Traceparent(%q) = %q", c.in, tp)
			}
			if again, _ := Traceparent(c.in); again != tp {
				t.Errorf("not stable: %q then %q", tp, again)
			}
		}
	}
}

func TestRecordHeaders(t *testing.T) {
	h := RecordHeaders("HOBOM_LOG", "hobom-event-processor/v1", "4bf92f3577b34da6a3ce929d0e0e4736", []byte("a,b"))
	got := map[string]string{}
	for _, x := range h {
		got[x.Key] = string(x.Value)
	}
	if got[HeaderEventID] != "a,b" || got[HeaderEventType] != "HOBOM_LOG" || got[HeaderProducer] != "hobom-event-processor/v1" || got[HeaderTraceparent] == "" {
		t.Errorf("headers = %v", got)
	}
	if h := RecordHeaders("MESSAGE", "p", "", []byte("a")); len(h) != 3 {
		t.Errorf("no traceparent expected without a trace id: %v", h)
	}
}
