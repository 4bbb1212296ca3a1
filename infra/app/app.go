// Package app wires the processor together: the backend, Kafka and Redis
// clients, the actor tree and the HTTP API. The binaries, the load test and
// the end-to-end tests all run it, so they run the same thing.
package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/net/netutil"

	"github.com/hobom/hobom-event-processor/actors"
	"github.com/hobom/hobom-event-processor/httpapi"
	"github.com/hobom/hobom-event-processor/infra/adapters/kafka"
	"github.com/hobom/hobom-event-processor/infra/adapters/outbox"
	"github.com/hobom/hobom-event-processor/infra/adapters/redisdlq"
	"github.com/hobom/hobom-event-processor/infra/adapters/redislease"
	"github.com/hobom/hobom-event-processor/infra/config"
	"github.com/hobom/hobom-event-processor/messages"
)

// Version is the processor's version, set at build time with
// -ldflags "-X github.com/hobom/hobom-event-processor/infra/app.Version=...".
var Version = "dev"

// maxRecordBytes bounds a Kafka record value. Kafka's default limit is
// about 1 MB for a whole record batch (franz-go's ProducerBatchMaxBytes
// default is 1,000,012), so the value stays below it with room for the key,
// headers and batch overhead.
const maxRecordBytes = 990_000

// maxInflightRecords bounds the publisher's records not yet acked. The
// client buffers twice that: besides the publisher's own records it holds
// the replays', attempts that outlived their deadline until it gives them
// back and, after a publisher crash, its predecessor's until they are
// acked or time out. Produce blocks when its buffer is full; the
// publisher never calls it, it reads the client's room and uses
// TryProduce (actors/room.go).
const (
	maxInflightRecords = 10_000
	maxBufferedRecords = 2 * maxInflightRecords
)

// The outbox client's optional extensions, which the actors find by type
// assertion: a change of signature must not turn them off silently.
var (
	_ actors.BatchMarker    = (*outbox.Client)(nil)
	_ actors.SkippingFinder = (*outbox.Client)(nil)
)

// App is a running processor.
type App struct {
	cfg    config.Config
	log    zerolog.Logger
	outbox *outbox.Client
	kafka  *kgo.Client
	redis  *redis.Client
	engine *actor.Engine
	tree   *actors.Tree
	http   *http.Server
	ln     net.Listener
	obs    *observability // /metrics and /ready
	reach  *kafka.Reach   // whether a broker answers (HOBOM_KAFKA_OUTAGE)
	// stopWarn ends the hourly warning about an open API.
	stopWarn     chan struct{}
	stopWarnOnce sync.Once
	// cancelHandlers ends the contexts of the HTTP requests in flight.
	cancelHandlers context.CancelFunc
}

// Options changes what New builds; the zero value is production.
type Options struct {
	// Routes replaces messages.DefaultRoutes.
	Routes []messages.Route
	// Metrics receives the actors' measurements.
	Metrics actors.Metrics
	// ChildMiddleware wraps every actor of the tree (tests inject panics).
	ChildMiddleware []actor.MiddlewareFunc
	// WrapProducer, when set, wraps the Kafka client the publisher writes
	// through (the embedded dev mode injects publish failures).
	WrapProducer func(actors.Producer) actors.Producer
	// WithoutUnmarkedMemory runs the publisher without its Redis memory of
	// published-but-unmarked events, so that the load test can measure
	// what remembering at the ack costs. The product never sets it: a
	// crash or takeover then republishes every acked but unmarked event.
	WithoutUnmarkedMemory bool
}

