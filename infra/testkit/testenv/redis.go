package testenv

import (
	"os"
	"os/exec"
	"sync"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/hobom/hobom-event-processor/infra/testkit/redisproc"
)

// RequireRedisEnv names the environment variable that forbids the miniredis
// fallback: when it is "1", a missing redis-server binary fails the test. CI
// sets it so that a broken image cannot silently weaken the tests.
const RequireRedisEnv = "HOBOM_TEST_REQUIRE_REDIS"

const (
	redisBinary = redisproc.Binary
	// redisReadyTimeout bounds how long miniredis's port may take to refuse
	// connections after Stop; redisproc waits as long for the real server.
	redisReadyTimeout = redisproc.DefaultReadyTimeout
)

// RedisServer is a Redis server private to one test: a real redis-server
// process when the binary is installed, otherwise miniredis. It can be
// stopped and started again on the same address to test reconnects.
type RedisServer struct {
	t    testing.TB
	addr string

	mu      sync.Mutex
	proc    *redisproc.Server    // non-nil when running a real server
	mini    *miniredis.Miniredis // non-nil when falling back to miniredis
	running bool                 // miniredis only; proc tracks its own
}

// Redis starts a Redis server for t on a free loopback port and stops it
// when t ends. It runs the real redis-server (no persistence, data dir in
// t.TempDir()) because the DLQ relies on exact Redis semantics such as
// MULTI/EXEC, SCAN and TTLs. Without the binary it falls back to miniredis and
// says so in the test log, unless HOBOM_TEST_REQUIRE_REDIS=1.
func Redis(t testing.TB) *RedisServer {
	t.Helper()
	bin, err := exec.LookPath(redisBinary)
	if err != nil {
		if os.Getenv(RequireRedisEnv) == "1" {
			t.Fatalf("testenv: %s not found on PATH and %s=1 forbids the miniredis fallback; "+
				"install it (Debian/Ubuntu: apt-get update && apt-get install -y redis-server) "+
				"or unset %s", redisBinary, RequireRedisEnv, RequireRedisEnv)
		}
		return startMiniredis(t)
	}

	// Port 0: redisproc picks a free port and retries with another when it
	// is taken before redis binds it.
	proc, err := redisproc.Start(redisproc.Options{Bin: bin, Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	s := &RedisServer{t: t, addr: proc.Addr(), proc: proc}
	t.Cleanup(s.Stop)
	return s
}

func startMiniredis(t testing.TB) *RedisServer {
	t.Helper()
	t.Logf("testenv: %s not found on PATH: falling back to miniredis (an in-process emulation); "+
		"install redis-server to test against real Redis, or set %s=1 to make this an error",
		redisBinary, RequireRedisEnv)
	m := miniredis.NewMiniRedis()
	if err := m.Start(); err != nil {
		t.Fatalf("testenv: start miniredis: %v", err)
	}
	s := &RedisServer{t: t, addr: m.Addr(), mini: m, running: true}
	t.Cleanup(s.Stop)
	return s
}

// Addr is the server's host:port. It stays the same across Stop and Start.
func (s *RedisServer) Addr() string { return s.addr }

// Real reports whether this is a real redis-server rather than miniredis.
func (s *RedisServer) Real() bool { return s.mini == nil }

// Client returns a go-redis client for the server, closed when t ends.
func (s *RedisServer) Client(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.addr})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Stop kills the server and returns once its port refuses connections, so a
// test can exercise "Redis is down" without racing the shutdown. Stopping a
// stopped server does nothing.
func (s *RedisServer) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mini == nil {
		// SIGKILL: a test simulating an outage wants the abrupt kind, and
		// there is nothing to persist.
		if err := s.proc.Stop(); err != nil {
			s.t.Errorf("testenv: stop redis: %v", err)
		}
		return
	}
	if !s.running {
		return
	}
	s.running = false
	s.mini.Close()
	if err := redisproc.WaitRefused(s.addr, redisReadyTimeout); err != nil {
		s.t.Errorf("testenv: stop redis: %v", err)
	}
}

// Start starts a stopped server again on the same address and returns once
// it answers PING. Data may be lost across the restart (the real server runs
// without persistence). Starting a running server does nothing. It fails
// the test on error, so call it from the test goroutine.
func (s *RedisServer) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mini == nil {
		if err := s.proc.Restart(); err != nil {
			s.t.Fatalf("testenv: restart redis-server on %s: %v", s.addr, err)
		}
		return
	}
	if s.running {
		return
	}
	if err := s.mini.Restart(); err != nil {
		s.t.Fatalf("testenv: restart miniredis on %s: %v", s.addr, err)
	}
	s.running = true
}
