package app

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tokenbroker/tokenbroker/server/internal/apidoc"
	"github.com/tokenbroker/tokenbroker/server/internal/demopage"
	"github.com/tokenbroker/tokenbroker/server/internal/metrics"
	"github.com/tokenbroker/tokenbroker/server/internal/tokencache"
	"github.com/tokenbroker/tokenbroker/server/internal/transport"
)

// newMetrics makes the Prometheus metrics, whose gauges of live tokens and
// of this hour's mints read the store.
func (a *App) newMetrics() *metrics.Metrics {
	return metrics.New(metrics.Gauges{
		LiveTokens: func(ctx context.Context) (int, error) {
			es, err := a.store.Entries(ctx)
			return len(es), err
		},
		MaxLiveTokens:   a.cfg.MaxLiveTokens,
		MaxMintsPerHour: a.cfg.MaxMintsPerHour,
		MintsThisHour: func(ctx context.Context) (int64, error) {
			return a.store.Count(ctx, tokencache.CreationCounter, time.Now(), time.Hour, 0)
		},
	})
}

// routes are the HTTP endpoints beside the API: metrics, probes, the API
// description, with asymmetric sessions their public keys, and in demo mode
// the demo page.
func (a *App) routes() map[string]http.Handler {
	r := map[string]http.Handler{
		"/metrics": promhttp.HandlerFor(a.metrics.Registry, promhttp.HandlerOpts{}),
		"/healthz": http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			transport.WriteJSON(w, http.StatusOK, map[string]string{"status": "alive"})
		}),
		"/readyz":       http.HandlerFunc(a.readyz),
		"/openapi.json": apidoc.Handler(),
	}
	if a.cfg.Demo {
		// The demo page, at "/": it calls the emulator with the tokens.
		for path, h := range demopage.Routes(a.cfg.Carto.BaseURL, a.gatewayURL()) {
			r[path] = h
		}
	}
	if a.rotating != nil {
		r["/.well-known/jwks.json"] = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			b, err := a.rotating.JWKS(req.Context())
			if err != nil {
				transport.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "the session keys cannot be read right now"})
				return
			}
			w.Header().Set("Content-Type", "application/jwk-set+json")
			w.Header().Set("Cache-Control", "public, max-age=300")
			_, _ = w.Write(b)
		})
	}
	return r
}
