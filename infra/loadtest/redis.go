package loadtest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
)

// redisEnv is the Redis the DLQ uses: the one HOBOM_REDIS_ADDR names, else
// a redis-server started on a free loopback port, else miniredis in this
// process. The happy path of the load test writes no dead letters, so the
// kind of Redis hardly matters for the figures; it is reported anyway.
type redisEnv struct {
	Addr  string
	Kind  string // "external", "redis-server" or "miniredis"
	close func()
}

func startRedis(getenv func(string) string) (*redisEnv, error) {
	if addr := getenv("HOBOM_REDIS_ADDR"); addr != "" {
		return &redisEnv{Addr: addr, Kind: "external", close: func() {}}, nil
	}
	if bin, err := exec.LookPath("redis-server"); err == nil {
		var lastErr error
		for range 5 { // a free port may be taken before redis binds it
			r, err := startRedisServer(bin)
			if err == nil {
				return r, nil
			}
			lastErr = err
		}
		return nil, lastErr
	}
	m := miniredis.NewMiniRedis()
	if err := m.Start(); err != nil {
		return nil, fmt.Errorf("loadtest: start miniredis: %w", err)
	}
	return &redisEnv{Addr: m.Addr(), Kind: "miniredis", close: m.Close}, nil
}

func startRedisServer(bin string) (*redisEnv, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	dir, err := os.MkdirTemp("", "hobom-loadtest-redis-")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--save", "", "--appendonly", "no", "--daemonize", "no")
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("loadtest: exec %s: %w", bin, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	stop := func() {
		_ = cmd.Process.Kill()
		<-exited
		_ = os.RemoveAll(dir)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(10 * time.Second)
	for {
		if pingRedis(addr) == nil {
			return &redisEnv{Addr: addr, Kind: "redis-server", close: stop}, nil
		}
		select {
		case <-exited:
			stop()
			return nil, fmt.Errorf("loadtest: redis-server on %s exited at start", addr)
		default:
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("loadtest: redis-server on %s not ready", addr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func pingRedis(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}
