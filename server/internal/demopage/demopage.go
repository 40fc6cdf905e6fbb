// Package demopage is the demo mode's web page: log in as a demo user, get a
// CARTO token, see the group's stores read with exactly the granted query,
// watch another city's query be refused, revoke. Plain HTML, CSS and JS,
// embedded in the binary: nothing to build, nothing fetched.
package demopage

import (
	"embed"
	"net/http"
	"net/url"
	"path"
	"strings"
)

//go:embed static
var static embed.FS

// Routes returns the page's routes by path: "/" and its two assets.
// cartoURLs are the CARTO APIs the page calls with the token (the
// emulator, and the broker's CARTO gateway); the Content-Security-Policy
// lets the page reach only them and the broker.
func Routes(cartoURLs ...string) map[string]http.Handler {
	var origins []string
	for _, s := range cartoURLs {
		if u, err := url.Parse(s); err == nil && u.Host != "" {
			origins = append(origins, u.Scheme+"://"+u.Host)
		}
	}
	csp := strings.Join([]string{
		"default-src 'none'",
		"script-src 'self'",
		"style-src 'self'",
		"img-src 'self' data:",
		"connect-src 'self' " + strings.Join(origins, " "),
		"base-uri 'none'",
		"form-action 'none'",
		"frame-ancestors 'none'",
	}, "; ")
	serve := func(name, contentType string) http.Handler {
		body, err := static.ReadFile(path.Join("static", name))
		if err != nil {
			panic("demopage: " + name + " is not embedded") // a build error, caught by the tests
		}
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			h := w.Header()
			h.Set("Content-Type", contentType)
			h.Set("Content-Security-Policy", csp)
			h.Set("X-Content-Type-Options", "nosniff")
			h.Set("Referrer-Policy", "no-referrer")
			// The page changes with the binary; always ask again.
			h.Set("Cache-Control", "no-cache")
			_, _ = w.Write(body)
		})
	}
	return map[string]http.Handler{
		"/":             serve("index.html", "text/html; charset=utf-8"),
		"/demo/app.js":  serve("app.js", "text/javascript; charset=utf-8"),
		"/demo/app.css": serve("app.css", "text/css; charset=utf-8"),
	}
}
