package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary serve as the world child process.
func TestMain(m *testing.M) {
	if len(os.Args) == 2 && os.Args[1] == WorldChildArg {
		os.Exit(ServeWorldChild())
	}
	os.Exit(m.Run())
}

// smokeOptions are the smallest sizes that still exercise every scenario.
func smokeOptions(t *testing.T) Options {
	o := QuickOptions()
	o.Events = 400
	o.SweepInFlight = []int{1, 8}
	o.SweepConns = []int{1, 2}
	o.SweepWarmup = 50 * time.Millisecond
	o.SweepWindow = 100 * time.Millisecond
	o.ProduceClients = []int{1}
	o.ProduceLingers = []time.Duration{0}
	o.LatencyRate = 200
	o.LatencyDuration = time.Second
	o.BatchEvents = 500
	o.BudgetTypes, o.BudgetPerType, o.BudgetWindow = 10, 20, time.Second
	o.EventTypes = []int{5}
	o.PollerEvents = 50
	o.IdleWindow = 300 * time.Millisecond
	o.DrainEvents = 1500
	o.OldBackendEvents = 300
	o.Timeout = 60 * time.Second
	o.WorldExe = os.Args[0]
	env := map[string]string{"HOBOM_POLL_INTERVAL": "200ms"}
	o.Getenv = func(k string) string { return env[k] }
	o.Progress = testWriter{t}
	return o
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestSmoke runs every scenario at toy sizes, with the world in a child
// process (this test binary), and checks that every event arrived and the
// report renders. The figures of such a run mean nothing.
func TestSmoke(t *testing.T) {
	o := smokeOptions(t)
	if testing.Short() {
		o.Scenarios = []string{ScenarioCeilings, ScenarioMessage, ScenarioLog}
	}
	o.WorldCPUProfile = filepath.Join(t.TempDir(), "world.pprof")
	o.RelayProfiles = t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	checkReport(t, rep, o.Scenarios)
	checkProfile(t, o.WorldCPUProfile)
	// Both clients swept the backend, and the ceiling is the faster one's.
	var maxima []float64
	for _, f := range []string{"gRPC-Go client, maximum", "raw HTTP/2 client, maximum", "maximum (the mark ceiling)"} {
		i := slices.IndexFunc(rep.Rows, func(r Row) bool { return r.Figure == f })
		if i < 0 || rep.Rows[i].Value <= 0 {
			t.Fatalf("no rate for %q in the report", f)
		}
		maxima = append(maxima, rep.Rows[i].Value)
	}
	if maxima[2] != max(maxima[0], maxima[1]) {
		t.Errorf("mark ceiling %.0f ev/s, want the faster client's maximum of %.0f and %.0f", maxima[2], maxima[0], maxima[1])
	}
	// The ceiling beside each relay is measured with the client that
	// reached the sweep's.
	client := "gRPC-Go client"
	if maxima[1] > maxima[0] {
		client = "raw HTTP/2 client"
	}
	relays := 0
	for _, r := range rep.Rows {
		if strings.HasPrefix(r.Scenario, "relay ") && r.Figure == "end-to-end rate" && strings.Contains(r.Detail, "adjacent mark ceiling") {
			relays++
			if !strings.Contains(r.Detail, "ev/s with the "+client+" (") {
				t.Errorf("%s: the ceiling beside it was not measured with the %s: %s", r.Scenario, client, r.Detail)
			}
		}
	}
	if relays == 0 {
		t.Error("no relay was held to an adjacent mark ceiling")
	}
	// The single-type relays run beside two floor relays, each profiled alone.
	for _, name := range []string{"relay-message", "floor-message", "floorraw-message", "relay-hobom_log", "floor-hobom_log", "floorraw-hobom_log"} {
		checkProfile(t, filepath.Join(o.RelayProfiles, name+".pprof"))
	}
}

// TestSmokeInProcess runs the world in this process.
func TestSmokeInProcess(t *testing.T) {
	o := smokeOptions(t)
	o.InProcess = true
	o.Scenarios = []string{ScenarioMix, ScenarioOld}
	o.AllocProfile = filepath.Join(t.TempDir(), "allocs.pprof")
	rep, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	checkReport(t, rep, o.Scenarios)
	checkProfile(t, o.AllocProfile)
}

// checkProfile fails t unless file holds a pprof profile (gzipped protobuf).
func checkProfile(t *testing.T, file string) {
	t.Helper()
	if b, err := os.ReadFile(file); err != nil || len(b) < 100 || b[0] != 0x1f || b[1] != 0x8b {
		t.Errorf("profile %s: %d bytes, %v; want a gzipped profile", file, len(b), err)
	}
}

func checkReport(t *testing.T, rep *Report, scenarios []string) {
	t.Helper()
	if len(rep.Failures) > 0 {
		t.Fatalf("scenarios failed: %v", rep.Failures)
	}
	var table bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + table.String())
	deliveries := 0
	for _, r := range rep.Rows {
		// Targets are not judged at toy sizes, but delivery is: every
		// seeded or offered event must be SENT and in Kafka exactly once.
		if r.Target == "all, once" {
			deliveries++
			if r.Pass == nil || !*r.Pass {
				t.Errorf("%s: %s = %s (%s)", r.Scenario, r.Figure, r.value(), r.Detail)
			}
		}
	}
	if deliveries == 0 {
		t.Error("no delivery check in the report")
	}
	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatalf("JSON report does not parse: %v", err)
	}
	if slices.Contains(scenarios, ScenarioCeilings) {
		floors := strings.Count(table.String(), "floor relay (no actors)")
		rawFloors := strings.Count(table.String(), "floor relay, raw HTTP/2 marks")
		want := 0
		for _, s := range []string{ScenarioMessage, ScenarioLog} {
			if slices.Contains(scenarios, s) {
				want++
			}
		}
		if floors != want || rawFloors != want {
			t.Errorf("%d floor relays and %d with raw marks beside the ceilings, want one of each per single-type relay (%d)", floors, rawFloors, want)
		}
	}
	for _, s := range scenarios {
		if !strings.Contains(table.String(), scenarioTitle(s)) {
			t.Errorf("table lacks scenario %s", s)
		}
	}
}

// scenarioTitle is how a scenario's rows start in the table.
func scenarioTitle(s string) string {
	switch s {
	case ScenarioCeilings:
		return "ceiling: mark rpc"
	case ScenarioMessage:
		return "relay MESSAGE"
	case ScenarioLog:
		return "relay HOBOM_LOG"
	case ScenarioMix:
		return "relay mix"
	case ScenarioMemory:
		return "remember at the ack"
	case ScenarioLatency:
		return "latency"
	case ScenarioPollers:
		return "pollers N=5"
	case ScenarioDrain:
		return "drain"
	case ScenarioOld:
		return "old backend"
	}
	return s
}

func TestArrayLen(t *testing.T) {
	for in, want := range map[string]int{`[]`: 0, `[{"a":[1,2]}]`: 1, `[{"a":"]"},{},{"b":{"c":1}}]`: 3} {
		if n, err := arrayLen([]byte(in)); err != nil || n != want {
			t.Errorf("arrayLen(%s) = %d, %v; want %d", in, n, err, want)
		}
	}
	if _, err := arrayLen([]byte(`{}`)); err == nil {
		t.Error("object taken for an array")
	}
}

func TestCountFormat(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -1500: "-1,500"} {
		if got := count(n); got != want {
			t.Errorf("count(%d) = %q, want %q", n, got, want)
		}
	}
}
