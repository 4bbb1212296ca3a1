package embedded_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hobom/hobom-event-processor/httpapi/console"
	"github.com/hobom/hobom-event-processor/infra/config"
	"github.com/hobom/hobom-event-processor/infra/devkit/embedded"
	"github.com/hobom/hobom-event-processor/infra/testkit/testenv"
	"github.com/hobom/hobom-event-processor/messages"
)

// startDev runs the embedded stack with test-sized timings, Kafka on a
// free port (not 9092) and the API on a free port; env overrides.
func startDev(t *testing.T, env map[string]string) *embedded.Dev {
	t.Helper()
	vars := map[string]string{
		"HOBOM_HTTP_ADDR":           "127.0.0.1:0",
		"HOBOM_DEV_EVENT_RATE":      "0",
		"HOBOM_POLL_INTERVAL":       "50ms",
		"HOBOM_POLL_MAX_BACKOFF":    "400ms",
		"HOBOM_PUBLISH_BACKOFF":     "10ms",
		"HOBOM_READY_INTERVAL":      "100ms",
		"HOBOM_READY_TIMEOUT":       "100ms",
		"HOBOM_DLQ_SAMPLE_INTERVAL": "100ms",
		"HOBOM_KAFKA_WRITE_TIMEOUT": "3s",
	}
	for k, v := range env {
		vars[k] = v
	}
	var d *embedded.Dev
	var err error
	for range 5 { // the free port may be taken before kfake binds it
		vars["HOBOM_DEV_KAFKA_PORT"] = strconv.Itoa(testenv.FreePort(t))
		cfg, lerr := config.Load(flag.NewFlagSet("t", flag.ContinueOnError), []string{"--embedded"}, func(k string) string { return vars[k] }, io.Discard)
		if lerr != nil {
			t.Fatal(lerr)
		}
		cfg = embedded.Defaults(cfg)
		log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
		if d, err = embedded.Start(cfg, log); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("shutdown: %v", err)
			}
		case <-time.After(45 * time.Second):
			t.Errorf("embedded stack did not stop")
		}
	})
	return d
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	return do(t, http.MethodGet, url)
}

func do(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// readTopic reads topic from the start on the embedded Kafka until at
// least want records came, or fails after timeout.
func readTopic(t *testing.T, d *embedded.Dev, topic string, want int, timeout time.Duration) []*kgo.Record {
	t.Helper()
	return readUntil(t, d, topic, timeout, fmt.Sprintf("%d records", want), func(recs []*kgo.Record) bool { return len(recs) >= want })
}

// readUntil reads topic from the start until done holds for the records
// read so far, or fails after timeout.
func readUntil(t *testing.T, d *embedded.Dev, topic string, timeout time.Duration, what string, done func([]*kgo.Record) bool) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(d.KafkaAddr()), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var recs []*kgo.Record
	for !done(recs) {
		fs := cl.PollFetches(ctx)
		recs = append(recs, fs.Records()...)
		if ctx.Err() != nil && !done(recs) {
			t.Fatalf("read %s: no %s within %v (got %d records)", topic, what, timeout, len(recs))
		}
	}
	return recs
}

// metric returns the value of one series in the /metrics text, -1 when
// absent.
func metric(t *testing.T, d *embedded.Dev, series string) float64 {
	t.Helper()
	code, body := httpGet(t, d.BaseURL()+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", sc.Text(), err)
			}
			return f
		}
	}
	return -1
}

func TestEventsFlowFromTheGeneratorToKafka(t *testing.T) {
	d := startDev(t, map[string]string{"HOBOM_DEV_EVENT_RATE": "40"})
	if host := strings.Split(d.KafkaAddr(), ":")[0]; host != "127.0.0.1" {
		t.Fatalf("Kafka listens on %s, want 127.0.0.1", d.KafkaAddr())
	}
	msgs := readTopic(t, d, "hobom.messages", 5, 20*time.Second)
	for _, r := range msgs {
		var v map[string]any
		if err := json.Unmarshal(r.Value, &v); err != nil || v["title"] == nil || len(r.Key) != 36 {
			t.Fatalf("message record %q %q: %v", r.Key, r.Value, err)
		}
	}
	logs := readTopic(t, d, "hobom.logs", 1, 20*time.Second)
	var arr []map[string]any
	if err := json.Unmarshal(logs[0].Value, &arr); err != nil || len(arr) == 0 || !strings.HasPrefix(string(logs[0].Key), "hobom-log-") {
		t.Fatalf("log record %q %q: %v", logs[0].Key, logs[0].Value, err)
	}
	if d.Generated() < 6 {
		t.Fatalf("generated %d events", d.Generated())
	}
	if code, body := httpGet(t, d.BaseURL()+"/health"); code != 200 || !strings.Contains(body, `"status":"ok"`) {
		t.Fatalf("/health: %d %s", code, body)
	}
	testenv.Eventually(t, 10*time.Second, "/ready 200", func() bool { c, _ := httpGet(t, d.BaseURL()+"/ready"); return c == 200 })
}

