// Command hobom-event-processor relays transactional-outbox events from the
// backend to Kafka and keeps failed ones in a Redis dead-letter queue.
//
// This is the product binary: it links the real adapters only. The
// development mode with a stand-in backend, kfake and miniredis is the
// separate command hobom-dev (make dev); deps_test.go checks that none of
// those test doubles is linked here.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/hobom/hobom-event-processor/infra/app"
	"github.com/hobom/hobom-event-processor/infra/config"
)

func main() { os.Exit(run(os.Args[1:])) }

// run returns the exit status: 0 after a clean shutdown, 1 when the
// processor could not start or stop cleanly, 2 for bad configuration.
func run(args []string) int {
	fs := flag.NewFlagSet("hobom-event-processor", flag.ContinueOnError)
	cfg, err := config.Load(fs, args, os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "hobom-event-processor: invalid configuration:\n%v\n", err)
		return 2
	}
	if cfg.Embedded {
		fmt.Fprintln(os.Stderr, "hobom-event-processor: the embedded dev mode (--embedded, HOBOM_EMBEDDED) is not part of the product binary;\n"+
			"run it with `make dev` or `go run ./cmd/hobom-dev`")
		return 2
	}
	log := app.NewLogger(cfg, os.Stderr)
	app.RouteLibraryLogs(log)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	a, err := app.New(cfg, log, app.Options{})
	if err != nil {
		log.Error().Err(err).Msg("cannot start")
		return 1
	}
	if err := a.Run(ctx); err != nil {
		log.Error().Err(err).Msg("shutdown incomplete")
		return 1
	}
	return 0
}
