package console_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/rs/zerolog"

	"github.com/hobom/hobom-event-processor/actors"
	"github.com/hobom/hobom-event-processor/httpapi/console"
	"github.com/hobom/hobom-event-processor/infra/adapters/redisdlq"
	"github.com/hobom/hobom-event-processor/infra/app"
	"github.com/hobom/hobom-event-processor/infra/devkit/fakebackend"
	"github.com/hobom/hobom-event-processor/infra/testkit/testenv"
	"github.com/hobom/hobom-event-processor/messages"
)

// The console is tested in a real browser: headless Chromium (Debian's
// chromium package) driven over the DevTools protocol with chromedp, against
// a whole processor (stand-in backend, kfake, a real Redis). The test
// clicks through what an operator does and checks the outcomes where they
// land: records in Kafka, entries in Redis, statuses in the backend, lines
// in the audit trail.

const apiKey = "console-test-key-7f3a"

// chromium returns the browser's path. Without one the test is skipped,
// except in CI (CI=true), where .ci/run installs it.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium not found in CI: .ci/run must install Debian's chromium package")
	}
	t.Skip("chromium not installed (Debian package chromium): the browser test is skipped outside CI")
	return ""
}

type world struct {
	backend *fakebackend.Server
	kafka   *testenv.KafkaCluster
	redis   *testenv.RedisServer
	store   *redisdlq.Store
	base    string // http://host:port
}

