package chaos

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/rs/zerolog"

	"github.com/hobom/hobom-event-processor/infra/app"
	"github.com/hobom/hobom-event-processor/infra/config"
)

// processor is one running instance of the processor, in this process or
// in a child process.
type processor interface {
	Kind() ProcKind
	Name() string
	// HTTPBase is the management API's root, http://host:port.
	HTTPBase() string
	// Stop shuts down gracefully (SIGTERM for a subprocess) and waits at
	// most wait. clean is false when the shutdown reported an error (the
	// shutdown timeout passed with events in flight); an error means it
	// did not end in time: a hang.
	Stop(wait time.Duration) (clean bool, err error)
	// Kill SIGKILLs a subprocess.
	Kill() error
	// Panic makes one actor of an in-process instance panic.
	Panic(kind Kind, route string) error
	// Crashes are the child crashes the instance logged, by time.
	Crashes() []crash
	LogPath() string
}

type crash struct {
	at       time.Time
	child    string // publisher, dlq, poller:MESSAGE, ...
	reason   string
	injected bool
}

// procEnv is the processor's configuration, as environment variables, for
// both kinds of instance: test-sized timings, the world's addresses.
func procEnv(w *world, name string, httpPort int) map[string]string {
	return map[string]string{
		"HOBOM_GRPC_ADDR":           w.backend.Addr(),
		"HOBOM_KAFKA_BROKER":        strings.Join(w.kafka.addrs, ","),
		"HOBOM_REDIS_ADDR":          w.redis.Addr(),
		"HOBOM_HTTP_ADDR":           net.JoinHostPort("127.0.0.1", strconv.Itoa(httpPort)),
		"HOBOM_POLL_INTERVAL":       "100ms",
		"HOBOM_POLL_MAX_BACKOFF":    "1s",
		"HOBOM_FIND_LIMIT":          "500",
		"HOBOM_KAFKA_WRITE_TIMEOUT": writeTimeout.String(),
		"HOBOM_PUBLISH_ATTEMPTS":    strconv.Itoa(publishAttempts),
		"HOBOM_PUBLISH_BACKOFF":     publishBackoff.String(),
		"HOBOM_GRPC_TIMEOUT":        "2s",
		"HOBOM_SHUTDOWN_TIMEOUT":    shutdownTimeout.String(),
		"HOBOM_INSTANCE_ID":         name,
		"HOBOM_LEASE_TTL":           leaseTTL.String(),
		"HOBOM_LOG_LEVEL":           "info",
		"HOBOM_LOG_FORMAT":          "json",
		"HOBOM_INTERNAL_API_OPEN":   "true", // on loopback; the suite replays without a key
	}
}

// leaseTTL is the instances' HOBOM_LEASE_TTL: leases are on, as by default,
// with a test-sized TTL so that a takeover (after a SIGKILL or a pause past
// the lease) happens within the short schedule.
const leaseTTL = 3 * time.Second

// shutdownTimeout is the processor's HOBOM_SHUTDOWN_TIMEOUT; a stop that
// takes stopGrace longer than it is a hang.
const (
	shutdownTimeout = 20 * time.Second
	stopGrace       = 15 * time.Second
)

// --- in-process -------------------------------------------------------------

// nanoTimes makes in-process instances log times to the nanosecond, as the
// binary does (app's logger): the suite orders lease acquisitions, panics
// and records by them, and zerolog's default keeps whole seconds. It is
// set once, before the first instance logs (zerolog reads it unguarded).
var nanoTimes sync.Once

type inProc struct {
	name    string
	app     *app.App
	cancel  context.CancelFunc
	done    chan error
	logf    *os.File
	logPath string
	pan     *panicker
}

