package messages

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// jsonStringCases covers every escaping rule of encoding/json; it seeds the
// table test and the fuzzer.
var jsonStringCases = []string{
	"",
	"plain ascii",
	`quote " and backslash \`,
	"html <script>alert('x')</script> & co",
	"controls \x00\x01\x07\b\t\n\v\f\r\x0e\x1b\x1f end",
	"del \x7f stays",
	"한국어 日本語 emoji 🎉 ünïcödé",
	"line sep \u2028 para sep \u2029 near \u2027\u202a",
	"invalid \xff\xfe utf8 \xc3 truncated \xe2\x80 end",
	"\xed\xa0\x80 surrogate half",
	"\xf4\x90\x80\x80 above max rune",
	"\xc0\xaf overlong",
	"\uFFFD real replacement char",
	"trailing invalid \xe2",
	"\x00",
	"<>&",
	"/ slash is not escaped",
	strings.Repeat("long ", 200) + "<&>",
}

// marshalString is the reference: encoding/json's encoding of s.
func marshalString(t testing.TB, s string) []byte {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatalf("json.Marshal(%q): %v", s, err)
	}
	return b
}

func TestAppendJSONStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range jsonStringCases {
		want := marshalString(t, s)
		if got := appendJSONString(nil, s); !bytes.Equal(got, want) {
			t.Errorf("appendJSONString(%q)\n got %s\nwant %s", s, got, want)
		}
	}
}

// Every single byte, alone and between ASCII, exercises each table entry and
// each lone invalid byte.
func TestAppendJSONStringEveryByte(t *testing.T) {
	for b := 0; b < 256; b++ {
		for _, s := range []string{string([]byte{byte(b)}), "a" + string([]byte{byte(b)}) + "z"} {
			want := marshalString(t, s)
			if got := appendJSONString(nil, s); !bytes.Equal(got, want) {
				t.Errorf("byte %#02x: got %s, want %s", b, got, want)
			}
		}
	}
}

func TestAppendJSONStringKeepsPrefix(t *testing.T) {
	dst := []byte("prefix:")
	got := appendJSONString(dst, "<a>")
	if want := `prefix:"\u003ca\u003e"`; string(got) != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestAppendStringMapMatchesEncodingJSON(t *testing.T) {
	many := map[string]string{}
	for i := range 300 {
		many[fmt.Sprintf("key-%03d-%c", (i*7919)%300, 'a'+rune(i%26))] = fmt.Sprint(i)
	}
	cases := map[string]map[string]string{
		"nil":   nil,
		"empty": {},
		"one":   {"k": "v"},
		"sort by bytes": {
			"b": "2", "a": "1", "B": "0", "aa": "3", "": "empty key", "é": "4", "~": "5", "a\x00": "6",
		},
		"escaped keys and values": {
			"<k>": "<v>", "k&": "v&", "\u2028": "\u2029", "tab\t": "nl\n", "\xff": "\xfe",
		},
		"many keys": many,
	}
	for name, m := range cases {
		t.Run(name, func(t *testing.T) {
			want, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			if m == nil {
				want = []byte("{}") // a nil map is {} here; callers omit empty maps
			}
			if got := appendStringMap(nil, m); !bytes.Equal(got, want) {
				t.Errorf("got  %s\nwant %s", got, want)
			}
		})
	}
}

func TestEndObject(t *testing.T) {
	dst := []byte("x:")
	if got := endObject(dst, len(dst)); string(got) != "x:{}" {
		t.Errorf("no members: got %s", got)
	}
	dst = []byte(`x:,"a":1,"b":2`)
	if got := endObject(dst, 2); string(got) != `x:{"a":1,"b":2}` {
		t.Errorf("members: got %s", got)
	}
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range jsonStringCases {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := marshalString(t, s)
		got := appendJSONString([]byte("<"), s)
		if !bytes.Equal(got[1:], want) || got[0] != '<' {
			t.Fatalf("appendJSONString(%q)\n got %s\nwant %s", s, got[1:], want)
		}
		var back string
		if err := json.Unmarshal(got[1:], &back); err != nil {
			t.Fatalf("unmarshal %s: %v", got[1:], err)
		}
		if want := string([]rune(s)); back != want {
			t.Fatalf("roundtrip of %q gave %q, want %q", s, back, want)
		}
	})
}

var benchStrings = []struct{ name, s string }{
	{"ascii", "GET /api/v1/users/42/orders?page=2 took 12ms"},
	{"escapes", `{"html":"<b>x</b> & y","nl":"a\nb"}`},
	{"unicode", "사용자 로그인 성공 — 日本語 テキスト"},
}

func BenchmarkAppendJSONString(b *testing.B) {
	for _, c := range benchStrings {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.s)))
			dst := make([]byte, 0, 256)
			for b.Loop() {
				dst = appendJSONString(dst[:0], c.s)
			}
		})
	}
}

func BenchmarkJSONMarshalString(b *testing.B) {
	for _, c := range benchStrings {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.s)))
			for b.Loop() {
				if _, err := json.Marshal(c.s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
