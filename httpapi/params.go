package httpapi

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/hobom/hobom-event-processor/infra/adapters/redisdlq"
)

// Bounds of the query parameters. Every value is checked before it reaches
// Redis or the DLQ actor; a bad one is answered 400 with the reason.
const (
	// DefaultPageLimit is the page size of GET /dlq without limit: old
	// clients that expect every key get the first page, and the body says
	// there is more (truncated, nextCursor).
	DefaultPageLimit = 1000
	// MaxPageLimit bounds limit on GET /dlq.
	MaxPageLimit = 10_000
	// DefaultRate and MaxRate bound a bulk replay's replays per second.
	DefaultRate = 10
	MaxRate     = 1000
	// MaxBulkKeys bounds the keys one bulk replay (or dry run) takes; more
	// matching keys are left for the next job, and the answer says so.
	MaxBulkKeys = 10_000
	// DefaultAuditLimit and MaxAuditLimit bound GET /dlq/audit.
	DefaultAuditLimit = 100
	MaxAuditLimit     = 1000
	// MaxQueryBytes bounds a request's whole query string.
	MaxQueryBytes = 4096
	// MaxReasonBytes bounds a discard's reason; MaxOperatorBytes the
	// x-operator header.
	MaxReasonBytes   = 1024
	MaxOperatorBytes = 128
	// maxCursorDigits is the length of the largest uint64.
	maxCursorDigits = 20
	maxJobIDBytes   = 64
)

// errBadQuery wraps every query parsing error.
var errBadQuery = errors.New("bad query")

func badQuery(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errBadQuery, fmt.Sprintf(format, args...))
}

// listQuery is GET /dlq's query.
type listQuery struct {
	Prefix string
	Limit  int
	// LimitGiven is false when the caller gave no limit (a default page).
	LimitGiven bool
	Cursor     uint64
}

// bulkQuery is POST /dlq/retry's query.
type bulkQuery struct {
	Prefix string
	Rate   int
	DryRun bool
}

// parseQuery splits a raw query string, bounded in size, and rejects a
// known parameter given more than once (which of them would count?).
// Unknown parameters are ignored, as old clients may send some.
func parseQuery(raw string, known ...string) (url.Values, error) {
	if len(raw) > MaxQueryBytes {
		return nil, badQuery("query string of %d bytes, more than %d", len(raw), MaxQueryBytes)
	}
	v, err := url.ParseQuery(raw)
	if err != nil {
		return nil, badQuery("malformed query string: %v", err)
	}
	for _, k := range known {
		if len(v[k]) > 1 {
			return nil, badQuery("%s given %d times", k, len(v[k]))
		}
	}
	return v, nil
}

// parseListQuery parses prefix (default "dlq:", must be "dlq:" or start
// with a route's DLQ prefix),
// limit (1..MaxPageLimit, default DefaultPageLimit) and cursor (a
// nextCursor from an earlier page; empty or absent starts over).
func parseListQuery(raw string, fam families) (listQuery, error) {
	v, err := parseQuery(raw, "prefix", "limit", "cursor")
	if err != nil {
		return listQuery{}, err
	}
	q := listQuery{Prefix: redisdlq.KeyPrefix, Limit: DefaultPageLimit}
	if p := v.Get("prefix"); p != "" {
		if err := fam.prefix(p); err != nil {
			return listQuery{}, badQuery("prefix: %v", err)
		}
		q.Prefix = p
	}
	if _, ok := v["limit"]; ok {
		if q.Limit, err = parseBounded("limit", v.Get("limit"), 1, MaxPageLimit); err != nil {
			return listQuery{}, err
		}
		q.LimitGiven = true
	}
	if q.Cursor, err = parseCursor(v.Get("cursor")); err != nil {
		return listQuery{}, err
	}
	return q, nil
}

// parseBulkQuery parses prefix (required, as for parseListQuery), rate
// (1..MaxRate, default DefaultRate) and dryRun (a boolean, default false).
func parseBulkQuery(raw string, fam families) (bulkQuery, error) {
	v, err := parseQuery(raw, "prefix", "rate", "dryRun")
	if err != nil {
		return bulkQuery{}, err
	}
	q := bulkQuery{Prefix: v.Get("prefix"), Rate: DefaultRate}
	if q.Prefix == "" {
		return bulkQuery{}, badQuery(`prefix is required (for every entry say prefix=dlq:)`)
	}
	if err := fam.prefix(q.Prefix); err != nil {
		return bulkQuery{}, badQuery("prefix: %v", err)
	}
	if _, ok := v["rate"]; ok {
		if q.Rate, err = parseBounded("rate", v.Get("rate"), 1, MaxRate); err != nil {
			return bulkQuery{}, err
		}
	}
	if q.DryRun, err = parseBool(v, "dryRun"); err != nil {
		return bulkQuery{}, err
	}
	return q, nil
}

// parseBool parses an optional boolean parameter: true or 1, false or 0.
func parseBool(v url.Values, name string) (bool, error) {
	if _, ok := v[name]; !ok {
		return false, nil
	}
	switch v.Get(name) {
	case "true", "1":
		return true, nil
	case "false", "0":
		return false, nil
	}
	return false, badQuery("%s must be true or false", name)
}

// parseRetryQuery parses POST /dlq/retry/{key}'s force (a boolean,
// default false): publish a value that is not a record of its topic.
func parseRetryQuery(raw string) (force bool, err error) {
	v, err := parseQuery(raw, "force")
	if err != nil {
		return false, err
	}
	return parseBool(v, "force")
}

// parseAuditQuery parses limit (1..MaxAuditLimit, default
// DefaultAuditLimit).
func parseAuditQuery(raw string) (int, error) {
	v, err := parseQuery(raw, "limit")
	if err != nil {
		return 0, err
	}
	if _, ok := v["limit"]; !ok {
		return DefaultAuditLimit, nil
	}
	return parseBounded("limit", v.Get("limit"), 1, MaxAuditLimit)
}

// parseBounded parses a decimal integer of digits only (no sign, no
// spaces) within lo..hi.
func parseBounded(name, s string, lo, hi int) (int, error) {
	bad := badQuery("%s must be an integer from %d to %d", name, lo, hi)
	if s == "" || len(s) > 9 {
		return 0, bad
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, bad
		}
		n = n*10 + int(c-'0')
	}
	if n < lo || n > hi {
		return 0, bad
	}
	return n, nil
}

// parseCursor parses a listing cursor: a Redis SCAN cursor in decimal, as
// nextCursor gives it. Empty means the start.
func parseCursor(s string) (uint64, error) {
	if s == "" {
		return 0, nil
	}
	bad := badQuery("cursor must be a nextCursor of an earlier page")
	if len(s) > maxCursorDigits || strings.TrimLeft(s, "0123456789") != "" {
		return 0, bad
	}
	c, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, bad
	}
	return c, nil
}

// formatCursor is the nextCursor of a listing that goes on at SCAN cursor
// c; "" when the listing is complete (c == 0).
func formatCursor(c uint64) string {
	if c == 0 {
		return ""
	}
	return strconv.FormatUint(c, 10)
}

// checkText checks a free-text value that goes to logs and the audit trail
// (a discard's reason, the x-operator header): at most max bytes of
// printable UTF-8 (spaces allowed).
func checkText(name, s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("%s is %d bytes, more than %d", name, len(s), max)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s is not valid UTF-8", name)
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("%s holds the non-printable character %U", name, r)
		}
	}
	return nil
}

// validJobID reports whether id looks like a job id (lowercase hex).
func validJobID(id string) bool {
	if id == "" || len(id) > maxJobIDBytes {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
