package messages

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"reflect"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"
)

// The reference encodings: the documented record shapes written as Go types
// for encoding/json, whose struct field order and omitempty tags state the
// key order and omission rules of docs/contract.md §2. The hand-written encoders
// must produce the same bytes.

type refMessage struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Body      string `json:"body"`
	Recipient string `json:"recipient"`
	SenderID  string `json:"senderId,omitempty"`
	SentAt    string `json:"sentAt"`
}

type refLogDetail struct {
	Query   map[string]string `json:"query,omitempty"`
	Body    map[string]string `json:"body,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
	Error   string            `json:"error,omitempty"`
}

type refLogPayload struct {
	TraceID     string        `json:"traceId,omitempty"`
	Level       string        `json:"level,omitempty"`
	Method      string        `json:"method,omitempty"`
	Path        string        `json:"path,omitempty"`
	StatusCode  int32         `json:"statusCode,omitempty"`
	Host        string        `json:"host,omitempty"`
	UserID      string        `json:"userId,omitempty"`
	Detail      *refLogDetail `json:"payload,omitempty"`
	ServiceType string        `json:"serviceType,omitempty"`
	Message     string        `json:"message,omitempty"`
}

type refLogObject struct {
	ServiceType string        `json:"serviceType"`
	Level       string        `json:"level"`
	TraceID     string        `json:"traceId"`
	Message     string        `json:"message"`
	HTTPMethod  string        `json:"httpMethod"`
	Path        string        `json:"path"`
	StatusCode  int32         `json:"statusCode"`
	Host        string        `json:"host"`
	UserID      string        `json:"userId"`
	Payload     refLogPayload `json:"payload"`
}

type refUnencodable struct {
	EventID   string `json:"eventId"`
	EventType string `json:"eventType"`
	Error     string `json:"error"`
}

func refMessageOf(p *MessagePayload, sentAt time.Time) refMessage {
	typ := p.Type
	if typ == "" {
		typ = "MAIL_MESSAGE"
	}
	return refMessage{
		Type: typ, Title: p.Title, Body: p.Body, Recipient: p.Recipient,
		SenderID: p.SenderID, SentAt: sentAt.UTC().Format(time.RFC3339Nano),
	}
}

// refLogObjectOf maps p to the reference shape. The one rule omitempty cannot
// state, a non-nil detail whose fields are all empty being omitted, is
// applied here.
func refLogObjectOf(p *LogPayload) refLogObject {
	var d *refLogDetail
	if x := p.Detail; x != nil && (len(x.Query) > 0 || len(x.Body) > 0 || len(x.Headers) > 0 || x.Error != "") {
		d = &refLogDetail{Query: x.Query, Body: x.Body, Headers: x.Headers, Error: x.Error}
	}
	return refLogObject{
		ServiceType: p.ServiceType, Level: p.Level, TraceID: p.TraceID, Message: p.Message,
		HTTPMethod: p.Method, Path: p.Path, StatusCode: p.StatusCode, Host: p.Host, UserID: p.UserID,
		Payload: refLogPayload{
			TraceID: p.TraceID, Level: p.Level, Method: p.Method, Path: p.Path,
			StatusCode: p.StatusCode, Host: p.Host, UserID: p.UserID, Detail: d,
			ServiceType: p.ServiceType, Message: p.Message,
		},
	}
}

func mustMarshal(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("json.Marshal: %v", err)
	}
	return b
}

// fixUTF8 is what a string reads back as after a JSON roundtrip: every byte
// of invalid UTF-8 becomes U+FFFD, as ranging over a string decodes it.
func fixUTF8(s string) string { return string([]rune(s)) }

// fixMap is what m reads back as: keys and values through fixUTF8, and of
// keys that collide once fixed the last in encoding (sorted) order wins, as
// a decoder keeps the last of duplicate keys. Empty maps are omitted, so
// they read back as nil.
func fixMap(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out[fixUTF8(k)] = fixUTF8(m[k])
	}
	return out
}

// expectedLogRoundtrip is the reference object of p as it decodes from JSON.
func expectedLogRoundtrip(p *LogPayload) refLogObject {
	o := refLogObjectOf(p)
	for _, s := range []*string{&o.ServiceType, &o.Level, &o.TraceID, &o.Message, &o.HTTPMethod, &o.Path, &o.Host, &o.UserID,
		&o.Payload.TraceID, &o.Payload.Level, &o.Payload.Method, &o.Payload.Path, &o.Payload.Host, &o.Payload.UserID,
		&o.Payload.ServiceType, &o.Payload.Message} {
		*s = fixUTF8(*s)
	}
	if d := o.Payload.Detail; d != nil {
		o.Payload.Detail = &refLogDetail{Query: fixMap(d.Query), Body: fixMap(d.Body), Headers: fixMap(d.Headers), Error: fixUTF8(d.Error)}
	}
	return o
}

// tricky is a string with every kind of escape, for use in any field.
const tricky = "<b>\"x\" & 'y'</b>\\ \u2028\u2029 \x00\x1f\t\n 한국어 🎉 \xff\xc3"

var messageCases = []struct {
	name   string
	p      MessagePayload
	sentAt time.Time
}{
	{"empty payload", MessagePayload{}, time.Time{}},
	{"mail default type", MessagePayload{ID: "m1", Title: "Hi", Body: "Hello", Recipient: "a@b.c"}, time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)},
	{"push with sender", MessagePayload{ID: "m2", Title: "t", Body: "b", Recipient: "r", SenderID: "s1", Type: "PUSH_MESSAGE"}, time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)},
	{"explicit mail", MessagePayload{Type: "MAIL_MESSAGE", SenderID: "x"}, time.Date(2024, 5, 6, 7, 8, 9, 120000000, time.UTC)},
	{"non-UTC sentAt", MessagePayload{Title: "t"}, time.Date(2024, 12, 31, 23, 59, 59, 5, time.FixedZone("KST", 9*3600))},
	{"empty recipient", MessagePayload{Title: "t", Body: "b", SenderID: "s"}, time.Unix(1700000000, 0)},
	{"html", MessagePayload{Title: "<script>", Body: "a & b > c", Recipient: "<r>", SenderID: "&"}, time.Unix(0, 1)},
	{"unicode", MessagePayload{Title: "안녕하세요", Body: "日本語 🎉 ünï", Recipient: "수신자", Type: "PUSH_MESSAGE"}, time.Unix(1, 0)},
	{"invalid utf8", MessagePayload{Title: "\xff\xfe", Body: "ok\xc3", Recipient: "\xe2\x80", SenderID: "\xed\xa0\x80"}, time.Unix(2, 0)},
	{"control chars", MessagePayload{Title: "a\x00b\x01c", Body: "line1\nline2\r\n\ttab\b\f", Recipient: "\x7f", Type: "\x1b"}, time.Unix(3, 0)},
	{"everything tricky", MessagePayload{ID: tricky, Title: tricky, Body: tricky, Recipient: tricky, SenderID: tricky, Type: tricky}, time.Unix(4, 999)},
}

func manyHeaders(n int) map[string]string {
	m := make(map[string]string, n)
	for i := range n {
		m[fmt.Sprintf("X-Header-%02d", (i*37)%n)] = strings.Repeat("v", i%7) + fmt.Sprint(i)
	}
	m["content-type"] = "application/json"
	m["Accept"] = "*/*"
	m["<weird>"] = "a&b"
	return m
}

var logCases = []struct {
	name string
	p    LogPayload
}{
	{"all empty", LogPayload{}},
	{"only serviceType", LogPayload{ServiceType: "hobom-backend"}},
	{"typical", LogPayload{
		TraceID: "trace-1", Level: "INFO", Method: "GET", Path: "/api/v1/users", StatusCode: 200,
		Host: "10.0.0.1", UserID: "u42", ServiceType: "hobom-backend", Message: "request done",
		Detail: &LogPayloadDetail{
			Query:   map[string]string{"page": "2", "size": "20"},
			Body:    map[string]string{"name": "kim"},
			Headers: map[string]string{"user-agent": "curl/8", "accept": "*/*", "x-request-id": "r1"},
		},
	}},
	{"statusCode 0", LogPayload{TraceID: "t", Level: "ERROR", Message: "boom", StatusCode: 0}},
	{"statusCode negative", LogPayload{StatusCode: -1}},
	{"statusCode max", LogPayload{StatusCode: math.MaxInt32, Path: "/"}},
	{"statusCode min", LogPayload{StatusCode: math.MinInt32}},
	{"nil detail", LogPayload{Level: "WARN", Detail: nil}},
	{"all-empty detail", LogPayload{Level: "WARN", Detail: &LogPayloadDetail{}}},
	{"detail with empty maps", LogPayload{Level: "WARN", Detail: &LogPayloadDetail{
		Query: map[string]string{}, Body: map[string]string{}, Headers: map[string]string{},
	}}},
	{"detail only error", LogPayload{Detail: &LogPayloadDetail{Error: "db down: <timeout>"}}},
	{"detail only headers", LogPayload{Detail: &LogPayloadDetail{Headers: manyHeaders(40)}}},
	{"detail empty map plus error", LogPayload{Detail: &LogPayloadDetail{Query: map[string]string{}, Error: "e"}}},
	{"many keys", LogPayload{Method: "POST", Detail: &LogPayloadDetail{
		Query: manyHeaders(5), Body: manyHeaders(100), Headers: manyHeaders(33), Error: "x",
	}}},
	{"html", LogPayload{Message: "<a href='x'>&</a>", Path: "/search?q=<x>&y=1", Detail: &LogPayloadDetail{
		Query: map[string]string{"q": "<x>", "&": ">"},
	}}},
	{"unicode", LogPayload{Message: "사용자 로그인 성공", UserID: "유저", ServiceType: "서비스", Detail: &LogPayloadDetail{
		Body: map[string]string{"이름": "김철수", "emoji🎉": "🎉", "é": "e", "e": "é"},
	}}},
	{"invalid utf8", LogPayload{TraceID: "\xff", Message: "bad \xc3\x28", Detail: &LogPayloadDetail{
		Headers: map[string]string{"\xff": "1", "\xfe": "2", "\xef\xbf\xbd": "3", "ok": "\xe2\x80"},
		Error:   "\xed\xa0\x80",
	}}},
	{"control chars", LogPayload{Message: "a\x00b\nc\td\re\bf\fg\x1f", Host: "\x7f", Detail: &LogPayloadDetail{
		Query: map[string]string{"\n": "\t", "k\x01": "v\x02"},
	}}},
	{"line separators", LogPayload{Message: "a\u2028b\u2029c", Detail: &LogPayloadDetail{Error: "\u2028"}}},
	{"everything tricky", LogPayload{
		TraceID: tricky, Level: tricky, Method: tricky, Path: tricky, StatusCode: 503, Host: tricky, UserID: tricky,
		ServiceType: tricky, Message: tricky,
		Detail: &LogPayloadDetail{
			Query: map[string]string{tricky: tricky}, Body: map[string]string{tricky: "", "": tricky},
			Headers: map[string]string{"a": tricky}, Error: tricky,
		},
	}},
}

func TestAppendMessageValueMatchesEncodingJSON(t *testing.T) {
	for _, c := range messageCases {
		t.Run(c.name, func(t *testing.T) {
			want := mustMarshal(t, refMessageOf(&c.p, c.sentAt))
			got, err := AppendMessageValue(nil, &c.p, c.sentAt)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("got  %s\nwant %s", got, want)
			}
		})
	}
}

func TestAppendMessageValueRoundtrip(t *testing.T) {
	for _, c := range messageCases {
		t.Run(c.name, func(t *testing.T) {
			got, err := AppendMessageValue([]byte("junk"), &c.p, c.sentAt)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(got, []byte("junk")) {
				t.Fatalf("dst prefix lost: %s", got)
			}
			got = got[len("junk"):]
			if !json.Valid(got) {
				t.Fatalf("invalid JSON: %s", got)
			}
			var back refMessage
			if err := json.Unmarshal(got, &back); err != nil {
				t.Fatal(err)
			}
			wantType := fixUTF8(c.p.Type)
			if c.p.Type == "" {
				wantType = "MAIL_MESSAGE"
			}
			want := refMessage{
				Type: wantType, Title: fixUTF8(c.p.Title), Body: fixUTF8(c.p.Body),
				Recipient: fixUTF8(c.p.Recipient), SenderID: fixUTF8(c.p.SenderID),
				SentAt: c.sentAt.UTC().Format(time.RFC3339Nano),
			}
			if back != want {
				t.Errorf("decoded %+v\nwant    %+v", back, want)
			}
			at, err := time.Parse(time.RFC3339Nano, back.SentAt)
			if err != nil || !at.Equal(c.sentAt) {
				t.Errorf("sentAt %q parses to %v (%v), want %v", back.SentAt, at, err, c.sentAt)
			}

			var keys map[string]json.RawMessage
			if err := json.Unmarshal(got, &keys); err != nil {
				t.Fatal(err)
			}
			if _, ok := keys["recipient"]; !ok {
				t.Error("recipient missing")
			}
			if _, ok := keys["senderId"]; ok != (c.p.SenderID != "") {
				t.Errorf("senderId present = %v with SenderID %q", ok, c.p.SenderID)
			}
			if _, ok := keys["id"]; ok {
				t.Error("payload id must not be sent")
			}
		})
	}
}

func TestAppendLogObjectMatchesEncodingJSON(t *testing.T) {
	for _, c := range logCases {
		t.Run(c.name, func(t *testing.T) {
			want := mustMarshal(t, refLogObjectOf(&c.p))
			got, err := AppendLogObject(nil, &c.p)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("got  %s\nwant %s", got, want)
			}
		})
	}
}

func TestAppendLogObjectRoundtrip(t *testing.T) {
	for _, c := range logCases {
		t.Run(c.name, func(t *testing.T) {
			checkLogRoundtrip(t, &c.p)
		})
	}
}

// checkLogRoundtrip encodes p after a prefix and checks that the object is
// valid JSON, decodes to p's expected fields and keeps the always-present
// keys present.
func checkLogRoundtrip(t *testing.T, p *LogPayload) []byte {
	t.Helper()
	got, err := AppendLogObject([]byte("["), p)
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != '[' {
		t.Fatalf("dst prefix lost: %s", got)
	}
	got = got[1:]
	if !json.Valid(got) {
		t.Fatalf("invalid JSON: %s", got)
	}
	var back refLogObject
	if err := json.Unmarshal(got, &back); err != nil {
		t.Fatal(err)
	}
	if want := expectedLogRoundtrip(p); !reflect.DeepEqual(back, want) {
		t.Fatalf("decoded %+v\nwant    %+v\nfrom %s", back, want, got)
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(got, &keys); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"serviceType", "level", "traceId", "message", "httpMethod", "path", "statusCode", "host", "userId", "payload"} {
		if _, ok := keys[k]; !ok {
			t.Errorf("key %q missing from %s", k, got)
		}
	}
	if len(keys) != 10 {
		t.Errorf("%d keys, want 10: %s", len(keys), got)
	}
	return got
}

func TestAppendLogObjectPayloadShape(t *testing.T) {
	tests := []struct {
		name string
		p    LogPayload
		want string // the payload member
	}{
		{"empty", LogPayload{}, `{}`},
		{"all-empty detail", LogPayload{Detail: &LogPayloadDetail{Query: map[string]string{}}}, `{}`},
		{"proto order", LogPayload{
			Message: "m", ServiceType: "s", Detail: &LogPayloadDetail{Error: "e", Headers: map[string]string{"b": "2", "a": "1"}},
			UserID: "u", Host: "h", StatusCode: 201, Path: "/p", Method: "PUT", Level: "L", TraceID: "t",
		}, `{"traceId":"t","level":"L","method":"PUT","path":"/p","statusCode":201,"host":"h","userId":"u",` +
			`"payload":{"headers":{"a":"1","b":"2"},"error":"e"},"serviceType":"s","message":"m"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := AppendLogObject(nil, &tt.p)
			if err != nil {
				t.Fatal(err)
			}
			var obj struct{ Payload json.RawMessage }
			if err := json.Unmarshal(got, &obj); err != nil {
				t.Fatal(err)
			}
			if string(obj.Payload) != tt.want {
				t.Errorf("payload %s\nwant    %s", obj.Payload, tt.want)
			}
		})
	}
}

