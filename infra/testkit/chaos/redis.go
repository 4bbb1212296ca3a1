package chaos

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/hobom/hobom-event-processor/infra/testkit/redisproc"
)

// startRedis starts the redis-server the suite stops and starts. It runs
// with AOF and fsync on every write, as production does, so that DLQ
// entries survive a SIGKILL; testenv's servers run without persistence.
func startRedis(dir string) (*redisproc.Server, error) {
	bin, err := exec.LookPath(redisproc.Binary)
	if err != nil {
		return nil, fmt.Errorf("the chaos suite needs a real redis-server on PATH (Debian: apt-get install redis-server): %w", err)
	}
	dataDir := filepath.Join(dir, "redis")
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, err
	}
	return redisproc.Start(redisproc.Options{
		Bin:        bin,
		Dir:        dataDir,
		AppendOnly: true,
		LogFile:    filepath.Join(dir, "redis.log"),
	})
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