// New connects the clients (none of them waits for its server), starts the
// actor tree and binds the HTTP listener.
func New(cfg config.Config, log zerolog.Logger, opts Options) (*App, error) {
	if cfg.InternalAPIKey == "" && !cfg.InternalAPIOpen && !cfg.Embedded {
		return nil, errors.New("HOBOM_INTERNAL_API_KEY is not set and HOBOM_INTERNAL_API_OPEN is not true: the management API fails closed")
	}
	a := &App{cfg: cfg, log: log}
	ok := false
	defer func() {
		if !ok {
			a.closeClients()
		}
	}()
	sec, err := loadSecurity(cfg)
	if err != nil {
		return nil, err
	}
	a.outbox, err = outbox.Dial(outbox.Config{
		Addr: cfg.GRPCAddr, APIKey: cfg.GRPCAPIKey, Instance: cfg.InstanceID, MaxRecvBytes: cfg.GRPCMaxRecvBytes, CallTimeout: cfg.GRPCTimeout, TLS: sec.grpc,
		MarkConns: cfg.MarkConns,
	}, log)
	if err != nil {
		return nil, err
	}
	a.kafka, err = kafka.NewProducer(kafka.Config{
		Brokers: cfg.KafkaBrokers, Acks: cfg.KafkaAcks, WriteTimeout: cfg.KafkaWriteTimeout,
		MaxBufferedRecords: maxBufferedRecords, ClientID: "hobom-event-processor", TLS: sec.kafka, SASL: kafkaSASL(cfg),
	}, log)
	if err != nil {
		return nil, err
	}
	a.redis = redis.NewClient(redisOptions(cfg, sec.redis))
	a.engine, err = actor.NewEngine(actor.NewEngineConfig())
	if err != nil {
		return nil, fmt.Errorf("actor engine: %w", err)
	}
	routes := opts.Routes
	if routes == nil {
		routes = messages.DefaultRoutes()
	}
	a.obs = newObservability(routes)
	a.obs.start(a, log)
	var producer actors.Producer = kafka.NewHealing(a.kafka, log)
	if opts.WrapProducer != nil {
		producer = opts.WrapProducer(producer)
	}
	tc := TreeConfig(cfg, routes)
	tc.ChildMiddleware = withFaultInjection(opts.ChildMiddleware, log) // HOBOM_FAULT_PANIC_EVERY: chaos suite only
	store := redisdlq.New(a.redis)
	a.reach = kafka.NewReach(a.kafka, cfg.ReadyTimeout, log, a.obs.metrics.KafkaReachable)
	deps := actors.Deps{Kafka: a.reach, Outbox: a.outbox, Producer: producer, Store: store, Admin: store, Memory: redisdlq.NewUnmarked(a.redis), Metrics: a.obs.actorMetrics(opts.Metrics), Log: log}
	if opts.WithoutUnmarkedMemory {
		deps.Memory = nil
	}
	if cfg.LeaseTTL > 0 {
		deps.Lease = redislease.New(a.redis, len(routes))
	}
	a.tree, err = actors.StartTree(a.engine, tc, deps)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		_ = a.tree.Stop(context.Background())
		return nil, fmt.Errorf("http: listen on HOBOM_HTTP_ADDR %s: %w", cfg.HTTPAddr, err)
	}
	// A bounded number of connections (HOBOM_HTTP_MAX_CONNS): past it, new
	// ones wait in the kernel's backlog instead of taking file descriptors
	// the relay needs for Kafka, Redis and the backend.
	maxConns := cfg.HTTPMaxConns
	if maxConns <= 0 {
		maxConns = DefaultMaxAPIConns
	}
	a.ln = netutil.LimitListener(ln, maxConns)
	api := httpapi.New(httpapi.Options{
		Log: log, APIKey: cfg.InternalAPIKey, Store: store, Engine: a.engine, DLQ: a.tree.DLQ, Routes: routes,
		MaxValueBytes: maxRecordBytes,
	})
	// Handlers' contexts end when shutdown begins, so that a handler
	// waiting on the DLQ actor answers at once instead of holding the
	// shutdown the actor tree needs.
	var baseCtx context.Context
	baseCtx, a.cancelHandlers = context.WithCancel(context.Background())
	a.http = &http.Server{
		BaseContext:       func(net.Listener) context.Context { return baseCtx },
		Handler:           a.obs.handler(api, cfg.InternalAPIKey),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      2 * time.Minute,
		// An idle keep-alive connection holds one of MaxAPIConns: curl
		// and scrapers reconnect cheaply.
		IdleTimeout:    apiIdleTimeout,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       httpErrorLog(log),
	}
	ok = true
	a.stopWarn = make(chan struct{})
	if cfg.InternalAPIKey == "" {
		go warnOpenAPI(log, a.ln.Addr().String(), cfg.Embedded, openAPIWarnEvery, a.stopWarn)
	}
	log.Info().Str("http", a.ln.Addr().String()).Str("backend", cfg.GRPCAddr).Strs("kafka", cfg.KafkaBrokers).
		Str("redis", cfg.RedisAddr).Str("version", Version).Msg("processor started")
	return a, nil
}

// Limits of the management API's listener.
const (
	// DefaultMaxAPIConns bounds the API's open connections (GET /health,
	// /ready and /metrics included) when HOBOM_HTTP_MAX_CONNS is not set.
	DefaultMaxAPIConns = 1024
	// apiIdleTimeout closes keep-alive connections idle that long.
	apiIdleTimeout = 30 * time.Second
	// openAPIWarnEvery repeats the warning about an API without a key.
	openAPIWarnEvery = time.Hour
)

// warnOpenAPI logs that the API has no key, at once and every interval
// until stop is closed: an open API must not be forgotten.
func warnOpenAPI(log zerolog.Logger, addr string, dev bool, every time.Duration, stop <-chan struct{}) {
	warn := func() {
		ev := log.Warn()
		if dev {
			ev = log.Info()
		}
		ev.Str("http", addr).Bool("devMode", dev).
			Msg("management API open: HOBOM_INTERNAL_API_KEY is not set, so anyone who reaches this address can list, replay and discard dead letters")
	}
	warn()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			warn()
		case <-stop:
			return
		}
	}
}

// producerName is the producer header of every record.
func producerName() string { return "hobom-event-processor/" + Version }

