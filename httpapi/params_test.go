package httpapi

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/hobom/hobom-event-processor/infra/adapters/redisdlq"
	"github.com/hobom/hobom-event-processor/messages"
)

// testFam is the default route table's families.
var testFam = newFamilies(messages.DefaultRoutes())

func TestParseListQuery(t *testing.T) {
	ok := []struct {
		raw  string
		want listQuery
	}{
		{"", listQuery{Prefix: "dlq:", Limit: DefaultPageLimit}},
		{"prefix=", listQuery{Prefix: "dlq:", Limit: DefaultPageLimit}},
		{"prefix=dlq:log:", listQuery{Prefix: "dlq:log:", Limit: DefaultPageLimit}},
		{"prefix=dlq%3Amenu%3A%3A&limit=5&cursor=123", listQuery{Prefix: "dlq:menu::", Limit: 5, LimitGiven: true, Cursor: 123}},
		{"limit=10000&cursor=", listQuery{Prefix: "dlq:", Limit: 10000, LimitGiven: true}},
		{"limit=007", listQuery{Prefix: "dlq:", Limit: 7, LimitGiven: true}},
		{"cursor=18446744073709551615", listQuery{Prefix: "dlq:", Limit: DefaultPageLimit, Cursor: 1<<64 - 1}},
		{"unknown=1&x", listQuery{Prefix: "dlq:", Limit: DefaultPageLimit}},
	}
	for _, c := range ok {
		got, err := parseListQuery(c.raw, testFam)
		if err != nil || got != c.want {
			t.Errorf("parseListQuery(%q) = %+v, %v; want %+v", c.raw, got, err, c.want)
		}
	}
	for _, raw := range []string{
		"prefix=other:", "prefix=dlq", "prefix=dlq:*", "prefix=dlq:other:", "prefix=dlq:m", "prefix=dlq:menu", "prefix=dlq:logs:", "prefix=dlq:%5B", "prefix=dlq:%00", "prefix=dlq:%ff",
		"limit=0", "limit=10001", "limit=-1", "limit=+1", "limit=1.5", "limit=", "limit=%201", "limit=1e3", "limit=9999999999",
		"cursor=-1", "cursor=abc", "cursor=18446744073709551616", "cursor=123456789012345678901", "cursor=0x10",
		"limit=1&limit=2", "prefix=dlq:&prefix=dlq:", "cursor=1&cursor=1",
		"%zz", "prefix=" + strings.Repeat("a", MaxQueryBytes),
	} {
		if q, err := parseListQuery(raw, testFam); err == nil || !errors.Is(err, errBadQuery) {
			t.Errorf("parseListQuery(%q) = %+v, %v; want a bad query error", raw, q, err)
		}
	}
}

func TestParseBulkAndAuditQuery(t *testing.T) {
	q, err := parseBulkQuery("prefix=dlq:menu:", testFam)
	if err != nil || q != (bulkQuery{Prefix: "dlq:menu:", Rate: DefaultRate}) {
		t.Errorf("defaults: %+v %v", q, err)
	}
	q, err = parseBulkQuery("prefix=dlq:&rate=1000&dryRun=true", testFam)
	if err != nil || q != (bulkQuery{Prefix: "dlq:", Rate: 1000, DryRun: true}) {
		t.Errorf("all given: %+v %v", q, err)
	}
	for _, raw := range []string{
		"", "prefix=", "rate=5", "prefix=x:", "prefix=dlq:?", "prefix=dlq:other:", "prefix=dlq:me", "prefix=dlq:&rate=0", "prefix=dlq:&rate=1001",
		"prefix=dlq:&rate=", "prefix=dlq:&dryRun=yes", "prefix=dlq:&dryRun=", "prefix=dlq:&rate=1&rate=2",
	} {
		if q, err := parseBulkQuery(raw, testFam); err == nil {
			t.Errorf("parseBulkQuery(%q) = %+v; want an error", raw, q)
		}
	}
	if n, err := parseAuditQuery(""); n != DefaultAuditLimit || err != nil {
		t.Errorf("audit default %d %v", n, err)
	}
	for _, raw := range []string{"limit=0", "limit=1001", "limit=a", "limit=1&limit=1"} {
		if _, err := parseAuditQuery(raw); err == nil {
			t.Errorf("parseAuditQuery(%q) accepted", raw)
		}
	}
}

