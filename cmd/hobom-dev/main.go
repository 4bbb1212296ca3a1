// Command hobom-dev is the development mode (make dev): one process runs a
// stand-in outbox backend, an in-memory Kafka (kfake) on 127.0.0.1:9092,
// miniredis as the DLQ (unless HOBOM_REDIS_ADDR is given) and the processor
// against them, and prints commands to try. It takes every setting of
// hobom-event-processor plus the HOBOM_DEV_* ones; --embedded is accepted
// and implied. It is a separate command so that the product binary links no
// test double.
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
	"github.com/hobom/hobom-event-processor/infra/devkit/embedded"
)

func main() { os.Exit(run(os.Args[1:])) }

// run returns the exit status: 0 after Ctrl-C, 1 when the stack could not
// start or stop cleanly, 2 for bad configuration.
func run(args []string) int {
	fs := flag.NewFlagSet("hobom-dev", flag.ContinueOnError)
	// --embedded first: the checks of config.Load that depend on the dev
	// mode (loopback API, no key needed) apply.
	cfg, err := config.Load(fs, append([]string{"--embedded"}, args...), os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "hobom-dev: invalid configuration:\n%v\n", err)
		return 2
	}
	cfg.Embedded = true
	cfg = embedded.Defaults(cfg)
	log := app.NewLogger(cfg, os.Stderr)
	app.RouteLibraryLogs(log)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := embedded.Run(ctx, cfg, log, os.Stdout); err != nil {
		log.Error().Err(err).Msg("embedded dev mode failed")
		return 1
	}
	return 0
}
