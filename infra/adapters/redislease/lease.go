// Package redislease keeps the per-event-type leases in Redis, so that of
// several processor instances only one polls a type at a time, each tenure
// with a fencing token; and every instance's heartbeat. The lease actor
// (actors/lease.go) decides what to hold and fences itself; this package
// only runs the scripts.
package redislease

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Key prefixes, outside the dlq: key space.
const (
	leasePrefix  = "hobom:lease:"
	fencePrefix  = "hobom:lease-fence:"
	instancesKey = "hobom:lease-instances"
)

// The lease value is "<owner>|<token>". Each acquisition takes a new token
// from a counter that only grows, so a token names one tenure. Every call
// also keeps the owner in a sorted set of live instances (score: expiry),
// whose size gives each instance its fair share of the leases: an instance
// at its share leaves a free lease to another, and one above it gives a
// lease up on renewal, so event types spread across instances.
var (
	acquireScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
local share = math.ceil(tonumber(ARGV[4]) / redis.call('ZCARD', KEYS[3]))
local cur = redis.call('GET', KEYS[1])
if cur and string.sub(cur, 1, string.len(ARGV[1]) + 1) ~= ARGV[1] .. '|' then
  return -1
end
if cur then
  -- Already ours (a restarted lease actor of this process): same tenure.
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return tonumber(string.sub(cur, string.len(ARGV[1]) + 2))
end
if tonumber(ARGV[3]) >= share then
  return -2
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. token, 'PX', ARGV[2])
return token`)
	renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] .. '|' .. ARGV[3] then
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return math.ceil(tonumber(ARGV[4]) / redis.call('ZCARD', KEYS[2]))`)
	releaseScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur and string.sub(cur, 1, string.len(ARGV[1]) + 1) == ARGV[1] .. '|' then
  return redis.call('DEL', KEYS[1])
end
return 0`)
)

// Leases implements actors.Lease on Redis. It keeps no state of its own:
// which leases this instance holds, their tokens and their local deadlines
// are the lease actor's (actors/lease.go), which passes what the scripts
// need (how many leases it holds) with every call.
type Leases struct {
	rdb redis.UniversalClient
	// total is the number of leases the instances share (event types).
	total int
}

// New returns leases on rdb for total event types.
func New(rdb redis.UniversalClient, total int) *Leases {
	return &Leases{rdb: rdb, total: max(total, 1)}
}

// Acquire takes the lease name for owner if it is free and owner holds
// fewer than its share (held: the leases owner holds besides name), or
// keeps it if it is owner's already, for ttl, and returns the fencing
// token of the tenure. ok is false when another owner holds it, or when it
// is free and owner is at its share.
func (l *Leases) Acquire(ctx context.Context, name, owner string, ttl time.Duration, held int) (token int64, ok bool, err error) {
	if strings.Contains(owner, "|") {
		return 0, false, fmt.Errorf("lease %s: owner %q contains '|'", name, owner)
	}
	n, err := acquireScript.Run(ctx, l.rdb, []string{leasePrefix + name, fencePrefix + name, instancesKey},
		owner, ttl.Milliseconds(), held, l.total).Int64()
	if err != nil {
		return 0, false, fmt.Errorf("lease %s: acquire: %w", name, err)
	}
	if n < 0 {
		return 0, false, nil
	}
	return n, true, nil
}

// Renew extends owner's tenure token by ttl and returns owner's fair share
// of the leases given the live instances; 0 when the tenure is lost.
func (l *Leases) Renew(ctx context.Context, name, owner string, token int64, ttl time.Duration) (share int, err error) {
	n, err := renewScript.Run(ctx, l.rdb, []string{leasePrefix + name, instancesKey},
		owner, ttl.Milliseconds(), token, l.total).Int64()
	if err != nil {
		return 0, fmt.Errorf("lease %s: renew: %w", name, err)
	}
	return int(n), nil
}

// Release gives the lease up if owner holds it, so another instance takes
// over at once instead of after the TTL.
func (l *Leases) Release(ctx context.Context, name, owner string) error {
	if err := releaseScript.Run(ctx, l.rdb, []string{leasePrefix + name}, owner).Err(); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("lease %s: release: %w", name, err)
	}
	return nil
}
