package chaos

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// redisServer is a redis-server the suite stops and starts. It runs with
// AOF and fsync on every write, as production does, so that DLQ entries
// survive a SIGKILL; testenv's servers run without persistence.
type redisServer struct {
	bin, dir, addr string
	port           int
	logPath        string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

func startRedis(dir string) (*redisServer, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("the chaos suite needs a real redis-server on PATH (Debian: apt-get install redis-server): %w", err)
	}
	s := &redisServer{bin: bin, dir: filepath.Join(dir, "redis"), logPath: filepath.Join(dir, "redis.log")}
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return nil, err
	}
	var last error
	for range 5 {
		if s.port, err = freePort(); err != nil {
			return nil, err
		}
		s.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
		if last = s.Start(); last == nil {
			return s, nil
		}
	}
	return nil, last
}

// Addr is the server's host:port, the same across restarts.
func (s *redisServer) Addr() string { return s.addr }

// Start runs the server on its port and waits until it answers PING (it
// has loaded its AOF by then). Starting a running server does nothing.
func (s *redisServer) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return nil
	}
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(s.bin,
		"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1", "--dir", s.dir,
		"--save", "", "--appendonly", "yes", "--appendfsync", "always",
		"--daemonize", "no", "--logfile", "")
	cmd.Stdout, cmd.Stderr = logf, logf
	killWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-done:
			return fmt.Errorf("redis-server on %s exited at start; see %s", s.addr, s.logPath)
		default:
		}
		if pingRedis(s.addr) == nil {
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			return fmt.Errorf("redis-server on %s not ready in 15s; see %s", s.addr, s.logPath)
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.cmd, s.done = cmd, done
	return nil
}

// Stop SIGKILLs the server (what an outage looks like; AOF with fsync
// always keeps every acknowledged write) and returns once it is gone.
func (s *redisServer) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill() // an error means it exited already
	<-s.done
	s.cmd, s.done = nil, nil
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
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
