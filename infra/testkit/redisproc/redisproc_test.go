package redisproc

import (
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func requireBinary(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath(Binary); err != nil {
		t.Skipf("%s not on PATH", Binary)
	}
}

func refuses(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return true
	}
	_ = c.Close()
	return false
}

// redisCmd sends one inline command and returns the first reply line.
func redisCmd(t *testing.T, addr, cmd string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte(cmd + "\r\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 256)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

func TestStopRestartKeepsAddressAndAOF(t *testing.T) {
	requireBinary(t)
	t.Parallel()
	s, err := Start(Options{Dir: t.TempDir(), AppendOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	addr := s.Addr()
	if got := redisCmd(t, addr, "SET k v"); !strings.HasPrefix(got, "+OK") {
		t.Fatalf("SET = %q", got)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if !refuses(addr) {
		t.Fatalf("%s accepts connections after Stop", addr)
	}
	if err := s.Stop(); err != nil { // idempotent
		t.Fatal(err)
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if s.Addr() != addr {
		t.Fatalf("address changed: %s -> %s", addr, s.Addr())
	}
	if got := redisCmd(t, addr, "GET k"); !strings.Contains(got, "v") {
		t.Fatalf("GET after SIGKILL with AOF = %q; want v", got)
	}
	if err := s.Restart(); err != nil { // idempotent
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if !refuses(addr) {
		t.Fatalf("%s accepts connections after Close", addr)
	}
	if err := s.Restart(); err == nil {
		t.Fatal("Restart after Close succeeded")
	}
}

func TestStartErrorQuotesLog(t *testing.T) {
	requireBinary(t)
	t.Parallel()
	// A data directory that does not exist makes redis-server exit at once.
	_, err := Start(Options{Dir: filepath.Join(t.TempDir(), "missing"), ReadyTimeout: 2 * time.Second})
	if err == nil {
		t.Fatal("Start succeeded with a missing data directory")
	}
	t.Log(err)
	if !strings.Contains(err.Error(), "its log:") {
		t.Fatalf("error = %v; want the server's log", err)
	}
}

func TestStartErrorNamesLogFile(t *testing.T) {
	requireBinary(t)
	t.Parallel()
	dir := t.TempDir()
	log := filepath.Join(dir, "redis.log")
	_, err := Start(Options{Dir: filepath.Join(dir, "missing"), LogFile: log, ReadyTimeout: 2 * time.Second})
	if err == nil || !strings.Contains(err.Error(), log) {
		t.Fatalf("error = %v; want it to name %s", err, log)
	}
}

func TestTailBufferKeepsTheEnd(t *testing.T) {
	var b tailBuffer
	for i := range 10 * logTail {
		_, _ = b.Write([]byte{byte('a' + i%26)})
	}
	got := b.String()
	if len(got) != logTail {
		t.Fatalf("len = %d; want %d", len(got), logTail)
	}
	if last := got[len(got)-1]; last != byte('a'+(10*logTail-1)%26) {
		t.Fatalf("last byte %q is not the last written", last)
	}
	if len(b.buf) > 4*logTail {
		t.Fatalf("buffer grew to %d bytes", len(b.buf))
	}
}