func startInProc(w *world, name string, httpPort int, pan *panicker) (*inProc, error) {
	env := procEnv(w, name, httpPort)
	cfg, err := config.Load(flag.NewFlagSet(name, flag.ContinueOnError), nil, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	p := &inProc{name: name, logPath: filepath.Join(w.dir, name+".log"), pan: pan, done: make(chan error, 1)}
	if p.logf, err = os.Create(p.logPath); err != nil {
		return nil, err
	}
	nanoTimes.Do(func() { zerolog.TimeFieldFormat = time.RFC3339Nano })
	log := zerolog.New(p.logf).Level(cfg.LogLevel).With().Timestamp().Str("instance", name).Logger()
	p.app, err = app.New(cfg, log, app.Options{ChildMiddleware: []actor.MiddlewareFunc{pan.middleware}})
	if err != nil {
		p.logf.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go func() { p.done <- p.app.Run(ctx) }()
	return p, nil
}

func (p *inProc) Kind() ProcKind   { return InProcess }
func (p *inProc) Name() string     { return p.name }
func (p *inProc) HTTPBase() string { return "http://" + p.app.HTTPAddr() }
func (p *inProc) LogPath() string  { return p.logPath }
func (p *inProc) Kill() error      { return errors.New("an in-process instance cannot be SIGKILLed") }
func (p *inProc) Crashes() []crash { return crashesIn(p.logPath) }

func (p *inProc) Stop(wait time.Duration) (bool, error) {
	p.cancel()
	select {
	case err := <-p.done:
		p.logf.Close()
		return err == nil, nil
	case <-time.After(wait):
		return false, fmt.Errorf("%s: no shutdown within %v", p.name, wait)
	}
}

func (p *inProc) Panic(kind Kind, route string) error {
	tree := p.app.Tree()
	var pid *actor.PID
	switch kind {
	case PanicPoller:
		pid = tree.Poller(route)
	case PanicPublisher:
		pid = tree.Publisher()
	case PanicDLQ:
		pid = tree.DLQ()
	default:
		return fmt.Errorf("no actor for %s", kind)
	}
	p.pan.arm(pid.ID)
	// An idle actor (the DLQ actor while nothing fails) may get no message
	// for a while: nudge it, so the panic happens now.
	engine := p.app.Engine()
	time.AfterFunc(300*time.Millisecond, func() { engine.Send(pid, nudge{}) })
	return nil
}

// nudge is sent to an armed actor; the panicker consumes it.
type nudge struct{}

// panicker is the ChildMiddleware of in-process instances: an armed actor
// panics in the next message it handles, in the middle of its real work
// (the publisher with records in flight, the DLQ actor with writes
// pending). hollywood applies middleware per message, so its state lives
// here, by PID.
type panicker struct {
	mu    sync.Mutex
	armed map[string]bool
	fired atomic.Int64
}

func newPanicker() *panicker { return &panicker{armed: map[string]bool{}} }

func (pk *panicker) arm(pid string) {
	pk.mu.Lock()
	pk.armed[pid] = true
	pk.mu.Unlock()
}

func (pk *panicker) disarm() {
	pk.mu.Lock()
	clear(pk.armed)
	pk.mu.Unlock()
}

func (pk *panicker) middleware(next actor.ReceiveFunc) actor.ReceiveFunc {
	return func(c *actor.Context) {
		switch c.Message().(type) {
		case actor.Initialized, actor.Started, actor.Stopped:
			next(c)
			return
		}
		id := c.PID().ID
		pk.mu.Lock()
		fire := pk.armed[id]
		delete(pk.armed, id)
		pk.mu.Unlock()
		if fire {
			pk.fired.Add(1)
			panic(fmt.Sprintf("chaos: injected panic in %s handling %T", id, c.Message()))
		}
		if _, ok := c.Message().(nudge); ok {
			return // it fired already
		}
		next(c)
	}
}

// --- subprocess -------------------------------------------------------------

type subProc struct {
	name       string
	panicEvery int
	cmd        *exec.Cmd
	base       string
	logPath    string
	exited     chan struct{}
	err        error // Wait's, valid after exited
}

func startSubProc(w *world, name string, httpPort int, binary string, panicEvery int) (*subProc, error) {
	env := procEnv(w, name, httpPort)
	if panicEvery > 0 {
		env[app.FaultPanicEveryEnv] = strconv.Itoa(panicEvery)
	}
	p := &subProc{name: name, panicEvery: panicEvery, logPath: filepath.Join(w.dir, name+".log"), exited: make(chan struct{}), base: "http://" + env["HOBOM_HTTP_ADDR"]}
	logf, err := os.Create(p.logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	p.cmd = exec.Command(binary)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HOBOM_") {
			p.cmd.Env = append(p.cmd.Env, kv)
		}
	}
	for k, v := range env {
		p.cmd.Env = append(p.cmd.Env, k+"="+v)
	}
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	killWithParent(p.cmd)
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", binary, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	// Up once the API answers: the tree is started by then.
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-p.exited:
			return nil, fmt.Errorf("%s exited at start (%v); see %s", name, p.err, p.logPath)
		default:
		}
		if resp, err := http.Get(p.base + "/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		if time.Now().After(deadline) {
			_ = p.cmd.Process.Kill()
			<-p.exited
			return nil, fmt.Errorf("%s not healthy within 20s; see %s", name, p.logPath)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *subProc) Kind() ProcKind   { return Subprocess }
func (p *subProc) Name() string     { return p.name }
func (p *subProc) HTTPBase() string { return p.base }
func (p *subProc) LogPath() string  { return p.logPath }
func (p *subProc) Crashes() []crash { return crashesIn(p.logPath) }
func (p *subProc) Panic(Kind, string) error {
	return errors.New("a subprocess's panics come from HOBOM_FAULT_PANIC_EVERY")
}

func (p *subProc) Stop(wait time.Duration) (bool, error) {
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return false, err
	}
	select {
	case <-p.exited:
		return p.err == nil, nil
	case <-time.After(wait):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return false, fmt.Errorf("%s: no exit within %v of SIGTERM (killed); see %s", p.name, wait, p.logPath)
	}
}

