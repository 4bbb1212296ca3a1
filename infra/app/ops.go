package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/hobom/hobom-event-processor/actors"
	"github.com/hobom/hobom-event-processor/httpapi"
	"github.com/hobom/hobom-event-processor/httpapi/console"
	"github.com/hobom/hobom-event-processor/infra/adapters/health"
	"github.com/hobom/hobom-event-processor/infra/adapters/kafka"
	"github.com/hobom/hobom-event-processor/infra/adapters/metrics"
	"github.com/hobom/hobom-event-processor/infra/adapters/redisdlq"
	"github.com/hobom/hobom-event-processor/infra/adapters/redislease"
	"github.com/hobom/hobom-event-processor/infra/config"
	"github.com/hobom/hobom-event-processor/messages"
)

// Names of the dependencies in /ready and hobom_dependency_up.
const (
	DepBackend = "backend"
	DepKafka   = "kafka"
	DepRedis   = "redis"
)

// security is the TLS configuration of each connection, nil for plaintext.
type security struct {
	grpc, kafka, redis *tls.Config
}

func loadSecurity(cfg config.Config) (security, error) {
	var s security
	var err error
	if s.grpc, err = TLSConfig(cfg.GRPCTLS, cfg.GRPCTLSCA); err != nil {
		return s, fmt.Errorf("backend TLS: %w", err)
	}
	if s.kafka, err = TLSConfig(cfg.KafkaTLS, cfg.KafkaTLSCA); err != nil {
		return s, fmt.Errorf("kafka TLS: %w", err)
	}
	if s.redis, err = TLSConfig(cfg.RedisTLS, cfg.RedisTLSCA); err != nil {
		return s, fmt.Errorf("redis TLS: %w", err)
	}
	return s, nil
}

// TLSConfig is the client TLS configuration of one connection: nil when
// TLS is off, the system roots when caFile is empty, else the CAs of the
// PEM file caFile.
func TLSConfig(enabled bool, caFile string) (*tls.Config, error) {
	if !enabled && caFile == "" {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile == "" {
		return c, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("read CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s holds no PEM certificate", caFile)
	}
	c.RootCAs = pool
	return c, nil
}

// kafkaSASL is the Kafka login of cfg.
func kafkaSASL(cfg config.Config) kafka.SASL {
	return kafka.SASL{Mechanism: cfg.KafkaSASLMechanism, User: cfg.KafkaSASLUser, Password: cfg.KafkaSASLPassword}
}

// RedisOptions are the go-redis options of cfg's Redis: address, TLS and
// credentials. The processor never gives up retrying (MaxRetries -1 means
// one try per call; the actors retry with their own policy).
func RedisOptions(cfg config.Config) (*redis.Options, error) {
	t, err := TLSConfig(cfg.RedisTLS, cfg.RedisTLSCA)
	if err != nil {
		return nil, fmt.Errorf("redis TLS: %w", err)
	}
	return redisOptions(cfg, t), nil
}

func redisOptions(cfg config.Config, t *tls.Config) *redis.Options {
	if t != nil && t.ServerName == "" {
		if host, _, err := net.SplitHostPort(cfg.RedisAddr); err == nil {
			t = t.Clone()
			t.ServerName = host
		}
	}
	return &redis.Options{
		Addr: cfg.RedisAddr, MaxRetries: -1, TLSConfig: t,
		Username: cfg.RedisUsername, Password: cfg.RedisPassword,
	}
}

// observability is /metrics, /ready and what feeds them.
type observability struct {
	metrics   *metrics.Metrics
	health    *health.Checker
	sampler   *metrics.DLQSampler
	heartbeat *redislease.Heartbeat
}

func newObservability(routes []messages.Route) *observability {
	return &observability{metrics: metrics.New(metrics.OptionsFor(routes, Version))}
}

// actorMetrics is what the actors report to: the Prometheus metrics, the
// caller's Metrics if any, and the readiness checker, which learns from
// every find whether the backend takes calls.
func (o *observability) actorMetrics(extra actors.Metrics) actors.Metrics {
	return teeMetrics{prom: o.metrics, extra: extra, obs: o}
}

// start begins probing the dependencies and sampling the DLQ.
func (o *observability) start(a *App, log zerolog.Logger) {
	cfg := a.cfg
	o.sampler = o.metrics.StartDLQSampler(redisdlq.New(a.redis), cfg.DLQSampleInterval, log)
	// Every instance announces itself, so that one running with leases off
	// learns that it is not alone (an error every minute, /ready, metrics).
	o.heartbeat = redislease.StartHeartbeat(a.redis, cfg.InstanceID, cfg.LeaseTTL > 0, cfg.ReadyInterval, log, o.metrics.Peers)
	hlog := log.With().Str("component", "ready").Logger()
	o.health = health.Start(health.Options{
		Interval: cfg.ReadyInterval, Timeout: cfg.ReadyTimeout, OnResult: o.metrics.DependencyUp,
		Warnings: func() []string {
			if w := o.heartbeat.Warning(); w != "" {
				return []string{w}
			}
			return nil
		},
		OnChange: func(name string, up bool, err string) {
			if up {
				hlog.Info().Str("dependency", name).Msg("dependency up")
				return
			}
			hlog.Warn().Str("dependency", name).Str("error", err).Msg("dependency down")
		},
	},
		health.Probe{Name: DepBackend, Check: a.outbox.Ping},
		health.Probe{Name: DepKafka, Check: a.kafka.Ping},
		health.Probe{Name: DepRedis, Check: func(ctx context.Context) error { return a.redis.Ping(ctx).Err() }},
	)
}

// handler serves /metrics and /ready in front of the management API.
// /ready details the probes' errors only to callers with the API key.
func (o *observability) handler(api http.Handler, apiKey string) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", o.metrics.Handler())
	mux.Handle("GET /ready", o.health.Handler(func(r *http.Request) bool {
		return apiKey != "" && httpapi.KeyMatches(r, apiKey)
	}))
	c := console.Handler()
	mux.Handle("GET "+console.Path, c)
	mux.Handle("GET "+console.Path+"/", c)
	mux.Handle("/", api)
	return mux
}