func TestReadyFlipsWhenTheEmbeddedRedisStops(t *testing.T) {
	d := startDev(t, nil)
	ready := d.BaseURL() + "/ready"
	testenv.Eventually(t, 10*time.Second, "/ready 200", func() bool { c, _ := httpGet(t, ready); return c == 200 })
	if err := d.StopRedis(); err != nil {
		t.Fatal(err)
	}
	var body struct {
		Status string
		Down   []string
		Checks map[string]struct {
			Up    bool
			Error string
		}
	}
	testenv.Eventually(t, 10*time.Second, "/ready 503 naming redis", func() bool {
		c, b := httpGet(t, ready)
		if c != 503 {
			return false
		}
		if err := json.Unmarshal([]byte(b), &body); err != nil {
			t.Fatalf("503 body %q: %v", b, err)
		}
		return true
	})
	if body.Status != "unavailable" || !slices.Equal(body.Down, []string{"redis"}) || body.Checks["redis"].Up || body.Checks["redis"].Error != "" ||
		!body.Checks["kafka"].Up || !body.Checks["backend"].Up {
		t.Fatalf("503 body: %+v", body)
	}
	testenv.Eventually(t, 10*time.Second, "hobom_dependency_up redis 0", func() bool { return metric(t, d, `hobom_dependency_up{dependency="redis"}`) == 0 })
	if err := d.StartRedis(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "/ready 200 again", func() bool { c, _ := httpGet(t, ready); return c == 200 })
}

