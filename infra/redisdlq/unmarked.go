package redisdlq

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hobom/hobom-event-processor/messages"
)

// UnmarkedPrefix keys the memory of published-but-unmarked events, outside
// the dlq: key space: "hobom:unmarked:<eventId>" = "<status>|<unix ms>|<reason>".
const UnmarkedPrefix = "hobom:unmarked:"

// UnmarkedTTL bounds how long an event is remembered. A PENDING event comes
// back with the next poll, minutes at most; a day covers a long outage of
// the backend's mark rpc and forgets ids the backend itself resolved.
const UnmarkedTTL = 24 * time.Hour

// Unmarked implements actors.UnmarkedStore on Redis.
type Unmarked struct{ c redis.UniversalClient }

// NewUnmarked returns the memory on c.
func NewUnmarked(c redis.UniversalClient) *Unmarked { return &Unmarked{c: c} }

// Remember stores u for eventID.
func (m *Unmarked) Remember(ctx context.Context, eventID string, u messages.Unmarked) error {
	v := u.Status + "|" + strconv.FormatInt(u.At.UnixMilli(), 10) + "|" + u.Reason
	if err := m.c.Set(ctx, UnmarkedPrefix+eventID, v, UnmarkedTTL).Err(); err != nil {
		return fmt.Errorf("remember unmarked %s: %w", eventID, err)
	}
	return nil
}

// Forget drops eventID.
func (m *Unmarked) Forget(ctx context.Context, eventID string) error {
	if err := m.c.Del(ctx, UnmarkedPrefix+eventID).Err(); err != nil {
		return fmt.Errorf("forget unmarked %s: %w", eventID, err)
	}
	return nil
}

// Load returns at most limit remembered events, scanning (never KEYS) and
// reading them in batches.
func (m *Unmarked) Load(ctx context.Context, limit int) (map[string]messages.Unmarked, error) {
	out := make(map[string]messages.Unmarked)
	var cursor uint64
	for {
		keys, next, err := m.c.Scan(ctx, cursor, UnmarkedPrefix+"*", 1000).Result()
		if err != nil {
			return out, fmt.Errorf("load unmarked: scan: %w", err)
		}
		if len(keys) > 0 {
			vals, err := m.c.MGet(ctx, keys...).Result()
			if err != nil && !errors.Is(err, redis.Nil) {
				return out, fmt.Errorf("load unmarked: mget: %w", err)
			}
			for i, v := range vals {
				s, ok := v.(string)
				if !ok {
					continue // expired between SCAN and MGET
				}
				if u, ok := parseUnmarked(s); ok {
					out[strings.TrimPrefix(keys[i], UnmarkedPrefix)] = u
				}
				if len(out) >= limit {
					return out, nil
				}
			}
		}
		if cursor = next; cursor == 0 {
			return out, nil
		}
	}
}

func parseUnmarked(s string) (messages.Unmarked, bool) {
	status, rest, ok := strings.Cut(s, "|")
	if !ok || (status != messages.StatusSent && status != messages.StatusFailed) {
		return messages.Unmarked{}, false
	}
	ms, reason, ok := strings.Cut(rest, "|")
	at, err := strconv.ParseInt(ms, 10, 64)
	if !ok || err != nil {
		return messages.Unmarked{}, false
	}
	return messages.Unmarked{Status: status, Reason: reason, At: time.UnixMilli(at)}, true
}
