// Package config loads the processor's settings from flags, the environment
// (names of CONTRACT.md §5) and documented defaults, in that order of
// precedence, into one Config.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// Config is every setting of the processor.
type Config struct {
	GRPCAddr          string
	GRPCAPIKey        string
	GRPCMaxRecvBytes  int
	GRPCTimeout       time.Duration
	KafkaBrokers      []string
	KafkaAcks         string
	KafkaWriteTimeout time.Duration
	RedisAddr         string
	HTTPAddr          string
	InternalAPIKey    string
	PollInterval      time.Duration
	PollMaxBackoff    time.Duration
	FindLimit         int
	PublishAttempts   int
	PublishBackoff    time.Duration
	MarkConcurrency   int
	DLQTTL            time.Duration
	ShutdownTimeout   time.Duration
	LeaseTTL          time.Duration
	InstanceID        string
	LogLevel          zerolog.Level
	LogFormat         string

	Security
	Observability
	Dev

	// explicit holds the environment names of the settings given by a flag
	// or the environment (see Explicit).
	explicit map[string]bool
}

// setting is one row of the settings table: the flag, its environment
// variable, the default and how to store a parsed value.
type setting struct {
	flag, env, def, help string
	secret               bool
	set                  func(c *Config, v string) error
}

func settings() []setting {
	return append([]setting{
		{"grpc-addr", "HOBOM_GRPC_ADDR", "dev-for-hobom-backend:50051", "outbox backend gRPC address", false, str(func(c *Config) *string { return &c.GRPCAddr })},
		{"grpc-api-key", "HOBOM_GRPC_API_KEY", "", "x-api-key sent on every backend call (empty: none)", true, str(func(c *Config) *string { return &c.GRPCAPIKey })},
		{"grpc-max-recv-bytes", "HOBOM_GRPC_MAX_RECV_BYTES", "268435456", "largest backend response accepted (bytes); a whole backlog comes in one find response", false, posInt(func(c *Config) *int { return &c.GRPCMaxRecvBytes })},
		{"grpc-timeout", "HOBOM_GRPC_TIMEOUT", "10s", "timeout of one backend rpc", false, dur(func(c *Config) *time.Duration { return &c.GRPCTimeout })},
		{"kafka-broker", "HOBOM_KAFKA_BROKER", "kafka:9092", "Kafka bootstrap brokers, comma-separated", false, func(c *Config, v string) error {
			c.KafkaBrokers = nil
			for _, b := range strings.Split(v, ",") {
				if b = strings.TrimSpace(b); b != "" {
					c.KafkaBrokers = append(c.KafkaBrokers, b)
				}
			}
			if len(c.KafkaBrokers) == 0 {
				return errors.New("no broker given")
			}
			return nil
		}},
		{"kafka-acks", "HOBOM_KAFKA_ACKS", "all", "all (idempotent, no loss on leader failover) or leader (the old service's setting)", false, func(c *Config, v string) error {
			if v != "all" && v != "leader" {
				return fmt.Errorf("%q is neither all nor leader", v)
			}
			c.KafkaAcks = v
			return nil
		}},
		{"kafka-write-timeout", "HOBOM_KAFKA_WRITE_TIMEOUT", "10s", "how long one publish attempt may take", false, dur(func(c *Config) *time.Duration { return &c.KafkaWriteTimeout })},
		{"redis-addr", "HOBOM_REDIS_ADDR", "redis:6379", "Redis address of the dead-letter queue", false, str(func(c *Config) *string { return &c.RedisAddr })},
		{"http-addr", "HOBOM_HTTP_ADDR", ":8082", "listen address of the management API", false, str(func(c *Config) *string { return &c.HTTPAddr })},
		{"internal-api-key", "HOBOM_INTERNAL_API_KEY", "", "x-api-key required by the DLQ API (empty: open)", true, str(func(c *Config) *string { return &c.InternalAPIKey })},
		{"poll-interval", "HOBOM_POLL_INTERVAL", "5s", "wait after an empty poll", false, dur(func(c *Config) *time.Duration { return &c.PollInterval })},
		{"poll-max-backoff", "HOBOM_POLL_MAX_BACKOFF", "1m", "longest wait between polls while something keeps failing", false, dur(func(c *Config) *time.Duration { return &c.PollMaxBackoff })},
		{"find-limit", "HOBOM_FIND_LIMIT", "5000", "rows asked for per poll (0: all; old backends ignore it)", false, nonNegInt(func(c *Config) *int { return &c.FindLimit })},
		{"publish-attempts", "HOBOM_PUBLISH_ATTEMPTS", "3", "publish attempts before an event goes to the DLQ", false, posInt(func(c *Config) *int { return &c.PublishAttempts })},
		{"publish-backoff", "HOBOM_PUBLISH_BACKOFF", "200ms", "wait before the second publish attempt, doubling after", false, dur(func(c *Config) *time.Duration { return &c.PublishBackoff })},
		{"mark-concurrency", "HOBOM_MARK_CONCURRENCY", "32", "mark rpcs in flight at once", false, posInt(func(c *Config) *int { return &c.MarkConcurrency })},
		{"dlq-ttl", "HOBOM_DLQ_TTL", "72h", "how long a DLQ entry is kept", false, dur(func(c *Config) *time.Duration { return &c.DLQTTL })},
		{"lease-ttl", "HOBOM_LEASE_TTL", "0s", "with several instances: each event type's poller holds a Redis lease of this TTL (0s: off, for a single instance)", false, func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 || (d > 0 && d < 300*time.Millisecond) {
				return fmt.Errorf("not 0s or a duration of at least 300ms")
			}
			c.LeaseTTL = d
			return nil
		}},
		{"instance-id", "HOBOM_INSTANCE_ID", "", "this instance's name in leases (empty: hostname-pid)", false, str(func(c *Config) *string { return &c.InstanceID })},
		{"shutdown-timeout", "HOBOM_SHUTDOWN_TIMEOUT", "30s", "how long a shutdown may take to finish in-flight events", false, dur(func(c *Config) *time.Duration { return &c.ShutdownTimeout })},
		{"log-level", "HOBOM_LOG_LEVEL", "info", "trace, debug, info, warn or error", false, func(c *Config, v string) error {
			l, err := zerolog.ParseLevel(v)
			if err != nil || v == "" {
				return fmt.Errorf("unknown level %q", v)
			}
			c.LogLevel = l
			return nil
		}},
		{"log-format", "HOBOM_LOG_FORMAT", "json", "json or console", false, func(c *Config, v string) error {
			if v != "json" && v != "console" {
				return fmt.Errorf("%q is neither json nor console", v)
			}
			c.LogFormat = v
			return nil
		}},
	}, opsSettings()...)
}

