// Package embedded is the development mode (`make dev`, the command cmd/hobom-dev): one
// process runs the stand-in outbox backend making a steady trickle of
// MESSAGE and HOBOM_LOG events, an in-memory Kafka (kfake) on a fixed
// loopback port that kcat can read, miniredis as the DLQ (unless
// HOBOM_REDIS_ADDR names a real Redis), and the processor against them.
// HOBOM_DEV_FAIL_RATE makes a share of publish attempts fail so the DLQ
// fills and replays can be tried.
package embedded

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/hobom/hobom-event-processor/actors"
	"github.com/hobom/hobom-event-processor/infra/adapters/redisdlq"
	"github.com/hobom/hobom-event-processor/infra/app"
	"github.com/hobom/hobom-event-processor/infra/config"
	"github.com/hobom/hobom-event-processor/infra/devkit/fakebackend"
	"github.com/hobom/hobom-event-processor/messages"
)

// Defaults returns cfg with the dev mode's defaults for the settings the
// user did not give: the API on loopback only, console logs, a 1 s poll
// interval (events show up quickly) and a 5 s DLQ size sample.
func Defaults(cfg config.Config) config.Config {
	if !cfg.Explicit(config.EnvHTTPAddr) {
		cfg.HTTPAddr = "127.0.0.1:8082"
	}
	if !cfg.Explicit(config.EnvLogFormat) {
		cfg.LogFormat = "console"
	}
	if !cfg.Explicit(config.EnvPollInterval) {
		cfg.PollInterval = time.Second
		cfg.PollMaxBackoff = max(cfg.PollMaxBackoff, cfg.PollInterval)
	}
	if !cfg.Explicit("HOBOM_DLQ_SAMPLE_INTERVAL") {
		cfg.DLQSampleInterval = 5 * time.Second
	}
	return cfg
}

// Dev is the embedded stack with the processor running against it.
type Dev struct {
	cfg config.Config
	log zerolog.Logger

	backend *fakebackend.Server
	kafka   *kfake.Cluster
	mini    *miniredis.Miniredis // nil when HOBOM_REDIS_ADDR names a real Redis
	gen     *generator
	app     *app.App

	kafkaAddr string
	redisAddr string
	demoKey   string
}

// Start starts the stand-in backend, Kafka on 127.0.0.1:cfg.DevKafkaPort,
// miniredis unless HOBOM_REDIS_ADDR was given, seeds one demo DLQ entry,
// starts the event generator and the processor. The returned Dev serves
// once Run is called; on error everything started is stopped again.
func Start(cfg config.Config, log zerolog.Logger) (d *Dev, err error) {
	d = &Dev{cfg: cfg, log: log.With().Str("component", "embedded").Logger()}
	defer func() {
		if err != nil {
			d.closeStack()
		}
	}()

	if cfg.Explicit(config.EnvRedisAddr) {
		d.redisAddr = cfg.RedisAddr
	} else {
		d.mini = miniredis.NewMiniRedis()
		if err := d.mini.Start(); err != nil {
			d.mini = nil
			return nil, fmt.Errorf("embedded: start miniredis: %w", err)
		}
		d.redisAddr = d.mini.Addr()
	}

	d.kafka, err = kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.Ports(cfg.DevKafkaPort),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(3),
		kfake.SeedTopics(3, topics()...),
	)
	if err != nil {
		return nil, fmt.Errorf("embedded: start Kafka (kfake) on 127.0.0.1:%d: %w; choose another port with HOBOM_DEV_KAFKA_PORT", cfg.DevKafkaPort, err)
	}
	d.kafkaAddr = d.kafka.ListenAddrs()[0]

	d.backend, err = fakebackend.Start(fakebackend.Options{APIKey: cfg.GRPCAPIKey})
	if err != nil {
		return nil, fmt.Errorf("embedded: start the stand-in backend: %w", err)
	}

	cfg.GRPCAddr = d.backend.Addr()
	cfg.KafkaBrokers = []string{d.kafkaAddr}
	cfg.RedisAddr = d.redisAddr
	// The embedded servers speak plaintext without credentials.
	cfg.GRPCTLS, cfg.GRPCTLSCA = false, ""
	cfg.KafkaTLS, cfg.KafkaTLSCA, cfg.KafkaSASLMechanism = false, "", ""
	if d.mini != nil {
		cfg.RedisTLS, cfg.RedisTLSCA, cfg.RedisUsername, cfg.RedisPassword = false, "", "", ""
	}
	d.cfg = cfg

	if d.demoKey, err = d.seedDemoDeadLetter(); err != nil {
		return nil, err
	}

	var opts app.Options
	if cfg.DevFailRate > 0 {
		opts.WrapProducer = func(p actors.Producer) actors.Producer { return flakyProducer{next: p, rate: cfg.DevFailRate} }
	}
	d.app, err = app.New(cfg, log, opts)
	if err != nil {
		return nil, err
	}
	d.gen = startGenerator(d.backend, cfg.DevEventRate)
	return d, nil
}

