package main_test

import (
	"bytes"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hobom/hobom-event-processor/infra/testkit/testenv"
)

// syncBuffer is an output buffer the test may read while the process
// still writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// proc is the processor binary running as a child process.
type proc struct {
	id     string
	cmd    *exec.Cmd
	out    *syncBuffer
	exited chan error
}

// startProc runs the binary with env added to the test's environment; the
// test's cleanup kills it if it still runs.
func startProc(t *testing.T, id string, env ...string) *proc {
	t.Helper()
	p := &proc{id: id, out: &syncBuffer{}, exited: make(chan error, 1)}
	p.cmd = exec.Command(binary)
	p.cmd.Env = testenv.ChildEnv(append([]string{"HOBOM_HTTP_ADDR=127.0.0.1:0", "HOBOM_INSTANCE_ID=" + id}, env...)...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGCONT) // a paused process cannot die
		_ = p.cmd.Process.Kill()
	})
	return p
}

// kill SIGKILLs the process and waits for it to be gone.
func (p *proc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.exited
}

// stop SIGTERMs the process and fails the test unless it exits cleanly.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.exited:
		if err != nil {
			t.Errorf("%s: %v\n%s", p.id, err, tail(p.out.String(), 3000))
		}
	case <-time.After(30 * time.Second):
		t.Errorf("%s did not stop after SIGTERM\n%s", p.id, tail(p.out.String(), 3000))
	}
}
