package app

import (
	"context"
	"net/http"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"

	"github.com/tokenbroker/tokenbroker/server/internal/broker"
	"github.com/tokenbroker/tokenbroker/server/internal/carto"
	"github.com/tokenbroker/tokenbroker/server/internal/store"
	"github.com/tokenbroker/tokenbroker/server/internal/tokencache"
)

// newCartoClient makes the CARTO client: one OAuth token for the whole
// deployment, kept in the store, and CARTO's pauses shared by the replicas.
func (a *App) newCartoClient() (*carto.Client, error) {
	httpClient := &http.Client{Timeout: 30 * time.Second}
	if a.tracing.Enabled {
		httpClient.Transport = otelhttp.NewTransport(http.DefaultTransport,
			otelhttp.WithTracerProvider(a.tracing.Provider), otelhttp.WithPropagators(a.tracing.Propagator))
	}
	return carto.New(carto.Config{
		HTTPClient:      httpClient,
		Observe:         a.metrics.CartoCall,
		BaseURL:         a.cfg.Carto.BaseURL,
		AuthURL:         a.cfg.Carto.AuthURL,
		ClientID:        a.cfg.Carto.ClientID,
		ClientSecret:    a.cfg.Carto.ClientSecret,
		Logger:          a.log,
		Now:             a.cartoNow,
		CallTimeout:     a.cfg.Carto.CallTimeout,
		BreakerCooldown: a.cfg.Carto.BreakerCooldown,
		// One OAuth token for the whole deployment, kept across restarts.
		Shared: store.SharedSecret{Store: a.store, Name: "carto-oauth"},
		// CARTO's Retry-After holds every replica back, per endpoint.
		Pauses: store.SharedPauses{Store: a.store, Name: "carto-pause"},
	})
}

// newTokenCache makes the cache of CARTO tokens, loaded from the store, and
// the reconciler that deletes at CARTO the tokens no policy explains.
func (a *App) newTokenCache(ctx context.Context) (*tokencache.Cache, *broker.Reconciler, error) {
	cfg, policies := a.cfg, a.cfg.Built.Policies
	// Tokens are minted and reconciled under every policy: the groups' and
	// the named queries' audiences'.
	mintable := broker.Mintable{Groups: policies, Queries: cfg.Built.Queries}
	upstream := broker.Upstream{Carto: a.carto, Policies: mintable, NamePrefix: broker.TokenNamePrefix(cfg.Deployment)}
	cache := tokencache.New(tokencache.Config{
		Store:         a.store,
		Upstream:      upstream,
		Logger:        a.log,
		MaxLiveTokens: cfg.MaxLiveTokens,
		MaxMints:      cfg.MaxMintsPerHour,
		MintWindow:    time.Hour,
		Observer:      a.metrics,
		// Fairness (see README, Quota): a group's share, a share kept for
		// refreshes, and a budget of members' revocations.
		MaxGroupMints:         cfg.MaxMintsPerGroupPerHour,
		RefreshReservePercent: cfg.RefreshReservePercent,
		MaxGroupRevocations:   cfg.MaxRevocationsPerGroupPerHour,
	})
	if err := cache.Load(ctx); err != nil {
		return nil, nil, err
	}
	reconciler := broker.NewReconciler(broker.ReconcilerConfig{
		Cache:      cache,
		Store:      a.store,
		Policies:   mintable,
		Carto:      a.carto,
		Upstream:   upstream,
		NamePrefix: broker.TokenNamePrefix(cfg.Deployment),
		Interval:   cfg.ReconcileInterval,
		Logger:     a.log,
	})
	return cache, reconciler, nil
}
