package testenv

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// RequireRedisEnv names the environment variable that forbids the miniredis
// fallback: when it is "1", a missing redis-server binary fails the test. CI
// sets it so that a broken image cannot silently weaken the tests.
const RequireRedisEnv = "HOBOM_TEST_REQUIRE_REDIS"

const (
	redisBinary = "redis-server"
	// redisReadyTimeout bounds how long a starting server may take to answer
	// PING. A loaded CI machine with -race can be slow; a healthy start takes
	// a few milliseconds.
	redisReadyTimeout = 15 * time.Second
	redisPollInterval = 10 * time.Millisecond
	// redisStartAttempts is how many free ports the first start tries: the
	// port found free may be taken by another process before redis binds it.
	redisStartAttempts = 5
)

// RedisServer is a Redis server private to one test: a real redis-server
// process when the binary is installed, otherwise miniredis. It can be
// stopped and started again on the same address to test reconnects.
type RedisServer struct {
	t    testing.TB
	addr string
	port int
	dir  string
	bin  string // path of redis-server; empty when using miniredis

	mu      sync.Mutex
	proc    *redisProc           // running real server, nil when stopped
	mini    *miniredis.Miniredis // non-nil when falling back to miniredis
	running bool
}

// redisProc is one run of redis-server.
type redisProc struct {
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{} // closed when the process has exited
	err  error         // Wait's result, valid after done
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

	s := &RedisServer{t: t, bin: bin, dir: t.TempDir()}
	var lastErr error
	for range redisStartAttempts {
		port, err := freePort()
		if err != nil {
			t.Fatalf("testenv: start redis: %v", err)
		}
		s.port = port
		s.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if lastErr = s.start(); lastErr == nil {
			t.Cleanup(s.Stop)
			return s
		}
	}
	t.Fatalf("testenv: start redis-server (%d attempts): %v", redisStartAttempts, lastErr)
	return nil
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
	if _, portStr, err := net.SplitHostPort(s.addr); err == nil {
		s.port, _ = strconv.Atoi(portStr)
	}
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
	if !s.running {
		return
	}
	s.running = false
	if s.mini != nil {
		s.mini.Close()
	} else {
		p := s.proc
		s.proc = nil
		// SIGKILL: a test simulating an outage wants the abrupt kind, and
		// there is nothing to persist.
		if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			s.t.Errorf("testenv: kill redis-server on %s: %v", s.addr, err)
		}
		<-p.done
	}
	err := waitUntil(redisReadyTimeout, redisPollInterval, func() (bool, error) {
		c, err := net.DialTimeout("tcp", s.addr, time.Second)
		if err != nil {
			return true, nil
		}
		_ = c.Close()
		return false, fmt.Errorf("%s still accepts connections", s.addr)
	})
	if err != nil {
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
	if s.running {
		return
	}
	if s.mini != nil {
		if err := s.mini.Restart(); err != nil {
			s.t.Fatalf("testenv: restart miniredis on %s: %v", s.addr, err)
		}
		s.running = true
		return
	}
	if err := s.start(); err != nil {
		s.t.Fatalf("testenv: restart redis-server on %s: %v", s.addr, err)
	}
}

// start runs redis-server on s.port and waits until it answers PING. The
// caller holds s.mu (or is the constructor, before s is shared).
func (s *RedisServer) start() error {
	cmd := exec.Command(s.bin,
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--dir", s.dir,
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "no",
		"--logfile", "", // log to stdout, which we keep for error messages
	)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	killWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("exec %s: %w", s.bin, err)
	}
	p := &redisProc{cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()

	err := waitUntil(redisReadyTimeout, redisPollInterval, func() (bool, error) {
		select {
		case <-p.done:
			return false, fmt.Errorf("redis-server exited early (%v)", p.err)
		default:
		}
		if err := pingRedis(s.addr); err != nil {
			return false, err
		}
		return true, nil
	})
	if err != nil {
		_ = cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("redis-server on %s not ready: %w; its log:\n%s", s.addr, err, out.tail(2048))
	}
	s.proc, s.running = p, true
	return nil
}

// pingRedis sends a raw RESP PING, without go-redis, so that readiness does
// not depend on client pool state or retries.
func pingRedis(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(time.Second)); err != nil {
		return fmt.Errorf("set deadline: %w", err)
	}
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return fmt.Errorf("write PING: %w", err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return fmt.Errorf("read PING reply: %w", err)
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}

// lockedBuffer collects a child's output; exec writes it from its own
// goroutine while the test may read it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// tail returns at most the last n bytes written.
func (b *lockedBuffer) tail(n int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	data := b.buf.Bytes()
	if len(data) > n {
		data = data[len(data)-n:]
	}
	return string(data)
}