// startWorld runs a processor with an API key and a DLQ to work on:
// 7 MESSAGE entries Kafka did not take 10 minutes ago (FAILED in the
// backend), 3 log entries too large for Kafka that failed 61 h ago and
// expire within 11 h, one event that could not be encoded, and one entry
// of the old service.
func startWorld(t *testing.T) *world {
	t.Helper()
	backend, err := fakebackend.Start(fakebackend.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(backend.Close)
	w := &world{backend: backend, kafka: testenv.Kafka(t), redis: testenv.Redis(t)}
	w.store = redisdlq.New(w.redis.Client(t))
	ctx := context.Background()
	put := func(key, value, eventType, reason string, age, ttl time.Duration) {
		topic := map[string]string{"MESSAGE": "hobom.messages", "HOBOM_LOG": "hobom.logs"}[eventType]
		meta := actors.DeadLetterMeta{EventType: eventType, Topic: topic, Reason: reason, Attempts: 3, FailedAt: time.Now().Add(-age)}
		if err := w.store.Put(ctx, key, []byte(value), meta, ttl); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 7 {
		id := fmt.Sprintf("msg-%d", i)
		backend.Add(messages.Event{EventID: id, EventType: messages.EventTypeMessage, Status: messages.StatusFailed, Message: &messages.MessagePayload{Title: "t"}})
		put("dlq:menu:"+id, fmt.Sprintf(`{"type":"MAIL_MESSAGE","title":"Order %d shipped","body":"Your parcel is on its way","recipient":"user%d@example.com","sentAt":"2026-11-30T01:00:00Z"}`, i, i),
			"MESSAGE", "kafka: unable to dial: dial tcp 10.0.3.7:9092: connect: connection refused", time.Duration(10+i)*time.Minute, 72*time.Hour-time.Duration(10+i)*time.Minute)
	}
	for i := range 3 {
		put(fmt.Sprintf("dlq:log:big-%d", i), `[{"serviceType":"api","level":"ERROR","message":"huge"}]`, "HOBOM_LOG",
			"record too large: 1830204 bytes, limit 1000000", 61*time.Hour, 11*time.Hour)
	}
	put("dlq:menu:enc-1", `{"eventId":"enc-1","eventType":"MESSAGE","error":"MESSAGE event has no payload"}`, "MESSAGE", "encode: MESSAGE event has no payload", 3*time.Hour, 69*time.Hour)
	if err := w.redis.Client(t).Set(ctx, "dlq:menu::legacy-1", `{"type":"MAIL_MESSAGE","title":"from the old service"}`, 30*time.Hour).Err(); err != nil {
		t.Fatal(err)
	}

	cfg, err := testenv.Config()
	if err != nil {
		t.Fatal(err)
	}
	cfg.GRPCAddr, cfg.KafkaBrokers, cfg.RedisAddr, cfg.HTTPAddr = backend.Addr(), w.kafka.Addrs(), w.redis.Addr(), "127.0.0.1:0"
	cfg.InternalAPIKey, cfg.InternalAPIOpen = apiKey, false
	cfg.PollInterval = 100 * time.Millisecond
	a, err := app.New(cfg, zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel), app.Options{})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- a.Run(runCtx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-stopped; err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	w.base = "http://" + a.HTTPAddr()
	return w
}

// browser starts headless Chromium with a fresh profile and returns a tab.
// Page errors (uncaught exceptions, Content-Security-Policy violations)
// are collected and fail the test at its end.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1360, 1500),
	}
	// chromedp may log while the browser shuts down; after the test it
	// must not call t.Logf.
	var ended atomic.Bool
	logf := func(format string, args ...any) {
		if !ended.Load() {
			t.Logf(format, args...)
		}
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx, chromedp.WithLogf(logf), chromedp.WithErrorf(logf))
	deadline, cancelDeadline := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelDeadline(); cancelCtx(); cancelAlloc() })
	t.Cleanup(func() { ended.Store(true) }) // runs before the cancels
	if err := chromedp.Do(deadline, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	if _, err := chromedp.Call(deadline, log.Enable, cdp.Empty{}); err != nil {
		t.Fatalf("log.enable: %v", err)
	}
	var mu sync.Mutex
	var problems []string
	collect := func(s string) { mu.Lock(); problems = append(problems, s); mu.Unlock() }
	go func() {
		for ev, err := range chromedp.Events(deadline, runtime.ExceptionThrown) {
			if err != nil {
				return
			}
			d := ev.ExceptionDetails
			desc := d.Text
			if d.Exception != nil {
				desc += " " + d.Exception.Description
			}
			collect(fmt.Sprintf("exception at %s:%d: %s", d.URL, d.LineNumber, desc))
		}
	}()
	go func() {
		for ev, err := range chromedp.Events(deadline, log.EntryAdded) {
			if err != nil {
				return
			}
			if e := ev.Entry; e != nil && (strings.Contains(e.Text, "Content Security Policy") || e.Source == log.EntrySourceJavascript) {
				collect("console: " + e.Text)
			}
		}
	}()
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range problems {
			t.Errorf("page error: %s", p)
		}
	})
	return deadline
}

// do runs actions, failing the test with what was being done.
func do(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// waitJS waits until the JavaScript expression is true.
func waitJS(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
		t.Fatalf("waiting for %s (%s): %v\npage text:\n%s", what, expr, err, text)
	}
}