func TestCheckTextAndJobIDs(t *testing.T) {
	for _, s := range []string{"", "alice", "ops team: ticket #12 (é)"} {
		if err := checkText("x", s, 64); err != nil {
			t.Errorf("checkText(%q) = %v", s, err)
		}
	}
	for _, s := range []string{"a\nb", "tab\t", "\x00", "\xff", "\u200b", strings.Repeat("a", 65)} {
		if err := checkText("x", s, 64); err == nil {
			t.Errorf("checkText(%q) accepted", s)
		}
	}
	for id, want := range map[string]bool{"00ff": true, "0123456789abcdef": true, "": false, "ABC": false, "g": false, strings.Repeat("a", 65): false} {
		if validJobID(id) != want {
			t.Errorf("validJobID(%q) != %v", id, want)
		}
	}
}

// FuzzListQuery checks GET /dlq's query parsing on arbitrary query
// strings: it never panics, and what it accepts is within bounds: a prefix
// that starts with dlq: and makes a plain SCAN pattern, a limit in range, a
// cursor that survives formatting.
func FuzzListQuery(f *testing.F) {
	for _, s := range []string{
		"", "prefix=dlq:log:", "prefix=dlq:menu::&limit=5&cursor=123", "limit=10000", "limit=10001", "limit=-1",
		"limit=+1", "cursor=18446744073709551615", "cursor=18446744073709551616", "prefix=dlq:*", "prefix=other:",
		"prefix=dlq:%00", "%zz", "limit=1&limit=2", "prefix=dlq%3A%5B", "cursor=00000000000000000001", "limit=0009",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := parseListQuery(raw, testFam)
		if err != nil {
			if !errors.Is(err, errBadQuery) {
				t.Fatalf("parseListQuery(%q): error %v does not wrap errBadQuery", raw, err)
			}
			return
		}
		if len(raw) > MaxQueryBytes {
			t.Fatalf("accepted a %d-byte query", len(raw))
		}
		checkPrefix(t, raw, q.Prefix)
		if q.Limit < 1 || q.Limit > MaxPageLimit {
			t.Fatalf("parseListQuery(%q): limit %d out of range", raw, q.Limit)
		}
		v, _ := url.ParseQuery(raw)
		if !q.LimitGiven && q.Limit != DefaultPageLimit {
			t.Fatalf("parseListQuery(%q): default limit %d", raw, q.Limit)
		}
		if q.LimitGiven {
			if n, err := strconv.Atoi(v.Get("limit")); err != nil || n != q.Limit {
				t.Fatalf("parseListQuery(%q): limit %d from %q", raw, q.Limit, v.Get("limit"))
			}
		}
		if c := formatCursor(q.Cursor); c != "" {
			back, err := parseCursor(c)
			if err != nil || back != q.Cursor {
				t.Fatalf("cursor %d formats as %q, parses back as %d, %v", q.Cursor, c, back, err)
			}
		}
	})
}

// FuzzBulkQuery does the same for POST /dlq/retry's prefix, rate and dryRun.
func FuzzBulkQuery(f *testing.F) {
	for _, s := range []string{
		"prefix=dlq:menu:", "prefix=dlq:&rate=1000&dryRun=true", "prefix=dlq:&rate=1001", "prefix=dlq:&rate=0",
		"prefix=dlq:&dryRun=1", "prefix=dlq:&dryRun=TRUE", "rate=5", "", "prefix=dlq:%5C", "prefix=dlq:&rate=%2B5",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := parseBulkQuery(raw, testFam)
		if err != nil {
			if !errors.Is(err, errBadQuery) {
				t.Fatalf("parseBulkQuery(%q): error %v does not wrap errBadQuery", raw, err)
			}
			return
		}
		checkPrefix(t, raw, q.Prefix)
		if q.Rate < 1 || q.Rate > MaxRate {
			t.Fatalf("parseBulkQuery(%q): rate %d out of range", raw, q.Rate)
		}
		v, _ := url.ParseQuery(raw)
		if d := v.Get("dryRun"); q.DryRun != (d == "true" || d == "1") {
			t.Fatalf("parseBulkQuery(%q): dryRun %v from %q", raw, q.DryRun, d)
		}
	})
}

