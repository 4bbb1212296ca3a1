package testenv

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestRedisStopStartSamePort(t *testing.T) {
	t.Parallel()
	srv := Redis(t)
	t.Logf("real redis-server: %v, addr %s", srv.Real(), srv.Addr())
	c := srv.Client(t)
	ctx := context.Background()

	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET before stop: %v", err)
	}

	addr := srv.Addr()
	srv.Stop()
	if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		conn.Close()
		t.Fatalf("%s still accepts connections after Stop", addr)
	}
	pctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if err := c.Ping(pctx).Err(); err == nil {
		t.Fatal("PING succeeded while the server is stopped")
	}
	srv.Stop() // idempotent

	srv.Start()
	if srv.Addr() != addr {
		t.Fatalf("address changed across restart: %s -> %s", addr, srv.Addr())
	}
	// The client's pooled connections died with the server; it must
	// reconnect on its own.
	err := waitUntil(10*time.Second, 20*time.Millisecond, func() (bool, error) {
		err := c.Set(ctx, "k2", "v2", 0).Err()
		return err == nil, err
	})
	if err != nil {
		t.Fatalf("client did not reconnect after restart: %v", err)
	}
	if got, err := c.Get(ctx, "k2").Result(); err != nil || got != "v2" {
		t.Fatalf("GET after restart = %q, %v; want v2", got, err)
	}
	srv.Start() // idempotent
}

func TestRedisIsolatedServers(t *testing.T) {
	t.Parallel()
	a, b := Redis(t), Redis(t)
	if a.Addr() == b.Addr() {
		t.Fatalf("two servers share %s", a.Addr())
	}
	ctx := context.Background()
	if err := a.Client(t).Set(ctx, "only-a", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := b.Client(t).Exists(ctx, "only-a").Result(); err != nil || n != 0 {
		t.Fatalf("EXISTS on the other server = %d, %v; want 0", n, err)
	}
}

func TestRedisFallsBackToMiniredis(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // no redis-server here
	t.Setenv(RequireRedisEnv, "")
	srv := Redis(t)
	if srv.Real() {
		t.Fatal("Real() = true without a redis-server binary")
	}
	c := srv.Client(t)
	ctx := context.Background()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	addr := srv.Addr()
	srv.Stop()
	if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		conn.Close()
		t.Fatalf("%s still accepts connections after Stop", addr)
	}
	srv.Start()
	err := waitUntil(10*time.Second, 20*time.Millisecond, func() (bool, error) {
		err := c.Ping(ctx).Err()
		return err == nil, err
	})
	if err != nil {
		t.Fatalf("client did not reconnect to miniredis: %v", err)
	}
}

// fatalRecorder is a testing.TB whose Fatal ends only the calling goroutine
// and keeps the message, to test that Redis fails when it must.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Helper() {}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestRedisRequiredFailsWithoutBinary(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv(RequireRedisEnv, "1")
	rec := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Redis(rec)
		rec.msg = "<Redis returned>"
	}()
	<-done
	if !strings.Contains(rec.msg, "apt-get install -y redis-server") || !strings.Contains(rec.msg, RequireRedisEnv) {
		t.Fatalf("fatal message = %q; want install instructions and %s", rec.msg, RequireRedisEnv)
	}
}
