// Package brokerproc runs a Kafka broker (kfake) as a separate process, so
// that tests and the fault-injection suite can make Kafka fail as it fails
// in production: SIGKILL (the port refuses connections, requests in flight
// never get an answer), SIGSTOP (connections accepted, nothing answered),
// and a restart on the same port with empty state (topics come back with
// new topic IDs). Closing an in-process kfake cluster is a gentler fault:
// it closes the connections cleanly.
//
// The broker is the small main in ./kfakebroker, built with the go tool
// (Build); it is never linked into the processor.
package brokerproc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// mainPackage is the import path of the broker's main package.
const mainPackage = "github.com/hobom/hobom-event-processor/infra/testkit/brokerproc/kfakebroker"

// Build compiles the broker into dir and returns the binary's path. It runs
// `go build`, so it needs the go tool and the module's sources (tests and
// `make chaos` have both); the build cache makes a rebuild take a moment.
func Build(ctx context.Context, dir string) (string, error) {
	// `go test` puts its own GOROOT/bin first on PATH, so the go tool of
	// the running toolchain is found there.
	gotool, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("brokerproc: the go tool is not on PATH: %w", err)
	}
	bin := filepath.Join(dir, "kfakebroker")
	cmd := exec.CommandContext(ctx, gotool, "build", "-o", bin, mainPackage)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("brokerproc: go build %s: %w\n%s", mainPackage, err, out)
	}
	return bin, nil
}

// Options describe the broker.
type Options struct {
	// Port on 127.0.0.1; 0 picks a free one. Restarts keep the port.
	Port int
	// Brokers in the cluster (1 when 0); the ones after the first get free
	// ports of their own, kept across restarts too.
	Brokers int
	// Seed of the broker's fault draws (Command produce-error/hold).
	Seed uint64
	// Topics are created at every start, with Partitions partitions (3);
	// a topic auto-created by a producer gets Partitions too.
	Topics     []string
	Partitions int
	// Stderr receives the broker's own output (nil: discarded).
	Stderr io.Writer
}

// Broker is a running (or killed) broker process.
type Broker struct {
	bin   string
	opts  Options
	addr  string
	ports []int

	mu      sync.Mutex
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	answers chan string
	exited  chan struct{}
	waitErr error // the current process's exit, valid once exited is closed
	starts  int

	cmdMu sync.Mutex // one Command at a time
}

// Start starts the broker binary bin and waits until it listens.
func Start(bin string, opts Options) (*Broker, error) {
	if opts.Partitions <= 0 {
		opts.Partitions = 3
	}
	if opts.Port == 0 {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		opts.Port = port
	}
	b := &Broker{bin: bin, opts: opts, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(opts.Port)), ports: []int{opts.Port}}
	for len(b.ports) < max(1, opts.Brokers) {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		b.ports = append(b.ports, port)
	}
	if err := b.start(); err != nil {
		return nil, err
	}
	return b, nil
}

// Addr is the (first) broker's host:port; it stays the same across restarts.
func (b *Broker) Addr() string { return b.addr }

// Addrs are every broker's host:port, the first being Addr; they stay the
// same across restarts.
func (b *Broker) Addrs() []string {
	out := make([]string, len(b.ports))
	for i, p := range b.ports {
		out[i] = net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
	}
	return out
}

// Command sends one fault command to the running broker and waits for its
// answer (see kfakebroker's control.go: produce-error, produce-hold,
// down/up, remove/add, clear). A paused or killed broker answers nothing:
// Command then fails after timeout.
func (b *Broker) Command(line string, timeout time.Duration) error {
	b.cmdMu.Lock()
	defer b.cmdMu.Unlock()
	b.mu.Lock()
	stdin, answers := b.stdin, b.answers
	b.mu.Unlock()
	if stdin == nil {
		return errors.New("brokerproc: not running")
	}
	for drained := false; !drained; { // answers of commands that timed out
		select {
		case _, ok := <-answers:
			drained = !ok
		default:
			drained = true
		}
	}
	if _, err := io.WriteString(stdin, line+"\n"); err != nil {
		return fmt.Errorf("brokerproc: command %q: %w", line, err)
	}
	select {
	case a, ok := <-answers:
		if !ok {
			return fmt.Errorf("brokerproc: command %q: the broker exited", line)
		}
		if a != "ok" {
			return fmt.Errorf("brokerproc: command %q: %s", line, a)
		}
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("brokerproc: command %q: no answer within %v", line, timeout)
	}
}

