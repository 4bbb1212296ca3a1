package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/hobom/hobom-event-processor/actors"
	"github.com/hobom/hobom-event-processor/infra/adapters/redisdlq"
	"github.com/hobom/hobom-event-processor/infra/app"
	"github.com/hobom/hobom-event-processor/infra/devkit/fakebackend"
	"github.com/hobom/hobom-event-processor/infra/testkit/testenv"
	"github.com/hobom/hobom-event-processor/messages"
)

// The monitoring files: prometheus/alerts.yml (with its unit tests in
// prometheus/alerts_test.yml) and grafana/dashboard.json. These tests run
// promtool on the rules and on a running processor's /metrics, and check
// that every metric the alerts and the dashboard query is one the
// processor exposes.

// requireTool returns the path of a command-line tool. Without it the test
// is skipped, except in CI (CI=true), where .ci/run installs it and its
// absence is a failure.
func requireTool(t *testing.T, name, debianPackage string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not found in CI: .ci/run must install Debian's %s package", name, debianPackage)
	}
	t.Skipf("%s not installed (Debian package %s): skipped outside CI", name, debianPackage)
	return ""
}

func runTool(t *testing.T, stdin []byte, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	t.Logf("%s %s:\n%s", name, strings.Join(args, " "), out)
}

// TestAlertRules checks the rules and runs their unit tests: each alert
// fires on the series that should trigger it and stays silent on the ones
// that should not.
func TestAlertRules(t *testing.T) {
	promtool := requireTool(t, "promtool", "prometheus")
	runTool(t, nil, promtool, "check", "rules", "prometheus/alerts.yml")
	runTool(t, nil, promtool, "test", "rules", "prometheus/alerts_test.yml")

	// Every alert has a unit test and a runbook entry in the README.
	rules, _ := os.ReadFile("prometheus/alerts.yml")
	tests, _ := os.ReadFile("prometheus/alerts_test.yml")
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`(?m)^\s+- alert: (\w+)`).FindAllStringSubmatch(string(rules), -1) {
		if !bytes.Contains(tests, []byte("alertname: "+m[1])) {
			t.Errorf("alert %s has no test in alerts_test.yml", m[1])
		}
		if !bytes.Contains(readme, []byte("`"+m[1]+"`")) {
			t.Errorf("alert %s is not explained in the README's On call section", m[1])
		}
	}
}

// liveMetrics runs a processor against the stand-in backend, kfake and a
// real Redis, relays one event and dead-letters another (so the histograms
// and DLQ series hold samples), and returns its /metrics.
func liveMetrics(t *testing.T) []byte {
	t.Helper()
	backend, err := fakebackend.Start(fakebackend.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(backend.Close)
	k, r := testenv.Kafka(t), testenv.Redis(t)
	cfg, err := testenv.Config()
	if err != nil {
		t.Fatal(err)
	}
	cfg.GRPCAddr, cfg.KafkaBrokers, cfg.RedisAddr, cfg.HTTPAddr = backend.Addr(), k.Addrs(), r.Addr(), "127.0.0.1:0"
	cfg.PollInterval, cfg.DLQSampleInterval, cfg.ReadyInterval = 50*time.Millisecond, 200*time.Millisecond, 200*time.Millisecond
	store := redisdlq.New(r.Client(t))
	if err := store.Put(context.Background(), "dlq:menu:expiring", []byte(`{}`), actors.DeadLetterMeta{EventType: "MESSAGE", Reason: "kafka: i/o timeout"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	a, err := app.New(cfg, zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel), app.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-stopped; err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	backend.Add(messages.Event{EventID: "obs-1", EventType: messages.EventTypeMessage, Status: messages.StatusPending,
		Message: &messages.MessagePayload{Title: "t", Body: "b", Recipient: "r"}})
	var body []byte
	testenv.Eventually(t, 20*time.Second, "obs-1 published, the DLQ sampled and the dependencies probed", func() bool {
		resp, err := http.Get("http://" + a.HTTPAddr() + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, _ = io.ReadAll(resp.Body)
		return bytes.Contains(body, []byte(`hobom_events_published_total{event_type="MESSAGE"} 1`)) &&
			bytes.Contains(body, []byte(`hobom_dlq_expiring_entries{within="12h"} 1`)) &&
			bytes.Contains(body, []byte(`hobom_dependency_up{dependency="redis"} 1`))
	})
	return body
}

// exposedNames are the sample names in a Prometheus text exposition
// (histograms' _bucket, _sum and _count included).
func exposedNames(body []byte) map[string]bool {
	names := map[string]bool{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	return names
}

// queriedMetrics are the metric names in PromQL expressions: the
// processor's own (hobom_), the Go and process collectors'.
var metricName = regexp.MustCompile(`\b(?:hobom|go|process)_[a-zA-Z0-9_]+\b`)

func dashboardExprs(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile("grafana/dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Query any `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("dashboard.json: %v", err)
	}
	var exprs []string
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q queries nothing", p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	for _, v := range d.Templating.List {
		if s, ok := v.Query.(string); ok {
			exprs = append(exprs, s)
		}
	}
	return exprs
}

// TestMonitoringQueriesExposedMetricsAndPassesPromtool runs a processor
// and checks its /metrics: `promtool check metrics` finds nothing to
// complain about, and every metric the dashboard and the alerts query is
// exposed (a renamed metric would leave a panel or an alert silently
// empty).
func TestMonitoringQueriesExposedMetricsAndPassesPromtool(t *testing.T) {
	body := liveMetrics(t)
	names := exposedNames(body)

	check := func(file string, exprs []string) {
		t.Helper()
		seen := map[string]bool{}
		for _, e := range exprs {
			for _, n := range metricName.FindAllString(e, -1) {
				seen[n] = true
			}
		}
		if len(seen) == 0 {
			t.Fatalf("%s queries no metric", file)
		}
		var missing []string
		for n := range seen {
			if !names[n] {
				missing = append(missing, n)
			}
		}
		sort.Strings(missing)
		if len(missing) > 0 {
			t.Errorf("%s queries metrics /metrics does not expose: %v", file, missing)
		}
		t.Logf("%s: %d metrics queried, all exposed", file, len(seen))
	}
	check("grafana/dashboard.json", dashboardExprs(t))
	rules, err := os.ReadFile("prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var ruleExprs []string
	for _, m := range regexp.MustCompile(`(?s)expr: (\|\n.*?\n\s+for:|[^\n]*)`).FindAllStringSubmatch(string(rules), -1) {
		ruleExprs = append(ruleExprs, m[1])
	}
	check("prometheus/alerts.yml", ruleExprs)

	// Exposed hobom_ families the dashboard does not show are reported
	// (not failed: a new metric need not wait for a panel).
	dash := strings.Join(dashboardExprs(t), "\n")
	for n := range names {
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_sum"), "_count")
		if strings.HasPrefix(n, "hobom_") && !strings.Contains(dash, base) && base != "hobom_dlq_sample_errors_total" && base != "hobom_dlq_sample_duration_seconds" && base != "hobom_events_skipped_total" {
			t.Logf("note: %s is exposed but not on the dashboard", n)
		}
	}

	promtool := requireTool(t, "promtool", "prometheus")
	runTool(t, body, promtool, "check", "metrics")
}