func TestMetricsCountWhatWasPublished(t *testing.T) {
	d := startDev(t, nil)
	const nMsg, nLog = 120, 45
	d.Backend().Seed(messages.EventTypeMessage, nMsg, nil)
	d.Backend().Seed(messages.EventTypeHoBomLog, nLog, nil)
	testenv.Eventually(t, 30*time.Second, "all events SENT", func() bool {
		return d.Backend().Count(messages.EventTypeMessage, messages.StatusSent) == nMsg &&
			d.Backend().Count(messages.EventTypeHoBomLog, messages.StatusSent) == nLog
	})
	// The backend marks before the publisher hears back: wait for the count.
	testenv.Eventually(t, 10*time.Second, "published counters", func() bool {
		return metric(t, d, `hobom_events_published_total{event_type="MESSAGE"}`) == nMsg &&
			metric(t, d, `hobom_events_published_total{event_type="HOBOM_LOG"}`) == nLog
	})
	recs := readTopic(t, d, "hobom.messages", nMsg, 20*time.Second)
	if len(recs) != nMsg {
		t.Fatalf("%d message records in Kafka, published counter says %d", len(recs), nMsg)
	}
	logItems := func(recs []*kgo.Record) int {
		n := 0
		for _, r := range recs {
			var arr []json.RawMessage
			if err := json.Unmarshal(r.Value, &arr); err != nil {
				t.Fatalf("log record %q: %v", r.Value, err)
			}
			n += len(arr)
		}
		return n
	}
	logs := readUntil(t, d, "hobom.logs", 20*time.Second, fmt.Sprintf("%d log items", nLog), func(recs []*kgo.Record) bool { return logItems(recs) >= nLog })
	if got := logItems(logs); got != nLog {
		t.Fatalf("%d log items in Kafka, published counter says %d", got, nLog)
	}
	for series, want := range map[string]float64{
		`hobom_events_fetched_total{event_type="MESSAGE"}`:                             nMsg,
		`hobom_events_fetched_total{event_type="HOBOM_LOG"}`:                           nLog,
		`hobom_events_failed_total{event_type="MESSAGE"}`:                              0,
		`hobom_events_in_flight{event_type="MESSAGE"}`:                                 0,
		`hobom_events_in_flight{event_type="HOBOM_LOG"}`:                               0,
		`hobom_kafka_produce_duration_seconds_count{event_type="MESSAGE",result="ok"}`: nMsg,
		`hobom_backend_mark_duration_seconds_count{result="ok",status="SENT"}`:         nMsg + nLog,
		`hobom_dlq_entries{prefix="dlq:menu:"}`:                                        1, // the demo entry
		`hobom_actor_restarts_total{child="publisher"}`:                                0,
	} {
		if got := metric(t, d, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	if got := metric(t, d, `hobom_poll_duration_seconds_count{event_type="MESSAGE",result="ok"}`); got < 1 {
		t.Errorf("poll duration count %v", got)
	}
}

func TestFailRateFillsTheDLQ(t *testing.T) {
	d := startDev(t, map[string]string{"HOBOM_DEV_FAIL_RATE": "1"})
	const n = 7
	d.Backend().Seed(messages.EventTypeMessage, n, nil)
	testenv.Eventually(t, 30*time.Second, "all events FAILED", func() bool {
		return d.Backend().Count(messages.EventTypeMessage, messages.StatusFailed) == n+1 // and the demo entry's row
	})
	rc := redis.NewClient(&redis.Options{Addr: d.RedisAddr()})
	defer rc.Close()
	keys, err := rc.Keys(context.Background(), "dlq:menu:*").Result()
	if err != nil || len(keys) != n+1 {
		t.Fatalf("DLQ keys %v (%v), want %d", keys, err, n+1)
	}
	testenv.Eventually(t, 10*time.Second, "DLQ metrics", func() bool {
		return metric(t, d, `hobom_dlq_entries{prefix="dlq:menu:"}`) == n+1 &&
			metric(t, d, `hobom_events_failed_total{event_type="MESSAGE"}`) == n &&
			metric(t, d, `hobom_kafka_produce_duration_seconds_count{event_type="MESSAGE",result="error"}`) == 3*n
	})
}

// TestBannerCommandsWork runs the printed curl commands as HTTP requests:
// health, list, inspect and replay of the seeded demo entry.
func TestBannerCommandsWork(t *testing.T) {
	d := startDev(t, nil)
	var out bytes.Buffer
	d.PrintBanner(&out)
	banner := out.String()
	for _, want := range []string{d.KafkaAddr(), d.RedisAddr(), d.Backend().Addr(), d.BaseURL(), "kcat -b " + d.KafkaAddr()} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, banner)
		}
	}
	// The console's address is printed and serves the page.
	consoleURL := d.BaseURL() + console.Path
	if !strings.Contains(banner, "Open the DLQ console in a browser: "+consoleURL) {
		t.Errorf("banner lacks the console's URL %s:\n%s", consoleURL, banner)
	}
	if code, body := do(t, http.MethodGet, consoleURL); code != 200 || !strings.Contains(body, `id="login-form"`) {
		t.Errorf("GET %s: %d %.200s", consoleURL, code, body)
	}
	re := regexp.MustCompile(`(?m)^  curl -s( -X POST)? (http://\S+)$`)
	cmds := re.FindAllStringSubmatch(banner, -1)
	if len(cmds) != 4 {
		t.Fatalf("want 4 curl commands in:\n%s", banner)
	}
	for i, c := range cmds {
		method := http.MethodGet
		if c[1] != "" {
			method = http.MethodPost
		}
		code, body := do(t, method, c[2])
		if code != 200 {
			t.Fatalf("command %d %s %s: %d %s", i, method, c[2], code, body)
		}
		switch i {
		case 1:
			if !strings.Contains(body, fmt.Sprintf("%q", d.DemoKey())) {
				t.Errorf("list lacks the demo key: %s", body)
			}
		case 2:
			if !strings.Contains(body, `"item":{`) || !strings.Contains(body, "A dead letter to replay") {
				t.Errorf("inspect: %s", body)
			}
		case 3:
			if !strings.Contains(body, "DLQ retried and removed from Redis") {
				t.Errorf("replay: %s", body)
			}
		}
	}
	recs := readTopic(t, d, "hobom.messages", 1, 10*time.Second)
	if id := strings.TrimPrefix(d.DemoKey(), "dlq:menu:"); string(recs[0].Key) != id {
		t.Errorf("replayed record key %q, want the eventId %q", recs[0].Key, id)
	}
	testenv.Eventually(t, 10*time.Second, "demo event SENT after the replay", func() bool {
		ev, ok := d.Backend().Event(strings.TrimPrefix(d.DemoKey(), "dlq:menu:"))
		return ok && ev.Status == messages.StatusSent
	})
}

func TestBannerCarriesTheAPIKeyHeaderWhenOneIsSet(t *testing.T) {
	d := startDev(t, map[string]string{"HOBOM_INTERNAL_API_KEY": "s3cret"})
	var out bytes.Buffer
	d.PrintBanner(&out)
	if strings.Contains(out.String(), "s3cret") {
		t.Fatal("the banner prints the API key")
	}
	want := `curl -s -H "x-api-key: $HOBOM_INTERNAL_API_KEY" ` + d.BaseURL()
	if !strings.Contains(out.String(), want) {
		t.Fatalf("banner lacks %q:\n%s", want, out.String())
	}
	req, _ := http.NewRequest(http.MethodGet, d.BaseURL()+"/hobom-event-processor/internal/api/v1/dlq", nil)
	req.Header.Set("x-api-key", "s3cret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("list with the key: %v %v", resp, err)
	}
	resp.Body.Close()
	if code, _ := httpGet(t, d.BaseURL()+"/hobom-event-processor/internal/api/v1/dlq"); code != 401 {
		t.Fatalf("list without the key: %d", code)
	}
}