func text(t *testing.T, ctx context.Context, id string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById(`+fmt.Sprintf("%q", id)+`).textContent`))
	if err != nil {
		t.Fatalf("text of #%s: %v", id, err)
	}
	return s
}

// confirm clicks Confirm in the console's confirmation dialog.
func confirm(t *testing.T, ctx context.Context, want string) {
	t.Helper()
	waitJS(t, ctx, "the confirmation dialog", `document.getElementById("confirm").open`)
	if got := text(t, ctx, "confirm-text"); !strings.Contains(got, want) {
		t.Fatalf("confirmation says %q, want it to mention %q", got, want)
	}
	do(t, ctx, "confirm", chromedp.Click(chromedp.ID("confirm-yes")))
}

// TestConsoleInABrowser logs in, reads the summary, inspects an entry,
// replays it (and finds it in Kafka), runs a filtered dry run and a bulk
// replay to its end, keeps an expiring entry, and reads the audit trail.
func TestConsoleInABrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test skipped under -short")
	}
	w := startWorld(t)
	ctx := browser(t)
	url := w.base + console.Path

	// The page is served with a strict policy and without a key shows only
	// the login form; the API refuses the console's requests without it.
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || resp.StatusCode != 200 {
		t.Fatalf("GET console: %d, CSP %q", resp.StatusCode, csp)
	}
	do(t, ctx, "open the console", chromedp.Navigate(url), chromedp.WaitVisible(chromedp.ID("api-key")))
	waitJS(t, ctx, "only the login form", `document.getElementById("app").hidden && !document.getElementById("login").hidden`)

	// A wrong key is refused and forgotten.
	do(t, ctx, "log in with a wrong key",
		chromedp.SendKeys(chromedp.ID("api-key"), "wrong"),
		chromedp.Click(chromedp.CSS(`#login-form button[type="submit"]`)))
	waitJS(t, ctx, "the refusal", `document.getElementById("login-error").textContent.includes("refused")`)
	waitJS(t, ctx, "no key kept", `sessionStorage.getItem("apiKey") === null && document.getElementById("app").hidden`)

	// The right key: the summary shows the DLQ.
	do(t, ctx, "log in",
		chromedp.SendKeys(chromedp.ID("api-key"), apiKey),
		chromedp.SendKeys(chromedp.ID("operator"), "erin"),
		chromedp.Click(chromedp.CSS(`#login-form button[type="submit"]`)))
	waitJS(t, ctx, "the summary", `document.getElementById("s-total").textContent === "12"`)
	if got := text(t, ctx, "s-12h"); got != "3" {
		t.Errorf("expiring within 12 h shows %q, want 3", got)
	}
	classes := text(t, ctx, "by-class")
	for _, want := range []string{"kafka_unreachable7", "record_too_large3", "encode_error1", "unknown1"} {
		if !strings.Contains(classes, want) {
			t.Errorf("by reason shows %q, want it to hold %q", classes, want)
		}
	}
	waitJS(t, ctx, "the list", `document.querySelectorAll("#rows tr").length === 12`)
	cookies, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.cookie`))
	if err != nil || cookies != "" {
		t.Errorf("the console set cookies %q (%v)", cookies, err)
	}
	if res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{}); err != nil || len(res.Cookies) != 0 {
		t.Errorf("the browser holds cookies: %v (%v)", res, err)
	}

	// Inspect an entry, then take the README's screenshot of a full DLQ.
	do(t, ctx, "inspect msg-3", chromedp.Click(chromedp.CSS(`#rows tr[data-key="dlq:menu:msg-3"]`)))
	waitJS(t, ctx, "the entry", `document.getElementById("d-key").textContent === "dlq:menu:msg-3" && document.getElementById("d-value").textContent.includes("Order 3 shipped")`)
	if meta := text(t, ctx, "d-meta"); !strings.Contains(meta, "connection refused") || !strings.Contains(meta, "attempts3") {
		t.Errorf("entry metadata shows %q", meta)
	}
	if path := os.Getenv("HOBOM_CONSOLE_SCREENSHOT"); path != "" {
		do(t, ctx, "scroll up", chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`))
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot written to %s (%d bytes)", path, len(png))
	}

	// Replay it: confirmed, published to Kafka keyed by its eventId,
	// removed from Redis, marked SENT.
	do(t, ctx, "replay msg-3", chromedp.Click(chromedp.ID("d-replay")))
	confirm(t, ctx, "Replay dlq:menu:msg-3")
	waitJS(t, ctx, "the replay's result", `document.getElementById("d-result").textContent.startsWith("Replayed to hobom.messages")`)
	recs := w.kafka.ReadTopic(t, "hobom.messages", 1, 10*time.Second)
	if len(recs) != 1 || string(recs[0].Key) != "msg-3" || !strings.Contains(string(recs[0].Value), "Order 3 shipped") {
		t.Fatalf("Kafka after the replay: %d records %v", len(recs), recs)
	}
	if _, _, found, _ := w.store.Value(context.Background(), "dlq:menu:msg-3", 1<<20); found {
		t.Error("the replayed entry is still in Redis")
	}
	testenv.Eventually(t, 10*time.Second, "msg-3 SENT", func() bool {
		ev, ok := w.backend.Event("msg-3")
		return ok && ev.Status == messages.StatusSent
	})

	// Filter to the kafka_unreachable entries of the last hour, dry run,
	// then the bulk job to its end with live progress.
	do(t, ctx, "filter",
		chromedp.SetValue(chromedp.ID("f-class"), "kafka_unreachable"),
		chromedp.SendKeys(chromedp.ID("f-maxage"), "1h"),
		chromedp.Click(chromedp.CSS(`#filter button[type="submit"]`)))
	waitJS(t, ctx, "the filtered list", `document.querySelectorAll("#rows tr").length === 6`)
	do(t, ctx, "rate", chromedp.SetValue(chromedp.ID("b-rate"), "20"), chromedp.Click(chromedp.ID("b-dry")))
	waitJS(t, ctx, "the dry run", `document.getElementById("b-preview").textContent.startsWith("Dry run: would replay 6 of 6")`)
	if c := w.kafka.Count(t, "hobom.messages", 200*time.Millisecond); c != 1 {
		t.Fatalf("the dry run published: %d records", c)
	}
	do(t, ctx, "start the job", chromedp.Click(chromedp.ID("b-start")))
	confirm(t, ctx, "reasonClass=kafka_unreachable")
	waitJS(t, ctx, "the job's end", `document.getElementById("job").dataset.state === "done"`)
	if got := text(t, ctx, "job-text"); !strings.Contains(got, "6 replayed, 0 failed, 0 skipped, 0 remaining of 6") {
		t.Errorf("job progress shows %q", got)
	}
	if c := w.kafka.Count(t, "hobom.messages", 300*time.Millisecond); c != 7 {
		t.Errorf("%d records in Kafka after the job, want 7", c)
	}
	for _, k := range []string{"dlq:menu:enc-1", "dlq:menu::legacy-1", "dlq:log:big-0"} {
		if _, _, found, _ := w.store.Value(context.Background(), k, 1<<20); !found {
			t.Errorf("%s is gone, though the filter left it out", k)
		}
	}

	// Keep an entry about to expire, from its detail pane.
	do(t, ctx, "clear the filter", chromedp.Click(chromedp.ID("f-clear")))
	waitJS(t, ctx, "the rest", `document.querySelectorAll("#rows tr").length === 5`)
	do(t, ctx, "inspect big-1", chromedp.Click(chromedp.CSS(`#rows tr[data-key="dlq:log:big-1"]`)))
	waitJS(t, ctx, "big-1", `document.getElementById("d-key").textContent === "dlq:log:big-1"`)
	do(t, ctx, "keep", chromedp.Click(chromedp.ID("d-keep")))
	confirm(t, ctx, "Keep dlq:log:big-1 for 72h")
	waitJS(t, ctx, "the keep's result", `document.getElementById("d-result").textContent.startsWith("Kept")`)
	if ttl := w.redis.Client(t).PTTL(context.Background(), "dlq:log:big-1").Val(); ttl < 71*time.Hour {
		t.Errorf("TTL after keep %v, want about 72 h", ttl)
	}
	waitJS(t, ctx, "the summary after keep", `document.getElementById("s-12h").textContent === "2"`)

	// The audit trail names the operator's replay, job and keep.
	waitJS(t, ctx, "the audit lines", `(() => { const t = document.getElementById("audit-rows").innerText;
		return t.includes("dlq:menu:msg-3") && t.includes("bulk-end") && t.includes("keep") && t.includes("erin"); })()`)

	// Logging out forgets the key and shows only the login form.
	do(t, ctx, "log out", chromedp.Click(chromedp.ID("logout")))
	waitJS(t, ctx, "logged out", `sessionStorage.getItem("apiKey") === null && document.getElementById("app").hidden`)
}