// Load parses args (without the program name) over the environment. It
// returns flag.ErrHelp for -h/--help after printing the usage to out, and
// an error naming every bad setting otherwise.
func Load(fs *flag.FlagSet, args []string, getenv func(string) string, out io.Writer) (Config, error) {
	table := settings()
	given := map[string]string{}
	for _, s := range table {
		name := s.flag
		if isBool(s) {
			fs.BoolFunc(name, s.help, func(v string) error { given[name] = v; return nil })
			continue
		}
		fs.Func(name, s.help, func(v string) error { given[name] = v; return nil })
	}
	fs.SetOutput(out)
	fs.Usage = func() { Usage(out, fs.Name()) }
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	c := Config{explicit: map[string]bool{}}
	var errs []error
	for _, s := range table {
		v, src := s.def, "default"
		if e := getenv(s.env); e != "" {
			v, src = e, s.env
		}
		if f, ok := given[s.flag]; ok {
			v, src = f, "--"+s.flag
		}
		c.explicit[s.env] = src != "default"
		if err := s.set(&c, v); err != nil {
			shown := v
			if s.secret {
				shown = "<secret>"
			}
			errs = append(errs, fmt.Errorf("%s (from %s) = %q: %w", s.env, src, shown, err))
		}
	}
	errs = append(errs, checkOps(&c)...)
	if c.InstanceID == "" {
		host, _ := os.Hostname()
		c.InstanceID = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if c.PollMaxBackoff < c.PollInterval {
		c.PollMaxBackoff = c.PollInterval
	}
	return c, errors.Join(errs...)
}

// Usage prints every setting with its flag, environment variable and default.
func Usage(out io.Writer, prog string) {
	fmt.Fprintf(out, "Usage: %s [flags]\n\nEvery setting is a flag or an environment variable; a flag wins over the environment.\n\n", prog)
	for _, s := range settings() {
		def := s.def
		if def == "" {
			def = `""`
		}
		fmt.Fprintf(out, "  --%-22s %-28s default %s\n      %s\n", s.flag, s.env, def, s.help)
	}
}

// FromEnv is Load over the process environment without flags.
func FromEnv() (Config, error) {
	return Load(flag.NewFlagSet("hobom-event-processor", flag.ContinueOnError), nil, os.Getenv, io.Discard)
}

func str(field func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error { *field(c) = v; return nil }
}

func dur(field func(*Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("not a duration like 5s or 200ms")
		}
		if d <= 0 {
			return fmt.Errorf("must be positive")
		}
		*field(c) = d
		return nil
	}
}

func posInt(field func(*Config) *int) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return fmt.Errorf("not a positive integer")
		}
		*field(c) = n
		return nil
	}
}

func nonNegInt(field func(*Config) *int) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return fmt.Errorf("not a non-negative integer")
		}
		*field(c) = n
		return nil
	}
}
