// Package app wires the broker from its configuration and runs it. New calls
// one constructor per part, in order: the listeners (and in demo mode the
// in-process CARTO emulator), the store, the CARTO client, the token cache,
// identity, the broker, the servers. Run serves until the context ends, then
// drains them.
package app

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"

	"github.com/tokenbroker/tokenbroker/server/internal/auth"
	"github.com/tokenbroker/tokenbroker/server/internal/broker"
	"github.com/tokenbroker/tokenbroker/server/internal/carto"
	"github.com/tokenbroker/tokenbroker/server/internal/cartosim"
	"github.com/tokenbroker/tokenbroker/server/internal/config"
	"github.com/tokenbroker/tokenbroker/server/internal/metrics"
	"github.com/tokenbroker/tokenbroker/server/internal/store"
	"github.com/tokenbroker/tokenbroker/server/internal/telemetry"
	"github.com/tokenbroker/tokenbroker/server/internal/tokencache"
)

// ShutdownTimeout bounds how long in-flight requests may take to finish
// after a shutdown signal before their connections are closed.
const ShutdownTimeout = 10 * time.Second

// App is a wired broker, listening but not yet serving.
type App struct {
	cfg config.Config
	log *slog.Logger

	grpcLn, httpLn net.Listener
	grpcSrv        *grpc.Server
	health         *health.Server
	httpSrv        *http.Server

	// draining ends when shutdown starts, ending long-lived streams.
	draining   context.Context
	startDrain context.CancelFunc

	store      store.Store
	cache      *tokencache.Cache
	reconciler *broker.Reconciler
	rotating   *auth.RotatingKeys // asymmetric session keys; nil with HS256
	auditFile  io.Closer          // nil unless AUDIT_LOG is a file
	carto      *carto.Client
	metrics    *metrics.Metrics
	tracing    telemetry.Tracing
	cartoNow   func() time.Time    // nil: time.Now
	grpcOpts   []grpc.ServerOption // added to the gRPC server's own

	// bg lives until Run has drained the servers: background work (the
	// store's feed, reconciliation, the CARTO OAuth token's refresh, key
	// rotation, IdP key refresh).
	bg     context.Context
	stopBg context.CancelFunc
	// serving is closed once Run serves (health reports readiness).
	serving chan struct{}
	// started is set once Run serves: readiness may then be reported.
	started atomic.Bool
	// readyEvery is how often readiness is re-evaluated (0: ReadinessInterval).
	readyEvery time.Duration
	// readyMu orders readiness reports; lastReady is the last one (nil: none).
	readyMu   sync.Mutex
	lastReady *readiness

	// demo mode only
	sim    *cartosim.Sim
	simLn  net.Listener
	simSrv *http.Server
}

// Option adjusts an App.
type Option func(*App)

// WithTracing traces requests and CARTO calls with t (see telemetry.Setup).
func WithTracing(t telemetry.Tracing) Option { return func(a *App) { a.tracing = t } }

// WithCartoClock makes the CARTO client read the time from now: its circuit
// breaker's cooldown, CARTO's pauses and the OAuth token's expiry. Tests
// move a clocktest.Clock to end a cooldown or a pause without waiting.
func WithCartoClock(now func() time.Time) Option { return func(a *App) { a.cartoNow = now } }

// WithGRPCServerOptions adds opts to the gRPC server's (a test's stats
// handler, say, to see when the server has finished a call).
func WithGRPCServerOptions(opts ...grpc.ServerOption) Option {
	return func(a *App) { a.grpcOpts = append(a.grpcOpts, opts...) }
}

// New wires the broker and opens its listeners. Nothing is served until Run.
// cfg must come from config.Load, which builds the policy set and services.
func New(ctx context.Context, cfg config.Config, log *slog.Logger, opts ...Option) (_ *App, err error) {
	if cfg.Built.Policies == nil {
		return nil, errors.New("app: the configuration was not validated: make it with config.Load")
	}
	a := &App{cfg: cfg, log: log, serving: make(chan struct{})}
	for _, o := range opts {
		o(a)
	}
	if a.tracing.Provider == nil {
		a.tracing, _ = telemetry.Setup(ctx, func(string) (string, bool) { return "", false })
	}
	a.draining, a.startDrain = context.WithCancel(context.Background())
	a.bg, a.stopBg = context.WithCancel(context.WithoutCancel(ctx))
	// undo closes what was built, in reverse, if a later part fails.
	undo := closers{closerFunc(a.stopBg)}
	defer func() {
		if err != nil {
			undo.reverse().Close()
		}
	}()

	if a.grpcLn, a.httpLn, err = openListeners(cfg); err != nil {
		return nil, err
	}
	undo = append(undo, a.grpcLn, a.httpLn)
	if cfg.Demo {
		em, err := a.startEmulator()
		if err != nil {
			return nil, err
		}
		a.sim, a.simLn, a.simSrv, a.cfg.Carto = em.sim, em.ln, em.srv, em.carto
		undo = append(undo, a.simLn)
	}
	if a.store, err = openStore(ctx, a.cfg); err != nil {
		return nil, err
	}
	undo = append(undo, a.store)
	a.metrics = a.newMetrics()
	if a.carto, err = a.newCartoClient(); err != nil {
		return nil, err
	}
	if a.cache, a.reconciler, err = a.newTokenCache(ctx); err != nil {
		return nil, err
	}
	id, err := a.newIdentity(ctx)
	if err != nil {
		return nil, err
	}
	a.rotating = id.rotating
	svc, auditFile, err := a.newService(id)
	if err != nil {
		return nil, err
	}
	a.auditFile = auditFile
	undo = append(undo, auditFile)
	s, err := a.newServers(ctx, svc, id)
	if err != nil {
		return nil, err
	}
	a.grpcSrv, a.health, a.httpSrv, a.httpLn = s.grpc, s.health, s.http, s.httpLn
	return a, nil
}

// closers closes several things in order, and reports every failure.
type closers []io.Closer

func (c closers) Close() error {
	var errs []error
	for _, x := range c {
		if x != nil {
			errs = append(errs, x.Close())
		}
	}
	return errors.Join(errs...)
}

// reverse is c in reverse order: the last built is closed first.
func (c closers) reverse() closers {
	out := make(closers, len(c))
	for i, x := range c {
		out[len(c)-1-i] = x
	}
	return out
}

// closerFunc is a function called as a Close.
type closerFunc func()

func (f closerFunc) Close() error { f(); return nil }

// GRPCAddr and HTTPAddr are where the app listens (EmulatorURL: the emulator).
func (a *App) GRPCAddr() string { return a.grpcLn.Addr().String() }
func (a *App) HTTPAddr() string { return a.httpLn.Addr().String() }

// Config is the configuration the app runs with (in demo mode, pointing at
// the emulator).
func (a *App) Config() config.Config { return a.cfg }

// Warm gets the deployment's CARTO OAuth token (another replica's, or a new
// one) if this replica has none, so that the first token request after a
// start waits for one CARTO call, not two. Run's background refresher
// fetches it at start too; Warm is for a caller that must wait for it.
func (a *App) Warm(ctx context.Context) error { return a.carto.Warm(ctx) }

// Serving is closed once Run serves: its servers accept calls and its health
// reports its readiness (SERVING when ready, as /readyz). A caller starting
// Run in a goroutine waits on it (and on Run returning early with an error).
func (a *App) Serving() <-chan struct{} { return a.serving }
