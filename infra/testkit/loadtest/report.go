package loadtest

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Machine is where the run happened.
type Machine struct {
	CPUs       int    `json:"cpus"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	CPUModel   string `json:"cpuModel"`
	Memory     string `json:"memory"`
	GoVersion  string `json:"goVersion"`
	OS         string `json:"os"`
}

// Row is one line of the table: a figure of a scenario, optionally
// against its ceiling and a target.
type Row struct {
	Scenario  string  `json:"scenario"`
	Figure    string  `json:"figure"`
	Value     float64 `json:"value,omitempty"`
	Unit      string  `json:"unit,omitempty"`
	Text      string  `json:"text,omitempty"` // the value as shown, when not Value+Unit
	VsCeiling string  `json:"vsCeiling,omitempty"`
	Target    string  `json:"target,omitempty"`
	Pass      *bool   `json:"pass,omitempty"`
	Detail    string  `json:"detail,omitempty"`
}

func (r *Row) setPass(ok bool) { r.Pass = &ok }

func (r Row) value() string {
	if r.Text != "" {
		return r.Text
	}
	switch r.Unit {
	case "ev/s":
		return count(int(r.Value+0.5)) + " ev/s"
	case "ms":
		return strconv.FormatFloat(r.Value, 'f', 1, 64) + " ms"
	case "cores":
		return strconv.FormatFloat(r.Value, 'f', 3, 64) + " cores"
	}
	return strconv.FormatFloat(r.Value, 'f', -1, 64) + " " + r.Unit
}

// Report is the load test's result.
type Report struct {
	Machine   Machine        `json:"machine"`
	Setup     map[string]any `json:"setup"`
	Rows      []Row          `json:"rows"`
	Failures  []string       `json:"failures,omitempty"`
	Passed    bool           `json:"passed"`
	Took      time.Duration  `json:"tookNs"`
	Scenarios map[string]any `json:"scenarios"`
}

func newReport(o Options) *Report {
	return &Report{Machine: machine(), Passed: true, Scenarios: map[string]any{}, Setup: map[string]any{
		"scenarios": o.Scenarios, "events": o.Events, "sweepInFlight": o.SweepInFlight, "sweepConns": o.SweepConns, "sweepWarmup": o.SweepWarmup.String(), "sweepWindow": o.SweepWindow.String(),
		"shortPollInterval": o.PollInterval.String(), "latencyRate": o.LatencyRate, "latencyDuration": o.LatencyDuration.String(), "latencyInterval": o.LatencyInterval.String(),
		"batchEvents": o.BatchEvents, "budgetTypes": o.BudgetTypes, "budgetPerType": o.BudgetPerType, "budgetWindow": o.BudgetWindow.String(),
		"eventTypes": o.EventTypes, "pollerEvents": o.PollerEvents, "idleWindow": o.IdleWindow.String(),
		"drainEvents": o.DrainEvents, "oldBackendEvents": o.OldBackendEvents, "inProcessWorld": o.InProcess,
	}}
}

func (rep *Report) setEnv(r *runner) {
	rep.Setup["redis"] = r.redis.Kind
	rep.Setup["pollInterval"] = r.cfg.PollInterval.String()
	rep.Setup["findLimit"] = r.cfg.FindLimit
	rep.Setup["markConcurrency"] = r.cfg.MarkConcurrency
	rep.Setup["kafkaAcks"] = r.cfg.KafkaAcks
}

func (rep *Report) add(r Row) {
	if r.Pass != nil && !*r.Pass {
		rep.Passed = false
	}
	rep.Rows = append(rep.Rows, r)
}

func (rep *Report) raw(key string, v any) { rep.Scenarios[key] = v }

func (rep *Report) fail(scenario string, err error) {
	rep.Passed = false
	rep.Failures = append(rep.Failures, scenario+": "+err.Error())
	ok := false
	rep.Rows = append(rep.Rows, Row{Scenario: scenario, Figure: "error", Text: err.Error(), Pass: &ok})
}

// WriteJSON writes the report as one JSON document.
func (rep *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// WriteTable writes the report as one aligned table.
func (rep *Report) WriteTable(w io.Writer) error {
	m := rep.Machine
	fmt.Fprintf(w, "hobom-event-processor load test: %d CPUs (%s), %s, %s, %s RAM\n", m.CPUs, m.CPUModel, m.GoVersion, m.OS, m.Memory)
	fmt.Fprintf(w, "setup: %s\n\n", rep.setupLine())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tFIGURE\tVALUE\tVS CEILING\tTARGET\tRESULT\tDETAIL")
	last := ""
	for _, r := range rep.Rows {
		scen := r.Scenario
		if scen == last {
			scen = ""
		}
		last = r.Scenario
		res := ""
		if r.Pass != nil {
			res = map[bool]string{true: "PASS", false: "FAIL"}[*r.Pass]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", scen, r.Figure, r.value(), r.VsCeiling, r.Target, res, r.Detail)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	verdict := "all targets met"
	if !rep.Passed {
		var failed []string
		for _, r := range rep.Rows {
			if r.Pass != nil && !*r.Pass {
				failed = append(failed, r.Scenario+": "+r.Figure)
			}
		}
		verdict = "MISSED: " + strings.Join(failed, "; ")
	}
	_, err := fmt.Fprintf(w, "\n%s (run took %s)\n", verdict, dur(rep.Took))
	return err
}

func (rep *Report) setupLine() string {
	s := rep.Setup
	return fmt.Sprintf("world (stand-in backend + kfake) in %s; redis %v; find limit %v; mark concurrency %v; acks %v; poll interval %v (backlog runs %v)",
		map[bool]string{true: "this process", false: "a child process"}[s["inProcessWorld"] == true],
		s["redis"], s["findLimit"], s["markConcurrency"], s["kafkaAcks"], s["pollInterval"], s["shortPollInterval"])
}

// count formats n with thousands separators.
func count(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// mb formats bytes as MB (2^20).
func mb(b uint64) string { return strconv.FormatFloat(float64(b)/(1<<20), 'f', 1, 64) + " MB" }

// dur formats a duration with sensible precision.
func dur(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return d.Round(100 * time.Millisecond).String()
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(100 * time.Microsecond).String()
	}
	return d.Round(time.Microsecond).String()
}
