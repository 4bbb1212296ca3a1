// Package outbox is the gRPC client of the backend's transactional outbox
// (CONTRACT.md §1). It implements actors.Outbox.
package outbox

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/hobom/hobom-event-processor/proto/gen/outboxlogv1"
	"github.com/hobom/hobom-event-processor/proto/gen/outboxmessagev1"
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
)

// Config says how to reach the backend.
type Config struct {
	// Addr is the backend's host:port (HOBOM_GRPC_ADDR).
	Addr string
	// APIKey is sent as x-api-key metadata on every call when not empty
	// (HOBOM_GRPC_API_KEY).
	APIKey string
	// MaxRecvBytes caps one response; 0 means DefaultMaxRecvBytes.
	MaxRecvBytes int
	// CallTimeout bounds each rpc; 0 means DefaultCallTimeout.
	CallTimeout time.Duration
	// TLS enables transport security; nil means plaintext, as the backend
	// is reached inside the cluster.
	TLS *tls.Config
}

// Client talks to the backend over one gRPC connection. It is safe for
// concurrent use.
type Client struct {
	conn     *grpc.ClientConn
	messages outboxmessagev1.FindHoBomMessageOutboxControllerClient
	logs     outboxlogv1.FindHoBomLogOutboxControllerClient
	patch    outboxmessagev1.PatchOutboxControllerClient

	apiKey       string
	maxRecvBytes int
	callTimeout  time.Duration
	log          zerolog.Logger
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
	c := &Client{
		apiKey:       cfg.APIKey,
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

	creds := insecure.NewCredentials()
	if cfg.TLS != nil {
		creds = credentials.NewTLS(cfg.TLS)
	}
	conn, err := grpc.NewClient(cfg.Addr,
		grpc.WithTransportCredentials(creds),
		// codec, named "proto" like gRPC's own, repairs invalid UTF-8
		// instead of failing a whole find (see codec).
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(c.maxRecvBytes), grpc.ForceCodecV2(codec{})),
	)
	if err != nil {
		return nil, fmt.Errorf("outbox: dial %s: %w", cfg.Addr, err)
	}
	c.conn = conn
	c.messages = outboxmessagev1.NewFindHoBomMessageOutboxControllerClient(conn)
	c.logs = outboxlogv1.NewFindHoBomLogOutboxControllerClient(conn)
	c.patch = outboxmessagev1.NewPatchOutboxControllerClient(conn)
	return c, nil
}

// Close closes the connection; calls in flight fail with codes.Canceled.
func (c *Client) Close() error {
	if err := c.conn.Close(); err != nil {
		return fmt.Errorf("outbox: close: %w", err)
	}
	return nil
}

// callContext derives one rpc's context from ctx: its own deadline, so a
// stuck backend cannot hold a poll forever, and the api key metadata.
func (c *Client) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(ctx, c.callTimeout)
	if c.apiKey != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, apiKeyHeader, c.apiKey)
	}
	return ctx, cancel
}
