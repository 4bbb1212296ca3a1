package config_test

import (
	"bytes"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/hobom/hobom-event-processor/infra/config"
)

// load loads env and args; the API is open unless env says otherwise
// (TestAPIFailsClosed checks the rule itself).
func load(t *testing.T, env map[string]string, args ...string) (config.Config, error) {
	t.Helper()
	return config.Load(flag.NewFlagSet("test", flag.ContinueOnError), args, func(k string) string {
		if v, ok := env[k]; ok || k != "HOBOM_INTERNAL_API_OPEN" {
			return v
		}
		return "true"
	}, &bytes.Buffer{})
}

// loadStrict loads env and args alone.
func loadStrict(t *testing.T, env map[string]string, args ...string) (config.Config, error) {
	t.Helper()
	return config.Load(flag.NewFlagSet("test", flag.ContinueOnError), args, func(k string) string { return env[k] }, &bytes.Buffer{})
}

func TestOpsDefaults(t *testing.T) {
	c, err := load(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Embedded || c.GRPCTLS || c.KafkaTLS || c.RedisTLS || c.KafkaSASLMechanism != "" || c.DevFailRate != 0 ||
		c.DevEventRate != 2 || c.DevKafkaPort != 9092 || c.ReadyInterval != 5*time.Second || c.ReadyTimeout != 2*time.Second ||
		c.DLQSampleInterval != 30*time.Second {
		t.Fatalf("defaults: %+v", c)
	}
	if c.Explicit(config.EnvRedisAddr) {
		t.Fatal("HOBOM_REDIS_ADDR explicit by default")
	}
}

func TestEmbeddedIsABooleanFlag(t *testing.T) {
	c, err := load(t, map[string]string{"HOBOM_REDIS_ADDR": "r:6379"}, "--embedded", "--dev-fail-rate", "0.25")
	if err != nil {
		t.Fatal(err)
	}
	if !c.Embedded || c.DevFailRate != 0.25 || !c.Explicit(config.EnvRedisAddr) || c.Explicit(config.EnvHTTPAddr) {
		t.Fatalf("%+v", c)
	}
	if c, err = load(t, map[string]string{"HOBOM_EMBEDDED": "true"}, "--embedded=false"); err != nil || c.Embedded {
		t.Fatalf("--embedded=false over the environment: %v %v", c.Embedded, err)
	}
}

func TestOpsValidation(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"HOBOM_DEV_FAIL_RATE": "1.5"}, "HOBOM_DEV_FAIL_RATE"},
		{map[string]string{"HOBOM_DEV_FAIL_RATE": "NaN"}, "HOBOM_DEV_FAIL_RATE"},
		{map[string]string{"HOBOM_DEV_EVENT_RATE": "-1"}, "HOBOM_DEV_EVENT_RATE"},
		{map[string]string{"HOBOM_DEV_KAFKA_PORT": "70000"}, "HOBOM_DEV_KAFKA_PORT"},
		{map[string]string{"HOBOM_EMBEDDED": "yes please"}, "HOBOM_EMBEDDED"},
		{map[string]string{"HOBOM_KAFKA_SASL_MECHANISM": "GSSAPI"}, "HOBOM_KAFKA_SASL_MECHANISM"},
		{map[string]string{"HOBOM_KAFKA_SASL_MECHANISM": "PLAIN", "HOBOM_KAFKA_SASL_USER": "u"}, "HOBOM_KAFKA_SASL_PASSWORD"},
		{map[string]string{"HOBOM_READY_TIMEOUT": "10s"}, "HOBOM_READY_TIMEOUT"},
		{map[string]string{"HOBOM_INSTANCE_ID": "pod|7"}, "HOBOM_INSTANCE_ID"},
	} {
		_, err := load(t, c.env)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want one naming %s", c.env, err, c.want)
		}
	}
	_, err := load(t, map[string]string{"HOBOM_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "HOBOM_KAFKA_SASL_USER": "u", "HOBOM_KAFKA_SASL_PASSWORD": "hunter2", "HOBOM_REDIS_PASSWORD": "pw"})
	if err != nil {
		t.Fatal(err)
	}
}

func TestCAFileImpliesTLS(t *testing.T) {
	c, err := load(t, map[string]string{"HOBOM_GRPC_TLS_CA": "/ca.pem", "HOBOM_KAFKA_TLS_CA": "/k.pem", "HOBOM_REDIS_TLS_CA": "/r.pem"})
	if err != nil {
		t.Fatal(err)
	}
	if !c.GRPCTLS || !c.KafkaTLS || !c.RedisTLS {
		t.Fatalf("%+v", c.Security)
	}
}

func TestSecretsAreNotPrinted(t *testing.T) {
	_, err := load(t, map[string]string{"HOBOM_KAFKA_SASL_MECHANISM": "PLAIN", "HOBOM_KAFKA_SASL_USER": "u", "HOBOM_KAFKA_SASL_PASSWORD": "hunter2", "HOBOM_READY_INTERVAL": "x"})
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error %v", err)
	}
	var out bytes.Buffer
	config.Usage(&out, "p")
	for _, env := range []string{"HOBOM_EMBEDDED", "HOBOM_DEV_FAIL_RATE", "HOBOM_KAFKA_SASL_PASSWORD", "HOBOM_REDIS_TLS_CA", "HOBOM_READY_INTERVAL"} {
		if !strings.Contains(out.String(), env) {
			t.Errorf("usage lacks %s", env)
		}
	}
}

