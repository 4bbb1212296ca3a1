// Package redislease gives each event type's poller a lease in Redis, so
// that of several processor instances only one polls a type at a time, and
// a fencing token that lets a deposed holder see that it must not mark.
package redislease

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
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
  -- Already ours (a restarted poller of this process): same tenure.
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

// Leases implements actors.Lease on Redis.
//
// Self-fencing: the backend cannot check a fencing token, so a holder
// fences itself. Each lease held has a local deadline on the monotonic
// clock: the start of its last successful acquisition or renewal plus the
// TTL minus a margin (FenceMargin). Redis expires the lease no sooner than
// TTL after the command ran, which is after that start, so while the local
// deadline has not passed no other instance can hold the lease. Valid
// answers from this deadline alone, without Redis: past it, or after a
// failed renewal outlived it, the tenure is not held.
type Leases struct {
	rdb redis.UniversalClient

	// total is the number of leases the instances share (event types).
	total int

	mu   sync.Mutex
	held map[string]tenure
}

// tenure is a lease this instance holds: its token and local deadline.
type tenure struct {
	token int64
	until time.Time // has a monotonic reading: immune to wall-clock steps
}

// FenceMargin is how long before the TTL's end, counted from the start of
// the last successful renewal, a holder stops publishing and marking: a
// fifth of the TTL (3 s of 15 s). It covers the drift between this host's
// clock rate and Redis's, and a write already past its check when the
// deadline passes.
func FenceMargin(ttl time.Duration) time.Duration { return ttl / 5 }

// New returns leases on rdb for total event types.
func New(rdb redis.UniversalClient, total int) *Leases {
	return &Leases{rdb: rdb, total: max(total, 1), held: make(map[string]tenure)}
}

// heldCount is how many leases this instance holds besides name.
func (l *Leases) heldCount(name string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.held[name]; ok {
		return len(l.held) - 1
	}
	return len(l.held)
}

func (l *Leases) setHeld(name string, t tenure, held bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if held {
		l.held[name] = t
	} else {
		delete(l.held, name)
	}
}

// Acquire takes the lease name for owner if it is free or already owner's,
// for ttl, and returns its new fencing token. ok is false when another
// owner holds it, or when it is free and owner already holds its share.
func (l *Leases) Acquire(ctx context.Context, name, owner string, ttl time.Duration) (token int64, ok bool, err error) {
	if strings.Contains(owner, "|") {
		return 0, false, fmt.Errorf("lease %s: owner %q contains '|'", name, owner)
	}
	start := time.Now()
	n, err := acquireScript.Run(ctx, l.rdb, []string{leasePrefix + name, fencePrefix + name, instancesKey},
		owner, ttl.Milliseconds(), l.heldCount(name), l.total).Int64()
	if err != nil {
		return 0, false, fmt.Errorf("lease %s: acquire: %w", name, err)
	}
	if n < 0 {
		return 0, false, nil
	}
	l.setHeld(name, tenure{token: n, until: start.Add(ttl - FenceMargin(ttl))}, true)
	return n, true, nil
}

// Renew extends owner's tenure token by ttl. It returns false when the
// lease was lost, or when owner holds more than its share and should give
// this one up (Release) so that another instance takes it.
func (l *Leases) Renew(ctx context.Context, name, owner string, token int64, ttl time.Duration) (bool, error) {
	start := time.Now()
	share, err := renewScript.Run(ctx, l.rdb, []string{leasePrefix + name, instancesKey},
		owner, ttl.Milliseconds(), token, l.total).Int64()
	if err != nil {
		return false, fmt.Errorf("lease %s: renew: %w", name, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if share == 0 || len(l.held) > int(share) {
		delete(l.held, name) // decided here, under the lock, so only one lease yields
		return false, nil
	}
	if t, ok := l.held[name]; ok && t.token == token {
		t.until = start.Add(ttl - FenceMargin(ttl))
		l.held[name] = t
	}
	return true, nil
}

// Release gives the lease up if owner holds it, so another instance takes
// over at once instead of after the TTL.
func (l *Leases) Release(ctx context.Context, name, owner string) error {
	l.setHeld(name, tenure{}, false)
	if err := releaseScript.Run(ctx, l.rdb, []string{leasePrefix + name}, owner).Err(); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("lease %s: release: %w", name, err)
	}
	return nil
}

// Valid reports whether token is this instance's current tenure of name
// and its local deadline has not passed: the fencing check made before
// every publish and every mark try. It asks no one (ctx is unused): a
// holder that cannot renew (Redis down) stops at its deadline.
func (l *Leases) Valid(_ context.Context, name string, token int64) (bool, error) {
	l.mu.Lock()
	t, ok := l.held[name]
	l.mu.Unlock()
	return ok && t.token == token && time.Now().Before(t.until), nil
}

// KeepAlive renews every lease this instance holds every ttl/3 until the
// returned stop is called, without giving any up for the fair share. The
// pollers renew their own leases while they run; a shutdown stops them
// first and then lets the publisher drain what they fetched, which can
// outlast the lease: KeepAlive keeps the tenures (and their local
// deadlines) current meanwhile, so the drain's marks are not fenced.
func (l *Leases) KeepAlive(owner string, ttl time.Duration) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			l.mu.Lock()
			held := make(map[string]int64, len(l.held))
			for name, tn := range l.held {
				held[name] = tn.token
			}
			l.mu.Unlock()
			for name, token := range held {
				ctx, cancel := context.WithTimeout(context.Background(), ttl/3)
				start := time.Now()
				share, err := renewScript.Run(ctx, l.rdb, []string{leasePrefix + name, instancesKey},
					owner, ttl.Milliseconds(), token, l.total).Int64()
				cancel()
				if err != nil {
					continue // the deadline stays where it is
				}
				l.mu.Lock()
				if tn, ok := l.held[name]; ok && tn.token == token {
					if share == 0 {
						delete(l.held, name)
					} else {
						tn.until = start.Add(ttl - FenceMargin(ttl))
						l.held[name] = tn
					}
				}
				l.mu.Unlock()
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(done) })
		<-finished
	}
}
