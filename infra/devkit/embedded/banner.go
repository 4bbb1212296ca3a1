package embedded

import (
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/hobom/hobom-event-processor/httpapi"
	"github.com/hobom/hobom-event-processor/httpapi/console"
)

// PrintBanner tells where each part listens and gives commands to try.
func (d *Dev) PrintBanner(w io.Writer) {
	cfg := d.cfg
	base := d.baseURL()
	api := base + httpapi.BasePath
	auth := ""
	if cfg.InternalAPIKey != "" {
		auth = ` -H "x-api-key: $HOBOM_INTERNAL_API_KEY"`
	}
	redisKind := "miniredis, in this process"
	if d.mini == nil {
		redisKind = "external, HOBOM_REDIS_ADDR"
	}
	rate := "none (HOBOM_DEV_EVENT_RATE=0)"
	if cfg.DevEventRate > 0 {
		rate = fmt.Sprintf("%g events/s, MESSAGE and HOBOM_LOG in turn", cfg.DevEventRate)
	}
	fail := "off (set HOBOM_DEV_FAIL_RATE=0.5 to fill the DLQ)"
	if cfg.DevFailRate > 0 {
		fail = fmt.Sprintf("%g of publish attempts fail; with %d attempts about %.1f%% of events reach the DLQ",
			cfg.DevFailRate, cfg.PublishAttempts, 100*math.Pow(cfg.DevFailRate, float64(cfg.PublishAttempts)))
	}
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p("")
	p("hobom-event-processor %s: embedded dev mode, everything in this process", versionString())
	p("")
	p("  backend    %-22s stand-in outbox gRPC backend; %s", d.backend.Addr(), rate)
	p("  kafka      %-22s kfake; topics %s", d.kafkaAddr, strings.Join(topics(), ", "))
	p("  redis      %-22s DLQ (%s)", d.redisAddr, redisKind)
	p("  http       %-22s management API, /health /ready /metrics", base)
	p("  console    %s", base+console.Path)
	p("  failures   %s", fail)
	p("")
	p("Open the DLQ console in a browser: %s", base+console.Path)
	if cfg.InternalAPIKey != "" {
		p("  log in with the API key (HOBOM_INTERNAL_API_KEY)")
	} else {
		p("  the API is open in dev mode: log in with any key")
	}
	p("")
	p("Try:")
	p("  curl -s %s/health", base)
	p("  curl -s%s %s/dlq", auth, api)
	p("  curl -s%s %s/dlq/%s", auth, api, d.demoKey)
	p("  curl -s%s -X POST %s/dlq/retry/%s", auth, api, d.demoKey)
	p("")
	p("  kcat -b %s -t hobom.messages -C -f '%%k %%s\\n'", d.kafkaAddr)
	p("  curl -s %s/ready; curl -s %s/metrics | grep '^hobom_events'", base, base)
	p("")
	p("Ctrl-C stops everything.")
	p("")
	_, _ = io.WriteString(w, b.String())
}