func topics() []string {
	var ts []string
	for _, r := range messages.DefaultRoutes() {
		ts = append(ts, r.Topic)
	}
	return ts
}

// seedDemoDeadLetter puts one failed MESSAGE event in the backend and its
// entry in the DLQ, so that the printed inspect and replay commands work
// from the start.
func (d *Dev) seedDemoDeadLetter() (string, error) {
	route := messages.DefaultRoutes()[0]
	id := "demo-" + newUUID()
	now := time.Now()
	p := &messages.MessagePayload{
		ID: "demo", Title: "A dead letter to replay", Body: "Seeded by the embedded dev mode.",
		Recipient: "newcomer@example.com", SenderID: "dev", Type: "MAIL_MESSAGE",
	}
	reason := "demo entry seeded by the embedded dev mode"
	d.backend.Add(messages.Event{
		EventID: id, EventType: route.EventType, Status: messages.StatusFailed, Message: p,
		RetryCount: 1, FailedAt: now.UTC().Format(time.RFC3339Nano), LastError: reason,
	})
	value, err := messages.AppendMessageValue(nil, p, now)
	if err != nil {
		return "", fmt.Errorf("embedded: encode the demo dead letter: %w", err)
	}
	ro, err := app.RedisOptions(d.cfg)
	if err != nil {
		return "", err
	}
	rc := redis.NewClient(ro)
	defer rc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	key := route.DLQKey(id)
	meta := actors.DeadLetterMeta{EventType: route.EventType, EventID: id, Topic: route.Topic, Reason: reason, Attempts: 3, FailedAt: now}
	if err := redisdlq.New(rc).Put(ctx, key, value, meta, d.cfg.DLQTTL); err != nil {
		return "", fmt.Errorf("embedded: seed the demo dead letter in Redis at %s: %w", d.redisAddr, err)
	}
	return key, nil
}

// Run serves until ctx ends, then shuts the processor down and stops the
// stack. It returns the processor's shutdown error.
func (d *Dev) Run(ctx context.Context) error {
	err := d.app.Run(ctx)
	d.closeStack()
	return err
}

// closeStack stops the generator and the servers; each step runs once.
func (d *Dev) closeStack() {
	if d.gen != nil {
		d.gen.stop()
		d.gen = nil
	}
	if d.backend != nil {
		d.backend.Close()
		d.backend = nil
	}
	if d.kafka != nil {
		d.kafka.Close()
		d.kafka = nil
	}
	if d.mini != nil {
		d.mini.Close()
		d.mini = nil
	}
}

// App is the processor.
func (d *Dev) App() *app.App { return d.app }

// Backend is the stand-in backend (Seed, SetFault, Count ...).
func (d *Dev) Backend() *fakebackend.Server { return d.backend }

// KafkaAddr is the embedded Kafka's host:port.
func (d *Dev) KafkaAddr() string { return d.kafkaAddr }

// RedisAddr is the DLQ's Redis address.
func (d *Dev) RedisAddr() string { return d.redisAddr }

// DemoKey is the DLQ key of the seeded demo entry.
func (d *Dev) DemoKey() string { return d.demoKey }

// Config is the processor's configuration, pointing at the stack.
func (d *Dev) Config() config.Config { return d.cfg }

// Generated is how many events the generator has made.
func (d *Dev) Generated() int64 {
	if d.gen == nil {
		return 0
	}
	return d.gen.count.Load()
}

// ErrExternalRedis is returned by StopRedis and StartRedis when the DLQ is
// a real Redis named by HOBOM_REDIS_ADDR.
var ErrExternalRedis = errors.New("embedded: Redis is external (HOBOM_REDIS_ADDR), not miniredis")

// StopRedis stops the embedded miniredis (its data is kept), to see the
// processor cope with a Redis outage.
func (d *Dev) StopRedis() error {
	if d.mini == nil {
		return ErrExternalRedis
	}
	d.mini.Close()
	return nil
}

// StartRedis starts a stopped miniredis again on the same address.
func (d *Dev) StartRedis() error {
	if d.mini == nil {
		return ErrExternalRedis
	}
	if err := d.mini.Restart(); err != nil {
		return fmt.Errorf("embedded: restart miniredis: %w", err)
	}
	return nil
}

// baseURL is the processor's API as a URL a local curl reaches.
func (d *Dev) baseURL() string {
	host, port, err := net.SplitHostPort(d.app.HTTPAddr())
	if err != nil {
		return "http://" + d.app.HTTPAddr()
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// BaseURL is the processor's API as a URL a local curl reaches.
func (d *Dev) BaseURL() string { return d.baseURL() }
