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
	"github.com/hobom/hobom-event-processor/messages"
)

// UnmarkedPrefix keys the memory of published-but-unmarked events, outside
// the dlq: key space: one hash per UTC day, "hobom:unmarked-day:2026-11-30",
// field the eventId, value "<status>|<unix ms>|<reason>". A hash per day
// rather than a key per event: remembering, looking up or forgetting the
// events of a whole Kafka ack or poll is then one command each, which keeps
// the memory's cost small beside the mark rpc every event needs.
const UnmarkedPrefix = "hobom:unmarked-day:"

// UnmarkedTTL is how long a day's hash lives after its last write, so an
// event is remembered for at least a day (it is looked up in today's and
// yesterday's hashes). A PENDING event comes back with the next poll,
// minutes at most; a day covers a long outage of the backend's mark rpc and
// forgets ids the backend itself resolved.
const UnmarkedTTL = 48 * time.Hour

// fieldsPerCommand bounds the fields of one HSET, HDEL or HMGET, so that a
// large group does not make one long-running command that blocks Redis.
const fieldsPerCommand = 1000

// Unmarked implements actors.UnmarkedStore on Redis.
type Unmarked struct {
	c   redis.UniversalClient
	now func() time.Time
}

// NewUnmarked returns the memory on c.
func NewUnmarked(c redis.UniversalClient) *Unmarked { return &Unmarked{c: c, now: time.Now} }

// days returns the keys of today's and yesterday's hashes (UTC).
func (m *Unmarked) days() (today, yesterday string) {
	now := m.now().UTC()
	return UnmarkedPrefix + now.Format(time.DateOnly), UnmarkedPrefix + now.AddDate(0, 0, -1).Format(time.DateOnly)
}

// Write applies ops in order in one pipelined round trip: a Remember op
// sets its ids in today's hash, a Forget op deletes them from today's and
// yesterday's. An id remembered and forgotten in the same call ends up
// forgotten.
func (m *Unmarked) Write(ctx context.Context, ops []actors.UnmarkedOp) error {
	today, yesterday := m.days()
	pipe := m.c.Pipeline()
	remembered := false
	for _, op := range ops {
		for lo := 0; lo < len(op.EventIDs); lo += fieldsPerCommand {
			ids := op.EventIDs[lo:min(lo+fieldsPerCommand, len(op.EventIDs))]
			if op.Forget {
				fields := boxFields(ids)
				_ = pipe.Process(ctx, redis.NewIntCmd(ctx, keyArgs("hdel", today, fields)...))
				_ = pipe.Process(ctx, redis.NewIntCmd(ctx, keyArgs("hdel", yesterday, fields)...))
				continue
			}
			var v any = formatUnmarked(op.Unmarked) // boxed once for all ids
			args := make([]any, 0, 2+2*len(ids))
			args = append(args, "hset", today)
			for _, id := range ids {
				args = append(args, id, v)
			}
			pipe.Do(ctx, args...)
			remembered = true
		}
	}
	if pipe.Len() == 0 {
		return nil
	}
	if remembered {
		pipe.Expire(ctx, today, UnmarkedTTL)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("write unmarked memory (%d commands): %w", pipe.Len(), err)
	}
	return nil
}

// Lookup returns the remembered entries among ids, reading today's and
// yesterday's hashes in one round trip; ids that are not remembered are
// absent from the map.
func (m *Unmarked) Lookup(ctx context.Context, ids []string) (map[string]messages.Unmarked, error) {
	out := make(map[string]messages.Unmarked)
	if len(ids) == 0 {
		return out, nil
	}
	today, yesterday := m.days()
	pipe := m.c.Pipeline()
	type read struct {
		ids []string
		cmd *redis.SliceCmd
	}
	var reads []read
	for lo := 0; lo < len(ids); lo += fieldsPerCommand {
		part := ids[lo:min(lo+fieldsPerCommand, len(ids))]
		fields := boxFields(part)
		for _, key := range []string{yesterday, today} { // today's entries win
			cmd := redis.NewSliceCmd(ctx, keyArgs("hmget", key, fields)...)
			_ = pipe.Process(ctx, cmd)
			reads = append(reads, read{ids: part, cmd: cmd})
		}
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return out, fmt.Errorf("look up unmarked memory (%d ids): %w", len(ids), err)
	}
	for _, r := range reads {
		for i, v := range r.cmd.Val() {
			if s, ok := v.(string); ok {
				if u, ok := parseUnmarked(s); ok {
					out[r.ids[i]] = u
				}
			}
		}
	}
	return out, nil
}

// boxFields returns ids as command arguments. Boxing a string allocates:
// the commands on today's and yesterday's hash share one boxing of their
// fields (keyArgs) instead of boxing them each, as HDel and HMGet do.
func boxFields(ids []string) []any {
	fields := make([]any, len(ids))
	for i, id := range ids {
		fields[i] = id
	}
	return fields
}

// keyArgs returns the arguments of command cmd on key with fields.
func keyArgs(cmd, key string, fields []any) []any {
	args := make([]any, 0, 2+len(fields))
	args = append(args, cmd, key)
	return append(args, fields...)
}

func formatUnmarked(u messages.Unmarked) string {
	return u.Status + "|" + strconv.FormatInt(u.At.UnixMilli(), 10) + "|" + u.Reason
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