// Pause freezes the process (SIGSTOP): its leases run out while it holds
// batches. Resume continues it (SIGCONT); a process killed meanwhile is
// left alone.
func (p *subProc) Pause() error { return p.cmd.Process.Signal(syscall.SIGSTOP) }

func (p *subProc) Resume() error {
	select {
	case <-p.exited:
		return nil
	default:
	}
	return p.cmd.Process.Signal(syscall.SIGCONT)
}

func (p *subProc) Kill() error {
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	<-p.exited
	return nil
}

// leaseAcquisition is a "lease acquired" line of an instance's log.
type leaseAcquisition struct {
	at        time.Time
	eventType string
	instance  string
}

// leasesIn reads the pollers' lease acquisitions from a JSON log.
func leasesIn(path, instance string) []leaseAcquisition {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []leaseAcquisition
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !strings.Contains(string(line), `"lease acquired`) {
			continue
		}
		var l struct {
			Time      time.Time `json:"time"`
			EventType string    `json:"eventType"`
			Message   string    `json:"message"`
		}
		if json.Unmarshal(line, &l) == nil && strings.HasPrefix(l.Message, "lease acquired") {
			out = append(out, leaseAcquisition{at: l.Time, eventType: l.EventType, instance: instance})
		}
	}
	return out
}

// crashesIn reads the supervisor's "child crashed" lines from a JSON log.
func crashesIn(path string) []crash {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []crash
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !strings.Contains(string(line), `"child crashed"`) {
			continue
		}
		var l struct {
			Time    time.Time `json:"time"`
			Child   string    `json:"child"`
			Reason  string    `json:"reason"`
			Message string    `json:"message"`
		}
		if json.Unmarshal(line, &l) == nil && l.Message == "child crashed" {
			out = append(out, crash{at: l.Time, child: l.Child, reason: l.Reason, injected: strings.Contains(l.Reason, "injected panic")})
		}
	}
	return out
}