func TestNilPayload(t *testing.T) {
	dst := []byte("keep")
	got, err := AppendMessageValue(dst, nil, time.Now())
	if !errors.Is(err, ErrNoPayload) || string(got) != "keep" {
		t.Errorf("AppendMessageValue(nil) = %q, %v", got, err)
	}
	got, err = AppendLogObject(dst, nil)
	if !errors.Is(err, ErrNoPayload) || string(got) != "keep" {
		t.Errorf("AppendLogObject(nil) = %q, %v", got, err)
	}
}

func encodeLogCases(t testing.TB) [][]byte {
	objs := make([][]byte, 0, len(logCases))
	for _, c := range logCases {
		obj, err := AppendLogObject(nil, &c.p)
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, obj)
	}
	return objs
}

func TestLogRecordKey(t *testing.T) {
	now := time.Unix(0, 1700000000123456789)
	if got := string(LogRecordKey([]byte("k="), now)); got != "k=hobom-log-1700000000123456789" {
		t.Errorf("got %s", got)
	}
	if got := string(LogRecordKey(nil, time.Unix(5, 0))); got != "hobom-log-5000000000" {
		t.Errorf("got %s", got)
	}
}

func TestAppendUnencodable(t *testing.T) {
	cases := []refUnencodable{
		{},
		{"e1", EventTypeHoBomLog, ErrNoPayload.Error()},
		{tricky, "\u2028", "bad <payload> & \xff"},
	}
	for _, c := range cases {
		want := mustMarshal(t, c)
		got := AppendUnencodable(nil, c.EventID, c.EventType, c.Error)
		if !bytes.Equal(got, want) {
			t.Errorf("got  %s\nwant %s", got, want)
		}
	}
}