func (o *observability) stop() {
	if o == nil {
		return
	}
	if o.health != nil {
		o.health.Stop()
	}
	if o.sampler != nil {
		o.sampler.Stop()
	}
	if o.heartbeat != nil {
		o.heartbeat.Stop()
	}
}

// teeMetrics fans the actors' measurements out.
type teeMetrics struct {
	prom  *metrics.Metrics
	extra actors.Metrics
	obs   *observability
}

func (t teeMetrics) PollDone(eventType string, took time.Duration, fetched int, err error) {
	t.prom.PollDone(eventType, took, fetched, err)
	if h := t.obs.health; h != nil {
		h.Observe(DepBackend, err)
	}
	if t.extra != nil {
		t.extra.PollDone(eventType, took, fetched, err)
	}
}

func (t teeMetrics) Resolved(eventType string, outcome messages.Outcome, n int) {
	t.prom.Resolved(eventType, outcome, n)
	if t.extra != nil {
		t.extra.Resolved(eventType, outcome, n)
	}
}

func (t teeMetrics) ProduceDone(eventType string, took time.Duration, err error) {
	t.prom.ProduceDone(eventType, took, err)
	if t.extra != nil {
		t.extra.ProduceDone(eventType, took, err)
	}
}

func (t teeMetrics) MarkDone(status string, took time.Duration, err error) {
	t.prom.MarkDone(status, took, err)
	if t.extra != nil {
		t.extra.MarkDone(status, took, err)
	}
}

func (t teeMetrics) ChildRestarted(child string) {
	t.prom.ChildRestarted(child)
	if t.extra != nil {
		t.extra.ChildRestarted(child)
	}
}

func (t teeMetrics) OldestPending(eventType string, age time.Duration) {
	t.prom.OldestPending(eventType, age)
	if t.extra != nil {
		t.extra.OldestPending(eventType, age)
	}
}

func (t teeMetrics) AuditPending(n int) {
	t.prom.AuditPending(n)
	if t.extra != nil {
		t.extra.AuditPending(n)
	}
}

func (t teeMetrics) AuditDropped() {
	t.prom.AuditDropped()
	if t.extra != nil {
		t.extra.AuditDropped()
	}
}

func (t teeMetrics) Replayed(eventType string) {
	t.prom.Replayed(eventType)
	if t.extra != nil {
		t.extra.Replayed(eventType)
	}
}

// Metrics is the processor's Prometheus metrics; the management API counts
// replays with its Replayed method.
func (a *App) Metrics() *metrics.Metrics { return a.obs.metrics }

// Health is the readiness checker behind /ready.
func (a *App) Health() *health.Checker { return a.obs.health }
