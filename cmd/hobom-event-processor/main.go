// Command hobom-event-processor relays transactional-outbox events from the
// backend to Kafka and keeps failed ones in a Redis dead-letter queue.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/hobom/hobom-event-processor/infra/app"
	"github.com/hobom/hobom-event-processor/infra/config"
	"github.com/hobom/hobom-event-processor/infra/embedded"
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
		cfg = embedded.Defaults(cfg)
	}
	log := newLogger(cfg)
	app.RouteLibraryLogs(log)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if cfg.Embedded {
		if err := embedded.Run(ctx, cfg, log, os.Stdout); err != nil {
			log.Error().Err(err).Msg("embedded dev mode failed")
			return 1
		}
		return 0
	}
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

func newLogger(cfg config.Config) zerolog.Logger {
	zerolog.TimeFieldFormat = time.RFC3339Nano
	var log zerolog.Logger
	if cfg.LogFormat == "console" {
		log = zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: "15:04:05.000"})
	} else {
		log = zerolog.New(os.Stderr)
	}
	return log.Level(cfg.LogLevel).With().Timestamp().Str("service", "hobom-event-processor").Logger()
}
