package outbox

import (
	"context"
	"fmt"

	"google.golang.org/grpc/connectivity"
)

// Ping reports whether the connection to the backend is up, connecting if
// it is idle, without calling an rpc: the find rpc of an old backend has no
// limit and would return the whole backlog. It waits for the connection
// until ctx ends. Whether the backend accepts the calls (api key, database)
// shows in the pollers' finds.
func (c *Client) Ping(ctx context.Context) error {
	for {
		st := c.conn.GetState()
		switch st {
		case connectivity.Ready:
			return nil
		case connectivity.Shutdown:
			return fmt.Errorf("outbox: connection closed")
		case connectivity.Idle:
			c.conn.Connect()
		}
		if !c.conn.WaitForStateChange(ctx, st) {
			return fmt.Errorf("outbox: backend connection %s: %w", st, ctx.Err())
		}
	}
}
