// Package config loads the processor's settings from flags, the environment
// (names of docs/contract.md §5) and documented defaults, in that order of
// precedence, into one Config.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

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
	// KafkaOutage is "dlq" (events Kafka cannot take go to the DLQ) or
	// "hold" (while no broker answers they stay PENDING).
	KafkaOutage    string
	RedisAddr      string
	HTTPAddr       string
	HTTPMaxConns   int
	InternalAPIKey string
	// InternalAPIOpen: the operator chose to run the API without a key.
	InternalAPIOpen bool
	PollInterval    time.Duration
	PollMaxBackoff  time.Duration
	FindLimit       int
	PublishAttempts int
	PublishBackoff  time.Duration
	// MarkConcurrency is how many mark rpcs are in flight at once. Its
	// default, 128, was chosen by sweeping the MESSAGE relay of the load
	// test (32 to 512 in flight × 1 to 4 connections): 32 was the worst
	// point, 64 to 512 were 25 to 45 % faster and within the machines'
	// noise of each other; more streams per connection let gRPC write
	// several frames per syscall on both sides.
	MarkConcurrency int
	// MarkConns is how many gRPC connections carry the marks.
	MarkConns int
	// MaxInFlight is the global budget of events held at once, shared
	// equally by the pollers.
	MaxInFlight     int
	DLQTTL          time.Duration
	ShutdownTimeout time.Duration
	LeaseTTL        time.Duration
	InstanceID      string
	LogLevel        zerolog.Level
	LogFormat       string

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
		{"grpc-addr", "HOBOM_GRPC_ADDR", "dev-for-hobom-backend:50051", "outbox backend gRPC address (host:port)", false, hostPort(false, func(c *Config) *string { return &c.GRPCAddr })},
		{"grpc-api-key", "HOBOM_GRPC_API_KEY", "", "x-api-key sent on every backend call (empty: none)", true, str(func(c *Config) *string { return &c.GRPCAPIKey })},
		{"grpc-max-recv-bytes", "HOBOM_GRPC_MAX_RECV_BYTES", "268435456", "largest backend response accepted (bytes, 4194304..2147483647); a whole backlog comes in one find response", false, intIn(4<<20, 1<<31-1, func(c *Config) *int { return &c.GRPCMaxRecvBytes })},
		{"grpc-timeout", "HOBOM_GRPC_TIMEOUT", "10s", "timeout of one backend rpc (100ms..5m)", false, durIn(100*time.Millisecond, 5*time.Minute, func(c *Config) *time.Duration { return &c.GRPCTimeout })},
		{"kafka-broker", "HOBOM_KAFKA_BROKER", "kafka:9092", "Kafka bootstrap brokers, comma-separated host:port", false, func(c *Config, v string) error {
			c.KafkaBrokers = nil
			for _, b := range strings.Split(v, ",") {
				if b = strings.TrimSpace(b); b != "" {
					if err := checkHostPort(b, false); err != nil {
						return fmt.Errorf("broker %q: %w", b, err)
					}
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
		{"kafka-write-timeout", "HOBOM_KAFKA_WRITE_TIMEOUT", "10s", "how long one publish attempt may take (100ms..5m)", false, durIn(100*time.Millisecond, 5*time.Minute, func(c *Config) *time.Duration { return &c.KafkaWriteTimeout })},
		{"kafka-outage", "HOBOM_KAFKA_OUTAGE", "dlq", "while no Kafka broker answers (down, hung, TLS or SASL login refused): dlq sends events to the DLQ after their attempts; hold keeps them PENDING, stops fetching and resumes by itself", false, func(c *Config, v string) error {
			if v != "dlq" && v != "hold" {
				return fmt.Errorf("%q is neither dlq nor hold", v)
			}
			c.KafkaOutage = v
			return nil
		}},
		{"redis-addr", "HOBOM_REDIS_ADDR", "redis:6379", "Redis address of the dead-letter queue (host:port)", false, hostPort(false, func(c *Config) *string { return &c.RedisAddr })},
		{"http-addr", "HOBOM_HTTP_ADDR", ":8082", "listen address of the management API ([host]:port)", false, hostPort(true, func(c *Config) *string { return &c.HTTPAddr })},
		{"http-max-conns", "HOBOM_HTTP_MAX_CONNS", "1024", "most connections the management API holds open at once (16..65536); more wait in the listen backlog", false, intIn(16, 65536, func(c *Config) *int { return &c.HTTPMaxConns })},
		{"internal-api-key", "HOBOM_INTERNAL_API_KEY", "", "x-api-key required by the DLQ API and the details of /ready; required outside dev mode unless HOBOM_INTERNAL_API_OPEN=true", true, apiKey},
		{"internal-api-open", "HOBOM_INTERNAL_API_OPEN", "false", "run the management API without HOBOM_INTERNAL_API_KEY: anyone who reaches it can replay and discard (logged as a warning at start and every hour)", false, boolean(func(c *Config) *bool { return &c.InternalAPIOpen })},
		{"poll-interval", "HOBOM_POLL_INTERVAL", "5s", "wait after an empty poll, less up to a fifth at random (10ms..1h)", false, durIn(10*time.Millisecond, time.Hour, func(c *Config) *time.Duration { return &c.PollInterval })},
		{"poll-max-backoff", "HOBOM_POLL_MAX_BACKOFF", "1m", "longest wait between polls while something keeps failing (10ms..1h; raised to the poll interval when shorter)", false, durIn(10*time.Millisecond, time.Hour, func(c *Config) *time.Duration { return &c.PollMaxBackoff })},
		{"find-limit", "HOBOM_FIND_LIMIT", "5000", "rows asked for per poll (0..1000000; 0: all; old backends ignore it)", false, intIn(0, 1_000_000, func(c *Config) *int { return &c.FindLimit })},
		{"publish-attempts", "HOBOM_PUBLISH_ATTEMPTS", "3", "publish attempts before an event goes to the DLQ (1..10)", false, intIn(1, 10, func(c *Config) *int { return &c.PublishAttempts })},
		{"publish-backoff", "HOBOM_PUBLISH_BACKOFF", "200ms", "wait before the second publish attempt, doubling after (1ms..10s)", false, durIn(time.Millisecond, 10*time.Second, func(c *Config) *time.Duration { return &c.PublishBackoff })},
		{"mark-concurrency", "HOBOM_MARK_CONCURRENCY", "128", "mark rpcs in flight at once (1..1024)", false, intIn(1, 1024, func(c *Config) *int { return &c.MarkConcurrency })},
		{"grpc-mark-conns", "HOBOM_GRPC_MARK_CONNS", "2", "gRPC connections carrying the mark rpcs, round robin (1..16)", false, intIn(1, 16, func(c *Config) *int { return &c.MarkConns })},
		{"max-in-flight", "HOBOM_MAX_IN_FLIGHT", "20000", "events held at once across all pollers, shared equally (100..10000000); bounds memory whatever the number of event types", false, intIn(100, 10_000_000, func(c *Config) *int { return &c.MaxInFlight })},
		{"dlq-ttl", "HOBOM_DLQ_TTL", "72h", "how long a DLQ entry is kept (1m..720h)", false, durIn(time.Minute, 720*time.Hour, func(c *Config) *time.Duration { return &c.DLQTTL })},
		{"lease-ttl", "HOBOM_LEASE_TTL", "15s", "each event type is polled only under its Redis lease of this TTL (held and renewed by the lease actor), so several instances share the work instead of doubling it (0s: off, for one instance only; else 300ms..10m)", false, func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 || (d > 0 && (d < 300*time.Millisecond || d > 10*time.Minute)) {
				return fmt.Errorf("not 0s or a duration from 300ms to 10m")
			}
			c.LeaseTTL = d
			return nil
		}},
		{"instance-id", "HOBOM_INSTANCE_ID", "", "this instance's name in leases (empty: hostname-pid; at most 128 printable characters, no '|')", false, instanceID},
		{"shutdown-timeout", "HOBOM_SHUTDOWN_TIMEOUT", "30s", "how long a shutdown may take to finish in-flight events (1s..10m)", false, durIn(time.Second, 10*time.Minute, func(c *Config) *time.Duration { return &c.ShutdownTimeout })},
		{"log-level", "HOBOM_LOG_LEVEL", "info", "trace, debug, info, warn or error", false, func(c *Config, v string) error {
			l, ok := logLevels[v]
			if !ok {
				return fmt.Errorf("%q is not one of trace, debug, info, warn, error", v)
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

func str(field func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error { *field(c) = v; return nil }
}

// durIn parses a duration within lo..hi: every duration setting is
// bounded, so that a typo (1ns, 1000h) cannot spin the CPU or outlive the
// data it guards.
func durIn(lo, hi time.Duration, field func(*Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("not a duration like 5s or 200ms")
		}
		if d < lo || d > hi {
			return fmt.Errorf("must be from %v to %v", lo, hi)
		}
		*field(c) = d
		return nil
	}
}

// intIn parses a decimal integer within lo..hi.
func intIn(lo, hi int, field func(*Config) *int) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < lo || n > hi {
			return fmt.Errorf("not an integer from %d to %d", lo, hi)
		}
		*field(c) = n
		return nil
	}
}

// hostPort parses an address host:port. listen allows an empty host (every
// interface) and port 0 (any free port), as a listen address may have.
func hostPort(listen bool, field func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error {
		if err := checkHostPort(v, listen); err != nil {
			return err
		}
		*field(c) = v
		return nil
	}
}

func checkHostPort(v string, listen bool) error {
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		return fmt.Errorf("not host:port")
	}
	n, err := strconv.Atoi(port)
	switch {
	case err != nil || n < 0 || n > 65535 || strings.TrimLeft(port, "0123456789") != "":
		return fmt.Errorf("port %q is not a number from 1 to 65535", port)
	case n == 0 && !listen:
		return fmt.Errorf("port 0")
	case host == "" && !listen:
		return fmt.Errorf("empty host")
	case strings.ContainsFunc(host, func(r rune) bool { return r <= ' ' || r == '/' || r > '~' }):
		return fmt.Errorf("host %q holds a space, a slash or a non-ASCII character", host)
	}
	return nil
}

// apiKey sets HOBOM_INTERNAL_API_KEY: leading or trailing whitespace is
// refused rather than trimmed (a key copied with a newline or a space would
// otherwise never match what clients send), as are control characters,
// which no HTTP header can carry.
func apiKey(c *Config, v string) error {
	if strings.TrimSpace(v) != v {
		return errors.New("has leading or trailing whitespace")
	}
	if strings.ContainsFunc(v, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return errors.New("holds a control character")
	}
	c.InternalAPIKey = v
	return nil
}

// instanceID sets HOBOM_INSTANCE_ID: printable, and without '|', which
// the lease records use as a separator and refuse in an owner (an instance
// named with one would start, report ready and never hold a lease).
func instanceID(c *Config, v string) error {
	if strings.Contains(v, "|") {
		return errors.New("holds '|', which lease owners cannot contain")
	}
	return printable(128, func(c *Config) *string { return &c.InstanceID })(c, v)
}

// printable sets a free-text setting of at most max bytes of printable
// characters.
func printable(max int, field func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error {
		if len(v) > max || strings.ContainsFunc(v, func(r rune) bool { return !unicode.IsPrint(r) }) || !utf8.ValidString(v) {
			return fmt.Errorf("not at most %d printable characters", max)
		}
		*field(c) = v
		return nil
	}
}

// logLevels are the documented HOBOM_LOG_LEVEL names; zerolog's others
// (fatal, panic, disabled, numbers) would silence the errors operators need.
var logLevels = map[string]zerolog.Level{
	"trace": zerolog.TraceLevel, "debug": zerolog.DebugLevel, "info": zerolog.InfoLevel,
	"warn": zerolog.WarnLevel, "error": zerolog.ErrorLevel,
}