// TreeConfig derives the actors' settings from the configuration.
func TreeConfig(cfg config.Config, routes []messages.Route) actors.TreeConfig {
	mark := actors.RetryPolicy{Attempts: 4, Backoff: 200 * time.Millisecond, Timeout: cfg.GRPCTimeout}
	return actors.TreeConfig{
		Routes: routes,
		Lease:  actors.LeaseConfig{TTL: cfg.LeaseTTL, Owner: cfg.InstanceID},
		Poller: actors.PollerConfig{
			Interval: cfg.PollInterval, MaxBackoff: cfg.PollMaxBackoff, FindLimit: cfg.FindLimit, FindTimeout: cfg.GRPCTimeout,
			MaxInFlight: cfg.MaxInFlight, Hold: cfg.KafkaOutage == "hold",
			// Long enough for every publish attempt, the DLQ write and the marks.
			BatchTimeout: time.Duration(cfg.PublishAttempts)*(cfg.KafkaWriteTimeout+cfg.PublishBackoff<<cfg.PublishAttempts) + 2*time.Minute,
		},
		Publisher: actors.PublisherConfig{
			Attempts: cfg.PublishAttempts, Backoff: cfg.PublishBackoff, AttemptTimeout: cfg.KafkaWriteTimeout, Hold: cfg.KafkaOutage == "hold", MaxRecordBytes: maxRecordBytes,
			MaxInflightRecords: maxInflightRecords, Mark: mark, MarkConcurrency: cfg.MarkConcurrency, UnmarkedMemory: 100_000,
			Lookup: 2 * time.Second, Producer: producerName(),
		},
		DLQ: actors.DLQConfig{
			TTL:   cfg.DLQTTL,
			Write: actors.RetryPolicy{Attempts: 3, Backoff: 200 * time.Millisecond, Timeout: 3 * time.Second},
			Mark:  mark, Concurrency: 16, MaxReasonBytes: 1024,
			Replay: actors.ReplayConfig{ProducerName: producerName(), MaxValueBytes: maxRecordBytes, ProduceTimeout: cfg.KafkaWriteTimeout},
		},
		RestartBackoff: 100 * time.Millisecond, MaxRestartBackoff: 30 * time.Second, StableAfter: time.Minute,
		PollerInboxSize: 8,
	}
}

// HTTPAddr is the address the API listens on (useful with port 0).
func (a *App) HTTPAddr() string { return a.ln.Addr().String() }

// Tree is the running actor tree.
func (a *App) Tree() *actors.Tree { return a.tree }

// Run serves HTTP until ctx ends, then shuts down within the configured
// shutdown timeout.
func (a *App) Run(ctx context.Context) error {
	serveErr := make(chan error, 1)
	go func() { serveErr <- a.http.Serve(a.ln) }()
	select {
	case <-ctx.Done():
		a.log.Info().Msg("shutdown requested")
	case err := <-serveErr:
		a.log.Error().Err(err).Msg("http server stopped")
	}
	sctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
	defer cancel()
	return a.Shutdown(sctx)
}

// Shutdown stops taking API calls, stops the actor tree in order (pollers,
// then the publisher and the DLQ actor once they finished what they hold),
// and only then closes the clients they used.
func (a *App) Shutdown(ctx context.Context) error {
	start := time.Now()
	var errs []error
	a.cancelHandlers()
	a.stopWarnOnce.Do(func() { close(a.stopWarn) })
	// The API gets a small part of the budget; the actor tree needs the rest.
	hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	herr := a.http.Shutdown(hctx)
	cancel()
	if herr != nil && !errors.Is(herr, http.ErrServerClosed) {
		a.log.Warn().Err(herr).Msg("HTTP requests still running at shutdown: closing their connections")
		_ = a.http.Close()
	}
	// The tree's lease actor keeps the leases while the publisher drains
	// and releases them after; an unclean stop leaves them to run out
	// with their TTL.
	if err := a.tree.Stop(ctx); err != nil {
		errs = append(errs, err)
	}
	// Closing waits for the clients' own work (a readiness probe, dials to
	// a dead broker); the process does not wait for it past the deadline.
	closed := make(chan struct{})
	go func() {
		a.closeClients()
		close(closed)
	}()
	wait := time.Second
	if d, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(d))
	}
	select {
	case <-closed:
	case <-time.After(wait):
		a.log.Warn().Dur("waited", wait).Msg("clients still closing (a dead broker, a readiness probe in flight); leaving them to the process exit")
	}
	err := errors.Join(errs...)
	a.log.Info().Err(err).Dur("took", time.Since(start)).Msg("processor stopped")
	return err
}

func (a *App) closeClients() {
	a.obs.stop()
	if a.reach != nil {
		a.reach.Close()
	}
	if a.kafka != nil {
		a.kafka.Close()
	}
	if a.redis != nil {
		_ = a.redis.Close()
	}
	if a.outbox != nil {
		_ = a.outbox.Close()
	}
}

// Engine is the actor engine the tree runs on.
func (a *App) Engine() *actor.Engine { return a.engine }
