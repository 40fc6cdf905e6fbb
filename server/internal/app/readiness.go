package app

import (
	"context"
	"maps"
	"net/http"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/tokenbroker/tokenbroker/server/internal/transport"
)

// ReadinessInterval is how often a serving broker re-evaluates its readiness
// for gRPC health (/readyz evaluates it at each request as well).
const ReadinessInterval = 5 * time.Second

// readinessTimeout bounds one evaluation (the token store's answer).
const readinessTimeout = 2 * time.Second

// WithReadinessInterval re-evaluates readiness every d instead of
// ReadinessInterval (tests, to see a change at once).
func WithReadinessInterval(d time.Duration) Option {
	return func(a *App) { a.readyEvery = d }
}

// readiness is one verdict: ready, and each check's state.
type readiness struct {
	ready  bool
	checks map[string]string
}

// evaluateReadiness answers whether this replica can serve: it has started
// and is not draining, its token store answers and its views are fresh, CARTO
// has not refused its client credentials, and CARTO is reachable or tokens
// are cached (which it serves while CARTO is down).
func (a *App) evaluateReadiness(ctx context.Context) readiness {
	ctx, cancel := context.WithTimeout(ctx, readinessTimeout)
	defer cancel()
	r := readiness{ready: true, checks: map[string]string{"server": "ok", "store": "ok", "carto": "ok"}}
	switch {
	case !a.started.Load():
		r.checks["server"], r.ready = "starting", false
	case a.draining.Err() != nil:
		r.checks["server"], r.ready = "shutting down", false
	}
	if err := a.cache.Ready(ctx); err != nil {
		r.checks["store"], r.ready = "unavailable", false
	}
	switch {
	case a.carto.CredentialsRefused():
		r.checks["carto"], r.ready = "client credentials refused (check CARTO_CLIENT_ID and CARTO_CLIENT_SECRET)", false
	case !a.carto.Reachable():
		if a.cache.HasTokens(ctx) {
			r.checks["carto"] = "unreachable; serving cached tokens"
		} else {
			r.checks["carto"], r.ready = "unreachable and no token cached", false
		}
	}
	return r
}

// checkReadiness evaluates readiness and reports it through gRPC health, for
// "" and the TokenBroker service alike, so that /readyz and gRPC health never
// disagree. Once shutdown has begun, health stays NOT_SERVING whatever this
// reports. A change is logged.
func (a *App) checkReadiness(ctx context.Context) readiness {
	a.readyMu.Lock()
	defer a.readyMu.Unlock()
	r := a.evaluateReadiness(ctx)
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if r.ready {
		st = healthpb.HealthCheckResponse_SERVING
	}
	for _, svc := range transport.HealthServices {
		a.health.SetServingStatus(svc, st)
	}
	if a.lastReady == nil || a.lastReady.ready != r.ready || !maps.Equal(a.lastReady.checks, r.checks) {
		attrs := []any{"ready", r.ready}
		for _, k := range []string{"server", "store", "carto"} {
			attrs = append(attrs, k, r.checks[k])
		}
		if r.ready || !a.started.Load() {
			a.log.Info("readiness", attrs...)
		} else {
			a.log.Warn("readiness", attrs...)
		}
		a.lastReady = &r
	}
	return r
}

// watchReadiness re-evaluates readiness every interval until ctx ends.
func (a *App) watchReadiness(ctx context.Context) {
	every := a.readyEvery
	if every <= 0 {
		every = ReadinessInterval
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.checkReadiness(ctx)
		}
	}
}

// readyz answers readiness over HTTP: 200 when ready, 503 when not, with
// each check's state. It reports the verdict to gRPC health too.
func (a *App) readyz(w http.ResponseWriter, r *http.Request) {
	rd := a.checkReadiness(r.Context())
	status, code := "ready", http.StatusOK
	if !rd.ready {
		status, code = "not ready", http.StatusServiceUnavailable
	}
	transport.WriteJSON(w, code, map[string]any{"status": status, "checks": rd.checks})
}
