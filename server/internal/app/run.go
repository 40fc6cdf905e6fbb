package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
)

// Run serves until ctx ends, then stops taking requests, lets in-flight ones
// finish (up to ShutdownTimeout), stops the background work, closes the
// store and the audit file, flushes the traces, and returns.
func (a *App) Run(ctx context.Context) error {
	// Background work (the shared store's feed, reconciliation, the CARTO
	// OAuth token's refresh, key rotation) outlives the drain: in-flight
	// requests still need fresh views to finish.
	var bgWG sync.WaitGroup
	bgWG.Go(func() {
		if err := a.cache.Run(a.bg); err != nil {
			a.log.Error("token store feed stopped", "error", err)
		}
	})
	bgWG.Go(func() { a.reconciler.Run(a.bg) })
	// It fetches the token at once if there is none, so that the first
	// token request after a start waits for one CARTO call, not two.
	bgWG.Go(func() { a.carto.KeepOAuthFresh(a.bg) })
	if a.rotating != nil {
		bgWG.Go(func() { a.rotating.Run(a.bg) })
	}
	defer func() {
		a.stopBg()
		bgWG.Wait()
		if err := a.store.Close(); err != nil {
			a.log.Warn("closing the token store", "error", err)
		}
		if a.auditFile != nil {
			a.auditFile.Close()
		}
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := a.tracing.Shutdown(sctx); err != nil {
			a.log.Warn("flushing traces", "error", err)
		}
	}()

	g, gctx := errgroup.WithContext(ctx)
	serve := func(name string, f func() error) {
		g.Go(func() error {
			if err := f(); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, grpc.ErrServerStopped) {
				return fmt.Errorf("%s server: %w", name, err)
			}
			return nil
		})
	}
	serve("gRPC", func() error { return a.grpcSrv.Serve(a.grpcLn) })
	serve("REST", func() error { return a.httpSrv.Serve(a.httpLn) })
	if a.simSrv != nil {
		serve("CARTO emulator", func() error { return a.simSrv.Serve(a.simLn) })
	}
	// A replica is ready once its views of a shared store are in sync;
	// until then its requests fail closed.
	syncCtx, cancelSync := context.WithTimeout(gctx, 10*time.Second)
	if err := a.cache.WaitSynced(syncCtx); err != nil && gctx.Err() == nil {
		a.log.Warn("not in sync with the shared token store yet; requests fail closed until it is", "error", err)
	}
	cancelSync()
	// Health (gRPC and /readyz alike) reports readiness from now on, and
	// is re-evaluated until the drain.
	a.started.Store(true)
	a.checkReadiness(gctx)
	bgWG.Go(func() { a.watchReadiness(a.bg) })
	close(a.serving)
	a.log.Info("tokenbroker serving", "grpc", a.GRPCAddr(), "rest", a.HTTPAddr(), "config", a.cfg)

	g.Go(func() error {
		<-gctx.Done()
		a.shutdown()
		return nil
	})
	return g.Wait()
}

func (a *App) shutdown() {
	a.log.Info("shutting down: draining in-flight requests")
	// Probes see NOT_SERVING first, so load balancers stop sending; then
	// watch streams end, since they would otherwise hold the drain open.
	a.health.Shutdown()
	a.startDrain()
	ctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	stopped := make(chan struct{})
	go func() { a.grpcSrv.GracefulStop(); close(stopped) }()
	if err := a.httpSrv.Shutdown(ctx); err != nil {
		a.log.Warn("REST server did not drain in time", "error", err)
	}
	select {
	case <-stopped:
	case <-ctx.Done():
		a.log.Warn("gRPC server did not drain in time; closing connections")
		a.grpcSrv.Stop()
		<-stopped
	}
	if a.simSrv != nil {
		_ = a.simSrv.Shutdown(ctx)
	}
}
