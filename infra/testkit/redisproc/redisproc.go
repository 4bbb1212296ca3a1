// Package redisproc runs a private redis-server process on a loopback port
// for the test harness, the chaos suite and the load test. A Server can be
// killed and started again on the same address, which is how those callers
// simulate a Redis outage.
package redisproc

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	// Binary is the program Start runs when Options.Bin is empty.
	Binary = "redis-server"
	// DefaultReadyTimeout bounds how long a starting server may take to
	// answer PING. A loaded CI machine with -race can be slow; a healthy
	// start takes a few milliseconds.
	DefaultReadyTimeout = 15 * time.Second
	pollInterval        = 10 * time.Millisecond
	// startAttempts is how many free ports Start tries when Options.Port is
	// 0: the port found free may be taken by another process before redis
	// binds it.
	startAttempts = 5
	// logTail is how much of the server's output a start error quotes when
	// Options.LogFile is empty.
	logTail = 2048
)

// Options configure Start.
type Options struct {
	// Bin is the path of redis-server; empty looks Binary up on PATH.
	Bin string
	// Dir is the server's working directory (--dir), where the AOF goes.
	// It must exist.
	Dir string
	// AppendOnly turns on the AOF with fsync on every write, so that every
	// acknowledged write survives a SIGKILL. Off, the server persists
	// nothing.
	AppendOnly bool
	// Port is the loopback port to listen on; 0 picks a free one (and tries
	// another when that is taken before the server binds it).
	Port int
	// LogFile, if set, receives the server's output (appended, across
	// restarts) and start errors name it. Empty keeps the last bytes in
	// memory and start errors quote them.
	LogFile string
	// ReadyTimeout bounds each wait for PING after a start, and for the
	// port to refuse connections after Stop; 0 means DefaultReadyTimeout.
	ReadyTimeout time.Duration
}

// Server is one redis-server, running or stopped, on a fixed address.
type Server struct {
	opts Options
	addr string

	mu     sync.Mutex
	proc   *proc // running server, nil when stopped
	closed bool
}

// proc is one run of redis-server.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // Wait's result, valid after done
}

// Start runs redis-server as opts say and returns once it answers PING.
func Start(opts Options) (*Server, error) {
	if opts.Bin == "" {
		bin, err := exec.LookPath(Binary)
		if err != nil {
			return nil, err
		}
		opts.Bin = bin
	}
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = DefaultReadyTimeout
	}
	s := &Server{opts: opts}
	if opts.Port != 0 {
		s.addr = loopback(opts.Port)
		if err := s.start(); err != nil {
			return nil, err
		}
		return s, nil
	}
	var last error
	for range startAttempts {
		port, err := FreePort()
		if err != nil {
			return nil, err
		}
		s.opts.Port, s.addr = port, loopback(port)
		if last = s.start(); last == nil {
			return s, nil
		}
	}
	return nil, fmt.Errorf("start %s (%d attempts): %w", Binary, startAttempts, last)
}

func loopback(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// Addr is the server's host:port. It stays the same across Stop and Restart.
func (s *Server) Addr() string { return s.addr }

// Stop SIGKILLs the server and returns once its port refuses connections,
// so a caller can exercise "Redis is down" without racing the shutdown.
// SIGKILL because that is what an outage looks like; with AppendOnly every
// acknowledged write survives it. Stopping a stopped server does nothing.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stop()
}

func (s *Server) stop() error {
	p := s.proc
	if p == nil {
		return nil
	}
	s.proc = nil
	var errs []error
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		errs = append(errs, fmt.Errorf("kill %s on %s: %w", Binary, s.addr, err))
	}
	<-p.done
	if err := WaitRefused(s.addr, s.opts.ReadyTimeout); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// WaitRefused returns once addr refuses TCP connections, or an error after