func checkPrefix(t *testing.T, raw, prefix string) {
	t.Helper()
	if !strings.HasPrefix(prefix, redisdlq.KeyPrefix) || len(prefix) > redisdlq.MaxKeyLen || strings.ContainsAny(prefix, `*?[]\`) {
		t.Fatalf("query %q gave the prefix %q", raw, prefix)
	}
	if err := redisdlq.ValidPrefix(prefix); err != nil {
		t.Fatalf("query %q gave the prefix %q, which ValidPrefix rejects: %v", raw, prefix, err)
	}
	if p, err := redisdlq.PrefixPattern(prefix); err != nil || p != prefix+"*" {
		t.Fatalf("prefix %q makes the pattern %q, %v", prefix, p, err)
	}
	// Only this service's families: dlq: (all of them) or under one.
	if prefix != "dlq:" && !strings.HasPrefix(prefix, "dlq:menu:") && !strings.HasPrefix(prefix, "dlq:log:") {
		t.Fatalf("query %q gave the prefix %q, outside dlq:menu: and dlq:log:", raw, prefix)
	}
}

// FuzzKeyPath sends arbitrary keys through the router to GET, POST retry
// and DELETE on /dlq/{key} (without a store or an actor, so nothing is
// read or written) and checks how a key resolves to a replay target: a
// key is accepted only under a route's prefix, naming the eventId, and
// every other key is a 400 before anything is asked of Redis or the actor.
func FuzzKeyPath(f *testing.F) {
	for _, s := range []string{
		"dlq:menu:e1", "dlq:menu::e1", "dlq:log:e1", "dlq:menu:::e1", "dlq:unknown:e1", "dlq:", "dlq::e1", "dlq:other:x", "dlq:log::x",
		"session:1", "audit", "jobs", "dlq:menu:a/b", "dlq:menu:%2F", "dlq:menu:e\n1", "dlq:menu:e\xff",
		"hobom:dlqmeta:dlq:menu:e1", "dlq:menu:" + strings.Repeat("e", 510), "..", "",
	} {
		f.Add(s)
	}
	a := &api{fam: testFam}
	h := New(Options{Log: zerolog.Nop()})
	f.Fuzz(func(t *testing.T, key string) {
		tg, err := a.target(key)
		if err == nil {
			rest, ok := strings.CutPrefix(key, tg.Route.DLQPrefix)
			if !ok || tg.Key != key || tg.EventID == "" || (rest != tg.EventID && rest != ":"+tg.EventID) || len(key) > redisdlq.MaxKeyLen {
				t.Fatalf("target(%q) = %+v", key, tg)
			}
			if _, known := a.fam[tg.Route.DLQPrefix]; !known {
				t.Fatalf("target(%q) has an unknown route %+v", key, tg.Route)
			}
		}
		for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodDelete} {
			path := BasePath + "/dlq/" + url.PathEscape(key)
			if method == http.MethodPost {
				path = BasePath + "/dlq/retry/" + url.PathEscape(key)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(method, path+"?reason=r", nil))
			switch {
			case rec.Code == http.StatusBadRequest:
			case rec.Code == http.StatusServiceUnavailable && (key == "audit" || redisdlqValid(key)):
				// passed the checks; the API has no store or actor here
			case rec.Code == http.StatusNotFound && (strings.Contains(key, "/") || key == "" || key == "." || key == ".."):
				// not one path segment: no route
			default:
				t.Fatalf("%s %q: %d %s", method, key, rec.Code, rec.Body)
			}
			if method == http.MethodPost && rec.Code == http.StatusServiceUnavailable && err != nil {
				t.Fatalf("POST retry %q passed the checks, but target says %v", key, err)
			}
		}
	})
}

// redisdlqValid: a DLQ key of this service's families (dlq:menu:,
// dlq:log: and their legacy forms).
func redisdlqValid(key string) bool {
	prefix, _, err := redisdlq.ParseKey(key)
	return err == nil && (prefix == "dlq:menu:" || prefix == "dlq:log:")
}
