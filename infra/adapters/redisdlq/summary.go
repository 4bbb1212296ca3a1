package redisdlq

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Triage: what an operator needs to see before replaying. Every entry is
// described by its Info (reason class, event type, failure time, time to
// live), read for one SCAN step's keys at a time in one pipeline, so a
// summary or a filtered listing costs one round trip per step and no memory
// per key beyond the step.

// Reason classes: the kind of failure, derived from the reason stored in
// the entry's metadata hash (the raw reason stays on the entry). The
// publisher writes reasons as "kafka: <client error>", "record too large:
// ...", "bad input: ..." and "encode: ...".
const (
	ClassKafkaUnreachable = "kafka_unreachable" // no broker answered: dial, timeout, connection lost
	ClassKafkaRejected    = "kafka_rejected"    // a broker answered with an error
	ClassRecordTooLarge   = "record_too_large"  // the record exceeds Kafka's record size limit
	ClassInvalidPayload   = "invalid_payload"   // bad input from the backend (invalid UTF-8, ...)
	ClassEncodeError      = "encode_error"      // the payload could not be encoded: no record exists
	ClassOther            = "other"             // a reason none of the above matches
	ClassUnknown          = "unknown"           // no metadata: an entry the old service wrote
)

// ReasonClasses lists every class, in the order the API documents them.
var ReasonClasses = []string{
	ClassKafkaUnreachable, ClassKafkaRejected, ClassRecordTooLarge, ClassInvalidPayload,
	ClassEncodeError, ClassOther, ClassUnknown,
}

// unreachableHints are parts of franz-go and net errors that mean no
// broker took the request (as opposed to a broker refusing it).
var unreachableHints = []string{
	"dial", "connection refused", "connection reset", "i/o timeout", "timeout", "deadline exceeded",
	"eof", "broken pipe", "no route to host", "unable to dial", "not available", "unreachable",
	"network is unreachable", "context canceled", "record delivery timeout", "timed out",
	"tls:", "x509:", "certificate",
}

// ReasonClass classifies a stored reason. hasMeta is false for entries
// without a metadata hash, which are ClassUnknown.
func ReasonClass(reason string, hasMeta bool) string {
	if !hasMeta {
		return ClassUnknown
	}
	r := strings.ToLower(strings.TrimSpace(reason))
	switch {
	case strings.HasPrefix(r, "record too large"), strings.Contains(r, "message_too_large"),
		strings.Contains(r, "record_list_too_large"), strings.Contains(r, "too large"):
		return ClassRecordTooLarge
	case strings.HasPrefix(r, "bad input"):
		return ClassInvalidPayload
	case strings.HasPrefix(r, "encode"):
		return ClassEncodeError
	case strings.HasPrefix(r, "kafka"):
		for _, h := range unreachableHints {
			if strings.Contains(r, h) {
				return ClassKafkaUnreachable
			}
		}
		return ClassKafkaRejected
	}
	return ClassOther
}

// ValidClass reports whether c names a reason class.
func ValidClass(c string) bool {
	for _, k := range ReasonClasses {
		if c == k {
			return true
		}
	}
	return false
}

// Info describes one entry for triage, without its value.
type Info struct {
	Key       string
	Prefix    string
	EventType string // from the metadata; empty without it
	Reason    string
	Class     string
	// LastFailedAt is zero for an entry without metadata.
	LastFailedAt time.Time
	HasMeta      bool
	// Exists is false when the key vanished between SCAN and the read.
	Exists bool
	// TTL is the remaining time to live; 0 when the key has no expiry.
	TTL time.Duration
}

