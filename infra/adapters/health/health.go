// Package health answers GET /ready: a checker probes the processor's
// dependencies (backend, Kafka, Redis) in the background, each with a short
// timeout, and the handler serves the cached result, so a burst of probes
// from an orchestrator never becomes a burst of calls to the dependencies.
package health

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Probe checks one dependency; Check must respect ctx's deadline.
type Probe struct {
	Name  string
	Check func(ctx context.Context) error
}

// Options tune a Checker.
type Options struct {
	// Interval between two rounds of probes; Timeout bounds each probe.
	Interval time.Duration
	Timeout  time.Duration
	// MaxAge is how long a success counts: a dependency whose last good
	// answer is older is down even if no probe has failed since (the
	// prober is stuck). 0 means 3*Interval.
	MaxAge time.Duration
	// OnResult, when set, is called after every probe (metrics).
	OnResult func(name string, up bool)
	// OnChange, when set, is called when a probe finds a dependency up
	// after it was down, or down after it was up (or unchecked), with the
	// probe's error: the place for the details /ready shows only to
	// callers with the API key.
	OnChange func(name string, up bool, err string)
	// Warnings, when set, lists conditions /ready shows (to every caller)
	// without turning it unavailable: the processor works, but an
	// operator must act (another instance running with leases off).
	Warnings func() []string
	// Now replaces time.Now (tests).
	Now func() time.Time
}

// Checker probes dependencies and keeps their state. Its methods are safe
// for concurrent use.
type Checker struct {
	opts   Options
	probes []Probe

	mu    sync.Mutex
	state map[string]*depState

	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

// depState is what is known about one dependency.
type depState struct {
	checked  bool
	reported bool      // OnChange was called once
	wasUp    bool      // as of the last probe
	at       time.Time // end of the last probe
	lastOK   time.Time
	err      string
	took     time.Duration
	obsAt    time.Time // last passive observation
	obsErr   string    // its error, "" for a success
	failures int       // probes failed in a row
}

// Check is one dependency's state as /ready reports it.
type Check struct {
	Up        bool       `json:"up"`
	Error     string     `json:"error,omitempty"`
	CheckedAt *time.Time `json:"checkedAt,omitempty"`
	LastOKAt  *time.Time `json:"lastOkAt,omitempty"`
	LatencyMS float64    `json:"latencyMs"`
	Failures  int        `json:"consecutiveFailures,omitempty"`
}

// Report is the body of /ready.
type Report struct {
	Status string           `json:"status"` // "ready" or "unavailable"
	Down   []string         `json:"down"`
	Checks map[string]Check `json:"checks"`
	// Warnings are conditions an operator must fix that do not stop the
	// processor from working (Options.Warnings).
	Warnings []string `json:"warnings,omitempty"`
}

// Start probes every dependency at once and then every Interval, until
// Stop.
func Start(opts Options, probes ...Probe) *Checker {
	if opts.Interval <= 0 {
		opts.Interval = 5 * time.Second
	}
	if opts.Timeout <= 0 || opts.Timeout > opts.Interval {
		opts.Timeout = min(2*time.Second, opts.Interval)
	}
	if opts.MaxAge <= 0 {
		opts.MaxAge = 3 * opts.Interval
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	c := &Checker{
		opts: opts, probes: probes, state: map[string]*depState{},
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	for _, p := range probes {
		c.state[p.Name] = &depState{}
	}
	go c.run()
	return c
}

// Stop ends the probing and waits for a round in progress.
func (c *Checker) Stop() {
	c.stopOnce.Do(func() { close(c.stop) })
	<-c.done
}

func (c *Checker) run() {
	defer close(c.done)
	t := time.NewTicker(c.opts.Interval)
	defer t.Stop()
	for {
		c.CheckNow()
		select {
		case <-t.C:
		case <-c.stop:
			return
		}
	}
}

// CheckNow runs every probe once, in parallel, and waits for them.
func (c *Checker) CheckNow() {
	var wg sync.WaitGroup
	for _, p := range c.probes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), c.opts.Timeout)
			defer cancel()
			start := c.opts.Now()
			err := safeCheck(ctx, p.Check)
			c.record(p.Name, start, err)
		}()
	}
	wg.Wait()
}

// safeCheck runs a probe, giving up when ctx ends even if the probe does
// not, and turns a panic into an error: a broken probe must neither stall
// the checker nor take the process down.
func safeCheck(ctx context.Context, check func(context.Context) error) error {
	done := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Errorf("probe panicked: %v", r)
			}
		}()
		done <- check(ctx)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("no answer in time: %w", ctx.Err())
	}
}