// TestAPIFailsClosed: outside dev mode the process needs an API key or the
// explicit choice of an open API; a key with whitespace around it is
// refused (it would never match what a client sends).
func TestAPIFailsClosed(t *testing.T) {
	_, err := loadStrict(t, nil)
	if err == nil || !strings.Contains(err.Error(), "HOBOM_INTERNAL_API_KEY") || !strings.Contains(err.Error(), "HOBOM_INTERNAL_API_OPEN=true") {
		t.Fatalf("no key, no opt-in: %v; want an error naming the key and the opt-in", err)
	}
	for _, env := range []map[string]string{
		{"HOBOM_INTERNAL_API_KEY": "s3cret"},
		{"HOBOM_INTERNAL_API_OPEN": "true"},
		{"HOBOM_EMBEDDED": "true"},
	} {
		if _, err := loadStrict(t, env); err != nil {
			t.Errorf("%v: %v", env, err)
		}
	}
	for _, key := range []string{"hunter2 ", " hunter2", "hunter2\n", "\thunter2", "hunt\x00er2"} {
		_, err := loadStrict(t, map[string]string{"HOBOM_INTERNAL_API_KEY": key})
		if err == nil || !strings.Contains(err.Error(), "HOBOM_INTERNAL_API_KEY") || strings.Contains(err.Error(), "hunt") {
			t.Errorf("key %q: %v; want an error naming the setting, not the key", key, err)
		}
	}
	// Dev mode listens on loopback only.
	for addr, ok := range map[string]bool{"127.0.0.1:0": true, "[::1]:8082": true, "localhost:8082": true, ":8082": false, "0.0.0.0:8082": false, "10.1.2.3:8082": false} {
		_, err := loadStrict(t, map[string]string{"HOBOM_EMBEDDED": "true", "HOBOM_HTTP_ADDR": addr})
		if (err == nil) != ok || (err != nil && !strings.Contains(err.Error(), "HOBOM_HTTP_ADDR")) {
			t.Errorf("dev mode on %s: %v", addr, err)
		}
	}
}

