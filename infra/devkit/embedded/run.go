package embedded

import (
	"context"
	"io"

	"github.com/rs/zerolog"

	"github.com/hobom/hobom-event-processor/infra/app"
	"github.com/hobom/hobom-event-processor/infra/config"
)

// Run starts the embedded stack and the processor, prints the banner to
// out, and serves until ctx ends (Ctrl-C); then it shuts the processor down
// and stops the stack.
func Run(ctx context.Context, cfg config.Config, log zerolog.Logger, out io.Writer) error {
	d, err := Start(cfg, log)
	if err != nil {
		return err
	}
	d.PrintBanner(out)
	return d.Run(ctx)
}

func versionString() string { return app.Version }
