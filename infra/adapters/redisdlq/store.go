// Package redisdlq is the Redis dead-letter queue (docs/contract.md §3).
//
// A dead letter's value lives at its key ("dlq:menu:<eventId>",
// "dlq:log:<eventId>") as a plain string holding nothing but the JSON, exactly
// as the old service wrote it, so its readers keep working. What we know
// about the failure lives in a hash at MetaKey(key), outside the "dlq:" key
// space, so a SCAN of "dlq:*" never sees it. Entries the old service wrote
// have no hash; they are read, listed and deleted like ours.
//
// Writes that touch both keys run in one MULTI/EXEC, so a crash never leaves
// a value without its metadata. That needs both keys on one Redis node: the
// contract's Redis is a single server, and a Redis Cluster would answer
// CROSSSLOT.
package redisdlq

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hobom/hobom-event-processor/actors"
)

// MetaKeyPrefix starts every metadata hash's key.
const MetaKeyPrefix = "hobom:dlqmeta:"

// Fields of the metadata hash.
const (
	fieldEventType     = "eventType"
	fieldEventID       = "eventId"
	fieldTopic         = "topic"
	fieldReason        = "reason"
	fieldAttempts      = "attempts"
	fieldFirstFailedAt = "firstFailedAt"
	fieldLastFailedAt  = "lastFailedAt"
)

// ErrNotFound is wrapped by Get when the key holds no value: it was never
// written, has expired, or was deleted (for instance by a replay).
var ErrNotFound = errors.New("DLQ entry not found")

// MetaKey is the key of the metadata hash of the DLQ entry at key.
func MetaKey(key string) string { return MetaKeyPrefix + key }

// Store is the dead-letter queue over one Redis. It is safe for concurrent
// use, as its client is.
type Store struct {
	c redis.UniversalClient
}

var _ actors.DeadLetterStore = (*Store)(nil)

// New returns a Store using c, which the caller keeps owning (and closes).
func New(c redis.UniversalClient) *Store { return &Store{c: c} }

// Entry is one dead letter as read back.
type Entry struct {
	Key string
	// Prefix and EventID come from the key (ParseKey), so they are known
	// for the old service's entries too; a replay keys its Kafka record by
	// EventID.
	Prefix  string
	EventID string
	// Value is the stored bytes, unchanged: a JSON object for messages, a
	// one-element JSON array for logs.
	Value []byte
	// Meta is the metadata hash; Meta.FailedAt is the last failure.
	Meta          actors.DeadLetterMeta
	FirstFailedAt time.Time
	LastFailedAt  time.Time
	// HasMeta is false for entries without a metadata hash, such as those
	// the old service wrote; Meta and the times are then zero.
	HasMeta bool
	// TTL is the value's remaining time to live; 0 if it has no expiry.
	TTL time.Duration
	// Size is the whole value's length in bytes; Truncated says Value
	// holds only its first bytes (Inspect).
	Size      int
	Truncated bool
}

// Put stores value at key for ttl and meta in the key's metadata hash with
// the same ttl (actors.DeadLetterStore). Putting a key again replaces the
// value, adds meta.Attempts to the attempts, keeps the first failure time,
// and renews the ttl of both. A zero meta.FailedAt means now; an empty
// meta.EventID is taken from the key.
//
// Both keys are written in one MULTI/EXEC. Redis does not roll a
// transaction back when one command fails at run time (say, MetaKey(key)
// holds a non-hash), so Put then reports the error but the value may be
// stored.
func (s *Store) Put(ctx context.Context, key string, value []byte, meta actors.DeadLetterMeta, ttl time.Duration) error {
	_, eventID, err := ParseKey(key)
	if err != nil {
		return fmt.Errorf("dlq put: %w", err)
	}
	switch {
	case ttl <= 0:
		// An entry without expiry would stay forever; the contract wants
		// every dead letter to expire.
		return fmt.Errorf("dlq put %q: ttl %v is not positive", key, ttl)
	case meta.Attempts < 0:
		return fmt.Errorf("dlq put %q: negative attempts %d", key, meta.Attempts)
	}
	if meta.EventID == "" {
		meta.EventID = eventID
	}
	failedAt := meta.FailedAt
	if failedAt.IsZero() {
		failedAt = time.Now()
	}
	ts := failedAt.UTC().Format(time.RFC3339Nano)
	mk := MetaKey(key)

	_, err = s.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		// go-redis sends SET ... EX for whole seconds (the contract's 72 h)
		// and PX otherwise; PEXPIRE gives the hash the same expiry.
		p.Set(ctx, key, value, ttl)
		p.HSet(ctx, mk,
			fieldEventType, meta.EventType,
			fieldEventID, meta.EventID,
			fieldTopic, meta.Topic,
			fieldReason, meta.Reason,
			fieldLastFailedAt, ts,
		)
		p.HSetNX(ctx, mk, fieldFirstFailedAt, ts)
		p.HIncrBy(ctx, mk, fieldAttempts, int64(meta.Attempts))
		p.PExpire(ctx, mk, ttl)
		return nil
	})
	if err != nil {
		return fmt.Errorf("dlq put %q: %w", key, err)
	}
	return nil
}

