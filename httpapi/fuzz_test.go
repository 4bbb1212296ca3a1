package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/hobom/hobom-event-processor/messages"
)

// FuzzValueCheck runs arbitrary dead-letter values through the check a
// replay, an inspect and a dry run apply (valueProblem, messages.Encoding.CheckValue)
// for both routes: it never panics, and whatever it accepts is what the
// topic's consumers read: valid UTF-8 JSON, one object with a non-empty
// string type for hobom.messages, a non-empty array of objects with string
// serviceType and level for hobom.logs.
func FuzzValueCheck(f *testing.F) {
	for _, s := range []string{
		"", " ", "not json {", "42", "null", "\x00\xff", `"s"`, `{}`, `[]`, `[{}]`,
		`{"type":"MAIL_MESSAGE","title":"t","body":"b","recipient":"r"}`,
		`{"type":"","title":"t","body":"b","recipient":"r"}`,
		`{"type":"MAIL_MESSAGE","title":1,"body":"b","recipient":"r"}`,
		`{"type":"PUSH_MESSAGE","title":"t","body":"b","recipient":"r","senderId":"s","sentAt":"2024-01-01T00:00:00Z","extra":[1]}`,
		`[{"serviceType":"api","level":"ERROR","statusCode":500,"payload":{}}]`,
		`[{"serviceType":"api","level":"ERROR","statusCode":"500"}]`,
		`[{"serviceType":"api","level":"ERROR"},1]`,
		`{"eventId":"e","eventType":"MESSAGE","error":"no payload"}`,
		`[{"eventId":"e","eventType":"HOBOM_LOG","error":"no payload"}]`,
		`{"type":"MAIL_MESSAGE","title":"t","body":"b","recipient":"r"} {}`,
		"{\"type\":\"\xff\",\"title\":\"t\",\"body\":\"b\",\"recipient\":\"r\"}",
	} {
		f.Add([]byte(s))
	}
	a := &api{fam: testFam, opts: Options{MaxValueBytes: DefaultMaxValueBytes}}
	routes := messages.DefaultRoutes()
	f.Fuzz(func(t *testing.T, value []byte) {
		for _, r := range routes {
			why := a.valueProblem(r, value, len(value))
			if why != "" {
				continue
			}
			if !json.Valid(value) || !bytes.Equal(bytes.ToValidUTF8(value, nil), value) {
				t.Fatalf("%s accepted %q: not valid UTF-8 JSON", r.Topic, value)
			}
			switch r.Encoding {
			case messages.MessageEncoding:
				var obj map[string]any
				if err := json.Unmarshal(value, &obj); err != nil {
					t.Fatalf("hobom.messages accepted %q: not one object", value)
				}
				if typ, ok := obj["type"].(string); !ok || typ == "" {
					t.Fatalf("hobom.messages accepted %q: no type", value)
				}
				for _, k := range []string{"title", "body", "recipient"} {
					if _, ok := obj[k].(string); !ok {
						t.Fatalf("hobom.messages accepted %q: %s not a string", value, k)
					}
				}
			case messages.LogArrayEncoding:
				var arr []map[string]any
				if err := json.Unmarshal(value, &arr); err != nil || len(arr) == 0 {
					t.Fatalf("hobom.logs accepted %q: not a non-empty array of objects", value)
				}
				for _, el := range arr {
					if _, ok := el["serviceType"].(string); !ok {
						t.Fatalf("hobom.logs accepted %q: serviceType", value)
					}
					if _, ok := el["level"].(string); !ok {
						t.Fatalf("hobom.logs accepted %q: level", value)
					}
				}
			}
			if messages.IsUnencodable(value) {
				t.Fatalf("%s accepted the unencodable placeholder %q", r.Topic, value)
			}
		}
		// Too large is refused whatever the bytes.
		if why := a.valueProblem(routes[0], value, DefaultMaxValueBytes+1); why == "" {
			t.Fatal("a value over the record limit was accepted")
		}
	})
}

// FuzzDiscardBody sends arbitrary bodies to DELETE /dlq/{key} (an API with
// no store or actor, so nothing is deleted): the answer is 400 or, once the
// body passes, 503 for the missing actor; no error body names a Go type or
// repeats the body parser's internals.
func FuzzDiscardBody(f *testing.F) {
	for _, s := range []string{
		``, `{}`, `{"reason":"r"}`, `{"reason":5}`, `{"reason":null}`, `[]`, `"r"`, `{"reason":"a\nb"}`,
		`{"reason":"` + strings.Repeat("x", MaxReasonBytes+1) + `"}`, `{"reason":"r","extra":{}}`, `{`, "\xff",
		`{"reason":"\u0000"}`, `{"Reason":"r"}`,
	} {
		f.Add([]byte(s))
	}
	h := New(Options{Log: zerolog.Nop()})
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodDelete, BasePath+"/dlq/dlq:menu:e1", bytes.NewReader(body)))
		switch rec.Code {
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusServiceUnavailable:
		default:
			t.Fatalf("body %q: %d %s", body, rec.Code, rec.Body)
		}
		var e struct {
			Error string `json:"error"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" {
			t.Fatalf("body %q: answer %q is not a JSON error", body, rec.Body)
		}
		for _, leak := range []string{"struct", "json:", "unmarshal", "Go value", "main.", "httpapi."} {
			if strings.Contains(e.Error, leak) {
				t.Fatalf("body %q: error %q names %q", body, e.Error, leak)
			}
		}
	})
}
