package loadtest

import (
	"errors"
	"fmt"
	"io"
	"net/rpc"
	"os"
	"os/exec"
	"os/signal"
	"runtime/pprof"
	"time"
)

// WorldChildArg, as the only argument of the load test binary, makes it
// serve a localWorld on stdin/stdout instead of running the load test
// (cmd/loadtest checks for it first).
const WorldChildArg = "--internal-world-child"

// worldProfileEnv names the file the world child writes its CPU profile to
// (Options.WorldCPUProfile); the child reads it from its environment.
const worldProfileEnv = "LOADTEST_WORLD_CPUPROFILE"

// WorldService exposes a localWorld over net/rpc.
type WorldService struct{ w *localWorld }

// Empty is the argument or reply of calls that have none.
type Empty struct{}

func (s *WorldService) Info(_ Empty, out *WorldInfo) (err error) { *out, err = s.w.Info(); return err }

func (s *WorldService) NewBackend(spec BackendSpec, addr *string) (err error) {
	*addr, err = s.w.NewBackend(spec)
	return err
}

func (s *WorldService) Seed(spec SeedSpec, _ *Empty) error { return s.w.Seed(spec) }

func (s *WorldService) Count(spec CountSpec, n *int) (err error) {
	*n, err = s.w.Count(spec)
	return err
}

func (s *WorldService) Progress(spec CountSpec, out *Progress) (err error) {
	*out, err = s.w.Progress(spec)
	return err
}

func (s *WorldService) Calls(_ Empty, out *Calls) (err error) { *out, err = s.w.Calls(); return err }

func (s *WorldService) StartLatency(spec LatencySpec, _ *Empty) error { return s.w.StartLatency(spec) }

func (s *WorldService) LatencyResult(wait time.Duration, out *LatencyResult) (err error) {
	*out, err = s.w.LatencyResult(wait)
	return err
}

func (s *WorldService) Usage(_ Empty, out *ProcUsage) (err error) {
	*out, err = s.w.Usage()
	return err
}

// ServeWorldChild runs the world of a parent load test on stdin/stdout
// until the parent closes stdin; it returns the exit status.
func ServeWorldChild() (status int) {
	// Ctrl-C reaches the whole process group; the parent stops on it and
	// closes stdin, and the child ends then, its profile written.
	signal.Ignore(os.Interrupt)
	if file := os.Getenv(worldProfileEnv); file != "" {
		f, err := os.Create(file)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, err)
			_ = f.Close()
			return 1
		}
		defer func() {
			pprof.StopCPUProfile()
			if err := f.Close(); err != nil {
				fmt.Fprintln(os.Stderr, err)
				status = 1
			}
		}()
	}
	w, err := newLocalWorld()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer w.Close()
	srv := rpc.NewServer()
	if err := srv.Register(&WorldService{w: w}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	srv.ServeConn(stdio{})
	return 0
}

type stdio struct{}

func (stdio) Read(p []byte) (int, error)  { return os.Stdin.Read(p) }
func (stdio) Write(p []byte) (int, error) { return os.Stdout.Write(p) }
func (stdio) Close() error                { return os.Stdin.Close() }

// remoteWorld is a world in a child process.
type remoteWorld struct {
	cmd    *exec.Cmd
	client *rpc.Client
	stdin  io.Closer
	done   chan error
}

// StartChildWorld runs exe (the load test binary itself) as the world; a
// non-empty cpuProfile is the file the child writes its CPU profile to.
func StartChildWorld(exe, cpuProfile string) (World, error) {
	cmd := exec.Command(exe, WorldChildArg)
	if cpuProfile != "" {
		cmd.Env = append(os.Environ(), worldProfileEnv+"="+cpuProfile)
	}
	cmd.Stderr = os.Stderr
	dieWithParent(cmd)
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("loadtest: start world process: %w", err)
	}
	w := &remoteWorld{cmd: cmd, stdin: in, done: make(chan error, 1)}
	w.client = rpc.NewClient(pipe{out, in})
	go func() { w.done <- cmd.Wait() }()
	if _, err := w.Info(); err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("loadtest: world process: %w", err)
	}
	return w, nil
}

type pipe struct {
	io.Reader
	io.WriteCloser
}

func (w *remoteWorld) call(method string, args, reply any) error {
	return w.client.Call("WorldService."+method, args, reply)
}

func (w *remoteWorld) Info() (i WorldInfo, err error) { err = w.call("Info", Empty{}, &i); return }

func (w *remoteWorld) NewBackend(spec BackendSpec) (addr string, err error) {
	err = w.call("NewBackend", spec, &addr)
	return
}

func (w *remoteWorld) Seed(spec SeedSpec) error { return w.call("Seed", spec, &Empty{}) }

func (w *remoteWorld) Count(spec CountSpec) (n int, err error) {
	err = w.call("Count", spec, &n)
	return
}

func (w *remoteWorld) Progress(spec CountSpec) (p Progress, err error) {
	err = w.call("Progress", spec, &p)
	return
}

func (w *remoteWorld) Calls() (c Calls, err error) { err = w.call("Calls", Empty{}, &c); return }

func (w *remoteWorld) StartLatency(spec LatencySpec) error {
	return w.call("StartLatency", spec, &Empty{})
}

func (w *remoteWorld) LatencyResult(wait time.Duration) (r LatencyResult, err error) {
	err = w.call("LatencyResult", wait, &r)
	return
}

func (w *remoteWorld) Usage() (u ProcUsage, err error) { err = w.call("Usage", Empty{}, &u); return }

// Close ends the child: closing its stdin ends ServeConn, and the child
// closes the backend and kfake on its way out.
func (w *remoteWorld) Close() error {
	_ = w.client.Close()
	select {
	case err := <-w.done:
		return exitErr(err)
	case <-time.After(10 * time.Second):
		_ = w.cmd.Process.Kill()
		<-w.done
		return errors.New("loadtest: world process did not exit; killed")
	}
}

func exitErr(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("loadtest: world process: %w", err)
}
