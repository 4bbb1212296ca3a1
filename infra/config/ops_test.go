package config_test

import (
	"bytes"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/hobom/hobom-event-processor/infra/config"
)

func load(t *testing.T, env map[string]string, args ...string) (config.Config, error) {
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
