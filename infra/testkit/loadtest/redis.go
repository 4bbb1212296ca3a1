package loadtest

import (
	"fmt"
	"os"
	"os/exec"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/hobom/hobom-event-processor/infra/testkit/redisproc"
)

// redisEnv is the Redis the DLQ uses: the one HOBOM_REDIS_ADDR names, else
// a redis-server started on a free loopback port, else miniredis in this
// process. The happy path of the load test writes no dead letters, so the
// kind of Redis hardly matters for the figures; it is reported anyway.
type redisEnv struct {
	Addr  string
	Kind  string // "external", "redis-server" or "miniredis"
	close func()
}

func startRedis(getenv func(string) string) (*redisEnv, error) {
	if addr := getenv("HOBOM_REDIS_ADDR"); addr != "" {
		return &redisEnv{Addr: addr, Kind: "external", close: func() {}}, nil
	}
	if bin, err := exec.LookPath(redisproc.Binary); err == nil {
		return startRedisServer(bin)
	}
	m := miniredis.NewMiniRedis()
	if err := m.Start(); err != nil {
		return nil, fmt.Errorf("loadtest: start miniredis: %w", err)
	}
	return &redisEnv{Addr: m.Addr(), Kind: "miniredis", close: m.Close}, nil
}

func startRedisServer(bin string) (*redisEnv, error) {
	dir, err := os.MkdirTemp("", "hobom-loadtest-redis-")
	if err != nil {
		return nil, err
	}
	// Port 0: redisproc tries another free port when one is taken before
	// redis binds it.
	srv, err := redisproc.Start(redisproc.Options{Bin: bin, Dir: dir, ReadyTimeout: 10 * time.Second})
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("loadtest: %w", err)
	}
	stop := func() {
		_ = srv.Close()
		_ = os.RemoveAll(dir)
	}
	return &redisEnv{Addr: srv.Addr(), Kind: "redis-server", close: stop}, nil
}