// Infos reads the Info of each key (keys ParseKey rejects are skipped) in
// one pipeline: HMGET of the metadata and PTTL of the value per key.
func (s *Store) Infos(ctx context.Context, keys []string) ([]Info, error) {
	type cmds struct {
		meta   *redis.SliceCmd
		ttl    *redis.DurationCmd
		prefix string
		key    string
	}
	cs := make([]cmds, 0, len(keys))
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			prefix, _, err := ParseKey(k)
			if err != nil {
				continue
			}
			cs = append(cs, cmds{
				meta:   p.HMGet(ctx, MetaKey(k), fieldEventType, fieldReason, fieldLastFailedAt),
				ttl:    p.PTTL(ctx, k),
				prefix: prefix, key: k,
			})
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("dlq infos: %w", err)
	}
	out := make([]Info, 0, len(cs))
	for _, c := range cs {
		vals, err := c.meta.Result()
		if err != nil {
			return nil, fmt.Errorf("dlq infos %q: metadata: %w", c.key, err)
		}
		ttl, err := c.ttl.Result()
		if err != nil {
			return nil, fmt.Errorf("dlq infos %q: ttl: %w", c.key, err)
		}
		str := func(i int) string {
			if s, ok := vals[i].(string); ok {
				return s
			}
			return ""
		}
		in := Info{Key: c.key, Prefix: c.prefix, EventType: str(0), Reason: str(1), LastFailedAt: parseTime(str(2))}
		in.HasMeta = in.EventType != "" || in.Reason != "" || !in.LastFailedAt.IsZero()
		in.Class = ReasonClass(in.Reason, in.HasMeta)
		// PTTL: -2 no such key, -1 no expiry (go-redis gives them as
		// negative durations).
		switch {
		case ttl == -2:
			in.Exists = false
		case ttl < 0:
			in.Exists = true
		default:
			in.Exists, in.TTL = true, ttl
		}
		out = append(out, in)
	}
	return out, nil
}

// Filter selects entries for a listing, a bulk replay or a bulk keep. The
// zero Filter selects every entry.
type Filter struct {
	// Class keeps entries of that reason class ("" for every class).
	Class string
	// MinAge and MaxAge bound the age of the last failure (0: unbounded).
	// An entry without metadata has no known age, so an age bound leaves
	// it out.
	MinAge, MaxAge time.Duration
	// ExpiresWithin keeps entries whose time to live is at most that (0:
	// unbounded); entries without expiry are left out by it.
	ExpiresWithin time.Duration
}

// IsZero reports whether f selects everything.
func (f Filter) IsZero() bool { return f == Filter{} }

// Match reports whether the entry in passes f at now.
func (f Filter) Match(in Info, now time.Time) bool {
	if !in.Exists {
		return false
	}
	if f.Class != "" && in.Class != f.Class {
		return false
	}
	if f.MinAge > 0 || f.MaxAge > 0 {
		if in.LastFailedAt.IsZero() {
			return false
		}
		age := now.Sub(in.LastFailedAt)
		if (f.MinAge > 0 && age < f.MinAge) || (f.MaxAge > 0 && age > f.MaxAge) {
			return false
		}
	}
	if f.ExpiresWithin > 0 && (in.TTL <= 0 || in.TTL > f.ExpiresWithin) {
		return false
	}
	return true
}

// FilterKeys returns the keys of one SCAN step that pass f, in their
// order. A zero f returns keys unchanged without asking Redis.
func (s *Store) FilterKeys(ctx context.Context, keys []string, f Filter) ([]string, error) {
	if f.IsZero() || len(keys) == 0 {
		return keys, nil
	}
	infos, err := s.Infos(ctx, keys)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	out := make([]string, 0, len(infos))
	for _, in := range infos {
		if f.Match(in, now) {
			out = append(out, in.Key)
		}
	}
	return out, nil
}

// ListFiltered is List with a Filter: the keys starting with prefix that
// pass f, each once, at most limit (> 0) of them.
func (s *Store) ListFiltered(ctx context.Context, prefix string, f Filter, limit int) ([]string, error) {
	if f.IsZero() {
		return s.List(ctx, prefix, limit)
	}
	return s.list(ctx, prefix, func(ctx context.Context, keys []string) ([]string, error) {
		return s.FilterKeys(ctx, keys, f)
	}, limit)
}

// Failure is one entry and the time of its last failure.
type Failure struct {
	Key string    `json:"key"`
	At  time.Time `json:"at"`
}

