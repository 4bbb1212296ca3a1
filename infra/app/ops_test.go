package app_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/hobom/hobom-event-processor/infra/app"
	"github.com/hobom/hobom-event-processor/infra/config"
	"github.com/hobom/hobom-event-processor/infra/devkit/fakebackend"
	"github.com/hobom/hobom-event-processor/infra/testkit/testenv"
	"github.com/hobom/hobom-event-processor/messages"
)

func fastReady(c *config.Config) {
	c.ReadyInterval, c.ReadyTimeout, c.DLQSampleInterval = 100*time.Millisecond, 100*time.Millisecond, 100*time.Millisecond
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

type readyBody struct {
	Status string
	Down   []string
	Checks map[string]struct {
		Up    bool
		Error string
	}
}

// getWithKey is get with x-api-key.
func getWithKey(t *testing.T, url, key string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("x-api-key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestReadyNamesWhatIsDown(t *testing.T) {
	kafkaAddr := closedAddr(t)
	e := newEnv(t, func(c *config.Config) {
		fastReady(c)
		c.KafkaBrokers = []string{kafkaAddr}
		c.InternalAPIKey = "k3y"
	}, app.Options{})
	base := "http://" + e.app.HTTPAddr()
	var body readyBody
	testenv.Eventually(t, 10*time.Second, "/ready 503 naming kafka", func() bool {
		code, b := getWithKey(t, base+"/ready", "k3y")
		_ = json.Unmarshal([]byte(b), &body)
		return code == 503 && slices.Equal(body.Down, []string{"kafka"})
	})
	if body.Status != "unavailable" || body.Checks["kafka"].Error == "" || !body.Checks["redis"].Up || !body.Checks["backend"].Up {
		t.Fatalf("%+v", body)
	}
	// Without the key (or with a wrong one): up or down, no error text,
	// which names the broker's address.
	for _, key := range []string{"", "wrong"} {
		code, b := getWithKey(t, base+"/ready", key)
		if code != 503 || strings.Contains(b, "error") || strings.Contains(b, kafkaAddr) || !strings.Contains(b, `"kafka":{"up":false}`) {
			t.Fatalf("/ready with key %q: %d %s", key, code, b)
		}
	}
	e.backend.Close()
	testenv.Eventually(t, 10*time.Second, "/ready naming the backend too", func() bool {
		_, b := getWithKey(t, base+"/ready", "k3y")
		_ = json.Unmarshal([]byte(b), &body)
		return slices.Equal(body.Down, []string{"backend", "kafka"})
	})
	// Liveness is not readiness: /health stays 200.
	if code, b := get(t, base+"/health"); code != 200 || !strings.Contains(b, "Service is healthy") {
		t.Fatalf("/health %d %s", code, b)
	}
}

func TestMetricsAndReadyAreMountedBesideTheAPI(t *testing.T) {
	e := newEnv(t, fastReady, app.Options{})
	base := "http://" + e.app.HTTPAddr()
	e.backend.Add(message("m-1", messages.MessagePayload{Title: "t", Body: "b", Recipient: "r"}))
	testenv.Eventually(t, 20*time.Second, "m-1 SENT", allStatus(e, messages.StatusSent, "m-1"))
	testenv.Eventually(t, 10*time.Second, "published counted", func() bool {
		_, b := get(t, base+"/metrics")
		return strings.Contains(b, "\nhobom_events_published_total{event_type=\"MESSAGE\"} 1\n")
	})
	testenv.Eventually(t, 10*time.Second, "/ready 200", func() bool { c, _ := get(t, base+"/ready"); return c == 200 })
	if code, b := get(t, base+"/no/such/route"); code != 404 || !strings.Contains(b, `"error"`) {
		t.Fatalf("unknown route: %d %s", code, b)
	}
	e.app.Metrics().Replayed("MESSAGE")
	if _, b := get(t, base+"/metrics"); !strings.Contains(b, "\nhobom_events_replayed_total{event_type=\"MESSAGE\"} 1\n") {
		t.Fatal("Replayed not counted")
	}
	// /ready and Health() read the same sampler; a probe that times out on a
	// loaded machine flips both for one interval, so wait for them to agree.
	testenv.Eventually(t, 10*time.Second, "Health().Ready() and /ready 200 together", func() bool {
		c, _ := get(t, base+"/ready")
		return c == 200 && e.app.Health().Ready()
	})
}

// TestTLSAndSASLEverywhere runs the processor against a backend, Kafka and
// Redis that all require TLS with a self-signed certificate, Kafka with
// SCRAM-SHA-256 and Redis with an ACL user and password.
func TestTLSAndSASLEverywhere(t *testing.T) {
	cert := testenv.SelfSignedTLS(t)
	backend, err := fakebackend.Start(fakebackend.Options{TLS: cert.Server})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(backend.Close)
	k := testenv.Kafka(t, kfake.TLS(cert.Server), kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", "hobom", "kafka-pw"))
	mr := miniredis.NewMiniRedis()
	mr.RequireUserAuth("hobom", "redis-pw")
	if err := mr.StartTLS(cert.Server); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mr.Close)

	cfg := testConfig(t, backend.Addr(), mr.Addr(), k.Addrs())
	fastReady(&cfg)
	cfg.GRPCTLS, cfg.GRPCTLSCA = true, cert.CAFile
	cfg.KafkaTLS, cfg.KafkaTLSCA = true, cert.CAFile
	cfg.KafkaSASLMechanism, cfg.KafkaSASLUser, cfg.KafkaSASLPassword = "SCRAM-SHA-256", "hobom", "kafka-pw"
	cfg.RedisTLS, cfg.RedisTLSCA, cfg.RedisUsername, cfg.RedisPassword = true, cert.CAFile, "hobom", "redis-pw"
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

	backend.Add(message("tls-1", messages.MessagePayload{Title: "t", Body: "b", Recipient: "r"}))
	testenv.Eventually(t, 20*time.Second, "tls-1 SENT", func() bool {
		ev, ok := backend.Event("tls-1")
		return ok && ev.Status == messages.StatusSent
	})
	base := "http://" + a.HTTPAddr()
	testenv.Eventually(t, 10*time.Second, "/ready 200 over TLS everywhere", func() bool { c, _ := get(t, base+"/ready"); return c == 200 })
	// A successful sample sets the timestamp. The sample errors are not
	// asserted: each sample may take one 100 ms interval, which a TLS
	// handshake on a busy machine can exceed.
	testenv.Eventually(t, 10*time.Second, "a DLQ sample over TLS", func() bool {
		_, b := get(t, base+"/metrics")
		return strings.Contains(b, "\nhobom_dlq_sampled_timestamp_seconds ") && !strings.Contains(b, "\nhobom_dlq_sampled_timestamp_seconds 0\n")
	})
}

func TestTLSWithAnUntrustedCertificateIsNotReady(t *testing.T) {
	cert := testenv.SelfSignedTLS(t)
	backend, err := fakebackend.Start(fakebackend.Options{TLS: cert.Server})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(backend.Close)
	e := newEnv(t, func(c *config.Config) {
		fastReady(c)
		c.GRPCAddr, c.GRPCTLS = backend.Addr(), true // system roots: the self-signed certificate is refused
	}, app.Options{})
	testenv.Eventually(t, 10*time.Second, "/ready naming the backend", func() bool {
		code, b := get(t, "http://"+e.app.HTTPAddr()+"/ready")
		var body readyBody
		_ = json.Unmarshal([]byte(b), &body)
		return code == 503 && slices.Equal(body.Down, []string{"backend"})
	})
}

func TestBadCAFileFailsStartup(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(bad, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, set := range []func(*config.Config){
		func(c *config.Config) { c.GRPCTLSCA = bad },
		func(c *config.Config) { c.KafkaTLSCA = bad },
		func(c *config.Config) { c.RedisTLSCA = filepath.Join(t.TempDir(), "missing.pem") },
	} {
		cfg := testConfig(t, "127.0.0.1:1", "127.0.0.1:1", []string{"127.0.0.1:1"})
		set(&cfg)
		if a, err := app.New(cfg, zerolog.Nop(), app.Options{}); err == nil {
			_ = a.Shutdown(context.Background())
			t.Errorf("started with a bad CA file: %+v", cfg.Security)
		} else if !strings.Contains(err.Error(), "TLS") {
			t.Errorf("error %v does not say TLS", err)
		}
	}
}
