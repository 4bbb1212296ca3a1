package app

import (
	"context"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"strings"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"google.golang.org/grpc/grpclog"
)

// The libraries under the processor log through their own loggers: go-redis
// (a global Printf logger), net/http (http.Server.ErrorLog), grpc (grpclog),
// hollywood (slog's default logger) and anything else through the standard
// log package. Left alone they write plain text into the JSON log. These
// adapters turn each line into one zerolog record with a component field.

// lineWriter logs each Write as one record at a fixed level: the standard
// log package and grpclog write one line per call.
type lineWriter struct {
	log   zerolog.Logger
	level zerolog.Level
}

func (w lineWriter) Write(p []byte) (int, error) {
	msg := strings.TrimRight(string(p), "\n")
	if msg != "" {
		w.log.WithLevel(w.level).Msg(msg)
	}
	return len(p), nil
}

// redisLogger is go-redis's Logging on zerolog. go-redis logs connection
// trouble (dial failures, pool problems): warnings.
type redisLogger struct{ log zerolog.Logger }

func (l redisLogger) Printf(_ context.Context, format string, v ...any) {
	l.log.Warn().Msg(fmt.Sprintf(format, v...))
}

// slogHandler is an slog.Handler on zerolog.
type slogHandler struct {
	log   zerolog.Logger
	attrs []slog.Attr
	group string
}

func (h slogHandler) Enabled(_ context.Context, l slog.Level) bool {
	return h.log.GetLevel() <= zerologLevel(l)
}

func (h slogHandler) Handle(_ context.Context, r slog.Record) error {
	ev := h.log.WithLevel(zerologLevel(r.Level))
	add := func(a slog.Attr) bool {
		key := a.Key
		if h.group != "" {
			key = h.group + "." + key
		}
		if err, ok := a.Value.Any().(error); ok {
			ev = ev.AnErr(key, err)
		} else {
			ev = ev.Str(key, a.Value.String())
		}
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	ev.Msg(r.Message)
	return nil
}

func (h slogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	h.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	return h
}

func (h slogHandler) WithGroup(name string) slog.Handler {
	if h.group != "" {
		name = h.group + "." + name
	}
	h.group = name
	return h
}

func zerologLevel(l slog.Level) zerolog.Level {
	switch {
	case l >= slog.LevelError:
		return zerolog.ErrorLevel
	case l >= slog.LevelWarn:
		return zerolog.WarnLevel
	case l >= slog.LevelInfo:
		return zerolog.InfoLevel
	}
	return zerolog.DebugLevel
}

// RouteLibraryLogs sends the process-wide loggers of go-redis, grpc, slog
// (hollywood) and the standard log package through log, so that every line
// the process writes is a JSON record. It changes global state: the
// binaries call it once at start.
func RouteLibraryLogs(log zerolog.Logger) {
	redis.SetLogger(redisLogger{log.With().Str("component", "go-redis").Logger()})
	g := log.With().Str("component", "grpc").Logger()
	// grpc's INFO lines are chatty connection-state noise; they go to debug.
	grpclog.SetLoggerV2(grpclog.NewLoggerV2(lineWriter{g, zerolog.DebugLevel}, lineWriter{g, zerolog.WarnLevel}, lineWriter{g, zerolog.ErrorLevel}))
	slog.SetDefault(slog.New(slogHandler{log: log.With().Str("component", "actor-engine").Logger()}))
	stdlog.SetFlags(0)
	stdlog.SetOutput(lineWriter{log.With().Str("component", "stdlib").Logger(), zerolog.WarnLevel})
}

// httpErrorLog is the http.Server's ErrorLog on log: accept errors, TLS
// handshakes, panics of handlers, each as one JSON record.
func httpErrorLog(log zerolog.Logger) *stdlog.Logger {
	return stdlog.New(lineWriter{log.With().Str("component", "http").Logger(), zerolog.WarnLevel}, "", 0)
}

var _ io.Writer = lineWriter{}