// Summary counts the entries under a prefix for triage.
type Summary struct {
	Prefix string `json:"prefix"`
	// Total is the entries counted; Complete is false when the walk
	// stopped at its key or time bound before SCAN's end (the counts are
	// then of the first Total entries).
	Total    int  `json:"total"`
	Complete bool `json:"complete"`
	// ByEventType counts by the metadata's event type (the route's event
	// type for entries without metadata, "unknown" when no route has the
	// prefix).
	ByEventType map[string]int `json:"byEventType"`
	// ByReasonClass counts by reason class; every class is present.
	ByReasonClass map[string]int `json:"byReasonClass"`
	// ByPrefix counts by key prefix ("dlq:menu:" ...).
	ByPrefix map[string]int `json:"byPrefix"`
	// Oldest and Newest are the entries with the earliest and latest last
	// failure (nil without any entry with metadata).
	Oldest *Failure `json:"oldestFailure"`
	Newest *Failure `json:"newestFailure"`
	// ExpiringWithin12h and ExpiringWithin24h count entries whose time to
	// live is at most 12 h and 24 h: replay or keep them, or lose them.
	ExpiringWithin12h int `json:"expiringWithin12h"`
	ExpiringWithin24h int `json:"expiringWithin24h"`
	// NextExpiry is the shortest time to live seen, in seconds (nil
	// without entries that expire).
	NextExpirySeconds *int64 `json:"nextExpirySeconds"`
	// NoExpiry counts entries without a time to live.
	NoExpiry int `json:"noExpiry"`
	// TookMs is how long the walk took.
	TookMs float64 `json:"tookMs"`
}

// SummaryLimits bound a summary's walk.
type SummaryLimits struct {
	MaxKeys int           // stop after that many keys
	MaxTime time.Duration // stop after that long
}

// Summarize walks the keys under prefix (checked by ValidPrefix) with
// SCAN, reading each step's Infos in one pipeline, until SCAN ends or a
// limit is hit. eventTypeOf names the event type of a prefix for entries
// without metadata ("" when unknown).
func (s *Store) Summarize(ctx context.Context, prefix string, lim SummaryLimits, eventTypeOf func(prefix string) string) (Summary, error) {
	start := time.Now()
	match, err := PrefixPattern(prefix)
	if err != nil {
		return Summary{}, fmt.Errorf("dlq summary: %w", err)
	}
	sum := Summary{Prefix: prefix, ByEventType: map[string]int{}, ByReasonClass: map[string]int{}, ByPrefix: map[string]int{}}
	for _, c := range ReasonClasses {
		sum.ByReasonClass[c] = 0
	}
	seen := map[string]bool{}
	deadline := start.Add(lim.MaxTime)
	var cursor uint64
	for {
		step, next, err := s.Scan(ctx, match, cursor, listScanCount)
		if err != nil {
			return Summary{}, fmt.Errorf("dlq summary: %w", err)
		}
		fresh := step[:0]
		for _, k := range step {
			if !seen[k] {
				seen[k] = true
				fresh = append(fresh, k)
			}
		}
		infos, err := s.Infos(ctx, fresh)
		if err != nil {
			return Summary{}, fmt.Errorf("dlq summary: %w", err)
		}
		for _, in := range infos {
			if in.Exists {
				sum.add(in, eventTypeOf)
			}
		}
		cursor = next
		if next == 0 {
			sum.Complete = true
			break
		}
		if (lim.MaxKeys > 0 && len(seen) >= lim.MaxKeys) || (lim.MaxTime > 0 && time.Now().After(deadline)) {
			break
		}
	}
	sum.TookMs = float64(time.Since(start).Microseconds()) / 1000
	return sum, nil
}