// Starts counts the processes started so far (1 after Start).
func (b *Broker) Starts() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.starts
}

func (b *Broker) start() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd != nil {
		return errors.New("brokerproc: already running")
	}
	// The port may stay busy for a moment after a kill; retry the bind.
	var last error
	for try := 0; try < 50; try++ {
		if try > 0 {
			time.Sleep(100 * time.Millisecond)
		}
		ports := make([]string, len(b.ports))
		for i, p := range b.ports {
			ports[i] = strconv.Itoa(p)
		}
		cmd := exec.Command(b.bin, "-ports", strings.Join(ports, ","), "-seed", strconv.FormatUint(b.opts.Seed+uint64(b.starts), 10),
			"-topics", strings.Join(b.opts.Topics, ","), "-partitions", strconv.Itoa(b.opts.Partitions))
		cmd.Stderr = b.opts.Stderr
		setDeathSignal(cmd)
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return fmt.Errorf("brokerproc: %w", err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return fmt.Errorf("brokerproc: %w", err)
		}
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("brokerproc: start %s: %w", b.bin, err)
		}
		rd := bufio.NewReader(stdout)
		line, err := rd.ReadString('\n')
		if err == nil && strings.HasPrefix(line, "listening ") {
			exited := make(chan struct{})
			answers := make(chan string, 16)
			go func() {
				for {
					a, err := rd.ReadString('\n')
					if err != nil {
						break
					}
					select {
					case answers <- strings.TrimSpace(a):
					default: // nobody waits (a Command that timed out): dropped
					}
				}
				close(answers)
				err := cmd.Wait()
				b.mu.Lock()
				if b.cmd == cmd {
					b.waitErr = err
				}
				b.mu.Unlock()
				close(exited)
			}()
			b.cmd, b.stdin, b.answers, b.exited, b.waitErr = cmd, stdin, answers, exited, nil
			b.starts++
			return nil
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		last = fmt.Errorf("brokerproc: broker on port %d did not start (%q, %v)", b.opts.Port, line, err)
	}
	return last
}

// Kill sends SIGKILL and waits until the process is gone: the port refuses
// connections from then on, and a paused broker dies without answering the
// requests it holds. Killing a killed broker does nothing.
func (b *Broker) Kill() {
	b.mu.Lock()
	cmd, exited := b.cmd, b.exited
	b.cmd, b.stdin = nil, nil
	b.mu.Unlock()
	if cmd == nil {
		return
	}
	// No SIGCONT first: a paused broker dies without answering anything.
	_ = cmd.Process.Kill()
	<-exited
}

// Exited returns a channel closed when the process running now exits, and
// that process's start number (Starts). It is nil when none runs.
func (b *Broker) Exited() (<-chan struct{}, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd == nil {
		return nil, b.starts
	}
	return b.exited, b.starts
}

// Reap tells whether the process of start number start died by itself
// (not through Kill or Restart): a crash. It then forgets that process, so
// that Running reports false and Restart starts a new one, and returns how
// it exited.
func (b *Broker) Reap(start int) (crashed bool, exit error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd == nil || b.starts != start {
		return false, nil // killed on purpose, or another process runs now
	}
	select {
	case <-b.exited:
	default:
		return false, nil // still running
	}
	exit = b.waitErr
	if exit == nil {
		exit = errors.New("exited with status 0")
	}
	b.cmd, b.stdin = nil, nil
	return true, exit
}

// Restart starts a fresh broker on the same port, after killing the
// running one if any: every topic and record is gone, and the seeded
// topics get new IDs.
func (b *Broker) Restart() error {
	b.Kill()
	return b.start()
}

// Pause stops the process (SIGSTOP): connections are accepted by the
// kernel and nothing answers. Resume continues it.
func (b *Broker) Pause() error { return b.signal(syscall.SIGSTOP) }

// Resume continues a paused broker (SIGCONT).
func (b *Broker) Resume() error { return b.signal(syscall.SIGCONT) }

func (b *Broker) signal(sig syscall.Signal) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd == nil {
		return errors.New("brokerproc: not running")
	}
	return b.cmd.Process.Signal(sig)
}

// Running reports whether a broker process is up (it may be paused).
func (b *Broker) Running() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cmd != nil
}

// PID is the running process's id (0 when none runs).
func (b *Broker) PID() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd == nil {
		return 0
	}
	return b.cmd.Process.Pid
}

// Close kills the broker.
func (b *Broker) Close() { b.Kill() }

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("brokerproc: free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
