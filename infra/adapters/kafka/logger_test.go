package kafka

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestLoggerWritesErrorsAsText: the client hands errors as key/values of
// type any; zerolog's Interface would write them as {}.
func TestLoggerWritesErrorsAsText(t *testing.T) {
	var buf bytes.Buffer
	l := logger{log: zerolog.New(&buf)}
	l.Log(kgo.LogLevelWarn, "unable to open connection to broker", "addr", "127.0.0.1:9", "err", errors.New("dial tcp: connection refused"))
	out := buf.String()
	for _, want := range []string{`"err":"dial tcp: connection refused"`, `"addr":"127.0.0.1:9"`, `"level":"warn"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log line %s lacks %s", out, want)
		}
	}
}
