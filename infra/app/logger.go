package app

import (
	"io"
	"time"

	"github.com/rs/zerolog"

	"github.com/hobom/hobom-event-processor/infra/config"
)

// NewLogger is the processor's logger writing to w: JSON lines, or
// human-readable lines when cfg.LogFormat is "console", at cfg.LogLevel,
// each with a timestamp and service=hobom-event-processor.
func NewLogger(cfg config.Config, w io.Writer) zerolog.Logger {
	zerolog.TimeFieldFormat = time.RFC3339Nano
	var log zerolog.Logger
	if cfg.LogFormat == "console" {
		log = zerolog.New(zerolog.ConsoleWriter{Out: w, TimeFormat: "15:04:05.000"})
	} else {
		log = zerolog.New(w)
	}
	return log.Level(cfg.LogLevel).With().Timestamp().Str("service", "hobom-event-processor").Logger()
}
