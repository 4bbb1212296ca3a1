// Package outbox is the gRPC client of the backend's transactional outbox
// (docs/contract.md §1). It implements actors.Outbox.
package outbox

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

const (
	// DefaultMaxRecvBytes is the receive limit when Config.MaxRecvBytes is 0.
	// The backend's find rpc is unbounded, so gRPC's 4 MiB default would
	// fail on any real backlog.
	DefaultMaxRecvBytes = 256 << 20
	// DefaultCallTimeout bounds one rpc when Config.CallTimeout is 0.
	DefaultCallTimeout = 10 * time.Second

	// apiKeyHeader is the metadata key newer backends require.
	apiKeyHeader = "x-api-key"
	// InstanceHeader names the calling processor instance on every call
	// (HOBOM_INSTANCE_ID), for the backend's logs; a backend that does not
	// know it ignores it.
	InstanceHeader = "x-hobom-instance"
)

// Config says how to reach the backend.
type Config struct {
	// Addr is the backend's host:port (HOBOM_GRPC_ADDR).
	Addr string
	// APIKey is sent as x-api-key metadata on every call when not empty
	// (HOBOM_GRPC_API_KEY).
	APIKey string
	// Instance is sent as InstanceHeader metadata on every call when not
	// empty.
	Instance string
	// MaxRecvBytes caps one response; 0 means DefaultMaxRecvBytes.
	MaxRecvBytes int
	// CallTimeout bounds each rpc; 0 means DefaultCallTimeout.
	CallTimeout time.Duration
	// TLS enables transport security; nil means plaintext, as the backend
	// is reached inside the cluster.
	TLS *tls.Config
	// MarkConns is how many connections carry the mark rpcs, round robin;
	// finds use the first. 0 means DefaultMarkConns. One HTTP/2
	// connection serialises its frames on one writer goroutine on each
	// side; a few spread the marks over more of them.
	MarkConns int
	// BatchRecheck is how long the client trusts an UNIMPLEMENTED answer
	// to the batch-mark rpc before asking again; 0 means
	// DefaultBatchRecheck.
	BatchRecheck time.Duration
}

const (
	// DefaultMarkConns is the mark connections when Config.MarkConns is 0;
	// the load test's sweep of the stand-in backend peaks at 2 to 4.
	DefaultMarkConns = 2
	// MaxMarkConns bounds Config.MarkConns.
	MaxMarkConns = 16
	// DefaultBatchRecheck is Config.BatchRecheck when 0.
	DefaultBatchRecheck = 5 * time.Minute
)

// Client talks to the backend over one gRPC connection. It is safe for
// concurrent use.
type Client struct {
	conn  *grpc.ClientConn   // finds, and the first of markConns
	conns []*grpc.ClientConn // the mark connections, conns[0] == conn
	next  atomic.Uint32      // round robin over conns

	maxRecvBytes int
	callTimeout  time.Duration
	log          zerolog.Logger
	batch        batchState
}

// Dial creates a client for cfg.Addr. It does not wait for the backend:
// the connection is made on the first call and re-made as needed, so the
// processor can start before the backend does.
func Dial(cfg Config, log zerolog.Logger) (*Client, error) {
	if cfg.Addr == "" {
		return nil, errors.New("outbox: dial: empty backend address")
	}
	if cfg.MaxRecvBytes < 0 {
		return nil, fmt.Errorf("outbox: dial %s: negative receive limit %d", cfg.Addr, cfg.MaxRecvBytes)
	}
	if cfg.CallTimeout < 0 {
		return nil, fmt.Errorf("outbox: dial %s: negative call timeout %s", cfg.Addr, cfg.CallTimeout)
	}
	if cfg.MarkConns < 0 || cfg.MarkConns > MaxMarkConns {
		return nil, fmt.Errorf("outbox: dial %s: %d mark connections, want 0 to %d", cfg.Addr, cfg.MarkConns, MaxMarkConns)
	}
	c := &Client{
		maxRecvBytes: cfg.MaxRecvBytes,
		callTimeout:  cfg.CallTimeout,
		log:          log.With().Str("component", "outbox").Str("addr", cfg.Addr).Logger(),
	}
	if c.maxRecvBytes == 0 {
		c.maxRecvBytes = DefaultMaxRecvBytes
	}
	if c.callTimeout == 0 {
		c.callTimeout = DefaultCallTimeout
	}
	c.batch.recheck = cfg.BatchRecheck
	if c.batch.recheck == 0 {
		c.batch.recheck = DefaultBatchRecheck
	}
	markConns := cfg.MarkConns
	if markConns == 0 {
		markConns = DefaultMarkConns
	}

	creds := insecure.NewCredentials()
	if cfg.TLS != nil {
		creds = credentials.NewTLS(cfg.TLS)
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		// codec, named "proto" like gRPC's own, repairs invalid UTF-8
		// instead of failing a whole find (see codec).
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(c.maxRecvBytes), grpc.ForceCodecV2(codec{})),
	}
	md := map[string]string{}
	if cfg.APIKey != "" {
		md[apiKeyHeader] = cfg.APIKey
	}
	if cfg.Instance != "" {
		md[InstanceHeader] = cfg.Instance
	}
	if len(md) > 0 {
		// Once per connection rather than a metadata context per call.
		opts = append(opts, grpc.WithPerRPCCredentials(apiKeyCreds{md: md}))
	}
	for range markConns {
		conn, err := grpc.NewClient(cfg.Addr, opts...)
		if err != nil {
			for _, c := range c.conns {
				_ = c.Close()
			}
			return nil, fmt.Errorf("outbox: dial %s: %w", cfg.Addr, err)
		}
		c.conns = append(c.conns, conn)
	}
	c.conn = c.conns[0]
	return c, nil
}

// Close closes the connections; calls in flight fail with codes.Canceled.
func (c *Client) Close() error {
	var errs []error
	for _, conn := range c.conns {
		errs = append(errs, conn.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("outbox: close: %w", err)
	}
	return nil
}

// markConn is the connection of the next mark rpc, round robin.
func (c *Client) markConn() *grpc.ClientConn {
	if len(c.conns) == 1 {
		return c.conn
	}
	return c.conns[int(c.next.Add(1))%len(c.conns)]
}

// callContext bounds one rpc by the call timeout, so a stuck backend
// cannot hold a poll forever. A caller whose context ends sooner (the
// publisher's retry policy gives each try its own deadline) keeps its
// context as it is: no second timer per call.
func (c *Client) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if d, ok := ctx.Deadline(); ok && time.Until(d) <= c.callTimeout {
		return ctx, noCancel
	}
	return context.WithTimeout(ctx, c.callTimeout)
}

func noCancel() {}

// apiKeyCreds sends the x-api-key metadata newer backends require (and the
// instance's name) on every call, over plaintext too (the backend is
// reached inside the cluster).
type apiKeyCreds struct{ md map[string]string }

func (a apiKeyCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return a.md, nil
}

func (apiKeyCreds) RequireTransportSecurity() bool { return false }