// timeout. A server's port can outlive its process briefly; callers wait
// with it so that "the server is down" holds when they go on.
func WaitRefused(addr string, timeout time.Duration) error {
	return waitUntil(timeout, func() (bool, error) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return true, nil
		}
		_ = c.Close()
		return false, fmt.Errorf("%s still accepts connections", addr)
	})
}

// Restart starts a stopped server again on the same address and returns
// once it answers PING (with AppendOnly, it has loaded its AOF by then).
// Restarting a running server does nothing.
func (s *Server) Restart() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("restart %s on %s: server closed", Binary, s.addr)
	}
	if s.proc != nil {
		return nil
	}
	return s.start()
}

// Close stops the server for good: a later Restart fails.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return s.stop()
}

// start runs redis-server on s.addr and waits until it answers PING. The
// caller holds s.mu (or is Start, before s is shared).
func (s *Server) start() error {
	appendOnly := []string{"--appendonly", "no"}
	if s.opts.AppendOnly {
		appendOnly = []string{"--appendonly", "yes", "--appendfsync", "always"}
	}
	args := append([]string{
		"--port", strconv.Itoa(s.opts.Port),
		"--bind", "127.0.0.1",
		"--dir", s.opts.Dir,
		"--save", "",
	}, appendOnly...)
	args = append(args,
		"--daemonize", "no",
		"--logfile", "", // log to stdout, which we keep for error messages
	)
	cmd := exec.Command(s.opts.Bin, args...)

	var out io.Writer
	var tail *tailBuffer
	if s.opts.LogFile != "" {
		f, err := os.OpenFile(s.opts.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		// The child has its own copy of the descriptor once started.
		defer f.Close()
		out = f
	} else {
		tail = &tailBuffer{}
		out = tail
	}
	cmd.Stdout, cmd.Stderr = out, out
	killWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("exec %s: %w", s.opts.Bin, err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()

	var exited error
	err := waitUntil(s.opts.ReadyTimeout, func() (bool, error) {
		select {
		case <-p.done:
			// No point waiting out the timeout: it will not answer now.
			exited = fmt.Errorf("%s exited early (%v)", Binary, p.err)
			return true, nil
		default:
		}
		if err := ping(s.addr); err != nil {
			return false, err
		}
		return true, nil
	})
	if err == nil {
		err = exited
	}
	if err != nil {
		_ = cmd.Process.Kill()
		<-p.done
		if tail != nil {
			return fmt.Errorf("%s on %s not ready: %w; its log:\n%s", Binary, s.addr, err, tail.String())
		}
		return fmt.Errorf("%s on %s not ready: %w; see %s", Binary, s.addr, err, s.opts.LogFile)
	}
	s.proc = p
	return nil
}

// ping sends a raw RESP PING, without go-redis, so that readiness does not
// depend on client pool state or retries.
func ping(addr string) error {
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

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago. The
// port is released before returning, so another process may take it first:
// a server started on it should retry with a new port when the bind fails.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find free loopback port: %w", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if err := ln.Close(); err != nil {
		return 0, fmt.Errorf("release free loopback port %d: %w", port, err)
	}
	return port, nil
}

// waitUntil polls cond until it returns true or timeout passes; it returns
// the last error cond reported when time runs out.
func waitUntil(timeout time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = errors.New("condition still false")
			}
			return fmt.Errorf("after %v: %w", timeout, err)
		}
		time.Sleep(pollInterval)
	}
}

// tailBuffer keeps the last logTail or more bytes of a child's output; exec
// writes it from its own goroutine while a start error may read it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > 4*logTail {
		// Drop the head so a long-running server's log does not grow
		// without bound.
		n := copy(b.buf, b.buf[len(b.buf)-logTail:])
		b.buf = b.buf[:n]
	}
	return len(p), nil
}

// String returns at most the last logTail bytes written.
func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	data := b.buf
	if len(data) > logTail {
		data = data[len(data)-logTail:]
	}
	return string(data)
}
