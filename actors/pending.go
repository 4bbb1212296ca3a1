package actors

import (
	"time"

	"github.com/hobom/hobom-event-processor/messages"
)

// oldestPendingAge is how long ago the oldest of events was created, from
// the backend's createdAt (RFC 3339); 0 when there are none or no createdAt
// parses. Rows are usually oldest first, but that is not assumed.
func oldestPendingAge(events []messages.Event, now time.Time) time.Duration {
	return ageOf(oldestCreated(events), now)
}

// oldestCreated is the createdAt of the oldest of events, zero when none
// parses.
func oldestCreated(events []messages.Event) time.Time {
	var oldest time.Time
	for i := range events {
		t, err := time.Parse(time.RFC3339Nano, events[i].CreatedAt)
		if err != nil {
			continue
		}
		if oldest.IsZero() || t.Before(oldest) {
			oldest = t
		}
	}
	return oldest
}

// ageOf is how long before now oldest was, 0 for the zero time.
func ageOf(oldest, now time.Time) time.Duration {
	if oldest.IsZero() {
		return 0
	}
	return max(now.Sub(oldest), 0)
}
