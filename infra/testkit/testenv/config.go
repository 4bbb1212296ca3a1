package testenv

import (
	"flag"
	"io"

	"github.com/hobom/hobom-event-processor/infra/config"
)

// Config is the processor's default configuration, as config.Load makes it
// from no environment at all (tests do not depend on the caller's shell),
// with the management API open: test processors listen on loopback and
// tests that exercise the key set one.
func Config() (config.Config, error) {
	env := map[string]string{"HOBOM_INTERNAL_API_OPEN": "true"}
	return config.Load(flag.NewFlagSet("test", flag.ContinueOnError), nil, func(k string) string { return env[k] }, io.Discard)
}