// Get reads the entry at key: its value, metadata and TTL in one MULTI/EXEC,
// so they describe the same moment. It returns an error wrapping ErrNotFound
// when the key holds no value, and one wrapping ErrInvalidKey for a key
// ParseKey rejects (Redis is then not asked). Unreadable metadata fields are
// left zero rather than failing: the value is what an operator needs.
func (s *Store) Get(ctx context.Context, key string) (Entry, error) {
	prefix, eventID, err := ParseKey(key)
	if err != nil {
		return Entry{}, fmt.Errorf("dlq get: %w", err)
	}
	var (
		getCmd  *redis.StringCmd
		metaCmd *redis.MapStringStringCmd
		ttlCmd  *redis.DurationCmd
	)
	_, err = s.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		getCmd = p.Get(ctx, key)
		metaCmd = p.HGetAll(ctx, MetaKey(key))
		ttlCmd = p.PTTL(ctx, key)
		return nil
	})
	// The pipeline's error is its first failed command's error, redis.Nil
	// for a missing value included (looked at per command below). Any other
	// error fails the read: when the connection fails, the commands of a
	// MULTI/EXEC may carry no error of their own.
	if err != nil && !errors.Is(err, redis.Nil) {
		return Entry{}, fmt.Errorf("dlq get %q: %w", key, err)
	}
	if err := getCmd.Err(); err != nil {
		if errors.Is(err, redis.Nil) {
			return Entry{}, fmt.Errorf("dlq get %q: %w", key, ErrNotFound)
		}
		return Entry{}, fmt.Errorf("dlq get %q: value: %w", key, err)
	}
	if err := metaCmd.Err(); err != nil {
		return Entry{}, fmt.Errorf("dlq get %q: metadata: %w", key, err)
	}
	if err := ttlCmd.Err(); err != nil {
		return Entry{}, fmt.Errorf("dlq get %q: ttl: %w", key, err)
	}
	value, err := getCmd.Bytes()
	if err != nil {
		return Entry{}, fmt.Errorf("dlq get %q: value: %w", key, err)
	}

	e := Entry{Key: key, Prefix: prefix, EventID: eventID, Value: value}
	if ttl := ttlCmd.Val(); ttl > 0 {
		e.TTL = ttl
	}
	e.Size = len(value)
	e.setMeta(metaCmd.Val())
	return e, nil
}

// inspectScript reads what Inspect returns in one atomic round trip:
// {type} for a key that is no string (or none), else {"string", size, the
// first ARGV[1] bytes, the metadata hash as a flat list, PTTL}.
var inspectScript = redis.NewScript(`
local t = redis.call("TYPE", KEYS[1])["ok"]
if t ~= "string" then return {t} end
local n = redis.call("STRLEN", KEYS[1])
local v
if n > tonumber(ARGV[1]) then
	v = redis.call("GETRANGE", KEYS[1], 0, tonumber(ARGV[1]) - 1)
else
	v = redis.call("GET", KEYS[1])
end
return {t, n, v, redis.call("HGETALL", KEYS[2]), redis.call("PTTL", KEYS[1])}`)

// Inspect is Get for operators: it reads at most max bytes of the value,
// so that inspecting a huge entry costs no more than max bytes of memory.
// Entry.Size is the whole value's size and Entry.Truncated says Value holds
// only its first max bytes. A key holding another Redis type returns an
// error wrapping actors.ErrWrongType.
func (s *Store) Inspect(ctx context.Context, key string, max int) (Entry, error) {
	prefix, eventID, err := ParseKey(key)
	if err != nil {
		return Entry{}, fmt.Errorf("dlq inspect: %w", err)
	}
	if max < 1 {
		return Entry{}, fmt.Errorf("dlq inspect %q: read limit %d below one byte", key, max)
	}
	res, err := inspectScript.Run(ctx, s.c, []string{key, MetaKey(key)}, max).Slice()
	if err != nil {
		return Entry{}, fmt.Errorf("dlq inspect %q: %w", key, err)
	}
	typ, _ := res[0].(string)
	switch {
	case typ == "none":
		return Entry{}, fmt.Errorf("dlq inspect %q: %w", key, ErrNotFound)
	case typ != "string":
		return Entry{}, fmt.Errorf("dlq inspect %q: %w (a %s)", key, actors.ErrWrongType, typ)
	case len(res) < 5:
		return Entry{}, fmt.Errorf("dlq inspect %q: unexpected reply", key)
	}
	size, _ := res[1].(int64)
	value, _ := res[2].(string)
	e := Entry{Key: key, Prefix: prefix, EventID: eventID, Value: []byte(value), Size: int(size), Truncated: int(size) > max}
	if ttl, _ := res[4].(int64); ttl > 0 {
		e.TTL = time.Duration(ttl) * time.Millisecond
	}
	flat, _ := res[3].([]any)
	m := make(map[string]string, len(flat)/2)
	for i := 0; i+1 < len(flat); i += 2 {
		k, _ := flat[i].(string)
		v, _ := flat[i+1].(string)
		m[k] = v
	}
	e.setMeta(m)
	return e, nil
}

