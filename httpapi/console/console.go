// Package console is the DLQ console: a page served by the processor at
// Path for on-call operators. It is static HTML, CSS and a little plain
// JavaScript embedded in the binary (no build step, no CDN, works offline)
// and it does everything through the management API with the operator's
// API key, so the API's rules (key check, key confinement, validation,
// audit) hold for it too.
//
// The key is entered once and kept in the tab's sessionStorage, sent as
// x-api-key; the console sets no cookie, so a cross-site request carries
// no credential (no CSRF). Without a key the page shows only its login
// form.
package console

import (
	"embed"
	"io/fs"
	"net/http"
)

// Path is where the console is served.
const Path = "/hobom-event-processor/internal/console"

//go:embed static
var static embed.FS

// securityHeaders keep the page to its own files: scripts and styles only
// from this origin (no inline script), no framing, no referrer.
func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "no-cache")
}

// Handler serves the console: the page at Path and its files below
// Path+"/". Mount it for GET (and HEAD) on both.
func Handler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree always has static/
	}
	index, err := fs.ReadFile(sub, "index.html")
	if err != nil {
		panic(err)
	}
	files := http.StripPrefix(Path+"/", http.FileServer(http.FS(sub)))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		securityHeaders(w.Header())
		switch r.URL.Path {
		case Path, Path + "/", Path + "/index.html":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = w.Write(index)
		default:
			files.ServeHTTP(w, r)
		}
	})
}
