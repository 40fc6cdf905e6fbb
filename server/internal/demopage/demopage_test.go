package demopage

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestRoutes(t *testing.T) {
	routes := Routes("http://127.0.0.1:8001")
	tests := []struct {
		path, contentType, contains string
	}{
		{"/", "text/html; charset=utf-8", `<script src="/demo/app.js"`},
		{"/demo/app.js", "text/javascript; charset=utf-8", "/v1/carto-token"},
		{"/demo/app.css", "text/css; charset=utf-8", "@media"},
	}
	if len(routes) != len(tests) {
		t.Fatalf("%d routes, want %d", len(routes), len(tests))
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			h, ok := routes[tc.path]
			if !ok {
				t.Fatalf("no route %s", tc.path)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tc.path, nil))
			hdr := rec.Header()
			if rec.Code != http.StatusOK || hdr.Get("Content-Type") != tc.contentType || !strings.Contains(rec.Body.String(), tc.contains) {
				t.Fatalf("%d %q, body has %q: %v", rec.Code, hdr.Get("Content-Type"), tc.contains, strings.Contains(rec.Body.String(), tc.contains))
			}
			// The page may reach the broker and the CARTO API it was given, nothing else.
			if csp := hdr.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "connect-src 'self' http://127.0.0.1:8001;") {
				t.Fatalf("CSP %q", csp)
			}
			if hdr.Get("X-Content-Type-Options") != "nosniff" {
				t.Fatal("no nosniff")
			}
		})
	}
}
