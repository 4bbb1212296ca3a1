package console_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hobom/hobom-event-processor/httpapi/console"
)

// TestServesEmbeddedFilesWithAStrictPolicy checks what the handler serves
// without a browser: the page at the path with and without a slash, its
// script and style, 404 for anything else, and the security headers on all.
func TestServesEmbeddedFilesWithAStrictPolicy(t *testing.T) {
	h := console.Handler()
	for _, c := range []struct {
		path, wantType, wantBody string
		want                     int
	}{
		{console.Path, "text/html", `<form id="login-form">`, 200},
		{console.Path + "/", "text/html", `<form id="login-form">`, 200},
		{console.Path + "/console.js", "javascript", `const API = "/hobom-event-processor/internal/api/v1"`, 200},
		{console.Path + "/console.css", "text/css", `[hidden]`, 200},
		{console.Path + "/nope.js", "", "", 404},
		{console.Path + "/../api/v1/dlq", "", "", 404},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, c.path, nil))
		body, _ := io.ReadAll(rec.Body)
		if rec.Code != c.want || !strings.Contains(rec.Header().Get("Content-Type"), c.wantType) || !strings.Contains(string(body), c.wantBody) {
			t.Errorf("GET %s: %d %q, want %d %q holding %q", c.path, rec.Code, rec.Header().Get("Content-Type"), c.want, c.wantType, c.wantBody)
		}
		if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("GET %s: CSP %q", c.path, csp)
		}
		if rec.Header().Get("Set-Cookie") != "" {
			t.Errorf("GET %s sets a cookie", c.path)
		}
	}
	// No inline script or style: the policy would block them.
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, console.Path, nil))
	if page := rec.Body.String(); strings.Contains(page, "<script>") || strings.Contains(page, "<style") || strings.Contains(page, "onclick=") || strings.Contains(page, "http://") || strings.Contains(page, "https://") {
		t.Error("the page has inline script or style, or loads something from another origin")
	}
}
