package redisdlq

import (
	"errors"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestParseKey(t *testing.T) {
	long := "dlq:menu:" + strings.Repeat("e", MaxKeyLen-len("dlq:menu:"))
	tests := []struct {
		key        string
		prefix, id string
		wantErr    string // substring of the error; "" means success
	}{
		{key: "dlq:menu:e1", prefix: "dlq:menu:", id: "e1"},
		{key: "dlq:log:0b6f0c1e-6b1a-4a53-9d2f-6c1f0d3b2a11", prefix: "dlq:log:", id: "0b6f0c1e-6b1a-4a53-9d2f-6c1f0d3b2a11"},
		{key: "dlq:menu::e1", prefix: "dlq:menu:", id: "e1"}, // the old service's doubled colon
		{key: "dlq:log::e1", prefix: "dlq:log:", id: "e1"},
		{key: "dlq:menu:a:b", prefix: "dlq:menu:", id: "a:b"}, // the name ends at the first colon
		{key: "dlq:menu:e 1", prefix: "dlq:menu:", id: "e 1"},
		{key: "dlq:menu:é*?[", prefix: "dlq:menu:", id: "é*?["}, // globs are fine in a key, not in a prefix
		{key: long, prefix: "dlq:menu:", id: long[len("dlq:menu:"):]},

		{key: long + "e", wantErr: "more than the limit of 512"},
		{key: "", wantErr: `does not start with "dlq:"`},
		{key: "menu:e1", wantErr: `does not start with "dlq:"`},
		{key: "DLQ:menu:e1", wantErr: `does not start with "dlq:"`},
		{key: "hobom:dlqmeta:dlq:menu:e1", wantErr: `does not start with "dlq:"`},
		{key: "dlq:", wantErr: "no ':' between name and eventId"},
		{key: "dlq:menu", wantErr: "no ':' between name and eventId"},
		{key: "dlq::e1", wantErr: "empty name"},
		{key: "dlq:::e1", wantErr: "empty name"},
		{key: "dlq:menu:", wantErr: "empty eventId"},
		{key: "dlq:menu::", wantErr: "empty eventId"},
		{key: "dlq:menu:::e1", wantErr: "more than two colons"},
		{key: "dlq:menu:e\n1", wantErr: "non-printable character U+000A"},
		{key: "dlq:menu:e1\x00", wantErr: "non-printable character U+0000"},
		{key: "dlq:menu:e1\x7f", wantErr: "non-printable character U+007F"},
		{key: "dlq:menu:e\u200b1", wantErr: "non-printable character U+200B"},
		{key: "dlq:menu:e\xff1", wantErr: "invalid UTF-8 at byte 10"},
	}
	for _, tc := range tests {
		prefix, id, err := ParseKey(tc.key)
		if tc.wantErr != "" {
			if err == nil || !errors.Is(err, ErrInvalidKey) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseKey(%q) error = %v; want ErrInvalidKey containing %q", tc.key, err, tc.wantErr)
			}
			continue
		}
		if err != nil || prefix != tc.prefix || id != tc.id {
			t.Errorf("ParseKey(%q) = %q, %q, %v; want %q, %q", tc.key, prefix, id, err, tc.prefix, tc.id)
		}
	}
}