// setMeta fills the entry from its metadata hash m (nothing when empty).
func (e *Entry) setMeta(m map[string]string) {
	if len(m) == 0 {
		return
	}
	e.HasMeta = true
	e.Meta = actors.DeadLetterMeta{
		EventType: m[fieldEventType],
		EventID:   m[fieldEventID],
		Topic:     m[fieldTopic],
		Reason:    m[fieldReason],
	}
	if n, err := strconv.Atoi(m[fieldAttempts]); err == nil {
		e.Meta.Attempts = n
	}
	e.FirstFailedAt = parseTime(m[fieldFirstFailedAt])
	e.LastFailedAt = parseTime(m[fieldLastFailedAt])
	e.Meta.FailedAt = e.LastFailedAt
}

// parseTime reads a stored RFC 3339 time; it returns the zero time for an
// empty or malformed field.
func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t
}

// Scan runs one SCAN step with MATCH match (KEYS would block Redis on a
// large keyspace) and returns the keys of that step that start with "dlq:",
// and the cursor of the next step (0 when the iteration is complete). An
// empty match means "dlq:*"; build prefix patterns with PrefixPattern. count
// is SCAN's COUNT hint (0 for Redis's default). As with SCAN itself, a step
// may return no keys while the cursor is not 0, and a key may be returned
// more than once in one iteration.
func (s *Store) Scan(ctx context.Context, match string, cursor uint64, count int64) (keys []string, next uint64, err error) {
	if match == "" {
		match = KeyPrefix + "*"
	}
	raw, next, err := s.c.Scan(ctx, cursor, match, count).Result()
	if err != nil {
		return nil, 0, fmt.Errorf("dlq scan %q from cursor %d: %w", match, cursor, err)
	}
	keys = raw[:0]
	for _, k := range raw {
		if strings.HasPrefix(k, KeyPrefix) {
			keys = append(keys, k)
		}
	}
	return keys, next, nil
}

// listScanCount is the COUNT hint List gives each SCAN step: large enough to
// need few round trips, small enough that each step is quick for Redis.
const listScanCount = 500

// List returns the DLQ keys starting with prefix (checked by ValidPrefix),
// each once, by iterating SCAN to its end. limit > 0 stops once that many
// keys are found, which are then some of the matching keys, not the first in
// any order. The keys are not sorted.
func (s *Store) List(ctx context.Context, prefix string, limit int) ([]string, error) {
	return s.list(ctx, prefix, nil, limit)
}

// list walks SCAN over prefix's keys to its end (or to limit keys), each
// key once; keep, when not nil, takes each step's new keys and returns those
// to list (ListFiltered's filter).
func (s *Store) list(ctx context.Context, prefix string, keep func(context.Context, []string) ([]string, error), limit int) ([]string, error) {
	match, err := PrefixPattern(prefix)
	if err != nil {
		return nil, fmt.Errorf("dlq list: %w", err)
	}
	seen := map[string]bool{}
	keys := []string{}
	var cursor uint64
	for {
		step, next, err := s.Scan(ctx, match, cursor, listScanCount)
		if err != nil {
			return nil, fmt.Errorf("dlq list %q: %w", prefix, err)
		}
		fresh := step[:0]
		for _, k := range step {
			if !seen[k] {
				seen[k] = true
				fresh = append(fresh, k)
			}
		}
		if keep != nil {
			if fresh, err = keep(ctx, fresh); err != nil {
				return nil, fmt.Errorf("dlq list %q: %w", prefix, err)
			}
		}
		for _, k := range fresh {
			keys = append(keys, k)
			if limit > 0 && len(keys) >= limit {
				return keys, nil
			}
		}
		if next == 0 {
			return keys, nil
		}
		cursor = next
	}
}

// Delete removes the value at key and its metadata in one MULTI/EXEC and
// reports whether a value was there. Keys ParseKey rejects return an error
// wrapping ErrInvalidKey and touch nothing.
func (s *Store) Delete(ctx context.Context, key string) (bool, error) {
	if _, _, err := ParseKey(key); err != nil {
		return false, fmt.Errorf("dlq delete: %w", err)
	}
	var del *redis.IntCmd
	_, err := s.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		del = p.Del(ctx, key)
		p.Del(ctx, MetaKey(key))
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("dlq delete %q: %w", key, err)
	}
	return del.Val() > 0, nil
}