// raceEnabled reports a -race build, where sync.Pool drops items on purpose
// and allocation counts mean nothing.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

func logCase(t *testing.T, name string) *LogPayload {
	for i := range logCases {
		if logCases[i].name == name {
			return &logCases[i].p
		}
	}
	t.Fatalf("no log case %q", name)
	return nil
}

func TestEncodersDoNotAllocate(t *testing.T) {
	if raceEnabled() {
		t.Skip("allocation counts are not meaningful under -race")
	}
	msg := benchMessage
	logp := logCase(t, "everything tricky")
	big := logCase(t, "many keys")
	at := time.Unix(1700000000, 123)
	dst := make([]byte, 0, 64<<10)
	checks := map[string]func(){
		"AppendMessageValue":  func() { dst, _ = AppendMessageValue(dst[:0], msg, at) },
		"AppendLogObject":     func() { dst, _ = AppendLogObject(dst[:0], logp) },
		"AppendLogObject big": func() { dst, _ = AppendLogObject(dst[:0], big) },
		"LogRecordKey":        func() { dst = LogRecordKey(dst[:0], at) },
		"AppendUnencodable":   func() { dst = AppendUnencodable(dst[:0], "e", "t", tricky) },
	}
	for name, f := range checks {
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s: %v allocs per run, want 0", name, n)
		}
	}
}