func (c *Checker) record(name string, start time.Time, err error) {
	now := c.opts.Now()
	c.mu.Lock()
	s := c.state[name]
	s.checked, s.at, s.took = true, now, now.Sub(start)
	if err != nil {
		s.err = err.Error()
		s.failures++
	} else {
		s.err, s.lastOK, s.failures = "", now, 0
	}
	up := c.upLocked(s, now)
	changed := !s.reported || up != s.wasUp
	s.reported, s.wasUp = true, up
	detail := s.err
	if detail == "" {
		detail = s.obsErr
	}
	c.mu.Unlock()
	if c.opts.OnResult != nil {
		c.opts.OnResult(name, up)
	}
	if c.opts.OnChange != nil && changed {
		c.opts.OnChange(name, up, detail)
	}
}

// Observe records an answer of a dependency seen outside the probes (a
// poll's find, say): while a failed observation is recent (MaxAge) and not
// followed by a successful one, the dependency is down even if its probe
// succeeds, since the probe may check less than real use does.
func (c *Checker) Observe(name string, err error) {
	now := c.opts.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.state[name]
	if s == nil {
		return
	}
	s.obsAt, s.obsErr = now, ""
	if err != nil {
		s.obsErr = err.Error()
	}
}

// upLocked decides whether a dependency is up; c.mu is held.
func (c *Checker) upLocked(s *depState, now time.Time) bool {
	if !s.checked || s.err != "" || now.Sub(s.lastOK) > c.opts.MaxAge {
		return false
	}
	return s.obsErr == "" || now.Sub(s.obsAt) > c.opts.MaxAge
}

// Report is the current state of every dependency.
func (c *Checker) Report() Report {
	now := c.opts.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	r := Report{Status: "ready", Down: []string{}, Checks: make(map[string]Check, len(c.state))}
	for name, s := range c.state {
		ch := Check{Up: c.upLocked(s, now), Error: s.err, LatencyMS: float64(s.took.Microseconds()) / 1000, Failures: s.failures}
		switch {
		case !s.checked:
			ch.Error = "not checked yet"
		case s.err == "" && now.Sub(s.lastOK) > c.opts.MaxAge:
			ch.Error = "no answer recently"
		case s.err == "" && !ch.Up:
			ch.Error = s.obsErr
		}
		if s.checked {
			at := s.at
			ch.CheckedAt = &at
		}
		if !s.lastOK.IsZero() {
			ok := s.lastOK
			ch.LastOKAt = &ok
		}
		r.Checks[name] = ch
		if !ch.Up {
			r.Down = append(r.Down, name)
		}
	}
	slices.Sort(r.Down)
	if len(r.Down) > 0 {
		r.Status = "unavailable"
	}
	if c.opts.Warnings != nil {
		r.Warnings = c.opts.Warnings()
	}
	return r
}

// Ready reports whether every dependency is up.
func (c *Checker) Ready() bool { return c.Report().Status == "ready" }

// Summary is the body of /ready for callers without the API key: up or
// down per dependency, no error text (it may name addresses and sockets).
type Summary struct {
	Status   string              `json:"status"`
	Down     []string            `json:"down"`
	Checks   map[string]UpOrDown `json:"checks"`
	Warnings []string            `json:"warnings,omitempty"`
}

// UpOrDown is one dependency in a Summary.
type UpOrDown struct {
	Up bool `json:"up"`
}

// Summary is the current state without details.
func (r Report) Summary() Summary {
	s := Summary{Status: r.Status, Down: r.Down, Checks: make(map[string]UpOrDown, len(r.Checks)), Warnings: r.Warnings}
	for name, ch := range r.Checks {
		s.Checks[name] = UpOrDown{Up: ch.Up}
	}
	return s
}

// ServeHTTP answers /ready with the full report (see Handler).
func (c *Checker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.Handler(func(*http.Request) bool { return true }).ServeHTTP(w, r)
}

// Handler answers /ready: 200 when every dependency answered recently,
// else 503 naming the ones down. Callers for whom detailed is true get the
// Report (errors, latencies, times); the others the Summary.
func (c *Checker) Handler(detailed func(*http.Request) bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		c.serve(w, detailed(req))
	})
}

func (c *Checker) serve(w http.ResponseWriter, detailed bool) {
	r := c.Report()
	code := http.StatusOK
	if r.Status != "ready" {
		code = http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	if detailed {
		_ = json.NewEncoder(w).Encode(r)
		return
	}
	_ = json.NewEncoder(w).Encode(r.Summary())
}
