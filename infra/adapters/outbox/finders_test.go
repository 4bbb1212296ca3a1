package outbox

import (
	"testing"

	"github.com/hobom/hobom-event-processor/messages"
)

// Every find shape a route can name has its gRPC method, so a valid route
// never meets "unknown find rpc" at its first poll.
func TestEveryFindShapeHasItsRPC(t *testing.T) {
	for _, f := range messages.FindRPCs() {
		if finders[f] == nil {
			t.Errorf("find shape %q has no rpc", f.Name())
		}
	}
	if len(finders) != len(messages.FindRPCs()) {
		t.Errorf("%d rpcs for %d find shapes", len(finders), len(messages.FindRPCs()))
	}
}
