package redisdlq

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hobom/hobom-event-processor/actors"
	"github.com/hobom/hobom-event-processor/messages"
)

// What the management API needs beyond the dead letters themselves: replay
// locks and the audit trail. Both live outside the "dlq:" key space, so
// listing the DLQ never shows them and the API cannot read or delete them
// as entries.
const (
	// LockKeyPrefix starts the key of every replay lock.
	LockKeyPrefix = "hobom:dlqlock:"
	// AuditKey is the capped list of audit records, newest first.
	AuditKey = "hobom:dlq:audit"
	// AuditCap is how many audit records the list keeps; older ones are
	// trimmed on every append.
	AuditCap = 20_000
)

var _ actors.DeadLetterAdmin = (*Store)(nil)

// LockKey is the key of the replay lock of the DLQ entry at key.
func LockKey(key string) string { return LockKeyPrefix + key }

// Value returns the bytes stored at key, unchanged, and their size
// (actors.DeadLetterAdmin). found is false when the key holds no value. A
// value of more than max bytes is not read (value nil, size set), so a
// huge key cannot fill the process's memory; a key holding another Redis
// type returns an error wrapping actors.ErrWrongType. Keys ParseKey
// rejects return an error wrapping ErrInvalidKey, and Redis is not asked.
func (s *Store) Value(ctx context.Context, key string, max int) ([]byte, int, bool, error) {
	if _, _, err := ParseKey(key); err != nil {
		return nil, 0, false, fmt.Errorf("dlq value: %w", err)
	}
	r, err := s.readBounded(ctx, key, max)
	if err != nil {
		return nil, 0, false, fmt.Errorf("dlq value %q: %w", key, err)
	}
	return r.value, r.size, r.found, nil
}

// bounded is a string value read with readBounded.
type bounded struct {
	found bool
	size  int
	// value is nil when size > max.
	value []byte
}

// ValueRead is one key's result of Values.
type ValueRead struct {
	Found bool
	Size  int
	// Value is nil when Size is over the limit.
	Value []byte
	// Err wraps actors.ErrWrongType for a key of another Redis type.
	Err error
}

// Values reads the keys' values as Value does, in one pipelined round
// trip: at most max bytes each (larger ones report only their size). The
// error is for the round trip; per-key problems are in ValueRead.Err.
func (s *Store) Values(ctx context.Context, keys []string, max int) ([]ValueRead, error) {
	if max < 1 {
		return nil, fmt.Errorf("dlq values: read limit %d below one byte", max)
	}
	for _, k := range keys {
		if _, _, err := ParseKey(k); err != nil {
			return nil, fmt.Errorf("dlq values: %w", err)
		}
	}
	cmds := make([]*redis.Cmd, len(keys))
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.Eval(ctx, boundedSource, []string{k}, max)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("dlq values: %w", err)
	}
	out := make([]ValueRead, len(keys))
	for i, c := range cmds {
		res, err := c.Slice()
		if err != nil {
			return nil, fmt.Errorf("dlq values %q: %w", keys[i], err)
		}
		b, err := parseBounded(res)
		out[i] = ValueRead{Found: b.found, Size: b.size, Value: b.value, Err: err}
	}
	return out, nil
}

// boundedScript reads a string of at most ARGV[1] bytes: {type} for a key
// of another type (or none), else {"string", size, value-or-false}. One
// round trip, atomic, and a large value never leaves Redis.
var boundedScript = redis.NewScript(boundedSource)

const boundedSource = `
local t = redis.call("TYPE", KEYS[1])["ok"]
if t ~= "string" then return {t} end
local n = redis.call("STRLEN", KEYS[1])
if n > tonumber(ARGV[1]) then return {t, n, false} end
return {t, n, redis.call("GET", KEYS[1])}`

func (s *Store) readBounded(ctx context.Context, key string, max int) (bounded, error) {
	if max < 1 {
		return bounded{}, fmt.Errorf("read limit %d below one byte", max)
	}
	res, err := boundedScript.Run(ctx, s.c, []string{key}, max).Slice()
	if err != nil {
		return bounded{}, err
	}
	return parseBounded(res)
}

