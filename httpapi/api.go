// Package httpapi is the management API of CONTRACT.md §4: health, and the
// dead-letter queue operators list, inspect and replay with curl.
package httpapi

import (
	"encoding/json"
	"net/http"

	"github.com/julienschmidt/httprouter"
	"github.com/rs/zerolog"
)

// BasePath prefixes every DLQ route.
const BasePath = "/hobom-event-processor/internal/api/v1"

// Options are what the API is built from.
type Options struct {
	Log zerolog.Logger
}

// New returns the API's handler.
func New(opts Options) http.Handler {
	r := httprouter.New()
	r.GET("/health", health)
	r.NotFound = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, "not found")
	})
	r.MethodNotAllowed = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusMethodNotAllowed, "method not allowed")
	})
	return r
}

func health(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "statusCode": 200, "message": "Service is healthy"})
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