func FuzzEncodeLog(f *testing.F) {
	f.Add("trace", "INFO", "GET", "/p", int32(200), "host", "user", "svc", "msg", "", "k", "v", "k2", "v2", uint8(0xff))
	f.Add("", "", "", "", int32(0), "", "", "", "", "", "", "", "", "", uint8(0))
	f.Add("", "", "", "", int32(0), "", "", "", "", "", "", "", "", "", uint8(1))
	f.Add(tricky, "<", ">", "&", int32(-1), "\u2028", "\xff", "\x00", "\n", tricky, "\xff", "a", "\xfe", "b", uint8(0x1f))
	f.Fuzz(func(t *testing.T, traceID, level, method, path string, status int32, host, userID, serviceType, message, errText, k1, v1, k2, v2 string, mask uint8) {
		p := &LogPayload{
			TraceID: traceID, Level: level, Method: method, Path: path, StatusCode: status,
			Host: host, UserID: userID, ServiceType: serviceType, Message: message,
		}
		// mask bit 0 gives a detail; bits 1 to 4 fill its fields, so the
		// fuzzer reaches nil, all-empty and partly filled details.
		if mask&1 != 0 {
			d := &LogPayloadDetail{}
			if mask&2 != 0 {
				d.Query = map[string]string{k1: v1}
			}
			if mask&4 != 0 {
				d.Body = map[string]string{k1: v2, k2: v1}
			}
			if mask&8 != 0 {
				d.Headers = map[string]string{k1: v1, k2: v2, k1 + k2: v1 + v2}
			}
			if mask&16 != 0 {
				d.Error = errText
			}
			p.Detail = d
		}
		obj := checkLogRoundtrip(t, p)
		if want := mustMarshal(t, refLogObjectOf(p)); !bytes.Equal(obj, want) {
			t.Fatalf("got  %s\nwant %s", obj, want)
		}
		var b LogArrayBuilder
		b.Add("a", obj)
		b.Add("b", obj)
		if size := b.Size(); size != 2*len(obj)+3+len("a,b") {
			t.Fatalf("size %d of a two-element array of %d-byte objects", size, len(obj))
		}
		if arr, _, _ := b.Take(); !json.Valid(arr) {
			t.Fatalf("bad array of %d bytes: %s", len(arr), arr)
		}
	})
}