func parseBounded(res []any) (bounded, error) {
	if len(res) == 0 {
		return bounded{}, fmt.Errorf("empty reply")
	}
	typ, _ := res[0].(string)
	switch {
	case typ == "none":
		return bounded{}, nil
	case typ != "string":
		return bounded{}, fmt.Errorf("%w (a %s)", actors.ErrWrongType, typ)
	case len(res) < 3:
		return bounded{}, fmt.Errorf("unexpected reply %v", res)
	}
	n, _ := res[1].(int64)
	b := bounded{found: true, size: int(n)}
	if v, ok := res[2].(string); ok {
		b.value = []byte(v)
	}
	return b, nil
}

// The lock scripts compare the holder's token before touching the lock, so
// a holder whose lease expired cannot release or extend a lease someone
// else has taken since.
var (
	unlockScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
	return redis.call("DEL", KEYS[1])
end
return 0`)
	refreshScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
	return redis.call("PEXPIRE", KEYS[1], ARGV[2])
end
return 0`)
)

// Lock takes the replay lock of the entry at key for ttl with SET NX PX and
// a random token (actors.DeadLetterAdmin); ok is false when another holder
// has it. It works across processes sharing the Redis.
func (s *Store) Lock(ctx context.Context, key string, ttl time.Duration) (string, bool, error) {
	if _, _, err := ParseKey(key); err != nil {
		return "", false, fmt.Errorf("dlq lock: %w", err)
	}
	if ttl < time.Millisecond {
		return "", false, fmt.Errorf("dlq lock %q: ttl %v is below a millisecond", key, ttl)
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", false, fmt.Errorf("dlq lock %q: token: %w", key, err)
	}
	token := hex.EncodeToString(b[:])
	ok, err := s.c.SetNX(ctx, LockKey(key), token, ttl).Result()
	if err != nil {
		return "", false, fmt.Errorf("dlq lock %q: %w", key, err)
	}
	if !ok {
		return "", false, nil
	}
	return token, true, nil
}

// Refresh extends the lock of key to ttl from now if token still holds it
// (actors.DeadLetterAdmin).
func (s *Store) Refresh(ctx context.Context, key, token string, ttl time.Duration) (bool, error) {
	n, err := refreshScript.Run(ctx, s.c, []string{LockKey(key)}, token, ttl.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("dlq refresh lock %q: %w", key, err)
	}
	return n == 1, nil
}

// Unlock releases the lock of key if token still holds it, with a
// compare-and-delete script (actors.DeadLetterAdmin).
func (s *Store) Unlock(ctx context.Context, key, token string) error {
	if err := unlockScript.Run(ctx, s.c, []string{LockKey(key)}, token).Err(); err != nil {
		return fmt.Errorf("dlq unlock %q: %w", key, err)
	}
	return nil
}

// Audit appends rec to the audit list as JSON and trims the list to
// AuditCap records, in one MULTI/EXEC (actors.DeadLetterAdmin).
func (s *Store) Audit(ctx context.Context, rec messages.AuditRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("dlq audit: %w", err)
	}
	_, err = s.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.LPush(ctx, AuditKey, b)
		p.LTrim(ctx, AuditKey, 0, AuditCap-1)
		return nil
	})
	if err != nil {
		return fmt.Errorf("dlq audit: %w", err)
	}
	return nil
}

// AuditLog returns the newest limit audit records (1 <= limit <=
// AuditCap), newest first, as the JSON they were stored as. Records that are
// not valid JSON (written by something else) are returned as JSON strings.
func (s *Store) AuditLog(ctx context.Context, limit int) ([]json.RawMessage, error) {
	if limit < 1 || limit > AuditCap {
		return nil, fmt.Errorf("dlq audit log: limit %d out of 1..%d", limit, AuditCap)
	}
	raw, err := s.c.LRange(ctx, AuditKey, 0, int64(limit-1)).Result()
	if err != nil {
		return nil, fmt.Errorf("dlq audit log: %w", err)
	}
	out := make([]json.RawMessage, 0, len(raw))
	for _, r := range raw {
		if json.Valid([]byte(r)) {
			out = append(out, json.RawMessage(r))
			continue
		}
		b, _ := json.Marshal(r)
		out = append(out, b)
	}
	return out, nil
}
