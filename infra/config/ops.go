package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"time"
)

// Security says how the connections to the backend, Kafka and Redis are
// encrypted and authenticated. The zero value is plaintext without
// credentials, which is what the contract's in-cluster services speak.
type Security struct {
	// GRPCTLS enables TLS to the backend; GRPCTLSCA is a PEM file of the
	// CAs to trust instead of the system pool (setting it implies TLS).
	GRPCTLS   bool
	GRPCTLSCA string
	// KafkaTLS and KafkaTLSCA: the same for the Kafka brokers.
	KafkaTLS   bool
	KafkaTLSCA string
	// KafkaSASLMechanism is "", PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
	KafkaSASLMechanism string
	KafkaSASLUser      string
	KafkaSASLPassword  string
	// RedisTLS and RedisTLSCA: the same for Redis.
	RedisTLS   bool
	RedisTLSCA string
	// RedisUsername (an ACL user; empty for the default user) and
	// RedisPassword authenticate to Redis when the password is set.
	RedisUsername string
	RedisPassword string
}

// Observability tunes /ready and the metrics sampled in the background.
type Observability struct {
	// ReadyInterval is how often /ready's checker probes the backend,
	// Kafka and Redis; ReadyTimeout bounds each probe.
	ReadyInterval time.Duration
	ReadyTimeout  time.Duration
	// DLQSampleInterval is how often the DLQ size gauge is sampled with
	// SCAN.
	DLQSampleInterval time.Duration
}

// Dev is the embedded development mode: one process with a stand-in
// backend, kfake and miniredis (infra/devkit/embedded). Only cmd/hobom-dev runs
// it; the product binary refuses Embedded.
type Dev struct {
	Embedded bool
	// DevEventRate is the events per second the stand-in backend makes
	// (MESSAGE and HOBOM_LOG in turn); 0 makes none.
	DevEventRate float64
	// DevFailRate is the share of publish attempts made to fail, 0..1.
	DevFailRate float64
	// DevKafkaPort is the loopback port of the embedded Kafka.
	DevKafkaPort int
}

// Names of the settings other packages ask Explicit about.
const (
	EnvRedisAddr    = "HOBOM_REDIS_ADDR"
	EnvHTTPAddr     = "HOBOM_HTTP_ADDR"
	EnvPollInterval = "HOBOM_POLL_INTERVAL"
	EnvLogFormat    = "HOBOM_LOG_FORMAT"
)

// SASL mechanisms accepted by HOBOM_KAFKA_SASL_MECHANISM.
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// Explicit reports whether the setting with environment name env was given
// by a flag or the environment rather than left at its default.
func (c Config) Explicit(env string) bool { return c.explicit[env] }

// opsSettings are the rows of the settings table for TLS, SASL,
// observability and the embedded dev mode. Boolean settings (default "true"
// or "false") are also plain flags: --embedded means --embedded=true.
func opsSettings() []setting {
	return []setting{
		{"grpc-tls", "HOBOM_GRPC_TLS", "false", "connect to the backend over TLS", false, boolean(func(c *Config) *bool { return &c.GRPCTLS })},
		{"grpc-tls-ca", "HOBOM_GRPC_TLS_CA", "", "PEM file of CAs trusted for the backend instead of the system's (implies HOBOM_GRPC_TLS)", false, str(func(c *Config) *string { return &c.GRPCTLSCA })},
		{"kafka-tls", "HOBOM_KAFKA_TLS", "false", "connect to Kafka over TLS", false, boolean(func(c *Config) *bool { return &c.KafkaTLS })},
		{"kafka-tls-ca", "HOBOM_KAFKA_TLS_CA", "", "PEM file of CAs trusted for Kafka instead of the system's (implies HOBOM_KAFKA_TLS)", false, str(func(c *Config) *string { return &c.KafkaTLSCA })},
		{"kafka-sasl-mechanism", "HOBOM_KAFKA_SASL_MECHANISM", "", "Kafka SASL: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (empty: none)", false, func(c *Config, v string) error {
			switch v {
			case "", SASLPlain, SASLScramSHA256, SASLScramSHA512:
				c.KafkaSASLMechanism = v
				return nil
			}
			return fmt.Errorf("%q is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", v)
		}},
		{"kafka-sasl-user", "HOBOM_KAFKA_SASL_USER", "", "Kafka SASL user", false, str(func(c *Config) *string { return &c.KafkaSASLUser })},
		{"kafka-sasl-password", "HOBOM_KAFKA_SASL_PASSWORD", "", "Kafka SASL password", true, str(func(c *Config) *string { return &c.KafkaSASLPassword })},
		{"redis-tls", "HOBOM_REDIS_TLS", "false", "connect to Redis over TLS", false, boolean(func(c *Config) *bool { return &c.RedisTLS })},
		{"redis-tls-ca", "HOBOM_REDIS_TLS_CA", "", "PEM file of CAs trusted for Redis instead of the system's (implies HOBOM_REDIS_TLS)", false, str(func(c *Config) *string { return &c.RedisTLSCA })},
		{"redis-username", "HOBOM_REDIS_USERNAME", "", "Redis ACL user (empty: the default user)", false, str(func(c *Config) *string { return &c.RedisUsername })},
		{"redis-password", "HOBOM_REDIS_PASSWORD", "", "Redis password (empty: no AUTH)", true, str(func(c *Config) *string { return &c.RedisPassword })},
		{"ready-interval", "HOBOM_READY_INTERVAL", "5s", "how often /ready probes the backend, Kafka and Redis (100ms..10m)", false, durIn(100*time.Millisecond, 10*time.Minute, func(c *Config) *time.Duration { return &c.ReadyInterval })},
		{"ready-timeout", "HOBOM_READY_TIMEOUT", "2s", "timeout of one /ready probe (10ms..1m, at most the ready interval)", false, durIn(10*time.Millisecond, time.Minute, func(c *Config) *time.Duration { return &c.ReadyTimeout })},
		{"dlq-sample-interval", "HOBOM_DLQ_SAMPLE_INTERVAL", "30s", "how often the DLQ size metric is sampled with SCAN (100ms..1h)", false, durIn(100*time.Millisecond, time.Hour, func(c *Config) *time.Duration { return &c.DLQSampleInterval })},
		{"embedded", "HOBOM_EMBEDDED", "false", "dev mode, only in hobom-dev (make dev): a stand-in backend, Kafka (kfake) and Redis (miniredis unless HOBOM_REDIS_ADDR is set) in one process", false, boolean(func(c *Config) *bool { return &c.Embedded })},
		{"dev-event-rate", "HOBOM_DEV_EVENT_RATE", "2", "embedded mode: events per second the stand-in backend makes (0..10000; 0: none)", false, rate(func(c *Config) *float64 { return &c.DevEventRate }, 10000)},
		{"dev-fail-rate", "HOBOM_DEV_FAIL_RATE", "0", "embedded mode: share of publish attempts that fail, 0..1, so the DLQ fills", false, rate(func(c *Config) *float64 { return &c.DevFailRate }, 1)},
		{"dev-kafka-port", "HOBOM_DEV_KAFKA_PORT", "9092", "embedded mode: port of Kafka on 127.0.0.1", false, func(c *Config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 65535 {
				return errors.New("not a port number")
			}
			c.DevKafkaPort = n
			return nil
		}},
	}
}