var (
	benchMessage = &MessagePayload{
		ID: "0190f7a2-6b1c-7c3e-9d1a-3f2b4c5d6e7f", Title: "새 메시지가 도착했습니다",
		Body:      "Hello! Your order #1234 has shipped & will arrive <soon>.",
		Recipient: "user@example.com", SenderID: "sender-42", Type: "PUSH_MESSAGE",
	}
	benchLog = &LogPayload{
		TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", Level: "INFO", Method: "POST", Path: "/api/v1/orders",
		StatusCode: 201, Host: "10.0.3.17", UserID: "u-1029", ServiceType: "hobom-backend",
		Message: "order created",
		Detail: &LogPayloadDetail{
			Query: map[string]string{"dryRun": "false"},
			Body:  map[string]string{"itemId": "987", "quantity": "2", "note": "leave at the door"},
			Headers: map[string]string{
				"content-type": "application/json", "accept": "*/*", "user-agent": "Mozilla/5.0 (X11; Linux x86_64)",
				"x-request-id": "a1b2c3", "x-forwarded-for": "203.0.113.7", "accept-encoding": "gzip, br",
				"host": "api.hobom.example", "content-length": "57",
			},
		},
	}
	benchTime = time.Date(2025, 3, 4, 5, 6, 7, 891011121, time.UTC)
)