// TestSettingsAreBounded: every setting out of its documented range is
// refused, naming the setting; the bounds themselves are accepted.
func TestSettingsAreBounded(t *testing.T) {
	bad := map[string][]string{
		"HOBOM_DLQ_TTL":             {"1ms", "59s", "721h", "0s"},
		"HOBOM_POLL_INTERVAL":       {"1ns", "9ms", "2h"},
		"HOBOM_POLL_MAX_BACKOFF":    {"1ns", "2h"},
		"HOBOM_READY_INTERVAL":      {"1ns", "99ms", "11m"},
		"HOBOM_READY_TIMEOUT":       {"1ns", "2m"},
		"HOBOM_DLQ_SAMPLE_INTERVAL": {"1ns", "99ms", "2h"},
		"HOBOM_PUBLISH_ATTEMPTS":    {"0", "11", "60", "-1", "3x"},
		"HOBOM_PUBLISH_BACKOFF":     {"1ns", "11s"},
		"HOBOM_MARK_CONCURRENCY":    {"0", "1025"},
		"HOBOM_FIND_LIMIT":          {"-1", "1000001"},
		"HOBOM_GRPC_TIMEOUT":        {"1ns", "6m"},
		"HOBOM_KAFKA_WRITE_TIMEOUT": {"1ns", "6m"},
		"HOBOM_SHUTDOWN_TIMEOUT":    {"1ms", "11m"},
		"HOBOM_LEASE_TTL":           {"1ms", "11m"},
		"HOBOM_GRPC_MAX_RECV_BYTES": {"1", "4194303", "2147483648"},
		"HOBOM_DEV_EVENT_RATE":      {"10001"},
		"HOBOM_REDIS_ADDR":          {"bogus", "redis", ":6379", "redis:0", "redis:65536", "redis:x", "re dis:6379"},
		"HOBOM_GRPC_ADDR":           {"::::", "backend", "backend:", ":50051"},
		"HOBOM_KAFKA_BROKER":        {"nohost", "kafka:9092,nohost", "kafka:-1"},
		"HOBOM_HTTP_ADDR":           {"bogus", "8082", "127.0.0.1:99999", "host:x"},
		"HOBOM_LOG_LEVEL":           {"disabled", "panic", "fatal", "7", "-1", "", "INFO"},
		"HOBOM_INSTANCE_ID":         {"a\nb", string(make([]byte, 129))},
	}
	for env, values := range bad {
		for _, v := range values {
			if v == "" {
				// An empty variable is unset; give it as a flag.
				continue
			}
			_, err := load(t, map[string]string{env: v})
			if err == nil || !strings.Contains(err.Error(), env) {
				t.Errorf("%s=%q: %v; want an error naming %s", env, v, err, env)
			}
		}
	}
	if _, err := load(t, nil, "--log-level="); err == nil || !strings.Contains(err.Error(), "HOBOM_LOG_LEVEL") {
		t.Errorf("empty log level: %v", err)
	}
	good := map[string]string{
		"HOBOM_DLQ_TTL": "1m", "HOBOM_POLL_INTERVAL": "10ms", "HOBOM_POLL_MAX_BACKOFF": "1h", "HOBOM_READY_INTERVAL": "100ms",
		"HOBOM_READY_TIMEOUT": "100ms", "HOBOM_DLQ_SAMPLE_INTERVAL": "100ms", "HOBOM_PUBLISH_ATTEMPTS": "10",
		"HOBOM_PUBLISH_BACKOFF": "10s", "HOBOM_MARK_CONCURRENCY": "1024", "HOBOM_FIND_LIMIT": "0", "HOBOM_LEASE_TTL": "10m",
		"HOBOM_REDIS_ADDR": "[::1]:6379", "HOBOM_GRPC_ADDR": "backend.internal:50051", "HOBOM_KAFKA_BROKER": "k1:9092, k2:9093",
		"HOBOM_HTTP_ADDR": ":0", "HOBOM_LOG_LEVEL": "trace",
	}
	c, err := load(t, good)
	if err != nil {
		t.Fatalf("the bounds themselves: %v", err)
	}
	if c.DLQTTL != time.Minute || c.PublishAttempts != 10 || len(c.KafkaBrokers) != 2 {
		t.Fatalf("%+v", c)
	}
}
