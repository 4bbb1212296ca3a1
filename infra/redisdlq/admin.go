package redisdlq

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
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

// Value returns the bytes stored at key, unchanged (actors.DeadLetterAdmin).
// found is false when the key holds no value. Keys ParseKey rejects return
// an error wrapping ErrInvalidKey, and Redis is not asked.
func (s *Store) Value(ctx context.Context, key string) ([]byte, bool, error) {
	if _, _, err := ParseKey(key); err != nil {
		return nil, false, fmt.Errorf("dlq value: %w", err)
	}
	v, err := s.c.Get(ctx, key).Bytes()
	switch {
	case errors.Is(err, redis.Nil):
		return nil, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("dlq value %q: %w", key, err)
	}
	return v, true, nil
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