func BenchmarkAppendMessageValue(b *testing.B) {
	b.ReportAllocs()
	dst := make([]byte, 0, 1024)
	for b.Loop() {
		dst, _ = AppendMessageValue(dst[:0], benchMessage, benchTime)
	}
	b.SetBytes(int64(len(dst)))
}

func BenchmarkAppendLogObject(b *testing.B) {
	b.ReportAllocs()
	dst := make([]byte, 0, 4096)
	for b.Loop() {
		dst, _ = AppendLogObject(dst[:0], benchLog)
	}
	b.SetBytes(int64(len(dst)))
}

// The encoding/json benchmarks build the reference value per call, as an
// encoder based on encoding/json would have to.

func BenchmarkJSONMarshalMessageValue(b *testing.B) {
	b.ReportAllocs()
	var out []byte
	for b.Loop() {
		out, _ = json.Marshal(refMessageOf(benchMessage, benchTime))
	}
	b.SetBytes(int64(len(out)))
}

func BenchmarkJSONMarshalLogObject(b *testing.B) {
	b.ReportAllocs()
	var out []byte
	for b.Loop() {
		out, _ = json.Marshal(refLogObjectOf(benchLog))
	}
	b.SetBytes(int64(len(out)))
}

func TestIsUnencodable(t *testing.T) {
	placeholder := AppendUnencodable(nil, "e1", "MESSAGE", "no payload")
	msg, _ := AppendMessageValue(nil, &MessagePayload{Title: "t"}, time.Now())
	obj, _ := AppendLogObject(nil, &LogPayload{TraceID: "x"})
	for _, c := range []struct {
		name  string
		value []byte
		want  bool
	}{
		{"placeholder", placeholder, true},
		{"placeholder in a log array", append(append([]byte{'['}, placeholder...), ']'), true},
		{"message record", msg, false},
		{"log array", append(append([]byte{'['}, obj...), ']'), false},
		{"not JSON", []byte("nope"), false},
		{"two-element array", []byte(`[{"eventId":"a","error":"x"},{"eventId":"b","error":"y"}]`), false},
	} {
		if got := IsUnencodable(c.value); got != c.want {
			t.Errorf("%s: IsUnencodable = %v", c.name, got)
		}
	}
}
