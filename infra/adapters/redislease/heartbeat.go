package redislease

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// InstancePrefix keys each running instance's heartbeat:
// "hobom:instance:<id>" = "leases" or "no-leases", expiring after three
// heartbeat intervals, so an instance that died drops out by itself.
const InstancePrefix = "hobom:instance:"

// unsafeLogEvery is how often an instance with leases off logs that it
// sees another live instance.
const unsafeLogEvery = time.Minute

// Heartbeat announces this instance in Redis and watches for the others.
// An instance that runs with leases off and sees another one publishes
// every event the other publishes too: it logs an error every minute and
// says so through Warning and the report callback (metrics, /ready).
type Heartbeat struct {
	rdb      redis.UniversalClient
	id       string
	leases   bool
	interval time.Duration
	log      zerolog.Logger
	report   func(peers int, unsafe bool)

	mu       sync.Mutex
	peers    []string
	logged   time.Time
	stopOnce sync.Once
	stop     chan struct{}
	stopped  chan struct{}
}

// StartHeartbeat beats every interval until Stop; report (may be nil) gets
// the number of other live instances after every beat and whether that is
// unsafe (leases off and at least one other).
func StartHeartbeat(rdb redis.UniversalClient, id string, leases bool, interval time.Duration, log zerolog.Logger, report func(peers int, unsafe bool)) *Heartbeat {
	h := &Heartbeat{rdb: rdb, id: id, leases: leases, interval: interval, report: report,
		log: log.With().Str("component", "heartbeat").Logger(), stop: make(chan struct{}), stopped: make(chan struct{})}
	go h.run()
	return h
}

func (h *Heartbeat) run() {
	defer close(h.stopped)
	t := time.NewTicker(h.interval)
	defer t.Stop()
	for {
		h.beat()
		select {
		case <-h.stop:
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_ = h.rdb.Del(ctx, InstancePrefix+h.id).Err() // a clean stop leaves at once
			return
		case <-t.C:
		}
	}
}

// beat refreshes this instance's key and lists the others.
func (h *Heartbeat) beat() {
	ctx, cancel := context.WithTimeout(context.Background(), h.interval)
	defer cancel()
	peers, err := h.list(ctx)
	if err != nil {
		h.log.Debug().Err(err).Msg("heartbeat failed")
		return // keep the last answer; Redis's own health is on /ready
	}
	unsafe := !h.leases && len(peers) > 0
	h.mu.Lock()
	h.peers = peers
	logNow := unsafe && time.Since(h.logged) >= unsafeLogEvery
	if logNow {
		h.logged = time.Now()
	}
	h.mu.Unlock()
	if logNow {
		h.log.Error().Strs("instances", peers).
			Msg("other processor instances are running against this Redis while this one has leases off (HOBOM_LEASE_TTL=0s): events are published twice; turn leases on (the default) on every instance")
	}
	if h.report != nil {
		h.report(len(peers), unsafe)
	}
}

func (h *Heartbeat) list(ctx context.Context) ([]string, error) {
	value := "no-leases"
	if h.leases {
		value = "leases"
	}
	if err := h.rdb.Set(ctx, InstancePrefix+h.id, value, 3*h.interval).Err(); err != nil {
		return nil, fmt.Errorf("heartbeat: %w", err)
	}
	var peers []string
	var cursor uint64
	for {
		keys, next, err := h.rdb.Scan(ctx, cursor, InstancePrefix+"*", 1000).Result()
		if err != nil {
			return nil, fmt.Errorf("heartbeat: scan: %w", err)
		}
		for _, k := range keys {
			if id := strings.TrimPrefix(k, InstancePrefix); id != h.id {
				peers = append(peers, id)
			}
		}
		if cursor = next; cursor == 0 {
			slices.Sort(peers)
			return peers, nil
		}
	}
}

// Warning is what /ready shows: empty unless leases are off and another
// live instance was seen at the last heartbeat.
func (h *Heartbeat) Warning() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.leases || len(h.peers) == 0 {
		return ""
	}
	return fmt.Sprintf("leases are off (HOBOM_LEASE_TTL=0s) and %d other instance(s) run against the same Redis (%s): every event is published twice",
		len(h.peers), strings.Join(h.peers, ", "))
}

// Stop ends the heartbeat and removes this instance's key.
func (h *Heartbeat) Stop() {
	h.stopOnce.Do(func() { close(h.stop) })
	<-h.stopped
}