// checkOps checks what single settings cannot: settings that need others.
func checkOps(c *Config) []error {
	var errs []error
	if c.KafkaSASLMechanism != "" && (c.KafkaSASLUser == "" || c.KafkaSASLPassword == "") {
		errs = append(errs, fmt.Errorf("HOBOM_KAFKA_SASL_MECHANISM=%s needs HOBOM_KAFKA_SASL_USER and HOBOM_KAFKA_SASL_PASSWORD", c.KafkaSASLMechanism))
	}
	if c.ReadyTimeout > c.ReadyInterval {
		errs = append(errs, fmt.Errorf("HOBOM_READY_TIMEOUT (%v) is longer than HOBOM_READY_INTERVAL (%v)", c.ReadyTimeout, c.ReadyInterval))
	}
	// The API fails closed: outside dev mode it needs a key, or the
	// operator's explicit choice of an open API.
	if c.InternalAPIKey == "" && !c.InternalAPIOpen && !c.Embedded && !c.explicit["HOBOM_INTERNAL_API_KEY"] {
		errs = append(errs, errors.New("HOBOM_INTERNAL_API_KEY is not set: the management API replays and discards dead letters, so it needs a key (set HOBOM_INTERNAL_API_OPEN=true to run it open on purpose)"))
	}
	// Dev mode's API has no key by default: it listens on loopback only.
	if c.Embedded && c.explicit[EnvHTTPAddr] {
		if host, _, err := net.SplitHostPort(c.HTTPAddr); err == nil && !isLoopback(host) {
			errs = append(errs, fmt.Errorf("HOBOM_HTTP_ADDR (%s): dev mode (HOBOM_EMBEDDED) listens on a loopback address only, such as 127.0.0.1:8082", c.HTTPAddr))
		}
	}
	c.GRPCTLS = c.GRPCTLS || c.GRPCTLSCA != ""
	c.KafkaTLS = c.KafkaTLS || c.KafkaTLSCA != ""
	c.RedisTLS = c.RedisTLS || c.RedisTLSCA != ""
	return errs
}

// isLoopback reports whether a listen host is a loopback address or
// localhost (an empty host means every interface).
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func isBool(s setting) bool { return s.def == "true" || s.def == "false" }

func boolean(field func(*Config) *bool) func(*Config, string) error {
	return func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return errors.New("not a boolean (true or false)")
		}
		*field(c) = b
		return nil
	}
}

// rate parses a non-negative number, at most maxV unless maxV < 0.
func rate(field func(*Config) *float64, maxV float64) func(*Config, string) error {
	return func(c *Config, v string) error {
		f, err := strconv.ParseFloat(v, 64)
		switch {
		case err != nil || math.IsNaN(f) || math.IsInf(f, 0):
			return errors.New("not a finite number")
		case f < 0:
			return errors.New("must not be negative")
		case maxV >= 0 && f > maxV:
			return fmt.Errorf("must be at most %v", maxV)
		}
		*field(c) = f
		return nil
	}
}