func (sum *Summary) add(in Info, eventTypeOf func(string) string) {
	sum.Total++
	et := in.EventType
	if et == "" && eventTypeOf != nil {
		et = eventTypeOf(in.Prefix)
	}
	if et == "" {
		et = "unknown"
	}
	sum.ByEventType[et]++
	sum.ByReasonClass[in.Class]++
	sum.ByPrefix[in.Prefix]++
	if !in.LastFailedAt.IsZero() {
		if sum.Oldest == nil || in.LastFailedAt.Before(sum.Oldest.At) {
			sum.Oldest = &Failure{Key: in.Key, At: in.LastFailedAt}
		}
		if sum.Newest == nil || in.LastFailedAt.After(sum.Newest.At) {
			sum.Newest = &Failure{Key: in.Key, At: in.LastFailedAt}
		}
	}
	if in.TTL <= 0 {
		sum.NoExpiry++
		return
	}
	if in.TTL <= 12*time.Hour {
		sum.ExpiringWithin12h++
	}
	if in.TTL <= 24*time.Hour {
		sum.ExpiringWithin24h++
	}
	secs := int64((in.TTL + time.Second - 1) / time.Second)
	if sum.NextExpirySeconds == nil || secs < *sum.NextExpirySeconds {
		sum.NextExpirySeconds = &secs
	}
}

// keepScript extends the time to live of an entry and of its metadata
// hash to ARGV[1] ms from now, never shortening it, and answers the
// value's time to live after (ms), or -2 when the value does not exist.
var keepScript = redis.NewScript(`
local ttl = redis.call("PTTL", KEYS[1])
if ttl == -2 then
	return -2
end
local want = tonumber(ARGV[1])
if ttl >= 0 and ttl < want then
	redis.call("PEXPIRE", KEYS[1], want)
	ttl = want
end
if redis.call("EXISTS", KEYS[2]) == 1 then
	local mttl = redis.call("PTTL", KEYS[2])
	if mttl >= 0 and mttl < ttl then
		redis.call("PEXPIRE", KEYS[2], ttl)
	end
end
return ttl`)

// Keep extends the time to live of the entry at key and of its metadata
// to ttl from now, never shortening it (an entry without expiry keeps
// none), atomically (a script). It returns the entry's time to live after
// and found false when there is no entry.
func (s *Store) Keep(ctx context.Context, key string, ttl time.Duration) (time.Duration, bool, error) {
	if _, _, err := ParseKey(key); err != nil {
		return 0, false, fmt.Errorf("dlq keep: %w", err)
	}
	if ttl < time.Second {
		return 0, false, fmt.Errorf("dlq keep %q: ttl %v is below a second", key, ttl)
	}
	n, err := keepScript.Run(ctx, s.c, []string{key, MetaKey(key)}, ttl.Milliseconds()).Int64()
	if err != nil {
		return 0, false, fmt.Errorf("dlq keep %q: %w", key, err)
	}
	switch {
	case n == -2:
		return 0, false, nil
	case n < 0:
		return 0, true, nil
	}
	return time.Duration(n) * time.Millisecond, true, nil
}

// TTLs returns the remaining time to live of each key, in one pipeline:
// 0 for a key without expiry, a negative duration for a missing key.
func (s *Store) TTLs(ctx context.Context, keys []string) ([]time.Duration, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	cmds := make([]*redis.DurationCmd, len(keys))
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.PTTL(ctx, k)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("dlq ttls: %w", err)
	}
	out := make([]time.Duration, len(keys))
	for i, c := range cmds {
		switch ttl := c.Val(); {
		case ttl == -1:
			out[i] = 0
		default:
			out[i] = ttl
		}
	}
	return out, nil
}

// ExpiringCounts walks every DLQ key once and counts the entries whose
// time to live is at most each of within. Entries without expiry count in
// none.
func (s *Store) ExpiringCounts(ctx context.Context, within []time.Duration) (map[time.Duration]int, error) {
	counts := make(map[time.Duration]int, len(within))
	for _, w := range within {
		counts[w] = 0
	}
	var cursor uint64
	for {
		keys, next, err := s.Scan(ctx, "", cursor, 1000)
		if err != nil {
			return nil, err
		}
		ttls, err := s.TTLs(ctx, keys)
		if err != nil {
			return nil, err
		}
		for _, ttl := range ttls {
			for _, w := range within {
				if ttl > 0 && ttl <= w {
					counts[w]++
				}
			}
		}
		if next == 0 {
			return counts, nil
		}
		cursor = next
	}
}