func TestValidPrefix(t *testing.T) {
	tests := []struct {
		prefix  string
		wantErr string
	}{
		{prefix: "dlq:"},
		{prefix: "dlq:menu:"},
		{prefix: "dlq:menu::"},
		{prefix: "dlq:lo"},
		{prefix: "dlq:" + strings.Repeat("x", MaxKeyLen-4)},

		{prefix: "dlq:" + strings.Repeat("x", MaxKeyLen-3), wantErr: "more than the limit"},
		{prefix: "", wantErr: `does not start with "dlq:"`},
		{prefix: "dlq", wantErr: `does not start with "dlq:"`},
		{prefix: "*", wantErr: `does not start with "dlq:"`},
		{prefix: "hobom:dlqmeta:dlq:", wantErr: `does not start with "dlq:"`},
		{prefix: "dlq:*", wantErr: "pattern character"},
		{prefix: "dlq:menu?", wantErr: "pattern character"},
		{prefix: "dlq:[a]", wantErr: "pattern character"},
		{prefix: "dlq:a]", wantErr: "pattern character"},
		{prefix: `dlq:\`, wantErr: "pattern character"},
		{prefix: "dlq:\t", wantErr: "non-printable"},
		{prefix: "dlq:\xc3", wantErr: "invalid UTF-8"},
	}
	for _, tc := range tests {
		err := ValidPrefix(tc.prefix)
		if tc.wantErr == "" {
			if err != nil {
				t.Errorf("ValidPrefix(%q) = %v; want nil", tc.prefix, err)
			}
			continue
		}
		if err == nil || !errors.Is(err, ErrInvalidPrefix) || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("ValidPrefix(%q) = %v; want ErrInvalidPrefix containing %q", tc.prefix, err, tc.wantErr)
		}
	}
	if p, err := PrefixPattern("dlq:log:"); err != nil || p != "dlq:log:*" {
		t.Errorf(`PrefixPattern("dlq:log:") = %q, %v`, p, err)
	}
	if _, err := PrefixPattern("dlq:*"); !errors.Is(err, ErrInvalidPrefix) {
		t.Errorf(`PrefixPattern("dlq:*") error = %v; want ErrInvalidPrefix`, err)
	}
}

// FuzzParseKey checks the parser's invariants on arbitrary input: it never
// panics, accepted keys are exactly "<prefix><eventId>" or the legacy
// "<prefix>:<eventId>", and the canonical key parses back to the same parts.
// It also checks ValidPrefix never accepts a pattern character.
func FuzzParseKey(f *testing.F) {
	for _, s := range []string{
		"dlq:menu:e1", "dlq:menu::e1", "dlq:log:e1", "dlq:log::e1", "dlq:menu:::e1",
		"dlq:menu:a:b", "dlq::e1", "dlq:", "dlq:menu:", "dlq:menu::", "", "dlq",
		"dlq:menu:e\n1", "dlq:menu:e\xff", "dlq:menu:\u200b", "dlq:*", "dlq:[a-z]?\\",
		"hobom:dlqmeta:dlq:menu:e1", "dlq:menu:" + strings.Repeat("e", 510),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		prefix, id, err := ParseKey(key)
		if err != nil {
			if !errors.Is(err, ErrInvalidKey) || prefix != "" || id != "" {
				t.Fatalf("ParseKey(%q) = %q, %q, %v: an error must wrap ErrInvalidKey and return no parts", key, prefix, id, err)
			}
		} else {
			checkAccepted(t, key, prefix, id)
		}

		if err := ValidPrefix(key); err == nil {
			if !strings.HasPrefix(key, KeyPrefix) || len(key) > MaxKeyLen || strings.ContainsAny(key, globMeta) || !printable(key) {
				t.Fatalf("ValidPrefix(%q) accepted a bad prefix", key)
			}
		} else if !errors.Is(err, ErrInvalidPrefix) {
			t.Fatalf("ValidPrefix(%q) = %v: does not wrap ErrInvalidPrefix", key, err)
		}
	})
}

func checkAccepted(t *testing.T, key, prefix, id string) {
	t.Helper()
	if len(key) > MaxKeyLen || !printable(key) {
		t.Fatalf("ParseKey accepted %q: too long or not printable", key)
	}
	name := strings.TrimSuffix(strings.TrimPrefix(prefix, KeyPrefix), ":")
	if !strings.HasPrefix(prefix, KeyPrefix) || !strings.HasSuffix(prefix, ":") || name == "" || strings.Contains(name, ":") {
		t.Fatalf("ParseKey(%q) prefix %q is not dlq:<name>:", key, prefix)
	}
	if id == "" || strings.HasPrefix(id, ":") {
		t.Fatalf("ParseKey(%q) eventId %q is empty or starts with ':'", key, id)
	}
	if key != prefix+id && key != prefix+":"+id {
		t.Fatalf("ParseKey(%q) = %q, %q: the parts do not make up the key", key, prefix, id)
	}
	p2, id2, err := ParseKey(prefix + id)
	if err != nil || p2 != prefix || id2 != id {
		t.Fatalf("canonical key %q parses to %q, %q, %v; want %q, %q", prefix+id, p2, id2, err, prefix, id)
	}
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}
