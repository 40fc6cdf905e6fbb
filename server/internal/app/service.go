package app

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/api"
	"github.com/tokenbroker/tokenbroker/server/internal/audit"
	"github.com/tokenbroker/tokenbroker/server/internal/auth"
	"github.com/tokenbroker/tokenbroker/server/internal/broker"
	"github.com/tokenbroker/tokenbroker/server/internal/telemetry"
)

// newService makes the broker and the API service over it, which audits to
// AUDIT_LOG; the closer closes the audit file (nil when there is none).
func (a *App) newService(id identity) (*api.Service, io.Closer, error) {
	cfg, log := a.cfg, a.log
	auditLog, auditFile, err := a.openAudit()
	if err != nil {
		return nil, nil, err
	}
	b := broker.New(broker.Config{
		Users:      id.users,
		Sessions:   id.sessions,
		Policies:   cfg.Built.Policies,
		Cache:      a.cache,
		APIBaseURL: a.carto.BaseURL(),
		GatewayURL: a.gatewayURL(),
		Queries:    cfg.Built.Queries,
		Runner:     broker.CartoRunner{Carto: a.carto},
		// Public named queries, per client address.
		PublicQueriesPerMinute: cfg.PublicQueriesPerMinute,
		QueryCacheBytes:        cfg.QueryCacheBytes,
		QueryObserver:          a.metrics,
		OnQueryEvict:           a.metrics.QueryEvicted,
		Logger:                 log,
		Guard: auth.NewGuard(auth.GuardConfig{
			Counter:         a.store,
			MaxUserFailures: cfg.LoginMaxUserFailures,
			MaxAddrFailures: cfg.LoginMaxAddrFailures,
			Window:          cfg.LoginWindow,
		}),
		Limiter: auth.NewLoginLimiter(auth.LoginLimiterConfig{
			MaxQueue:     cfg.LoginMaxQueue,
			QueueTimeout: cfg.LoginQueueTimeout,
			MaxPerAddr:   cfg.LoginMaxPerAddr,
		}),
		AdminsRevokeCartoTokens: cfg.AdminsRevokeCartoTokens,
	})
	a.metrics.WatchQueryCache(b.QueryCacheSize)
	svc := api.NewService(api.Config{Broker: b, Logger: log, Audit: auditLog, Recorder: a.metrics})
	return svc, auditFile, nil
}

// openAudit opens the audit log's destination (AUDIT_LOG), and returns the
// file's closer when it is a file.
func (a *App) openAudit() (*audit.Logger, io.Closer, error) {
	switch a.cfg.AuditLog {
	case "":
		return audit.New(a.log.Handler()), nil, nil
	case "off":
		return audit.Discard(), nil, nil
	case "stdout":
		return audit.New(slog.NewJSONHandler(os.Stdout, nil)), nil, nil
	}
	f, err := os.OpenFile(a.cfg.AuditLog, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("AUDIT_LOG: %w: set it to a file the broker may write in an existing directory, or to stdout or off", err)
	}
	// Events are written in batches (every 100 ms, and at shutdown).
	w := telemetry.NewBufferedWriter(f, 100*time.Millisecond)
	return audit.New(slog.NewJSONHandler(w, nil)), closers{w, f}, nil
}
